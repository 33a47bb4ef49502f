//! Standing orders: the schedules of this agent's cluster (its own and its workspace's), which the
//! hub gives it with what their backups need, kept sealed next to its identity. A slot the hub
//! has not started [`HUB_GRACE`] after it came (the hub is down, or the link is), the agent runs
//! itself, writing straight to the location; the backup is named for its slot by the rule the hub
//! uses (`cairn_proto::schedule`), and every slot's backup the agent starts, asked or on its own,
//! is remembered, so no slot runs twice. Backups run on its own are reported on every link until
//! the hub adopts them.

use cairn_proto::convert::Wire;
use cairn_proto::format::{BackupKeys, ObjectSeal, SealedStore};
use cairn_proto::model::{
    AgentState, Backup, BackupName, BackupOrigin, ClusterName, LocationName, Manifest, Order, Phase, Report,
    ScheduleTarget, Timestamp,
};
use cairn_proto::schedule::{Timetable, backup_for, jitter, slot_backup};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::enrol::Enrolled;
use crate::relay::{Relay, Volumes};
use crate::report::run_here;
use crate::spool::{Spool, Spooled};

/// How long after a slot (and its cluster's jitter) the agent waits for the hub to start it
/// before it runs the slot itself.
pub const HUB_GRACE: Duration = Duration::from_secs(30);
/// Slots' backups remembered as started.
const STARTED_KEPT: usize = 512;
/// Backups run on its own the agent holds for the hub, at most; older ones are still in their
/// location, where the hub's catalog sync finds them.
const UNREPORTED_KEPT: usize = 64;
/// Longest the loop sleeps without looking again.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Whether a slot's backup may start here.
pub enum Start {
    /// Not started before: it is now remembered as started.
    New,
    /// Started before; if run on its own and not yet adopted, as it ended.
    Already(Option<Box<Backup>>),
}

/// The agent's standing orders and what it has started, kept at rest.
pub struct Standing {
    enrolled: Arc<Enrolled>,
    state: Mutex<AgentState>,
    /// Orders the hub gave and [`keep`] has not taken in yet: the latest only, so they apply in
    /// the order given.
    offered: std::sync::Mutex<Option<Vec<Order>>>,
    changed: Notify,
}

impl Standing {
    /// What `enrolled`'s agent kept; nothing if it kept nothing or it cannot be read (said).
    pub async fn load(enrolled: Arc<Enrolled>) -> Self {
        let state = match enrolled.load_state().await {
            Ok(Some(bytes)) => AgentState::decode(&bytes).unwrap_or_else(|e| {
                tracing::error!(error = %cairn_proto::error_chain(&e), "the agent's kept state does not decode: starting without standing orders");
                AgentState::default()
            }),
            Ok(None) => AgentState::default(),
            Err(e) => {
                tracing::error!(error = %cairn_proto::error_chain(&e), "the agent's kept state cannot be read: starting without standing orders");
                AgentState::default()
            }
        };
        if !state.orders.is_empty() {
            tracing::info!(
                orders = state.orders.len(),
                unreported = state.unreported.len(),
                "standing orders kept from before"
            );
        }
        Self {
            enrolled,
            state: Mutex::new(state),
            offered: std::sync::Mutex::new(None),
            changed: Notify::new(),
        }
    }

    async fn save(&self, state: &AgentState) {
        if let Err(e) = self.enrolled.save_state(&state.encode()).await {
            tracing::error!(error = %cairn_proto::error_chain(&e), "keeping the agent's state");
        }
    }

    /// The hub's orders now: taken in by [`keep`].
    pub fn offer(&self, orders: Vec<Order>) {
        *self
            .offered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(orders);
        self.changed.notify_one();
    }

    /// The hub refused this agent (revoked, removed): its orders and their credentials go.
    pub async fn forget_orders(&self) {
        let mut state = self.state.lock().await;
        if !state.orders.is_empty() {
            tracing::warn!("the hub refused this agent: its standing orders are dropped");
            state.orders.clear();
            self.save(&state).await;
        }
    }

    async fn replace(&self, orders: Vec<Order>) {
        let mut state = self.state.lock().await;
        if state.orders == orders {
            return;
        }
        tracing::info!(orders = orders.len(), "standing orders received");
        state.orders = orders;
        self.save(&state).await;
    }

    /// Slots up to `slot` were looked at: kept, so a restarted agent catches up from there.
    async fn looked(&self, slot: Timestamp) {
        let mut state = self.state.lock().await;
        if state.looked.is_none_or(|t| t < slot) {
            state.looked = Some(slot);
            self.save(&state).await;
        }
    }

