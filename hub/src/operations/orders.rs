//! Standing orders: each cluster agent holds the schedules that target its cluster (its own and
//! its workspace's) with the location and keys their backups need, so that it runs a slot itself
//! when the hub does not start it (the hub is down, or the link is). The hub gives them when the
//! agent registers and again whenever they change, and adopts the backups an agent ran on its
//! own: a slot's backup has one name (`cairn_proto::schedule::backup_for`), whoever runs it, so
//! no slot is run twice.

use cairn_proto::model::{Backup, ClusterName, Instruction, OperationId, Order, Phase, Schedule, Timestamp};
use cairn_proto::schedule::backup_for;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::{Hub, Refused, Result, not_sent};

/// How far ahead of the hub's clock an agent's clock may be: a slot further ahead is not adopted.
const SKEW: Duration = Duration::from_secs(300);

/// How long the orders loop gathers changes before it gives the orders again: a burst of
/// schedule changes costs one round.
const GATHER: Duration = Duration::from_secs(1);

/// Every schedule, read once per change rather than once per agent: (generation, schedules).
#[derive(Default)]
pub(super) struct ScheduleCache(Mutex<(u64, Option<Arc<Vec<Schedule>>>)>);

impl ScheduleCache {
    /// Schedules changed: read them again next time.
    pub(super) fn forget(&self) {
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *cache = (cache.0 + 1, None);
    }
}

impl Hub {
    /// Every schedule as of its last change (their run counts may be older).
    pub(super) async fn schedule_specs(&self) -> Result<Arc<Vec<Schedule>>> {
        let generation = {
            let cache = self
                .inner
                .schedule_cache
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(all) = &cache.1 {
                return Ok(all.clone());
            }
            cache.0
        };
        let all = Arc::new(self.inner.inventory.schedules().await?);
        let mut cache = self
            .inner
            .schedule_cache
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.0 == generation {
            cache.1 = Some(all.clone());
        }
        Ok(all)
    }

    /// The standing orders of `cluster`'s agent: its unpaused schedules and its workspace's.
    pub(super) async fn orders_for(&self, cluster: &ClusterName) -> Result<Vec<Order>> {
        let workspace = self.workspace_of(cluster).await?;
        let mut orders = Vec::new();
        for s in self.schedule_specs().await?.iter() {
            if !s.spec.targets(cluster, Some(&workspace)) || s.spec.paused {
                continue;
            }
            match self.target(cluster, s.spec.template.location.as_ref()).await {
                Ok(target) => orders.push(Order {
                    since: s.status.resumed.or(s.status.created),
                    schedule: s.spec.clone(),
                    location: target.location,
                    key: target.key,
                    resources: target.resources,
                }),
                Err(e) => {
                    tracing::warn!(%cluster, schedule = %s.spec.name, error = %cairn_proto::error_chain(&e), "schedule left out of the standing orders");
                }
            }
        }
        Ok(orders)
    }

    /// Gives `cluster`'s agent, if connected, its standing orders as they are now.
    pub(super) async fn give_orders(&self, cluster: &ClusterName) {
        let Some(queue) = self.inner.agents.queue(cluster) else {
            return;
        };
        match self.orders_for(cluster).await {
            Ok(orders) => {
                let count = orders.len();
                if queue.try_send(Instruction::Orders(orders)).is_err() {
                    tracing::warn!(%cluster, "standing orders not given: the agent's queue is full (tried again shortly)");
                    self.orders_changed();
                } else {
                    tracing::debug!(%cluster, orders = count, "standing orders given");
                }
            }
            Err(e) => tracing::error!(%cluster, error = %cairn_proto::error_chain(&e), "standing orders"),
        }
    }

    /// Schedules, locations, keys or workspace members changed: every connected cluster agent
    /// gets its standing orders again ([`Hub::run_orders`]).
    pub(super) fn orders_changed(&self) {
        self.inner.orders_wanted.notify_one();
    }

    /// The orders loop: after each change (and the others [`GATHER`] brings), gives every
    /// connected cluster agent its standing orders again, until the hub stops.
    pub async fn run_orders(self) {
        loop {
            tokio::select! {
                () = self.inner.orders_wanted.notified() => {}
                () = self.stopping() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(GATHER) => {}
                () = self.stopping() => return,
            }
            for (cluster, _) in self.inner.agents.sessions() {
                self.give_orders(&cluster).await;
            }
        }
    }

