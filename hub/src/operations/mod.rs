//! The hub's work: clusters registering, backups and restores from request to result.
//!
//! [`Hub`] owns the inventory, the connected [`agents`] and the live [`progress`] board. The
//! gRPC services in `api/` only translate to and from the wire and call it.

pub mod agents;
mod bucket;
mod catalog;
mod groups;
mod locations;
mod maintenance;
pub mod progress;
mod retention;
mod schedules;
mod volumes;
mod workspaces;

pub use workspaces::default_workspace;

use cairn_proto::format::{self, BackupKeys, SealedStore, VolumeKeys};
use cairn_proto::model::{
    Backup, BackupName, BackupQuery, BackupSpec, BackupStatus, Cluster, ClusterName, IndexEntry, Instruction,
    ItemResult, Live, LocationName, Manifest, OperationId, Phase, Report, Restore, RestoreName, RestoreSpec,
    RestoreStatus, Timestamp, WorkspaceName,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::inventory::{self, Inventory};
use crate::location::{self, Locations};
use agents::{Agents, SessionId};
use progress::Board;

/// A request the hub refuses or cannot carry out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No agent has ever registered this cluster.
    #[error("unknown cluster {0}: no agent has registered it (see `cairn cluster list`)")]
    UnknownCluster(ClusterName),
    /// The cluster's agent is not connected.
    #[error("cluster {cluster} is not connected{}", last_seen.map(|t| format!(" (last heartbeat {t})")).unwrap_or_default())]
    NotConnected {
        /// The cluster.
        cluster: ClusterName,
        /// When it was last heard from.
        last_seen: Option<Timestamp>,
    },
    /// A backup or restore of that name exists.
    #[error("{kind} {name} already exists")]
    Exists {
        /// backup or restore.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// No such backup.
    #[error("unknown backup {0}")]
    UnknownBackup(BackupName),
    /// No such restore.
    #[error("unknown restore {0}")]
    UnknownRestore(RestoreName),
    /// No such schedule.
    #[error("unknown schedule {0} (see `cairn schedule list`)")]
    UnknownSchedule(cairn_proto::model::ScheduleName),
    /// A cron expression or time zone that cannot be used.
    #[error(transparent)]
    Timetable(#[from] crate::schedule::Invalid),
    /// No such workspace.
    #[error("unknown workspace {0} (see `cairn workspace list`)")]
    UnknownWorkspace(WorkspaceName),
    /// A cluster cannot move that way.
    #[error("{0}")]
    Membership(String),
    /// The request names a location of another workspace.
    #[error(
        "cluster {cluster} is in workspace {workspace}; location {location} belongs to workspace \
         {location_workspace}: only that workspace's clusters may use it"
    )]
    OutsideWorkspace {
        /// The cluster.
        cluster: ClusterName,
        /// Its workspace.
        workspace: WorkspaceName,
        /// The location.
        location: LocationName,
        /// The location's workspace.
        location_workspace: WorkspaceName,
    },
    /// No agent of the workspace is connected to do the location's maintenance.
    #[error("no agent of workspace {workspace} is connected to prune location {location}")]
    NoAgent {
        /// The workspace.
        workspace: WorkspaceName,
        /// The location.
        location: LocationName,
    },
    /// The request names no location and the workspace has no default.
    #[error(
        "workspace {0} has no default location: add one (`cairn location add … --default`) or pass --location"
    )]
    NoDefaultLocation(WorkspaceName),
    /// Backups recorded in the inventory live in the location.
    #[error(
        "location {location} holds {backups} backup(s) recorded here: delete them, or pass --force to forget them (the store keeps them)"
    )]
    LocationInUse {
        /// The location.
        location: LocationName,
        /// How many.
        backups: usize,
    },
    /// The backup is still being written.
    #[error("backup {0} is still running; delete it once it has ended")]
    Running(BackupName),
    /// The backup cannot be restored (still running, or failed).
    #[error("backup {backup} is {phase}: only Completed or PartiallyFailed backups can be restored")]
    NotRestorable {
        /// The backup.
        backup: BackupName,
        /// Its phase.
        phase: Phase,
    },
    /// The hub's own records failed.
    #[error(transparent)]
    Inventory(#[from] inventory::Error),
    /// A location request failed.
    #[error(transparent)]
    Location(#[from] location::Error),
    /// The location could not be opened.
    #[error(transparent)]
    Open(#[from] format::location::Error),
    /// Reading, listing or deleting in the location failed, or what was read does not open or
    /// decode.
    #[error(transparent)]
    Store(#[from] format::sealed_store::Error),
}

/// Result of a hub call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The hub's state and operations; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    schedules_changed: tokio::sync::Notify,
    inventory: Inventory,
    locations: Locations,
    agents: Agents<ClusterName>,
    nodes: Agents<agents::NodeAgent>,
    board: Board,
    /// Cancelled when the hub begins to stop.
    stop: CancellationToken,
    /// Every background task: the loops, agent sessions, watches, delayed starts.
    tasks: TaskTracker,
}

impl Hub {
    /// A hub over `inventory`, its built-in location the directory `builtin_location` (absolute),
    /// credentials sealed with `key`; creates workspace `default` on first start.
    pub async fn start(
        inventory: Inventory,
        key: cairn_proto::seal::Key,
        builtin_location: &str,
        clock: Clock,
    ) -> Result<Self> {
        let locations = Locations::new(inventory.clone(), key);
        locations.ensure_builtin(builtin_location).await?;
        let hub = Self {
            inner: Arc::new(Inner {
                clock,
                schedules_changed: tokio::sync::Notify::new(),
                inventory,
                locations,
                agents: Agents::default(),
                nodes: Agents::default(),
                board: Board::default(),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        };
        hub.ensure_default_workspace().await?;
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

    /// Registers `cluster`'s agent; returns its session and the queue of instructions for it.
    #[tracing::instrument(name = "register", skip_all, fields(cluster = %cluster.name))]
    pub async fn register(&self, mut cluster: Cluster) -> Result<(SessionId, mpsc::Receiver<Instruction>)> {
        let (id, rx, orphaned) = self.inner.agents.attach(&cluster.name);
        self.fail_all(
            &orphaned,
            "the agent reconnected; the operation it was running was lost",
        )
        .await;
        cluster.connected = true;
        cluster.last_heartbeat = Some(Timestamp::now());
        self.inner.inventory.put_cluster(&cluster).await?;
        tracing::info!(agent.version = %cluster.agent_version, kubernetes.version = %cluster.kubernetes_version, "agent registered");
        Ok((id, rx))
    }

    /// Handles a report from session `session` of `cluster`.
    pub async fn report(&self, cluster: &ClusterName, session: SessionId, report: Report) -> Result<()> {
        self.inner.agents.beat(cluster, session);
        match report {
            Report::Heartbeat | Report::Register(_) => {}
            Report::Progress(p) => self.inner.board.progress(p),
            Report::BackupDone(name, status) => {
                let Some(mut backup) = self.inner.inventory.backup(&name).await? else {
                    return Err(Error::UnknownBackup(name));
                };
                tracing::info!(backup.id = %name, phase = %status.phase, items = status.items, "backup ended");
                let phase = status.phase;
                backup.status = status;
                self.inner.inventory.put_backup(&backup).await?;
                let operation = OperationId::Backup(name);
                self.inner.agents.finished(cluster, &operation);
                self.inner.board.close(&operation, phase);
                if phase.is_final() {
                    self.keep_last(&backup).await;
                }
            }
            Report::RestoreDone(name, status) => {
                let Some(mut restore) = self.inner.inventory.restore(&name).await? else {
                    return Err(Error::UnknownRestore(name));
                };
                tracing::info!(restore.id = %name, phase = %status.phase, items = status.counts.total(), "restore ended");
                let phase = status.phase;
                restore.status = status;
                self.inner.inventory.put_restore(&restore).await?;
                let operation = OperationId::Restore(name);
                self.inner.agents.finished(cluster, &operation);
                self.inner.board.close(&operation, phase);
            }
            Report::VolumeTask(task) => self.route_volume(task).await,
            Report::PruneDone(location, prune) => self.pruned(&location, prune).await?,
            Report::VolumeDone(..) | Report::VolumeProgress(_) => {
                tracing::warn!(%cluster, "volume result from a cluster agent ignored: only node agents send them");
            }
        }
        Ok(())
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
                }
            }
            OperationId::Prune(_) | OperationId::Volume(_) => {}
        }
        self.inner.board.close(operation, Phase::Failed);
        Ok(())
    }

    /// Every cluster, with its connection state now.
    pub async fn clusters(&self) -> Result<Vec<Cluster>> {
        let mut clusters = self.inner.inventory.clusters().await?;
        let members: std::collections::HashMap<_, _> =
            self.inner.inventory.members().await?.into_iter().collect();
        for c in &mut clusters {
            let live = self.inner.agents.last_heartbeat(&c.name);
            c.connected = live.is_some();
            c.last_heartbeat = live.or(c.last_heartbeat);
            c.workspace = Some(members.get(&c.name).cloned().unwrap_or_else(default_workspace));
        }
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
            None => Err(Error::UnknownCluster(cluster.clone())),
            Some(c) => Err(Error::NotConnected {
                cluster: cluster.clone(),
                last_seen: c.last_heartbeat,
            }),
        }
    }

    /// Starts a backup: checks the request, records it, sends it to the cluster's agent.
    #[tracing::instrument(name = "backup", skip_all, fields(backup.id = %spec.name, cluster = %spec.cluster))]
    pub async fn create_backup(&self, mut spec: BackupSpec) -> Result<Backup> {
        if self.inner.inventory.backup(&spec.name).await?.is_some() {
            return Err(Error::Exists {
                kind: "backup",
                name: spec.name.to_string(),
            });
        }
        if self.inner.inventory.cluster(&spec.cluster).await?.is_none() {
            return Err(Error::UnknownCluster(spec.cluster));
        }
        let stored = self
            .usable_location(&spec.cluster, spec.location.as_ref())
            .await?;
        let location = self.inner.locations.resolve(&stored)?;
        let key = self.inner.locations.repository_key(&stored.spec.workspace)?;
        spec.location = Some(stored.spec.name);
        spec.origin.workspace = Some(stored.spec.workspace);
        spec.origin.created = Some(self.inner.clock.now());
        let operation = OperationId::Backup(spec.name.clone());
        let tx = self.connected(&spec.cluster, &operation).await?;
        let backup = Backup {
            spec: spec.clone(),
            status: BackupStatus::default(),
        };
        self.inner.inventory.put_backup(&backup).await?;
        self.dispatch(
            &operation,
            &tx,
            Instruction::Backup {
                spec: spec.clone(),
                location,
                key,
            },
        )
        .await?;
        Ok(backup)
    }

    /// Starts a restore of a finished backup into its target cluster.
    #[tracing::instrument(name = "restore", skip_all, fields(restore.id = %spec.name, backup.id = %spec.backup))]
    pub async fn create_restore(&self, mut spec: RestoreSpec) -> Result<Restore> {
        if self.inner.inventory.restore(&spec.name).await?.is_some() {
            return Err(Error::Exists {
                kind: "restore",
                name: spec.name.to_string(),
            });
        }
        let backup = self.backup(&spec.backup).await?;
        if !matches!(backup.status.phase, Phase::Completed | Phase::PartiallyFailed) {
            return Err(Error::NotRestorable {
                backup: spec.backup,
                phase: backup.status.phase,
            });
        }
        let target = spec
            .target_cluster
            .get_or_insert_with(|| backup.spec.cluster.clone())
            .clone();
        if self.inner.inventory.cluster(&target).await?.is_none() {
            return Err(Error::UnknownCluster(target));
        }
        let stored = self
            .usable_location(&target, Some(&locations::location_of(&backup)))
            .await?;
        let location = self.inner.locations.resolve(&stored)?;
        let key = self.inner.locations.repository_key(&stored.spec.workspace)?;
        let operation = OperationId::Restore(spec.name.clone());
        let tx = self.connected(&target, &operation).await?;
        let restore = Restore {
            spec: spec.clone(),
            status: RestoreStatus::default(),
        };
        self.inner.inventory.put_restore(&restore).await?;
        self.dispatch(
            &operation,
            &tx,
            Instruction::Restore {
                spec: spec.clone(),
                location,
                key,
            },
        )
        .await?;
        Ok(restore)
    }

    /// Sends `instruction` for `operation` (recorded already) to its agent.
    async fn dispatch(
        &self,
        operation: &OperationId,
        tx: &mpsc::Sender<Instruction>,
        instruction: Instruction,
    ) -> Result<()> {
        self.inner.board.open(operation);
        if tx.send(instruction).await.is_err() {
            self.fail(operation, "the agent disconnected before the operation started")
                .await?;
        }
        Ok(())
    }

    /// The backup called `name`.
    pub async fn backup(&self, name: &BackupName) -> Result<Backup> {
        self.inner
            .inventory
            .backup(name)
            .await?
            .ok_or_else(|| Error::UnknownBackup(name.clone()))
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
            return Err(Error::Running(name.clone()));
        }
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
        tracing::info!("backup deleted");
        Ok(())
    }

    /// The restore called `name`.
    pub async fn restore(&self, name: &RestoreName) -> Result<Restore> {
        self.inner
            .inventory
            .restore(name)
            .await?
            .ok_or_else(|| Error::UnknownRestore(name.clone()))
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
