//! Schedules from request to backups: the scheduler loop, which fires each due schedule once for
//! the latest slot it owes (so a hub that was down runs one catch-up, not one per missed slot),
//! and the verbs users drive them with.

use cairn_proto::model::{
    BackupOrigin, Schedule, ScheduleName, ScheduleSpec, ScheduleStatus, ScheduleTarget, Timestamp,
};
use futures::StreamExt;
use std::time::Duration;

use super::{Hub, Refused, Result};
use cairn_proto::schedule::Timetable;

/// Schedules fired at once when many are due in the same second.
const FIRE_CONCURRENCY: usize = 64;

/// Longest the scheduler sleeps without looking again.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How long after start-up the catch-up runs wait: agents dial again with backoff from half a
/// second, so by then the connected ones are back and their catch-up backups can start.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(10);

impl Hub {
    /// Checks and records a new schedule.
    #[tracing::instrument(name = "create_schedule", skip_all, fields(schedule = %spec.name))]
    pub async fn create_schedule(&self, spec: ScheduleSpec) -> Result<Schedule> {
        Timetable::parse(&spec.cron, spec.timezone.as_deref())?;
        if self.inner.inventory.schedule(&spec.name).await?.is_some() {
            return Err(Refused::Exists {
                kind: "schedule",
                name: spec.name.to_string(),
            }
            .into());
        }
        match &spec.target {
            ScheduleTarget::Workspace(w) => {
                self.workspace_record(w).await?;
            }
            ScheduleTarget::Cluster(c) => {
                if self.inner.inventory.cluster(c).await?.is_none() {
                    return Err(Refused::UnknownCluster(c.clone()).into());
                }
            }
        }
        let schedule = Schedule {
            spec,
            status: ScheduleStatus {
                created: Some(self.inner.clock.now()),
                ..ScheduleStatus::default()
            },
        };
        self.inner.inventory.put_schedule(&schedule).await?;
        self.schedules_changed();
        tracing::info!(cron = %schedule.spec.cron, "schedule created");
        self.with_next(schedule)
    }

    /// `schedule` with its next slot filled in.
    fn with_next(&self, mut schedule: Schedule) -> Result<Schedule> {
        let timetable = self.inner.timetables.of(&schedule.spec)?;
        schedule.status.next_fire = if schedule.spec.paused {
            None
        } else {
            timetable.next_after(self.inner.clock.now())
        };
        Ok(schedule)
    }

    /// The schedule called `name`.
    pub async fn schedule(&self, name: &ScheduleName) -> Result<Schedule> {
        let s = self.schedule_record(name).await?;
        self.with_next(s)
    }

    pub(super) async fn schedule_record(&self, name: &ScheduleName) -> Result<Schedule> {
        self.inner
            .inventory
            .schedule(name)
            .await?
            .ok_or_else(|| Refused::UnknownSchedule(name.clone()).into())
    }

