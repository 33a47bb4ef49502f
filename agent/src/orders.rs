//! Standing orders: the schedules of this agent's cluster (its own and its workspace's), which the
//! hub gives it with what their backups need, kept sealed next to its identity. A slot the hub
//! has not started [`HUB_GRACE`] after it came (the hub is down, or the link is), the agent runs
//! itself, writing straight to the location; the backup is named for its slot by the rule the hub
//! uses (`cairn_proto::schedule`), and every slot's backup the agent starts, asked or on its own,
//! is remembered, so no slot runs twice. Backups run on its own are reported on every link until
//! the hub adopts them.

use cairn_proto::convert::Wire;
use cairn_proto::model::{
    AgentState, Backup, BackupName, BackupOrigin, ClusterName, Order, Report, ScheduleTarget, Timestamp,
};
use cairn_proto::schedule::{Timetable, backup_for, jitter, slot_backup};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::enrol::Enrolled;
use crate::relay::{Relay, Volumes};
use crate::report::{EVENT_QUEUE, Reporter};

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
                .find(|b| b.spec.name == *name)
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

    /// `backup`, run on its own, ended: held for the hub until it adopts it.
    async fn ran(&self, backup: Backup) {
        let mut state = self.state.lock().await;
        state.unreported.push(backup);
        let over = state.unreported.len().saturating_sub(UNREPORTED_KEPT);
        for dropped in state.unreported.drain(..over) {
            tracing::warn!(backup.id = %dropped.spec.name, "too many backups not reported to the hub: this one is left to the catalog sync of its location");
        }
        self.save(&state).await;
    }

    /// The hub recorded backup `name`.
    pub async fn adopted(&self, name: &BackupName) {
        let mut state = self.state.lock().await;
        let before = state.unreported.len();
        state.unreported.retain(|b| b.spec.name != *name);
        if state.unreported.len() != before {
            tracing::info!(backup.id = %name, "backup run on its own adopted by the hub");
            self.save(&state).await;
        }
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
}

/// Runs every slot of the standing orders that comes due (its time, its jitter and
/// [`HUB_GRACE`] past) and that no one started, until `stop`; backups running then are given
/// [`crate::link::STOP_GRACE`] to finish.
pub async fn keep(standing: Arc<Standing>, runner: Runner, stop: CancellationToken) {
    let runs = TaskTracker::new();
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
    let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
    let volumes = Volumes {
        relay: Relay::unlinked(),
        key: order.key.clone(),
        cluster: runner.cluster.clone(),
    };
    let backing_up = crate::backup::run(
        runner.client,
        backup.clone(),
        (order.location.clone(), order.resources.clone()),
        Reporter::new(name, tx),
        volumes,
        runner.kubernetes_version,
    );
    let result = async {
        while let Some(report) = rx.recv().await {
            if let Report::BackupDone(_, status) = report {
                return Some(status);
            }
        }
        None
    };
    let ((), status) = tokio::join!(backing_up, result);
    let Some(status) = status else { return };
    let done = Backup { spec: backup, status };
    tracing::info!(backup.id = %done.spec.name, phase = %done.status.phase, "backup run on our own ended");
    standing.ran(done.clone()).await;
    let _ = runner.events.try_send(Report::OfflineBackup(done));
}