    /// Marks slot backup `name` started, unless it was already.
    pub async fn start(&self, name: &BackupName) -> Start {
        let mut state = self.state.lock().await;
        if state.started.contains(name) {
            let ran = state
                .unreported
                .iter()
                .rfind(|b| b.spec.name == *name)
                .cloned()
                .map(Box::new);
            return Start::Already(ran);
        }
        state.started.push(name.clone());
        let over = state.started.len().saturating_sub(STARTED_KEPT);
        state.started.drain(..over);
        self.save(&state).await;
        Start::New
    }

    /// `backup`, run on its own, ended (or, spooled, was shipped or dropped): held for the hub
    /// until it adopts it. Reports of one backup are kept in the order made, so the hub learns
    /// the last one last.
    async fn ran(&self, backup: Backup) {
        let mut state = self.state.lock().await;
        let (name, spooled) = (backup.spec.name.clone(), backup.status.spooled);
        state
            .unreported
            .retain(|b| b.spec.name != name || b.status.spooled != spooled);
        state.unreported.push(backup);
        let over = state.unreported.len().saturating_sub(UNREPORTED_KEPT);
        for dropped in state.unreported.drain(..over) {
            tracing::warn!(backup.id = %dropped.spec.name, "too many backups not reported to the hub: this one is left to the catalog sync of its location");
        }
        self.save(&state).await;
    }

    /// The hub recorded backup `name` as reported while spooled (`spooled`) or after. Each
    /// backup has at most one report of each kind, so an answer repeated (a report sent twice,
    /// live and again on the next link) removes nothing more.
    pub async fn adopted(&self, name: &BackupName, spooled: bool) {
        let mut state = self.state.lock().await;
        if let Some(i) = state
            .unreported
            .iter()
            .position(|b| b.spec.name == *name && b.status.spooled == spooled)
        {
            state.unreported.remove(i);
            tracing::info!(backup.id = %name, "backup run on its own adopted by the hub");
            self.save(&state).await;
        }
    }

    /// The standing order that writes to `location`, if one does: its credentials and keys.
    pub async fn order_for(&self, location: &LocationName) -> Option<Order> {
        let state = self.state.lock().await;
        state
            .orders
            .iter()
            .find(|o| o.location.name == *location)
            .cloned()
    }

    /// The backups run on its own the hub has not adopted yet, oldest first.
    pub async fn unreported(&self) -> Vec<Backup> {
        self.state.lock().await.unreported.clone()
    }
}

/// What running a backup needs.
#[derive(Clone)]
pub struct Runner {
    /// Client of the cluster.
    pub client: kube::Client,
    /// Its Kubernetes version.
    pub kubernetes_version: String,
    /// Its name.
    pub cluster: ClusterName,
    /// Reports for the hub (sent when a link is up).
    pub events: mpsc::Sender<Report>,
    /// Where backups go while their location cannot be reached, if the site has a spool.
    pub spool: Option<Spool>,
}

/// Runs every slot of the standing orders that comes due (its time, its jitter and
/// [`HUB_GRACE`] past) and that no one started, until `stop`; backups running then are given
/// [`crate::link::STOP_GRACE`] to finish.
pub async fn keep(standing: Arc<Standing>, runner: Runner, stop: CancellationToken) {
    let runs = TaskTracker::new();
    if let Some(spool) = runner.spool.clone() {
        runs.spawn(ship(standing.clone(), spool, runner.clone(), stop.clone()));
    }
    // From where the agent last looked (before a restart, say), catching up the latest slot owed
    // of each order, as the hub does; else from now.
    let kept = standing.state.lock().await.looked;
    let mut after = kept.map_or_else(SystemTime::now, SystemTime::from);
    let mut catching_up = kept.is_some();
    loop {
        let offered = standing
            .offered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(orders) = offered {
            standing.replace(orders).await;
        }
        let now = SystemTime::now();
        let mut latest = None;
        let mut wake = now + MAX_SLEEP;
        let orders = standing.state.lock().await.orders.clone();
        for order in orders {
            let spec = &order.schedule;
            let timetable = match Timetable::parse(&spec.cron, spec.timezone.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(schedule = %spec.name, error = %e, "standing order not run");
                    continue;
                }
            };
            let delay = HUB_GRACE
                + match &spec.target {
                    ScheduleTarget::Workspace(_) => jitter(&spec.name, &runner.cluster, spec.jitter),
                    ScheduleTarget::Cluster(_) => Duration::ZERO,
                };
            // Slots from when the agent looked last, never before the schedule was made or resumed.
            let mut cursor = Timestamp::from(after.checked_sub(delay).unwrap_or(after));
            if let Some(since) = order.since {
                cursor = cursor.max(since);
            }
            let mut due_slots = Vec::new();
            while let Some(slot) = timetable.next_after(cursor) {
                let due = SystemTime::from(slot) + delay;
                if due > now {
                    wake = wake.min(due);
                    break;
                }
                due_slots.push(slot);
                cursor = slot;
            }
            if catching_up && due_slots.len() > 1 {
                due_slots.drain(..due_slots.len() - 1); // one catch-up run, not one per slot
            }
            for slot in due_slots {
                latest = latest.max(Some(slot));
                if standing.enrolled.expired() {
                    tracing::warn!(schedule = %spec.name, %slot, "slot not run: this agent's certificate has expired (enrol it again)");
                    continue;
                }
                let name = backup_for(spec, slot, &runner.cluster);
                if let Start::New = standing.start(&name).await {
                    tracing::warn!(schedule = %spec.name, %slot, backup.id = %name, "the hub did not start this slot: running it on our own");
                    runs.spawn(run(standing.clone(), order.clone(), name, slot, runner.clone()));
                }
            }
        }
        if let Some(slot) = latest {
            standing.looked(slot).await;
        }
        after = now;
        catching_up = false;
        let sleep = wake.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = standing.changed.notified() => {}
            () = stop.cancelled() => break,
        }
    }
    runs.close();
    let _ = tokio::time::timeout(crate::link::STOP_GRACE, runs.wait()).await;
}

