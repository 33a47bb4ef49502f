//! Keeping volume repositories no larger than their backups need. Deleting a backup deletes its
//! volume snapshots; the chunks only they used are collected by a prune, which the hub has one
//! connected agent of the location's workspace run (the hub never reads bulk data itself), every
//! `volume_prune_interval` and on `cairn location prune`. The agent reports back; the outcome
//! shows in `cairn location describe`. No prune is given less than the configured
//! `volume_prune_grace`, whoever asks: a shorter grace could delete packs that backups still
//! running rely on.

use cairn_proto::model::{ClusterName, Instruction, LocationName, Prune};
use std::time::Duration;

use super::{Failure, Hub, Refused, Result};

impl Hub {
    /// Has a connected agent of `name`'s workspace prune its volume repository, deleting packs
    /// planned for longer than `grace` (`None`: the hub's `volume_prune_grace`; shorter than it:
    /// refused); returns that agent's cluster.
    #[tracing::instrument(name = "prune", skip_all, fields(location = %name))]
    pub async fn prune_location(&self, name: &LocationName, grace: Option<Duration>) -> Result<ClusterName> {
        let least = self.inner.limits.prune_grace;
        let grace = grace.unwrap_or(least);
        if grace < least {
            return Err(Refused::Invalid(format!(
                "grace {} is shorter than the hub's volume_prune_grace ({}): packs of backups still running could be deleted",
                humantime::format_duration(grace),
                humantime::format_duration(least)
            ))
            .into());
        }
        let stored = self.inner.locations.get(name).await?;
        let workspace = stored.spec.workspace.clone();
        let location = self.inner.locations.resolve(&stored)?;
        let key = self.inner.locations.repository_key(&stored)?;
        for cluster in self.clusters_in(&workspace).await? {
            let Some(tx) = self.inner.agents.queue(&cluster) else {
                continue;
            };
            let instruction = Instruction::Prune {
                location: location.clone(),
                key: key.clone(),
                grace,
            };
            if tx.try_send(instruction).is_ok() {
                tracing::info!(%cluster, "volume repository prune started");
                return Ok(cluster);
            }
        }
        Err(Failure::NoAgent {
            workspace,
            location: name.clone(),
        }
        .into())
    }

    /// Records the end of a prune of `location`.
    pub(super) async fn pruned(&self, location: &LocationName, prune: Prune) -> Result<()> {
        match &prune.error {
            None => {
                tracing::info!(%location, cluster = %prune.cluster, summary = %prune.summary, "volume repository pruned")
            }
            Some(error) => {
                tracing::warn!(%location, cluster = %prune.cluster, %error, "volume repository prune failed")
            }
        }
        Ok(self.inner.locations.record_prune(location, prune).await?)
    }

    /// Prunes every location's volume repository every `every`, with the hub's grace.
    pub async fn run_maintenance(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await; // not at start-up: agents are still connecting
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.stopping() => return,
            }
            let Ok(locations) = self.inner.locations.list().await else {
                continue;
            };
            for stored in locations {
                if let Err(e) = self.prune_location(&stored.spec.name, None).await {
                    tracing::info!(location = %stored.spec.name, error = %cairn_proto::error_chain(&e), "volume repository not pruned");
                }
            }
        }
    }
}
