//! The hub's work: clusters registering, backups and restores from request to result.
//!
//! [`Hub`] owns the inventory, the connected [`agents`] and the live [`progress`] board. The
//! gRPC services in `api/` only translate to and from the wire and call it.

mod access;
pub mod agents;
mod bucket;
mod catalog;
mod enrolment;
mod error;
mod groups;
mod health;
mod locations;
mod maintenance;
mod orders;
pub mod progress;
mod retention;
mod schedules;
mod volumes;
mod workspaces;

pub use access::{AUDIT_KEPT, StoredToken};
pub use enrolment::Enrolment;
pub use error::{Error, Failure, Refused};
pub use workspaces::default_workspace;

use cairn_proto::format::{BackupKeys, SealedStore, VolumeKeys};
use cairn_proto::model::{
    Backup, BackupName, BackupQuery, BackupSpec, BackupStatus, Cluster, ClusterName, IndexEntry, Instruction,
    ItemResult, Live, Location, LocationName, Manifest, OperationId, Phase, Report, RepositoryKey,
    ResourceKeys, Restore, RestoreName, RestoreSpec, RestoreStatus, StoredLocation, Timestamp,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::inventory::{self, Inventory};
use crate::location::Locations;
use agents::{Agents, SessionId};
use progress::Board;

/// Result of a hub call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Refuses `backup` if it is in its site's spool: not in its location yet, so neither restored
/// nor deleted from there.
fn refuse_spooled(backup: &Backup) -> Result<()> {
    if backup.status.spooled {
        return Err(Refused::Spooled {
            backup: backup.spec.name.clone(),
            location: locations::location_of(backup).to_string(),
            cluster: backup.spec.cluster.clone(),
        }
        .into());
    }
    Ok(())
}

/// `cluster`'s agent reported on `operation`, which the hub did not ask of it.
fn not_sent(cluster: &ClusterName, operation: &OperationId) -> Error {
    Refused::NotSent {
        cluster: cluster.clone(),
        operation: operation.clone(),
    }
    .into()
}

/// A location an operation may use, resolved for its agent.
struct Target {
    /// As the hub stores it.
    stored: StoredLocation,
    /// As the agent opens it.
    location: Location,
    /// Its volume-repository key (newest version).
    key: RepositoryKey,
    /// Every version of its resource-backup key.
    resources: ResourceKeys,
}

/// How long the hub waits, and on what.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The shortest a volume prune's grace period may be (`volume_prune_grace`).
    pub prune_grace: Duration,
    /// How long an agent has to take up an instruction, and to read what the hub sends it
    /// (`instruction_deadline`): past it the instruction fails, naming the agent and why.
    pub instruction_deadline: Duration,
    /// Agent sessions admitted per second, at most (`agent_admissions_per_second`).
    pub admissions_per_second: u32,
    /// How long past a schedule's period a cluster may go without a successful backup before
    /// its RPO counts as at risk (`rpo_grace`).
    pub rpo_grace: Duration,
}

/// The hub's state and operations; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    schedules_changed: tokio::sync::Notify,
    timetables: cairn_proto::schedule::Timetables,
    inventory: Inventory,
    locations: Locations,
    agents: Agents<ClusterName>,
    nodes: Agents<agents::NodeAgent>,
    enrolment: Enrolment,
    limits: Limits,
    /// Paces agent sessions ([`Limits::admissions_per_second`]).
    admissions: governor::DefaultDirectRateLimiter,
    /// Each cluster's last successful backup.
    tally: health::Tally,
    /// Every schedule as of its last change, for standing orders and health.
    schedule_cache: orders::ScheduleCache,
    /// Standing orders changed: the orders loop gives them again.
    orders_wanted: tokio::sync::Notify,
    metrics: crate::metrics::Metrics,
    board: Board,
    /// Cancelled when the hub begins to stop.
    stop: CancellationToken,
    /// Every background task: the loops, agent sessions, watches, delayed starts.
    tasks: TaskTracker,
}