    /// Records `backup`, which `cluster`'s agent ran on its own for a slot of one of its standing
    /// orders, and tells the agent so. It must be a finished backup of `cluster`, named by the
    /// rule for a real slot (not before the schedule began, not ahead of the hub's clock) of a
    /// schedule that targets it, written to a location it may use. It names no volume snapshot:
    /// a run without the hub reaches no node agent, so a snapshot named is not its own.
    pub(super) async fn adopt(&self, cluster: &ClusterName, mut backup: Backup) -> Result<()> {
        let name = backup.spec.name.clone();
        let spooled = backup.status.spooled;
        let operation = OperationId::Backup(name.clone());
        let refused = |why: String| -> super::Error {
            tracing::warn!(%cluster, backup.id = %name, why, "backup run on its own not adopted");
            Refused::Denied(format!(
                "backup {name} reported by the agent of cluster {cluster} not adopted: {why}"
            ))
            .into()
        };
        if backup.spec.cluster != *cluster || !backup.status.phase.is_final() {
            return Err(not_sent(cluster, &operation));
        }
        let (Some(schedule), Some(slot)) = (&backup.spec.origin.schedule, backup.spec.origin.created) else {
            return Err(not_sent(cluster, &operation));
        };
        let schedule = self.schedule_record(schedule).await?;
        let workspace = self.workspace_of(cluster).await?;
        if !schedule.spec.targets(cluster, Some(&workspace)) {
            return Err(refused(format!(
                "schedule {} does not back up this cluster",
                schedule.spec.name
            )));
        }
        let timetable = self.inner.timetables.of(&schedule.spec)?;
        let a_slot = timetable.next_after(Timestamp::from(SystemTime::from(slot) - Duration::from_secs(1)))
            == Some(slot);
        let began = schedule.status.resumed.or(schedule.status.created);
        let ahead = Timestamp::from(SystemTime::from(self.inner.clock.now()) + SKEW);
        if !a_slot || began.is_some_and(|b| slot < b) || slot > ahead {
            return Err(refused(format!(
                "{slot} is not a slot of schedule {} owed so far",
                schedule.spec.name
            )));
        }
        let expected = backup_for(&schedule.spec, slot, cluster);
        if expected != name {
            return Err(refused(format!("the backup of that slot is {expected}")));
        }
        let stored = self
            .usable_location(cluster, backup.spec.location.as_ref())
            .await?;
        backup.spec.location = Some(stored.spec.name.clone());
        backup.spec.origin.workspace = Some(stored.spec.workspace);
        backup.spec.origin.offline = true;
        for volume in backup
            .status
            .volumes
            .iter_mut()
            .filter(|v| !v.snapshot.is_empty())
        {
            volume.snapshot.clear();
            volume.error = Some(
                "a backup run without the hub makes no volume snapshot: the one named was dropped".into(),
            );
        }
        match self.inner.inventory.backup(&name).await? {
            Some(known)
                if known.spec.cluster != *cluster
                    || known.spec.origin.schedule != backup.spec.origin.schedule =>
            {
                return Err(refused("a backup of that name is another's".into()));
            }
            Some(mut known) if known.status.spooled && !backup.status.spooled => {
                // Shipped from the site's spool to its location, or dropped from a full spool:
                // the agent's last word on it.
                tracing::info!(%cluster, backup.id = %name, phase = %backup.status.phase, "spooled backup shipped to its location, or dropped from the spool");
                known.status = backup.status;
                self.inner.inventory.put_backup(&known).await?;
                self.inner.tally.note(&known);
            }
            // The agent's word on it after the spool (shipped, or dropped) stands: a report from
            // while it was spooled, repeated late, changes nothing.
            Some(known) if known.spec.origin.offline && !known.status.spooled && spooled => {}
            Some(known) if known.status.phase.is_final() && known.status.phase != Phase::Failed => {}
            Some(known) => {
                // The hub started the slot too late, or failed it while the agent ran it: the
                // agent's run is the slot's backup.
                let counted = known.status.phase.is_final();
                let mut known = known;
                known.status = backup.status;
                known.spec.location = backup.spec.location;
                known.spec.origin.offline = true;
                self.inner.inventory.put_backup(&known).await?;
                self.ended(&known, counted);
                self.inner.agents.finished(cluster, &operation);
                self.inner.board.close(&operation, known.status.phase);
            }
            None => {
                tracing::info!(%cluster, backup.id = %name, phase = %backup.status.phase, "backup run by the agent on its own adopted");
                self.inner.inventory.put_backup(&backup).await?;
                self.ended(&backup, false);
                let hub = self.clone();
                self.spawn(async move { hub.keep_last(&backup).await });
            }
        }
        if let Some(queue) = self.inner.agents.queue(cluster) {
            let _ = queue.try_send(Instruction::Adopted {
                backup: name,
                spooled,
            });
        }
        Ok(())
    }
}
