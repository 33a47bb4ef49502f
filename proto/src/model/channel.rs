//! The agent channel (`proto/cairn/v1/agent.proto`) in domain terms: what the hub asks an agent
//! to do ([`Instruction`]) and what an agent tells the hub ([`Report`]). Hub and agent both speak
//! these; the one conversion to the wire is in [`crate::convert`].

use std::time::Duration;

use super::{
    Backup, BackupName, BackupSpec, BackupStatus, ClusterName, Location, LocationName, OperationId, Progress,
    Prune, RepositoryKey, ResourceKeys, RestoreName, RestoreSpec, RestoreStatus, ScheduleSpec,
    VolumeProgress, VolumeResult, VolumeTask, VolumeTaskId,
};

/// What the hub asks an agent to do.
#[derive(Debug, Clone)]
pub enum Instruction {
    /// To a cluster agent: run a backup into `location`.
    Backup {
        /// The backup.
        spec: BackupSpec,
        /// Where to write it.
        location: Location,
        /// The workspace's volume-repository key.
        key: RepositoryKey,
        /// The location's resource-backup keys (a backup seals with the newest).
        resources: ResourceKeys,
    },
    /// To a cluster agent: run a restore from `location`.
    Restore {
        /// The restore.
        spec: RestoreSpec,
        /// Where the backup is.
        location: Location,
        /// The workspace's volume-repository key.
        key: RepositoryKey,
        /// The location's resource-backup keys (a backup seals with the newest).
        resources: ResourceKeys,
    },
    /// To a cluster agent: prune the volume repository of `location`.
    Prune {
        /// The location.
        location: Location,
        /// The workspace's volume-repository key.
        key: RepositoryKey,
        /// How long unused packs stay planned before they are deleted.
        grace: Duration,
    },
    /// To a node agent: move one claim's data.
    Volume(VolumeTask),
    /// To a cluster agent: a node agent ended its task.
    VolumeDone(VolumeTaskId, VolumeResult),
    /// To a cluster agent: how far a node agent has got.
    VolumeProgress(VolumeProgress),
    /// Stop an operation (agents do not support it yet and say so).
    Cancel(OperationId),
    /// To a cluster agent: is this one of your node agents?
    Vouch(Vouch),
    /// To a cluster agent: the schedules it runs on its own when the hub does not start a slot
    /// (replacing those it holds).
    Orders(Vec<Order>),
    /// To a cluster agent: the backup it ran on its own is recorded as it reported it (`spooled`:
    /// the report made while it was in the site's spool; an agent reports a spooled backup again
    /// when it is shipped or dropped); it stops sending that report.
    Adopted {
        /// The backup.
        backup: BackupName,
        /// Which of its reports.
        spooled: bool,
    },
}

/// What a cluster agent keeps at rest between starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentState {
    /// Its standing orders, as the hub last gave them.
    pub orders: Vec<Order>,
    /// The slots' backups it has started (on its own or asked by the hub), oldest first.
    pub started: Vec<BackupName>,
    /// The backups it ran on its own that the hub has not adopted yet, oldest first.
    pub unreported: Vec<Backup>,
    /// The latest slot it looked at: a restarted agent catches up from there.
    pub looked: Option<super::Timestamp>,
}

/// A schedule as a cluster agent holds it, to run its slots when the hub does not: with the
/// location and keys its backups need.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// The schedule (paused ones are not given).
    pub schedule: ScheduleSpec,
    /// Where its backups go.
    pub location: Location,
    /// The location's volume-repository key, newest version.
    pub key: RepositoryKey,
    /// Every version of the location's resource-backup key.
    pub resources: ResourceKeys,
    /// When the schedule was made or last resumed (by the hub's clock): earlier slots are not
    /// owed.
    pub since: Option<super::Timestamp>,
}

/// A node agent asks to enrol: its cluster's agent checks `token` (a TokenReview) and that the
/// pod it was issued to runs on `node`.
#[derive(Debug, Clone)]
pub struct Vouch {
    /// Which request (the answer names it).
    pub id: u64,
    /// The node it says it runs on.
    pub node: String,
    /// Its pod's service-account token, audience `cairn`. `Debug` does not show it.
    pub token: secrecy::SecretString,
}

/// Who an agent is: the first report on every link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The cluster it serves.
    pub cluster: ClusterName,
    /// The agent's version.
    pub agent_version: String,
    /// The cluster's Kubernetes version (cluster agents).
    pub kubernetes_version: String,
    /// The node a node agent moves volume data on; `None`: a cluster agent.
    pub node: Option<String>,
}

/// What an agent tells the hub.
#[derive(Debug, Clone)]
pub enum Report {
    /// Who it is; first on every link.
    Register(Registration),
    /// Still there.
    Heartbeat,
    /// How far an operation has got.
    Progress(Progress),
    /// A backup ended.
    BackupDone(BackupName, BackupStatus),
    /// A restore ended.
    RestoreDone(RestoreName, RestoreStatus),
    /// Cluster agent: a claim's data to move, for the agent of the node named in it.
    VolumeTask(VolumeTask),
    /// Node agent: how far a task has got.
    VolumeProgress(VolumeProgress),
    /// Node agent: a task ended.
    VolumeDone(VolumeTaskId, VolumeResult),
    /// A prune of a location's volume repository ended.
    PruneDone(LocationName, Prune),
    /// Cluster agent: its verdict on [`Vouch`] `id`; `Err` says why not.
    Vouched(u64, Result<(), String>),
    /// Cluster agent: a scheduled backup it ran on its own ([`Order`]), until
    /// [`Instruction::Adopted`].
    OfflineBackup(Backup),
}

impl Report {
    /// Whether the hub must get it even across a broken link: an agent repeats its recent
    /// results on every new link (the hub records them idempotently); progress and requests are
    /// not repeated.
    pub fn is_result(&self) -> bool {
        matches!(
            self,
            Self::BackupDone(..) | Self::RestoreDone(..) | Self::VolumeDone(..) | Self::PruneDone(..)
        )
    }
}