impl Hub {
    /// A hub over `inventory`, its built-in location the directory `builtin_location` (absolute),
    /// credentials sealed with `key`, agents enrolled by `enrolment`, waiting within `limits`;
    /// creates workspace `default` on first start.
    pub async fn start(
        inventory: Inventory,
        key: cairn_proto::seal::Key,
        builtin_location: &str,
        clock: Clock,
        enrolment: Enrolment,
        limits: Limits,
    ) -> Result<Self> {
        let locations = Locations::new(inventory.clone(), key)?;
        let pace =
            std::num::NonZeroU32::new(limits.admissions_per_second).unwrap_or(std::num::NonZeroU32::MIN);
        locations.ensure_builtin(builtin_location).await?;
        let hub = Self {
            inner: Arc::new(Inner {
                clock,
                schedules_changed: tokio::sync::Notify::new(),
                timetables: cairn_proto::schedule::Timetables::default(),
                inventory,
                locations,
                agents: Agents::default(),
                nodes: Agents::default(),
                enrolment,
                limits,
                admissions: governor::RateLimiter::direct(governor::Quota::per_second(pace)),
                tally: health::Tally::default(),
                schedule_cache: orders::ScheduleCache::default(),
                orders_wanted: tokio::sync::Notify::new(),
                metrics: crate::metrics::Metrics::default(),
                board: Board::default(),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        };
        hub.ensure_default_workspace().await?;
        for b in hub.all_backups().await? {
            hub.inner.tally.note(&b);
        }
        Ok(hub)
    }

    /// Runs `task` in the background, tracked: [`Hub::shutdown`] waits for it. A task that
    /// waits (a loop's sleep, a stream) also waits for [`Hub::stopping`] and ends when it fires;
    /// work it has begun (an inventory write, an instruction) it finishes.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.inner.tasks.spawn(task);
    }

    /// Resolves once the hub has begun to stop.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.stop.clone().cancelled_owned()
    }

    /// Begins to stop: background tasks end at their next wait, agent sessions and watches end
    /// (the agents keep their operations running and report them to the next hub).
    pub fn stop(&self) {
        self.inner.stop.cancel();
    }

