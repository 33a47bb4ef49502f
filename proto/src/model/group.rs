//! Workspace backups: one backup per cluster of a workspace, made together.

use serde::{Deserialize, Serialize};

use super::{BackupName, ClusterName, ScheduleName, Timestamp, WorkspaceName};

/// One cluster's part in a workspace backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The cluster.
    pub cluster: ClusterName,
    /// Its backup; `None` if it was skipped.
    pub backup: Option<BackupName>,
    /// Why it was skipped.
    pub skipped: Option<String>,
}

/// A workspace backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupGroup {
    /// Its name; members are named `<name>-<cluster>`.
    pub name: BackupName,
    /// The workspace.
    pub workspace: WorkspaceName,
    /// When it was made.
    pub created: Option<Timestamp>,
    /// One per cluster of the workspace at that time.
    pub members: Vec<GroupMember>,
    /// The schedule that made it.
    pub schedule: Option<ScheduleName>,
}