/// Runs slot `slot` of `order` as backup `name`, straight to the order's location; the result is
/// held for the hub and reported.
async fn run(standing: Arc<Standing>, order: Order, name: BackupName, slot: Timestamp, runner: Runner) {
    let spec = &order.schedule;
    let origin = BackupOrigin {
        created: Some(slot),
        schedule: Some(spec.name.clone()),
        group: match &spec.target {
            ScheduleTarget::Workspace(_) => Some(slot_backup(&spec.name, slot)),
            ScheduleTarget::Cluster(_) => None,
        },
        offline: true,
        ..BackupOrigin::default()
    };
    let mut backup = spec.template.spec(name.clone(), runner.cluster.clone(), origin);
    backup.location = Some(order.location.name.clone());
    // The location out of reach (the uplink is down, say): into the spool, if the site has one.
    let mut into = order.location.clone();
    let mut spool = None;
    if let Some(site) = &runner.spool
        && let Err(why) = crate::spool::reachable(&order.location).await
    {
        tracing::warn!(backup.id = %name, location = %order.location.name, %why, spool = %site.dir().display(), "the location cannot be reached: backing up into the spool");
        // Room for it first, as much as the last one took.
        let last = site.backups().ok().and_then(|b| b.last().map(|s| s.bytes));
        keep_within(&standing, site, &runner, last.unwrap_or(0)).await;
        into = site.stand_in(&order.location);
        spool = Some(site);
    }
    let volumes = Volumes {
        relay: Relay::unlinked(),
        key: order.key.clone(),
        cluster: runner.cluster.clone(),
    };
    let ended = run_here(
        name.clone(),
        |reporter| {
            crate::backup::run(
                runner.client.clone(),
                backup.clone(),
                (into, order.resources.clone()),
                reporter,
                volumes,
                runner.kubernetes_version.clone(),
            )
        },
        |_| {},
    )
    .await;
    let status = match ended {
        Some(Report::BackupDone(_, status)) => Some(status),
        _ => None,
    };
    let Some(mut status) = status else { return };
    status.spooled = spool.is_some() && status.phase != Phase::Failed;
    if let Some(site) = spool
        && !status.spooled
        && let Err(e) = site.remove_folder(&order.location.name, &name)
    {
        tracing::error!(backup.id = %name, error = %cairn_proto::error_chain(&e), "removing a failed backup from the spool");
    }
    let done = Backup { spec: backup, status };
    tracing::info!(backup.id = %done.spec.name, phase = %done.status.phase, spooled = done.status.spooled, "backup run on our own ended");
    standing.ran(done.clone()).await;
    let _ = runner.events.try_send(Report::OfflineBackup(done));
    if let Some(site) = spool {
        keep_within(&standing, site, &runner, 0).await;
        let (bytes, backups) = site.backlog();
        tracing::info!(backups, bytes, cap = site.cap(), "the spool's backlog");
    }
}

