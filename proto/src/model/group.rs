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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BackupOrigin, BackupStatus, BackupTemplate};

    fn name<T: std::str::FromStr>(text: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        text.parse().expect("valid name")
    }

    /// A workspace backup of clusters `a`, `b`, `c`: `backups` says how far each member got
    /// (`None`: its backup is not recorded yet); `skipped` clusters got none.
    fn group(backups: &[(&str, Option<Phase>)], skipped: &[&str]) -> WorkspaceBackup {
        let mut members: Vec<GroupMember> = backups
            .iter()
            .map(|(cluster, _)| GroupMember {
                cluster: name(cluster),
                backup: Some(name(&format!("nightly-{cluster}"))),
                skipped: None,
            })
            .collect();
        members.extend(skipped.iter().map(|cluster| GroupMember {
            cluster: name(cluster),
            backup: None,
            skipped: Some("not connected".into()),
        }));
        let recorded = backups
            .iter()
            .filter_map(|(cluster, phase)| {
                let spec = BackupTemplate::default().spec(
                    name(&format!("nightly-{cluster}")),
                    name(cluster),
                    BackupOrigin::default(),
                );
                phase.map(|phase| Backup {
                    spec,
                    status: BackupStatus {
                        phase,
                        ..BackupStatus::default()
                    },
                })
            })
            .collect();
        WorkspaceBackup {
            group: BackupGroup {
                name: name("nightly"),
                workspace: name("eu"),
                created: None,
                members,
                schedule: None,
            },
            backups: recorded,
        }
    }

    /// Members' backups as far as they got, skipped clusters, the phase the whole must show.
    type Case<'a> = (&'a [(&'a str, Option<Phase>)], &'a [&'a str], Phase);

    #[test]
    fn completed_only_when_every_cluster_completed() {
        use Phase::{Completed, Failed, InProgress, PartiallyFailed, Pending};
        let cases: [Case; 8] = [
            (&[("a", Some(Completed)), ("b", Some(Completed))], &[], Completed),
            (
                &[("a", Some(Completed)), ("b", Some(InProgress))],
                &[],
                InProgress,
            ),
            (&[("a", Some(Completed)), ("b", Some(Pending))], &[], InProgress),
            (&[("a", Some(Completed)), ("b", None)], &[], InProgress),
            (
                &[("a", Some(Completed)), ("b", Some(Failed))],
                &[],
                PartiallyFailed,
            ),
            (
                &[("a", Some(PartiallyFailed)), ("b", Some(Completed))],
                &[],
                PartiallyFailed,
            ),
            (
                &[("a", Some(Completed)), ("b", Some(Completed))],
                &["c"],
                PartiallyFailed,
            ),
            (&[("a", Some(Failed)), ("b", Some(Failed))], &["c"], Failed),
        ];
        for (backups, skipped, want) in cases {
            assert_eq!(
                group(backups, skipped).phase(),
                want,
                "{backups:?} skipped {skipped:?}"
            );
        }
        assert_eq!(group(&[], &["a", "b"]).phase(), Failed, "every cluster skipped");
    }
}
