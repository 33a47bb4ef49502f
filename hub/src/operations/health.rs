//! Fleet health: when each cluster's last successful backup was taken, and whether its recovery
//! point is at risk: one of its schedules (its own or its workspace's) has gone longer than its
//! period plus the hub's `rpo_grace` without a `Completed` backup of the cluster.

use cairn_proto::model::{Backup, BackupName, BackupQuery, Cluster, ClusterName, Phase, Schedule, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::{Hub, Result};

/// Per cluster: when its last successful backup was taken, and the backups in its site's spool
/// (bytes each), as its agent last reported them.
#[derive(Default)]
pub(super) struct Tally(Mutex<HashMap<ClusterName, Counts>>);

#[derive(Default)]
struct Counts {
    last_success: Option<Timestamp>,
    spooled: HashMap<BackupName, u64>,
}

impl Tally {
    /// Counts `backup` as it is recorded now.
    pub(super) fn note(&self, backup: &Backup) {
        let mut all = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = all.entry(backup.spec.cluster.clone()).or_default();
        if backup.status.spooled {
            counts
                .spooled
                .insert(backup.spec.name.clone(), backup.status.bytes);
        } else {
            counts.spooled.remove(&backup.spec.name);
        }
        if backup.status.phase == Phase::Completed
            && let Some(taken) = taken(backup)
        {
            counts.last_success = counts.last_success.max(Some(taken));
        }
    }

    /// `cluster`'s last success, and its spool's bytes and backups.
    fn get(&self, cluster: &ClusterName) -> (Option<Timestamp>, u64, u64) {
        let all = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.get(cluster).map_or((None, 0, 0), |c| {
            (c.last_success, c.spooled.values().sum(), c.spooled.len() as u64)
        })
    }
}

/// When `backup` was taken: when its agent started it, else when it was asked for.
fn taken(backup: &Backup) -> Option<Timestamp> {
    backup.status.started.or(backup.spec.origin.created)
}

/// Whether `schedule` has gone longer than its period plus `grace` without a success, the last
/// one at `last` (`None`: never), at `now`. A schedule younger than that is not at risk yet.
fn at_risk(schedule: &Schedule, last: Option<Timestamp>, grace: Duration, now: Timestamp) -> bool {
    let Ok(timetable) =
        cairn_proto::schedule::Timetable::parse(&schedule.spec.cron, schedule.spec.timezone.as_deref())
    else {
        return false;
    };
    let Some(previous) = timetable.latest_between(Timestamp::from(SystemTime::UNIX_EPOCH), now) else {
        return false;
    };
    let Some(next) = timetable.next_after(previous) else {
        return false;
    };
    let allowed = previous.until(next) + grace;
    let Some(since) = SystemTime::from(now).checked_sub(allowed).map(Timestamp::from) else {
        return false;
    };
    let started = schedule.status.resumed.or(schedule.status.created);
    started.is_some_and(|s| s < since) && last.is_none_or(|t| t < since)
}

impl Hub {
    /// Fills in `clusters`' last success, whether their RPO is at risk, and their spool backlog.
    pub(super) async fn fill_health(&self, clusters: &mut [Cluster]) -> Result<()> {
        let schedules = self.schedule_specs().await?;
        let now = self.inner.clock.now();
        let grace = self.inner.limits.rpo_grace;
        for c in clusters {
            (c.last_success, c.spool_bytes, c.spool_backups) = self.inner.tally.get(&c.name);
            c.rpo_at_risk = schedules.iter().filter(|s| !s.spec.paused).any(|s| {
                s.spec.targets(&c.name, c.workspace.as_ref()) && at_risk(s, c.last_success, grace, now)
            });
        }
        Ok(())
    }

    /// Every backup of the inventory, for the health figures at start-up.
    pub(super) async fn all_backups(&self) -> Result<Vec<Backup>> {
        Ok(self.inner.inventory.backups(&BackupQuery::default()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::model::{ScheduleSpec, ScheduleStatus, ScheduleTarget};

    fn at(text: &str) -> Timestamp {
        humantime::parse_rfc3339(text).expect("time").into()
    }

    fn hourly(created: &str) -> Schedule {
        Schedule {
            spec: ScheduleSpec::new(
                "hourly".parse().expect("name"),
                ScheduleTarget::Cluster("east".parse().expect("name")),
                "0 * * * *".into(),
            ),
            status: ScheduleStatus {
                created: Some(at(created)),
                ..ScheduleStatus::default()
            },
        }
    }

    #[test]
    fn a_schedule_is_at_risk_past_its_period_and_grace_without_a_success() {
        let grace = Duration::from_secs(600);
        let s = hourly("2026-11-30T00:00:00Z");
        let now = at("2026-11-30T05:30:00Z");
        // Period 1 h + 10 min grace: a success at 04:21 is recent enough, one at 04:19 is not.
        assert!(!at_risk(&s, Some(at("2026-11-30T04:21:00Z")), grace, now));
        assert!(at_risk(&s, Some(at("2026-11-30T04:19:00Z")), grace, now));
        assert!(at_risk(&s, None, grace, now), "never succeeded");
        // A schedule made ten minutes ago is not at risk yet.
        assert!(!at_risk(&hourly("2026-11-30T05:20:00Z"), None, grace, now));
    }
}
