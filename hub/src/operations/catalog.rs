//! The catalog read back from the buckets, which are the source of truth: every folder under
//! `backups/` with a manifest is a finished backup (`proto/FORMAT.md`). A hub started on an empty
//! data directory learns them when their location is added again; backups an agent finished
//! while the hub was away are recorded as their manifests say.

use cairn_proto::format::{self, BackupKeys};
use cairn_proto::model::{BackupName, Manifest, Phase, StoredLocation};

use super::{Hub, Result};

/// What reading a location's catalog found.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Backups recorded in the inventory.
    pub recorded: u64,
    /// Backups whose manifest did not open, as `name: why`.
    pub unreadable: Vec<String>,
}

impl Hub {
    /// Reads every backup in `stored` that the inventory lacks (or records otherwise than its
    /// manifest says) into the inventory.
    #[tracing::instrument(name = "sync_catalog", skip_all, fields(location = %stored.spec.name))]
    pub async fn sync_catalog(&self, stored: &StoredLocation) -> Result<Catalog> {
        let stored = &self.inner.locations.publish_keyring(&stored.spec.name).await?;
        let bucket = self.bucket(stored)?;
        let name = &stored.spec.name;
        let mut catalog = Catalog::default();
        for folder in bucket.folders(format::BACKUPS_DIR).await? {
            let Ok(backup) = BackupName::new(folder) else {
                continue;
            };
            // Known and not Failed: running, or finished as recorded. A Failed record may be a
            // backup the agent finished while the hub had lost it: its manifest says so.
            let known = self.inner.inventory.backup(&backup).await?;
            if known.as_ref().is_some_and(|b| b.status.phase != Phase::Failed) {
                continue;
            }
            let manifest = match bucket
                .read::<Manifest>(&BackupKeys::new(&backup).manifest())
                .await
            {
                Ok(Some(manifest)) => manifest,
                Ok(None) => continue, // an interrupted backup
                // One unreadable manifest (another hub's key, damage) does not hide the others.
                Err(e) => {
                    let why = cairn_proto::error_chain(&e);
                    tracing::warn!(backup.id = %backup, error = %why, "backup in the location not read");
                    catalog.unreadable.push(format!("{backup}: {why}"));
                    continue;
                }
            };
            let mut record = manifest.backup;
            if record.status.phase == Phase::Failed {
                continue;
            }
            record.spec.location = Some(name.clone());
            record.spec.origin.workspace = Some(stored.spec.workspace.clone());
            self.inner.inventory.put_backup(&record).await?;
            catalog.recorded += 1;
        }
        if catalog.recorded > 0 {
            tracing::info!(recorded = catalog.recorded, "backups read back from the location");
        }
        Ok(catalog)
    }

    /// [`Hub::sync_catalog`] for every location, logging failures.
    pub(super) async fn sync_catalogs(&self) {
        let Ok(all) = self.inner.locations.list().await else {
            return;
        };
        for stored in all {
            if let Err(e) = self.sync_catalog(&stored).await {
                tracing::warn!(location = %stored.spec.name, error = %cairn_proto::error_chain(&e), "reading a location's catalog");
            }
        }
    }
}