/// Drops the spool's oldest backups until it holds no more than its cap with `reserve` bytes
/// more (keep-last within the spool), saying which, and tells the hub each is gone (told first:
/// a crash in between leaves the backup spooled, not the hub unaware).
async fn keep_within(standing: &Standing, spool: &Spool, runner: &Runner, reserve: u64) {
    let over = match spool.over_cap(reserve) {
        Ok(over) => over,
        Err(e) => {
            tracing::error!(error = %cairn_proto::error_chain(&e), "reading the spool");
            return;
        }
    };
    for dropped in over {
        let why = format!(
            "dropped from the spool of cluster {} when it was full ({} bytes at most): keep-last within the spool",
            runner.cluster,
            spool.cap()
        );
        tracing::warn!(backup.id = %dropped.backup, bytes = dropped.bytes, "{why}");
        if let Some(mut gone) = spooled_record(standing, spool, &dropped).await {
            gone.status.phase = Phase::Failed;
            gone.status.error = Some(why);
            gone.status.spooled = false;
            standing.ran(gone.clone()).await;
            let _ = runner.events.try_send(Report::OfflineBackup(gone));
        }
        if let Err(e) = spool.remove(&dropped) {
            tracing::error!(backup.id = %dropped.backup, error = %cairn_proto::error_chain(&e), "dropping a backup from the full spool");
        }
    }
}

/// The record of spooled backup `spooled`, from its manifest (sealed with its location's keys,
/// which its standing order holds).
async fn spooled_record(standing: &Standing, spool: &Spool, spooled: &Spooled) -> Option<Backup> {
    let order = standing.order_for(&spooled.location).await?;
    let read = async {
        let spool_location = spool.stand_in(&order.location);
        let store =
            cairn_proto::format::open_location(&spool_location).map_err(|e| cairn_proto::error_chain(&e))?;
        let seal = ObjectSeal::new(&order.resources).map_err(|e| cairn_proto::error_chain(&e))?;
        let sealed = SealedStore::new(store, &spooled.location, seal);
        sealed
            .read::<Manifest>(&BackupKeys::new(&spooled.backup).manifest())
            .await
            .map_err(|e| cairn_proto::error_chain(&e))
    };
    match read.await {
        Ok(Some(manifest)) => Some(manifest.backup),
        Ok(None) => None,
        Err(why) => {
            tracing::error!(backup.id = %spooled.backup, %why, "a spooled backup's manifest cannot be read");
            None
        }
    }
}

/// How often the spool is offered to its locations.
const SHIP_EVERY: Duration = Duration::from_secs(10);

/// Ships spooled backups to their locations, oldest first, whenever they can be reached (each
/// location asked once a round), until `stop`; tells the hub each is in its location now, then
/// removes it from the spool.
async fn ship(standing: Arc<Standing>, spool: Spool, runner: Runner, stop: CancellationToken) {
    loop {
        let spooled = spool.backups().unwrap_or_else(|e| {
            tracing::error!(error = %cairn_proto::error_chain(&e), "reading the spool");
            Vec::new()
        });
        let mut reachable = std::collections::HashMap::new();
        for spooled in spooled {
            if stop.is_cancelled() {
                return;
            }
            let Some(order) = standing.order_for(&spooled.location).await else {
                tracing::warn!(backup.id = %spooled.backup, location = %spooled.location, "a spooled backup's location is in no standing order: kept in the spool");
                continue;
            };
            if !*reachable
                .entry(spooled.location.clone())
                .or_insert(tokio::select! {
                    r = crate::spool::reachable(&order.location) => r.is_ok(),
                    () = stop.cancelled() => return,
                })
            {
                continue;
            }
            let Some(mut record) = spooled_record(&standing, &spool, &spooled).await else {
                continue;
            };
            let shipped = tokio::select! {
                r = spool.ship(&spooled, &order.location) => r,
                () = stop.cancelled() => return,
            };
            match shipped {
                Ok(copied) => {
                    tracing::info!(backup.id = %spooled.backup, location = %spooled.location, bytes = copied, "spooled backup shipped to its location");
                    record.status.spooled = false;
                    standing.ran(record.clone()).await;
                    let _ = runner.events.try_send(Report::OfflineBackup(record));
                    if let Err(e) = spool.remove(&spooled) {
                        tracing::error!(backup.id = %spooled.backup, error = %cairn_proto::error_chain(&e), "removing a shipped backup from the spool");
                    }
                }
                Err(e) => {
                    tracing::warn!(backup.id = %spooled.backup, error = %cairn_proto::error_chain(&e), "shipping a spooled backup: tried again later");
                    reachable.insert(spooled.location.clone(), false);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(SHIP_EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}
