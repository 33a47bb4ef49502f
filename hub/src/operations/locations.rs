//! Locations as users manage them, and the rule that binds them to workspaces: a location
//! belongs to one workspace, and only that workspace's clusters back up to or restore from it.

use cairn_proto::model::{
    Backup, BackupQuery, ClusterName, Credentials, LocationInfo, LocationName, LocationSpec, StoredLocation,
    WorkspaceName,
};

use super::{Hub, Refused, Result};
use crate::location::builtin_name;

fn info(stored: StoredLocation, default: Option<&LocationName>) -> LocationInfo {
    LocationInfo {
        key_version: crate::location::Locations::key_version(&stored),
        is_default: default == Some(&stored.spec.name),
        has_credentials: !stored.sealed_credentials.is_empty(),
        health: stored.health,
        last_prune: stored.last_prune,
        spec: stored.spec,
        backups_read: 0,
        backups_unreadable: Vec::new(),
    }
}

/// The location a backup was written to (records from before workspaces name none: the built-in).
pub(super) fn location_of(backup: &Backup) -> LocationName {
    backup.spec.location.clone().unwrap_or_else(builtin_name)
}

impl Hub {
    /// Checks a new location end to end and saves it in its workspace; it becomes the workspace's
    /// default if `make_default` or if the workspace has none.
    pub async fn add_location(
        &self,
        spec: LocationSpec,
        credentials: &Credentials,
        make_default: bool,
    ) -> Result<LocationInfo> {
        let mut workspace = self.workspace_record(&spec.workspace).await?;
        let stored = self.inner.locations.add(spec, credentials).await?;
        if make_default || workspace.default_location.is_none() {
            workspace.default_location = Some(stored.spec.name.clone());
            self.inner.inventory.put_workspace(&workspace).await?;
        }
        // The bucket is the source of truth: backups already in it join the inventory.
        let catalog = self.sync_catalog(&stored).await?;
        self.orders_changed();
        Ok(LocationInfo {
            backups_read: catalog.recorded,
            backups_unreadable: catalog.unreadable,
            ..info(stored, workspace.default_location.as_ref())
        })
    }

    /// Rotates the keys of every location of `workspace` (see [`crate::location::Locations::rotate`]);
    /// returns them as they are now. A location that fails stops the rotation, naming it: those
    /// before it are rotated, and running it again rotates each once more.
    pub async fn rotate_workspace_key(&self, workspace: &WorkspaceName) -> Result<Vec<LocationInfo>> {
        let mut rotated = Vec::new();
        for stored in self.inner.locations.list().await? {
            if stored.spec.workspace != *workspace {
                continue;
            }
            self.inner.locations.rotate(&stored.spec.name).await?;
            rotated.push(self.location(&stored.spec.name).await?);
        }
        if rotated.is_empty() {
            self.workspace_record(workspace).await?;
        }
        self.orders_changed();
        Ok(rotated)
    }

    async fn location_info(&self, stored: StoredLocation) -> Result<LocationInfo> {
        let default = self
            .inner
            .inventory
            .workspace(&stored.spec.workspace)
            .await?
            .and_then(|w| w.default_location);
        Ok(info(stored, default.as_ref()))
    }

    /// The location called `name`, without its secrets.
    pub async fn location(&self, name: &LocationName) -> Result<LocationInfo> {
        let stored = self.inner.locations.get(name).await?;
        self.location_info(stored).await
    }

    /// Every location, or those of `workspace`.
    pub async fn locations(&self, workspace: Option<&WorkspaceName>) -> Result<Vec<LocationInfo>> {
        if let Some(w) = workspace {
            self.workspace_record(w).await?;
        }
        let mut out = Vec::new();
        for stored in self.inner.locations.list().await? {
            if workspace.is_none_or(|w| *w == stored.spec.workspace) {
                out.push(self.location_info(stored).await?);
            }
        }
        Ok(out)
    }

    /// Checks location `name` again; fails, naming the step, if the check fails.
    pub async fn verify_location(&self, name: &LocationName) -> Result<LocationInfo> {
        let stored = self.inner.locations.verify(name).await?;
        self.location_info(stored).await
    }

    /// Forgets location `name`. Refused while backups recorded in the inventory live there,
    /// unless `force`, which forgets those records too; the objects stay in the store.
    #[tracing::instrument(name = "remove_location", skip_all, fields(location = %name))]
    pub async fn remove_location(&self, name: &LocationName, force: bool) -> Result<()> {
        self.inner.locations.removable(name)?;
        let stored = self.inner.locations.get(name).await?;
        let query = BackupQuery {
            location: Some(name.clone()),
            ..BackupQuery::default()
        };
        let backups = self.inner.inventory.backups(&query).await?;
        if let Some(running) = backups.iter().find(|b| !b.status.phase.is_final()) {
            return Err(Refused::Running(running.spec.name.clone()).into());
        }
        if !backups.is_empty() && !force {
            return Err(Refused::LocationInUse {
                location: name.clone(),
                backups: backups.len(),
            }
            .into());
        }
        self.inner.locations.remove(name).await?;
        for b in &backups {
            self.inner.inventory.delete_backup(b).await?;
        }
        let mut workspace = self.workspace_record(&stored.spec.workspace).await?;
        if workspace.default_location.as_ref() == Some(name) {
            workspace.default_location = None;
            self.inner.inventory.put_workspace(&workspace).await?;
        }
        tracing::info!(forgotten_backups = backups.len(), "location removed");
        self.orders_changed();
        Ok(())
    }

    /// The location `cluster` may use: `requested`, or its workspace's default.
    pub(super) async fn usable_location(
        &self,
        cluster: &ClusterName,
        requested: Option<&LocationName>,
    ) -> Result<StoredLocation> {
        let workspace = self.workspace_of(cluster).await?;
        let name = match requested {
            Some(name) => name.clone(),
            None => self
                .workspace_record(&workspace)
                .await?
                .default_location
                .ok_or_else(|| Refused::NoDefaultLocation(workspace.clone()))?,
        };
        let stored = self.inner.locations.get(&name).await?;
        if stored.spec.workspace != workspace {
            return Err(Refused::OutsideWorkspace {
                cluster: cluster.clone(),
                workspace,
                location: name,
                location_workspace: stored.spec.workspace,
            }
            .into());
        }
        Ok(stored)
    }
}
