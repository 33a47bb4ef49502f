//! Retention: backups past their TTL, and a schedule's backups beyond its keep-last count, are
//! deleted from their location and the inventory (objects first, manifest first among them, so a
//! half-deleted folder is never taken for a backup).

use cairn_proto::model::{Backup, BackupQuery};
use std::time::Duration;

use super::Hub;

/// How often expired backups are looked for.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

impl Hub {
    /// After `done` ended: deletes its schedule's oldest backups of the same cluster beyond the
    /// schedule's keep-last count. Only finished backups count; running ones are left alone.
    pub(super) async fn keep_last(&self, done: &Backup) {
        let Some(schedule) = &done.spec.origin.schedule else {
            return;
        };
        let Ok(Some(s)) = self.inner.inventory.schedule(schedule).await else {
            return;
        };
        let Some(keep) = s.spec.keep_last else { return };
        let query = BackupQuery {
            cluster: Some(done.spec.cluster.clone()),
            schedule: Some(schedule.clone()),
            ..BackupQuery::default()
        };
        let backups = match self.inner.inventory.backups(&query).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %cairn_proto::error_chain(&e), "listing a schedule's backups");
                return;
            }
        };
        // A backup still in its site's spool is not in the location yet (and may be dropped
        // there): it neither counts nor goes.
        let finished = backups
            .iter()
            .filter(|b| b.status.phase.is_final() && !b.status.spooled);
        for old in finished.skip(keep as usize) {
            self.retire(old, "beyond the schedule's keep-last count").await;
        }
    }

    /// Deletes every backup whose TTL has run out.
    pub async fn expire(&self) {
        let now = self.inner.clock.now();
        match self.inner.inventory.expired(now).await {
            Ok(expired) => {
                for b in expired
                    .iter()
                    .filter(|b| b.status.phase.is_final() && !b.status.spooled)
                {
                    self.retire(b, "its TTL ran out").await;
                }
            }
            Err(e) => tracing::error!(error = %cairn_proto::error_chain(&e), "listing expired backups"),
        }
    }

    /// Deletes expired backups every [`EXPIRY_INTERVAL`] of the hub's clock.
    pub async fn run_retention(self) {
        loop {
            self.expire().await;
            let next = std::time::SystemTime::from(self.inner.clock.now()) + EXPIRY_INTERVAL;
            tokio::select! {
                () = self.inner.clock.sleep_until(next.into()) => {}
                () = self.stopping() => return,
            }
        }
    }

    async fn retire(&self, backup: &Backup, why: &str) {
        let name = &backup.spec.name;
        match self.delete_backup(name).await {
            Ok(()) => tracing::info!(backup.id = %name, why, "backup retired"),
            Err(e) => {
                tracing::error!(backup.id = %name, why, error = %cairn_proto::error_chain(&e), "retiring a backup")
            }
        }
    }
}