    /// Every schedule.
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        let all = self.inner.inventory.schedules().await?;
        all.into_iter().map(|s| self.with_next(s)).collect()
    }

    /// Pauses (`true`) or resumes a schedule. Slots passed while paused are not caught up.
    #[tracing::instrument(name = "pause_schedule", skip_all, fields(schedule = %name, paused))]
    pub async fn set_paused(&self, name: &ScheduleName, paused: bool) -> Result<Schedule> {
        let mut s = self.schedule_record(name).await?;
        if s.spec.paused != paused {
            s.spec.paused = paused;
            if !paused {
                s.status.resumed = Some(self.inner.clock.now());
            }
            self.inner.inventory.put_schedule(&s).await?;
            self.schedules_changed();
            tracing::info!(paused, "schedule updated");
        }
        self.with_next(s)
    }

    /// Deletes a schedule; its backups stay.
    pub async fn delete_schedule(&self, name: &ScheduleName) -> Result<()> {
        self.schedule_record(name).await?;
        self.inner.inventory.delete_schedule(name).await?;
        self.inner.timetables.forget(name);
        self.schedules_changed();
        Ok(())
    }

    /// Schedules changed: the scheduler looks again, and agents get their standing orders anew.
    fn schedules_changed(&self) {
        self.inner.schedule_cache.forget();
        self.inner.schedules_changed.notify_one();
        self.orders_changed();
    }

    /// Runs a schedule once now; its timetable is unchanged.
    pub async fn run_schedule(&self, name: &ScheduleName) -> Result<Schedule> {
        let s = self.schedule_record(name).await?;
        let s = self.fire(s, self.inner.clock.now(), Firing::Now).await?;
        self.with_next(s)
    }

    /// The scheduler: fires every due schedule, then sleeps until the next slot (or a change).
    /// The first pass, [`RECONNECT_GRACE`] after start-up, makes the catch-up runs.
    pub async fn run_schedules(self) {
        let start = std::time::SystemTime::from(self.inner.clock.now()) + RECONNECT_GRACE;
        tokio::select! {
            () = self.inner.clock.sleep_until(start.into()) => {}
            () = self.stopping() => return,
        }
        let mut firing = Firing::CatchUp;
        loop {
            let now = self.inner.clock.now();
            let mut wake = Timestamp::from(std::time::SystemTime::from(now) + MAX_SLEEP);
            let schedules = match self.inner.inventory.schedules().await {
                Ok(all) => all,
                Err(e) => {
                    tracing::error!(error = %cairn_proto::error_chain(&e), "reading schedules");
                    Vec::new()
                }
            };
            let mut due = Vec::new();
            for s in schedules.into_iter().filter(|s| !s.spec.paused) {
                let Ok(timetable) = self.inner.timetables.of(&s.spec) else {
                    continue;
                };
                let after = s.owed_after().unwrap_or(now);
                if let Some(slot) = timetable.latest_between(after, now) {
                    due.push((s, slot));
                }
                if let Some(next) = timetable.next_after(now) {
                    wake = wake.min(next);
                }
            }
            futures::stream::iter(due)
                .for_each_concurrent(FIRE_CONCURRENCY, |(s, slot)| {
                    let hub = self.clone();
                    async move {
                        let name = s.spec.name.clone();
                        if let Err(e) = hub.fire(s, slot, firing).await {
                            tracing::error!(schedule = %name, error = %cairn_proto::error_chain(&e), "schedule run");
                        }
                    }
                })
                .await;
            firing = Firing::OnTime;
            tokio::select! {
                () = self.inner.clock.sleep_until(wake) => {}
                () = self.inner.schedules_changed.notified() => {}
                () = self.stopping() => return,
            }
        }
    }

    /// One run of `s` for `slot`: recorded first (a crash never runs a slot twice), then the
    /// backups started.
    #[tracing::instrument(name = "schedule_run", skip_all, fields(schedule = %s.spec.name, slot = %slot, ?firing))]
    async fn fire(&self, mut s: Schedule, slot: Timestamp, firing: Firing) -> Result<Schedule> {
        if firing != Firing::Now {
            s.status.last_fire = Some(slot);
        }
        if firing == Firing::OnTime {
            self.inner.metrics.fired(slot.until(self.inner.clock.now()));
        }
        s.status.runs += 1;
        if firing == Firing::CatchUp {
            s.status.catch_ups += 1;
            s.status.last_catch_up = Some(self.inner.clock.now());
        }
        s.status.last_error = None;
        self.inner.inventory.put_schedule(&s).await?;
        let spec = &s.spec;
        let origin = BackupOrigin {
            schedule: Some(spec.name.clone()),
            ..BackupOrigin::default()
        };
        let name = cairn_proto::schedule::slot_backup(&spec.name, slot);
        let started = match &spec.target {
            ScheduleTarget::Cluster(cluster) => self
                .create_backup(spec.template.spec(name, cluster.clone(), origin))
                .await
                .map(|_| ()),
            ScheduleTarget::Workspace(workspace) => self
                .create_group(name, workspace, &spec.template, Some(spec), slot)
                .await
                .map(|_| ()),
        };
        // The slot's backup exists: its agent ran the slot on its own (standing orders).
        let started = started.or_else(|e| match e {
            super::Error::Refused(Refused::Exists { .. }) => {
                tracing::info!("the slot's backup exists already: its agent ran it on its own");
                Ok(())
            }
            e => Err(e),
        });
        if let Err(e) = started {
            s.status.last_error = Some(cairn_proto::error_chain(&e));
            self.inner.inventory.put_schedule(&s).await?;
            tracing::warn!(error = %cairn_proto::error_chain(&e), "scheduled backup did not start");
        } else {
            tracing::info!("scheduled backup started");
        }
        Ok(s)
    }
}

/// Why a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Firing {
    /// Its slot came.
    OnTime,
    /// On start-up, for the latest slot missed while the hub was down.
    CatchUp,
    /// A user asked (`run-now`); the timetable is unchanged.
    Now,
}
