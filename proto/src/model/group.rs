//! Workspace backups: one backup per cluster of a workspace, made together.

use serde::{Deserialize, Serialize};

use super::{Backup, BackupName, ClusterName, Phase, ScheduleName, Timestamp, WorkspaceName};

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

/// A workspace backup with its members' backups as they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceBackup {
    /// The record.
    pub group: BackupGroup,
    /// Its members' backups.
    pub backups: Vec<Backup>,
}

impl WorkspaceBackup {
    /// Where it stands: `Completed` only if every cluster's backup completed; `PartiallyFailed`
    /// if any cluster was skipped or failed while others got through; `Failed` if none did.
    pub fn phase(&self) -> Phase {
        let pending = self.group.members.iter().any(|m| {
            m.backup
                .as_ref()
                .is_some_and(|n| !self.backups.iter().any(|b| b.spec.name == *n))
        });
        if pending || self.backups.iter().any(|b| !b.status.phase.is_final()) {
            return Phase::InProgress;
        }
        let good = self
            .backups
            .iter()
            .filter(|b| matches!(b.status.phase, Phase::Completed | Phase::PartiallyFailed))
            .count();
        let all_completed = self.backups.iter().all(|b| b.status.phase == Phase::Completed);
        if good == 0 {
            Phase::Failed
        } else if all_completed && self.backups.len() == self.group.members.len() {
            Phase::Completed
        } else {
            Phase::PartiallyFailed
        }
    }
}
