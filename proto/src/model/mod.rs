//! Cairn's domain types: what hub, agent and CLI speak. Wire forms live in [`crate::pb`] and
//! are converted in [`crate::convert`]; nothing here knows about protobuf.

mod access;
mod backup;
mod channel;
mod cluster;
mod denial;
mod group;
mod group_kind;
mod identity;
mod item;
mod keyword;
mod location;
mod name;
mod operation;
mod restore;
mod schedule;
mod selector;
mod time;
mod volume;
mod workspace;

pub use access::{AuditEntry, Permission, Role, UserToken};
pub use backup::{
    Backup, BackupOrigin, BackupQuery, BackupSpec, BackupStatus, ClusterResources, Manifest, NamespaceFilter,
    StoredObject,
};
pub use channel::{AgentState, Instruction, Order, Registration, Report, Vouch};
pub use cluster::{Cluster, JoinGrant, JoinTicket};
pub use denial::{Denial, Refusal};
pub use group::{BackupGroup, GroupMember, WorkspaceBackup};
pub use group_kind::{GroupKind, InvalidGroupKind};
pub use identity::{AgentId, InvalidAgentId, valid_node};
pub use item::{IndexEntry, ItemRef, ItemResult, Live, Outcome, Progress, ResourceSummary};
pub use keyword::UnknownKeyword;
pub use location::{
    Credentials, Endpoint, Health, Location, LocationInfo, LocationSpec, Provider, Prune, SealedKeyVersion,
    Store, StoredLocation,
};
pub use name::{
    BackupName, ClusterName, InvalidName, LocationName, RestoreName, ScheduleName, TokenName, WorkspaceName,
    is_object_name,
};
pub use operation::{InvalidOperation, OperationId, VolumeTaskId};
pub use restore::{
    ExistingPolicy, OutcomeCounts, Restore, RestoreSpec, RestoreStatus, parse_namespace_mapping,
};
pub use schedule::{BackupTemplate, Schedule, ScheduleSpec, ScheduleStatus, ScheduleTarget};
pub use selector::{InvalidSelector, LabelSelector};
pub use time::Timestamp;
pub use volume::{
    KeyVersion, RepositoryKey, ResourceKey, ResourceKeys, VolumeProgress, VolumeResult, VolumeTask,
};
pub use workspace::{DEFAULT_WORKSPACE, Workspace};

use serde::{Deserialize, Serialize};

/// Where a backup or restore stands. Only `Completed` means everything it listed was done.
/// Printed as its variant's name (`InProgress`); named on the command line by its
/// [keyword](Phase::KEYWORDS) (`in-progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Phase {
    /// Accepted by the hub, not yet started by the agent.
    #[default]
    Pending,
    /// The agent is working on it.
    InProgress,
    /// Every item done.
    Completed,
    /// Done, but some items failed; each failure is recorded with its cause.
    PartiallyFailed,
    /// Stopped: nothing usable, or the agent was lost mid-way.
    Failed,
}

impl Phase {
    /// Whether the operation has ended (successfully or not).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::PartiallyFailed | Self::Failed)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
