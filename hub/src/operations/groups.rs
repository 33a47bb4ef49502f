//! Workspace backups: one backup per cluster of a workspace, named `<name>-<cluster>`, started
//! together. A cluster whose agent is not connected is skipped with the reason (never waited for),
//! and the workspace backup then ends `PartiallyFailed`.

use cairn_proto::model::{
    BackupGroup, BackupName, BackupOrigin, BackupTemplate, GroupMember, ScheduleSpec, Timestamp,
    WorkspaceBackup, WorkspaceName,
};

use futures::StreamExt;

use super::{Hub, Refused, Result};
use cairn_proto::schedule::jitter;

/// Members of a workspace backup started at once.
const MEMBERS_AT_ONCE: usize = 32;

impl Hub {
    /// Backs up every cluster of `workspace` now.
    pub async fn create_workspace_backup(
        &self,
        name: BackupName,
        workspace: &WorkspaceName,
        template: &BackupTemplate,
    ) -> Result<WorkspaceBackup> {
        let now = self.inner.clock.now();
        let group = self.create_group(name, workspace, template, None, now).await?;
        self.workspace_backup(&group.name).await
    }

    /// Records a workspace backup and starts its members: each cluster at `slot` plus its jitter
    /// within the schedule's window (at once without a schedule).
    pub(super) async fn create_group(
        &self,
        name: BackupName,
        workspace: &WorkspaceName,
        template: &BackupTemplate,
        schedule: Option<&ScheduleSpec>,
        slot: Timestamp,
    ) -> Result<BackupGroup> {
        if self.inner.inventory.group(&name).await?.is_some() {
            return Err(Refused::Exists {
                kind: "workspace backup",
                name: name.to_string(),
            }
            .into());
        }
        let clusters = self.workspace(workspace).await?.clusters;
        if clusters.is_empty() {
            return Err(Refused::Membership(format!(
                "workspace {workspace} has no clusters (see `cairn workspace add-cluster`)"
            ))
            .into());
        }
        let mut group = BackupGroup {
            name: name.clone(),
            workspace: workspace.clone(),
            created: Some(self.inner.clock.now()),
            members: clusters
                .iter()
                .map(|c| GroupMember {
                    cluster: c.clone(),
                    backup: Some(cairn_proto::schedule::member_backup(&name, c)),
                    skipped: None,
                })
                .collect(),
            schedule: schedule.map(|s| s.name.clone()),
        };
        self.inner.inventory.put_group(&group).await?;
        let window = schedule.map(|s| s.jitter).unwrap_or_default();
        let offsets: Vec<_> = group
            .members
            .iter()
            .map(|m| schedule.map_or_else(Default::default, |s| jitter(&s.name, &m.cluster, window)))
            .collect();
        // Owned members: a spawned future may not hold borrows of any lifetime.
        let now: Vec<(usize, GroupMember)> = (group.members.iter().cloned().enumerate())
            .filter(|(i, _)| offsets[*i].is_zero())
            .collect();
        let group_name = group.name.clone();
        let started: Vec<_> = futures::stream::iter(now)
            .map(|(i, member)| {
                let group_name = group_name.clone();
                async move {
                    (
                        i,
                        self.start_member(&group_name, &member, template, schedule).await,
                    )
                }
            })
            .buffer_unordered(MEMBERS_AT_ONCE)
            .collect()
            .await;
        for (i, outcome) in started {
            if let Err(why) = outcome {
                group.members[i].backup = None;
                group.members[i].skipped = Some(why);
            }
        }
        let later: Vec<_> = group
            .members
            .iter()
            .zip(offsets)
            .filter(|(_, offset)| !offset.is_zero())
            .map(|(m, offset)| (m.clone(), offset))
            .collect();
        self.inner.inventory.put_group(&group).await?;
        for (member, offset) in later {
            let (hub, template, schedule) = (self.clone(), template.clone(), schedule.cloned());
            let at = Timestamp::from(std::time::SystemTime::from(slot) + offset);
            let group_name = group.name.clone();
            self.spawn(async move {
                tokio::select! {
                    () = hub.inner.clock.sleep_until(at) => {}
                    () = hub.stopping() => return,
                }
                if let Err(why) = hub
                    .start_member(&group_name, &member, &template, schedule.as_ref())
                    .await
                {
                    hub.skip_member(&group_name, &member.cluster, why).await;
                }
            });
        }
        tracing::info!(group = %group.name, %workspace, clusters = group.members.len(), "workspace backup started");
        Ok(group)
    }

    /// Starts one member's backup; the reason it could not, if not.
    async fn start_member(
        &self,
        group: &BackupName,
        member: &GroupMember,
        template: &BackupTemplate,
        schedule: Option<&ScheduleSpec>,
    ) -> std::result::Result<(), String> {
        let Some(name) = member.backup.clone() else {
            return Ok(());
        };
        let origin = BackupOrigin {
            schedule: schedule.map(|s| s.name.clone()),
            group: Some(group.clone()),
            ..BackupOrigin::default()
        };
        let spec = template.spec(name, member.cluster.clone(), origin);
        match self.create_backup(spec).await {
            // Its agent ran the slot on its own already (standing orders).
            Ok(_) | Err(super::Error::Refused(Refused::Exists { .. })) => Ok(()),
            Err(e) => Err(cairn_proto::error_chain(&e)),
        }
    }

    /// Records that `cluster` of workspace backup `group` was skipped, and why.
    async fn skip_member(&self, group: &BackupName, cluster: &cairn_proto::model::ClusterName, why: String) {
        tracing::warn!(%group, %cluster, why, "cluster skipped");
        if let Ok(Some(mut g)) = self.inner.inventory.group(group).await {
            for m in g.members.iter_mut().filter(|m| m.cluster == *cluster) {
                m.backup = None;
                m.skipped = Some(why.clone());
            }
            if let Err(e) = self.inner.inventory.put_group(&g).await {
                tracing::error!(error = %cairn_proto::error_chain(&e), "recording a skipped cluster");
            }
        }
    }

    /// The workspace backup called `name`, with its members' backups.
    pub async fn workspace_backup(&self, name: &BackupName) -> Result<WorkspaceBackup> {
        let group = self
            .inner
            .inventory
            .group(name)
            .await?
            .ok_or_else(|| Refused::UnknownBackup(name.clone()))?;
        let mut backups = Vec::new();
        for m in &group.members {
            if let Some(b) = &m.backup
                && let Some(backup) = self.inner.inventory.backup(b).await?
            {
                backups.push(backup);
            }
        }
        Ok(WorkspaceBackup { group, backups })
    }
}