    /// Stops ([`Hub::stop`]), waits up to `grace` for the background tasks to finish what they
    /// have begun, and writes the inventory to disk. The caller drops the hub afterwards, which
    /// closes the inventory.
    pub async fn shutdown(&self, grace: Duration) -> Result<()> {
        self.stop();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.inner.tasks.len(),
                ?grace,
                "background tasks still running at shutdown: left unfinished"
            );
        }
        self.inner.inventory.flush().await?;
        Ok(())
    }

    /// Checks every location once, recording each one's health, and reads back into the
    /// inventory the backups found in each that it does not know.
    pub async fn verify_locations(&self) {
        self.inner.locations.verify_all().await;
        self.sync_catalogs().await;
    }

    /// Registers the agent of enrolled cluster `name`, of `agent_version`, on Kubernetes
    /// `kubernetes_version`; returns its session and the queue of instructions for it.
    #[tracing::instrument(name = "register", skip_all, fields(cluster = %name))]
    pub async fn register(
        &self,
        name: &ClusterName,
        agent_version: String,
        kubernetes_version: String,
    ) -> Result<(SessionId, mpsc::Receiver<Instruction>)> {
        let Some(mut cluster) = self.inner.inventory.cluster(name).await? else {
            return Err(Refused::UnknownCluster(name.clone()).into());
        };
        let (id, rx, orphaned) = self.inner.agents.attach(name);
        self.fail_all(
            &orphaned,
            "the agent reconnected; the operation it was running was lost",
        )
        .await;
        cluster.connected = true;
        cluster.last_heartbeat = Some(Timestamp::now());
        cluster.agent_version = agent_version;
        cluster.kubernetes_version = kubernetes_version;
        self.inner.inventory.put_cluster(&cluster).await?;
        tracing::info!(agent.version = %cluster.agent_version, kubernetes.version = %cluster.kubernetes_version, "agent registered");
        self.give_orders(name).await;
        Ok((id, rx))
    }

    /// Handles a report from `cluster`'s agent. It may report only on what
    /// the hub asked of that cluster: its own backups and restores, prunes of its workspace's
    /// locations, volume tasks of operations it runs.
    pub async fn report(&self, cluster: &ClusterName, report: Report) -> Result<()> {
        match report {
            Report::Heartbeat | Report::Register(_) => {}
            Report::Progress(p) => {
                if !self.inner.agents.runs(cluster, &p.operation) {
                    return Err(not_sent(cluster, &p.operation));
                }
                self.inner.board.progress(p);
            }
            Report::BackupDone(name, status) => {
                let Some(mut backup) = self.inner.inventory.backup(&name).await? else {
                    return Err(Refused::UnknownBackup(name).into());
                };
                let operation = OperationId::Backup(name.clone());
                if backup.spec.cluster != *cluster {
                    return Err(not_sent(cluster, &operation));
                }
                tracing::info!(backup.id = %name, phase = %status.phase, items = status.items, "backup ended");
                let phase = status.phase;
                let counted = backup.status.phase.is_final();
                backup.status = self.made_for(cluster, &name, status).await?;
                self.inner.inventory.put_backup(&backup).await?;
                self.ended(&backup, counted);
                self.inner.agents.finished(cluster, &operation);
                self.inner.board.close(&operation, phase);
                if phase.is_final() {
                    // Deleting old backups may take long: never while the agent's session waits.
                    let hub = self.clone();
                    self.spawn(async move { hub.keep_last(&backup).await });
                }
            }
            Report::RestoreDone(name, status) => {
                let Some(mut restore) = self.inner.inventory.restore(&name).await? else {
                    return Err(Refused::UnknownRestore(name).into());
                };
                let operation = OperationId::Restore(name.clone());
                if restore.spec.target_cluster.as_ref() != Some(cluster) {
                    return Err(not_sent(cluster, &operation));
                }
                tracing::info!(restore.id = %name, phase = %status.phase, items = status.counts.total(), "restore ended");
                let phase = status.phase;
                let counted = restore.status.phase.is_final();
                restore.status = status;
                self.inner.inventory.put_restore(&restore).await?;
                if phase.is_final() && !counted {
                    self.inner.metrics.restore_ended(&restore);
                }
                self.inner.agents.finished(cluster, &operation);
                self.inner.board.close(&operation, phase);
            }
            Report::VolumeTask(task) => self.route_volume(cluster, task).await?,
            Report::PruneDone(location, mut prune) => {
                let stored = self.inner.locations.get(&location).await?;
                if stored.spec.workspace != self.workspace_of(cluster).await? {
                    return Err(not_sent(cluster, &OperationId::Prune(location)));
                }
                prune.cluster = cluster.to_string();
                self.pruned(&location, prune).await?;
            }
            Report::Vouched(id, verdict) => self.vouched(cluster, id, verdict),
            Report::OfflineBackup(backup) => self.adopt(cluster, backup).await?,
            Report::VolumeDone(..) | Report::VolumeProgress(_) => {
                tracing::warn!(%cluster, "volume result from a cluster agent ignored: only node agents send them");
            }
        }
        Ok(())
    }

    /// `status` as the agent of `cluster` reported it for backup `name`, with only the volume
    /// snapshots node agents made for that backup: a snapshot named but not made for it (another
    /// backup's, which deleting this one would delete) is dropped, and the claim says why.
    async fn made_for(
        &self,
        cluster: &ClusterName,
        name: &BackupName,
        mut status: BackupStatus,
    ) -> Result<BackupStatus> {
        let made = self.inner.inventory.snapshots(name).await?;
        for volume in status.volumes.iter_mut().filter(|v| !v.snapshot.is_empty()) {
            if !made.contains(&volume.snapshot) {
                tracing::warn!(%cluster, backup.id = %name, snapshot = %volume.snapshot, "snapshot refused: no node agent made it for this backup");
                volume.error = Some(format!(
                    "snapshot {} was not made for this backup by a node agent of cluster {cluster}: dropped",
                    volume.snapshot
                ));
                volume.snapshot.clear();
            }
        }
        Ok(status)
    }

    /// Whether one more agent session may start now; if not, when to dial again.
    pub fn pace(&self) -> Result<()> {
        self.inner.admissions.check().map_err(|later| {
            let wait = later.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            Failure::Busy(format!(
                "the hub is admitting many agents at once: dial again in {} or later",
                humantime::format_duration(wait.max(Duration::from_millis(1)))
            ))
            .into()
        })
    }

    /// A sign of life from session `session` of `cluster`'s agent.
    pub fn heard_from(&self, cluster: &ClusterName, session: SessionId) {
        self.inner.agents.beat(cluster, session);
    }

    /// How long an agent has to take up an instruction and to read what the hub sends it.
    pub fn instruction_deadline(&self) -> Duration {
        self.inner.limits.instruction_deadline
    }

    /// Session `session` of `cluster` has ended: operations it was running fail.
    pub async fn disconnect(&self, cluster: &ClusterName, session: SessionId, why: &str) {
        let Some(running) = self.inner.agents.detach(cluster, session) else {
            return;
        };
        tracing::warn!(%cluster, why, running = running.len(), "agent disconnected");
        self.fail_all(
            &running,
            &format!("the agent of cluster {cluster} disconnected ({why})"),
        )
        .await;
        if let Ok(Some(mut c)) = self.inner.inventory.cluster(cluster).await {
            c.connected = false;
            c.last_heartbeat = Some(Timestamp::now()); // offline since about now
            let _ = self.inner.inventory.put_cluster(&c).await;
        }
    }

    /// Disconnects agents silent for longer than `timeout`.
    pub async fn expire_silent(&self, timeout: Duration) {
        let deadline = Timestamp::from(std::time::SystemTime::now() - timeout);
        for (cluster, session) in self.inner.agents.silent_since(deadline) {
            self.disconnect(&cluster, session, "no heartbeat").await;
        }
        for (node, session) in self.inner.nodes.silent_since(deadline) {
            self.disconnect_node(&node, session, "no heartbeat").await;
        }
    }

    /// Marks the named running operations `Failed` with `why`.
    async fn fail_all(&self, operations: &[OperationId], why: &str) {
        for op in operations {
            if let Err(e) = self.fail(op, why).await {
                tracing::error!(operation = %op, error = %e, "recording a failed operation");
            }
        }
    }

    /// Marks running backup or restore `operation` `Failed`.
    async fn fail(&self, operation: &OperationId, why: &str) -> Result<()> {
        let finished = Some(Timestamp::now());
        match operation {
            OperationId::Backup(name) => {
                if let Some(mut b) = self.inner.inventory.backup(name).await?
                    && !b.status.phase.is_final()
                {
                    b.status.phase = Phase::Failed;
                    b.status.error = Some(why.to_owned());
                    b.status.finished = finished;
                    self.inner.inventory.put_backup(&b).await?;
                    self.ended(&b, false);
                }
            }
            OperationId::Restore(name) => {
                if let Some(mut r) = self.inner.inventory.restore(name).await?
                    && !r.status.phase.is_final()
                {
                    r.status.phase = Phase::Failed;
                    r.status.error = Some(why.to_owned());
                    r.status.finished = finished;
                    self.inner.inventory.put_restore(&r).await?;
                    self.inner.metrics.restore_ended(&r);
                }
            }
            OperationId::Prune(_) | OperationId::Volume(_) => {}
        }
        self.inner.board.close(operation, Phase::Failed);
        Ok(())
    }

    /// `backup` was recorded as it ended (or as it is, if it has not): counted in the fleet's
    /// health, and in the metrics unless an earlier end was (`counted`).
    fn ended(&self, backup: &Backup, counted: bool) {
        if backup.status.phase.is_final() {
            if !counted {
                self.inner.metrics.backup_ended(backup);
            }
            self.inner.tally.note(backup);
        }
    }

    /// `cluster`'s agent reported on `operation`: it has taken it up.
    pub fn took(&self, cluster: &ClusterName, operation: &OperationId) {
        self.inner.agents.took(cluster, operation);
    }

    /// The metrics' exposition text now.
    pub async fn metrics_text(&self) -> Result<String> {
        let clusters = self.clusters().await?;
        let locations = self.locations(None).await?;
        Ok(self.inner.metrics.encode(&clusters, &locations).await)
    }

    /// Every cluster, with its connection state and health now.
    pub async fn clusters(&self) -> Result<Vec<Cluster>> {
        let mut clusters = self.inner.inventory.clusters().await?;
        clusters.retain(|c| !c.removed);
        let members: std::collections::HashMap<_, _> =
            self.inner.inventory.members().await?.into_iter().collect();
        for c in &mut clusters {
            let live = self.inner.agents.last_heartbeat(&c.name);
            c.connected = live.is_some();
            c.last_heartbeat = live.or(c.last_heartbeat);
            c.workspace = Some(members.get(&c.name).cloned().unwrap_or_else(default_workspace));
        }
        self.fill_health(&mut clusters).await?;
        Ok(clusters)
    }

    /// The instruction queue of `cluster`'s agent, or why there is none.
    async fn connected(
        &self,
        cluster: &ClusterName,
        operation: &OperationId,
    ) -> Result<mpsc::Sender<Instruction>> {
        if let Some(tx) = self.inner.agents.sender(cluster, operation) {
            return Ok(tx);
        }
        match self.inner.inventory.cluster(cluster).await? {
            None => Err(Refused::UnknownCluster(cluster.clone()).into()),
            Some(c) => Err(Failure::NotConnected {
                cluster: cluster.clone(),
                last_seen: c.last_heartbeat,
            }
            .into()),
        }
    }

    /// Starts a backup: checks the request, records it, sends it to the cluster's agent.
    #[tracing::instrument(name = "backup", skip_all, fields(backup.id = %spec.name, cluster = %spec.cluster))]
    pub async fn create_backup(&self, mut spec: BackupSpec) -> Result<Backup> {
        if self.inner.inventory.backup(&spec.name).await?.is_some() {
            return Err(Refused::Exists {
                kind: "backup",
                name: spec.name.to_string(),
            }
            .into());
        }
        let target = self.target(&spec.cluster, spec.location.as_ref()).await?;
        spec.location = Some(target.stored.spec.name);
        spec.origin.workspace = Some(target.stored.spec.workspace);
        spec.origin.created = Some(self.inner.clock.now());
        let backup = Backup {
            spec: spec.clone(),
            status: BackupStatus::default(),
        };
        let operation = OperationId::Backup(spec.name.clone());
        let cluster = spec.cluster.clone();
        let instruction = Instruction::Backup {
            spec,
            location: target.location,
            key: target.key,
            resources: target.resources,
        };
        let record = self.inner.inventory.put_backup(&backup);
        self.launch(&operation, &cluster, record, instruction).await?;
        Ok(backup)
    }

    /// Starts a restore of a finished backup into its target cluster.
    #[tracing::instrument(name = "restore", skip_all, fields(restore.id = %spec.name, backup.id = %spec.backup))]
    pub async fn create_restore(&self, mut spec: RestoreSpec) -> Result<Restore> {
        if self.inner.inventory.restore(&spec.name).await?.is_some() {
            return Err(Refused::Exists {
                kind: "restore",
                name: spec.name.to_string(),
            }
            .into());
        }
        let backup = self.backup(&spec.backup).await?;
        if !matches!(backup.status.phase, Phase::Completed | Phase::PartiallyFailed) {
            return Err(Refused::NotRestorable {
                backup: spec.backup,
                phase: backup.status.phase,
            }
            .into());
        }
        refuse_spooled(&backup)?;
        let cluster = spec
            .target_cluster
            .get_or_insert_with(|| backup.spec.cluster.clone())
            .clone();
        let target = self
            .target(&cluster, Some(&locations::location_of(&backup)))
            .await?;
        let restore = Restore {
            spec: spec.clone(),
            status: RestoreStatus::default(),
        };
        let operation = OperationId::Restore(spec.name.clone());
        let instruction = Instruction::Restore {
            spec,
            location: target.location,
            key: target.key,
            resources: target.resources,
        };
        let record = self.inner.inventory.put_restore(&restore);
        self.launch(&operation, &cluster, record, instruction).await?;
        Ok(restore)
    }

    /// Where an operation on `cluster` writes or reads: location `requested` (or its workspace's
    /// default) if `cluster` is known and may use it, resolved with the workspace's key.
    async fn target(&self, cluster: &ClusterName, requested: Option<&LocationName>) -> Result<Target> {
        if self.inner.inventory.cluster(cluster).await?.is_none() {
            return Err(Refused::UnknownCluster(cluster.clone()).into());
        }
        let stored = self.usable_location(cluster, requested).await?;
        Ok(Target {
            location: self.inner.locations.resolve(&stored)?,
            key: self.inner.locations.repository_key(&stored)?,
            resources: self.inner.locations.resource_keys(&stored)?,
            stored,
        })
    }

    /// Starts `operation` on `cluster`'s agent: once the agent is known to be connected, writes
    /// the operation's `record`, then queues `instruction`, never waiting: an agent whose queue
    /// is full, or that does not take the instruction up within the instruction deadline, is not
    /// reading, and the operation fails saying so.
    async fn launch(
        &self,
        operation: &OperationId,
        cluster: &ClusterName,
        record: impl Future<Output = inventory::Result<()>>,
        instruction: Instruction,
    ) -> Result<()> {
        let tx = self.connected(cluster, operation).await?;
        record.await?;
        self.inner.board.open(operation);
        let why = match tx.try_send(instruction) {
            Ok(()) => {
                self.expect_taken(cluster, operation);
                return Ok(());
            }
            Err(mpsc::error::TrySendError::Full(_)) => format!(
                "the agent of cluster {cluster} has {} instructions it has not read: it is connected but not reading",
                agents::INSTRUCTION_QUEUE
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                "the agent disconnected before the operation started".to_owned()
            }
        };
        tracing::warn!(%cluster, %operation, why, "instruction not sent");
        self.inner.agents.finished(cluster, operation);
        self.fail(operation, &why).await
    }

    /// Fails `operation` if `cluster`'s agent has not reported on it within the instruction
    /// deadline (an agent takes an operation up by reporting its progress at once).
    fn expect_taken(&self, cluster: &ClusterName, operation: &OperationId) {
        let (hub, cluster, operation) = (self.clone(), cluster.clone(), operation.clone());
        let deadline = self.inner.limits.instruction_deadline;
        self.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(deadline) => {}
                () = hub.stopping() => return,
            }
            if hub.inner.agents.drop_untaken(&cluster, &operation) {
                let why = format!(
                    "the agent of cluster {cluster} did not take up the instruction within {}: it is connected but not reading what the hub sends",
                    humantime::format_duration(deadline)
                );
                tracing::warn!(%cluster, %operation, why, "instruction failed");
                if let Err(e) = hub.fail(&operation, &why).await {
                    tracing::error!(%operation, error = %e, "recording a failed operation");
                }
            }
        });
    }

    /// Sends `instruction` into `queue` (an agent's), waiting at most the instruction deadline;
    /// why not, if not.
    async fn deliver(
        &self,
        queue: &mpsc::Sender<Instruction>,
        instruction: Instruction,
    ) -> std::result::Result<(), &'static str> {
        match queue
            .send_timeout(instruction, self.inner.limits.instruction_deadline)
            .await
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err("its agent is not reading"),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err("its agent disconnected"),
        }
    }

    /// The backup called `name`.
    pub async fn backup(&self, name: &BackupName) -> Result<Backup> {
        self.inner
            .inventory
            .backup(name)
            .await?
            .ok_or_else(|| Refused::UnknownBackup(name.clone()).into())
    }

    /// Backups matching `query`, newest first.
    pub async fn backups(&self, query: &BackupQuery) -> Result<Vec<Backup>> {
        Ok(self.inner.inventory.backups(query).await?)
    }

    /// Every item of backup `name`, read from its index in the location.
    pub async fn backup_items(&self, name: &BackupName) -> Result<Vec<IndexEntry>> {
        let backup = self.backup(name).await?;
        let bucket = self.backup_bucket(&backup).await?;
        let keys = BackupKeys::new(name);
        let Some(manifest) = bucket.read::<Manifest>(&keys.manifest()).await? else {
            return Ok(Vec::new()); // never finished
        };
        let mut items = Vec::new();
        for part in &manifest.index {
            items.extend(bucket.must_read::<Vec<IndexEntry>>(&keys.absolute(part)).await?);
        }
        Ok(items)
    }

    /// The objects of the location `backup` was written to.
    async fn backup_bucket(&self, backup: &Backup) -> Result<SealedStore> {
        let stored = self.inner.locations.get(&locations::location_of(backup)).await?;
        self.bucket(&stored)
    }

    /// Deletes backup `name`: its objects in the location, then its record.
    #[tracing::instrument(name = "delete_backup", skip_all, fields(backup.id = %name))]
    pub async fn delete_backup(&self, name: &BackupName) -> Result<()> {
        let backup = self.backup(name).await?;
        if !backup.status.phase.is_final() {
            return Err(Refused::Running(name.clone()).into());
        }
        refuse_spooled(&backup)?;
        let bucket = self.backup_bucket(&backup).await?;
        let keys = BackupKeys::new(name);
        // The manifest first: from then on the folder is no longer a backup, whatever remains.
        bucket.delete(&keys.manifest()).await?;
        // Its volume snapshots: the next prune collects the data no other snapshot uses.
        for volume in backup.status.volumes.iter().filter(|v| !v.snapshot.is_empty()) {
            bucket.delete(&VolumeKeys::snapshot(&volume.snapshot)).await?;
        }
        bucket.delete_under(keys.dir()).await?;
        self.inner.inventory.delete_backup(&backup).await?;
        self.inner.inventory.forget_snapshots(name).await?;
        tracing::info!("backup deleted");
        Ok(())
    }

    /// The restore called `name`.
    pub async fn restore(&self, name: &RestoreName) -> Result<Restore> {
        self.inner
            .inventory
            .restore(name)
            .await?
            .ok_or_else(|| Refused::UnknownRestore(name.clone()).into())
    }

    /// Every item of restore `name` with its outcome, in restore order, read from the location.
    pub async fn restore_items(&self, name: &RestoreName) -> Result<Vec<ItemResult>> {
        let restore = self.restore(name).await?;
        let backup = self.backup(&restore.spec.backup).await?;
        let bucket = self.backup_bucket(&backup).await?;
        let mut items = Vec::new();
        for key in &restore.status.item_parts {
            items.extend(bucket.must_read::<Vec<ItemResult>>(key).await?);
        }
        Ok(items)
    }

    /// Every restore.
    pub async fn restores(&self) -> Result<Vec<Restore>> {
        Ok(self.inner.inventory.restores().await?)
    }

    /// Live state of running operation `operation`; `None` once it has ended (or never ran here).
    pub fn watch(&self, operation: &OperationId) -> Option<watch::Receiver<Live>> {
        self.inner.board.subscribe(operation)
    }
}
