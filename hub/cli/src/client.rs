//! A typed client of the user API, for the CLI and tests: model types in, model types out.

use cairn_proto::convert::{self, Wire};
use cairn_proto::model::{
    Backup, BackupQuery, BackupSpec, BackupTemplate, Cluster, Credentials, IndexEntry, ItemResult,
    LocationInfo, LocationSpec, Phase, Progress, Restore, RestoreSpec, Schedule, Workspace, WorkspaceBackup,
};
use cairn_proto::pb::{self, cairn_client::CairnClient};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use cairn_proto::MAX_MESSAGE;

/// A call that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The hub cannot be reached.
    #[error("cannot reach the hub at {url}")]
    Connect {
        /// The hub URL.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The hub refused or failed the call; the message is the hub's (already complete, so the
    /// status is not repeated as a cause).
    #[error("{}", .0.message())]
    Status(tonic::Status),
    /// The hub answered something this client cannot read.
    #[error("unexpected answer from the hub")]
    Convert(#[from] convert::Error),
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

/// Result of a call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connected client.
#[derive(Clone)]
pub struct Client {
    inner: CairnClient<Channel>,
}

/// One update of a running operation.
#[derive(Debug, Clone)]
pub struct Update {
    /// How far it has got.
    pub progress: Progress,
    /// Its phase.
    pub phase: Phase,
}

impl Client {
    /// Connects to the hub at `url` (`http://host:port`).
    pub async fn connect(url: &str) -> Result<Self> {
        let channel = Channel::from_shared(url.to_owned())
            .map_err(|e| {
                Error::Status(tonic::Status::invalid_argument(format!(
                    "invalid hub URL {url:?}: {e}"
                )))
            })?
            .connect()
            .await
            .map_err(|source| Error::Connect {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            inner: CairnClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
        })
    }

    /// Registered clusters.
    pub async fn clusters(&mut self) -> Result<Vec<Cluster>> {
        let r = self
            .inner
            .list_clusters(pb::ListClustersRequest {})
            .await?
            .into_inner();
        Ok(r.clusters
            .into_iter()
            .map(Cluster::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Starts a backup.
    pub async fn create_backup(&mut self, spec: &BackupSpec) -> Result<Backup> {
        let r = self
            .inner
            .create_backup(pb::CreateBackupRequest {
                spec: Some(spec.to_pb()),
            })
            .await?;
        Ok(Backup::from_pb(r.into_inner())?)
    }

    /// One backup.
    pub async fn backup(&mut self, name: &str) -> Result<Backup> {
        let r = self.inner.get_backup(get(name)).await?;
        Ok(Backup::from_pb(r.into_inner())?)
    }

    /// Backups matching `query`, newest first.
    pub async fn backups(&mut self, query: &BackupQuery) -> Result<Vec<Backup>> {
        let r = self.inner.list_backups(query.to_pb()).await?.into_inner();
        Ok(r.backups
            .into_iter()
            .map(Backup::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Every item of a backup.
    pub async fn backup_items(&mut self, name: &str) -> Result<Vec<IndexEntry>> {
        let r = self.inner.list_backup_items(get(name)).await?;
        Ok(Vec::<IndexEntry>::from_pb(r.into_inner())?)
    }

    /// Deletes a backup.
    pub async fn delete_backup(&mut self, name: &str) -> Result<()> {
        self.inner.delete_backup(get(name)).await?;
        Ok(())
    }

    /// Starts a restore.
    pub async fn create_restore(&mut self, spec: &RestoreSpec) -> Result<Restore> {
        let r = self
            .inner
            .create_restore(pb::CreateRestoreRequest {
                spec: Some(spec.to_pb()),
            })
            .await?;
        Ok(Restore::from_pb(r.into_inner())?)
    }

    /// One restore.
    pub async fn restore(&mut self, name: &str) -> Result<Restore> {
        let r = self.inner.get_restore(get(name)).await?;
        Ok(Restore::from_pb(r.into_inner())?)
    }

    /// Every item of a restore, in restore order.
    pub async fn restore_items(&mut self, name: &str) -> Result<Vec<ItemResult>> {
        let r = self.inner.list_restore_items(get(name)).await?;
        Ok(Vec::<ItemResult>::from_pb(r.into_inner())?)
    }

    /// Every restore.
    pub async fn restores(&mut self) -> Result<Vec<Restore>> {
        let r = self
            .inner
            .list_restores(pb::ListRestoresRequest {})
            .await?
            .into_inner();
        Ok(r.restores
            .into_iter()
            .map(Restore::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Updates of running operation `name` (`backup/<name>` or `restore/<name>`), until it ends;
    /// `on_update` sees each one.
    /// Returns when the stream ends (immediately if the operation is not running).
    pub async fn watch(&mut self, name: &str, mut on_update: impl FnMut(Update)) -> Result<()> {
        let mut events = self.inner.watch(get(name)).await?.into_inner();
        while let Some(event) = events.next().await {
            let event = event?;
            let progress = Progress::from_pb(event.progress.unwrap_or_default())?;
            let phase = convert::phase_from_pb("WatchEvent.phase", event.phase)?;
            on_update(Update { progress, phase });
        }
        Ok(())
    }

    /// The live progress of running operation `name` (`backup/<name>`…); `None` if it is not
    /// running.
    pub async fn progress(&mut self, name: &str) -> Result<Option<Progress>> {
        let mut events = self.inner.watch(get(name)).await?.into_inner();
        match events.next().await {
            Some(event) => Ok(Some(Progress::from_pb(event?.progress.unwrap_or_default())?)),
            None => Ok(None),
        }
    }

    /// Creates a workspace.
    pub async fn create_workspace(&mut self, name: &str) -> Result<Workspace> {
        let request = pb::Workspace {
            name: name.to_owned(),
            ..Default::default()
        };
        let r = self.inner.create_workspace(request).await?;
        Ok(Workspace::from_pb(r.into_inner())?)
    }

    /// One workspace with its clusters.
    pub async fn workspace(&mut self, name: &str) -> Result<Workspace> {
        let r = self.inner.get_workspace(get(name)).await?;
        Ok(Workspace::from_pb(r.into_inner())?)
    }

    /// Every workspace.
    pub async fn workspaces(&mut self) -> Result<Vec<Workspace>> {
        let r = self
            .inner
            .list_workspaces(pb::ListWorkspacesRequest {})
            .await?
            .into_inner();
        Ok(r.workspaces
            .into_iter()
            .map(Workspace::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Moves `cluster` into `workspace` (`add`) or back to `default`.
    pub async fn membership(&mut self, workspace: &str, cluster: &str, add: bool) -> Result<Workspace> {
        let m = pb::Membership {
            workspace: workspace.to_owned(),
            cluster: cluster.to_owned(),
        };
        let r = if add {
            self.inner.add_cluster(m).await?
        } else {
            self.inner.remove_cluster(m).await?
        };
        Ok(Workspace::from_pb(r.into_inner())?)
    }

    /// Adds a location (the hub checks it first).
    pub async fn add_location(
        &mut self,
        spec: &LocationSpec,
        credentials: &Credentials,
        make_default: bool,
    ) -> Result<LocationInfo> {
        let request = pb::AddLocationRequest {
            spec: Some(spec.to_pb()),
            credentials: (!credentials.is_ambient()).then(|| credentials.to_pb()),
            make_default,
        };
        let r = self.inner.add_location(request).await?;
        Ok(LocationInfo::from_pb(r.into_inner())?)
    }

    /// One location.
    pub async fn location(&mut self, name: &str) -> Result<LocationInfo> {
        let r = self.inner.get_location(get(name)).await?;
        Ok(LocationInfo::from_pb(r.into_inner())?)
    }

    /// Locations, of `workspace` or all.
    pub async fn locations(&mut self, workspace: Option<&str>) -> Result<Vec<LocationInfo>> {
        let request = pb::ListLocationsRequest {
            workspace: workspace.unwrap_or_default().to_owned(),
        };
        let r = self.inner.list_locations(request).await?.into_inner();
        Ok(r.locations
            .into_iter()
            .map(LocationInfo::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Checks a location again.
    pub async fn verify_location(&mut self, name: &str) -> Result<LocationInfo> {
        let r = self.inner.verify_location(get(name)).await?;
        Ok(LocationInfo::from_pb(r.into_inner())?)
    }

    /// Has an agent prune location `name`'s volume repository; returns that agent's cluster.
    pub async fn prune_location(&mut self, name: &str, grace: std::time::Duration) -> Result<String> {
        let request = pb::PruneLocationRequest {
            name: name.to_owned(),
            grace_seconds: grace.as_secs(),
        };
        Ok(self.inner.prune_location(request).await?.into_inner().cluster)
    }

    /// Removes a location.
    pub async fn remove_location(&mut self, name: &str, force: bool) -> Result<()> {
        let request = pb::RemoveLocationRequest {
            name: name.to_owned(),
            force,
        };
        self.inner.remove_location(request).await?;
        Ok(())
    }

    /// Backs up every cluster of `workspace`.
    pub async fn create_workspace_backup(
        &mut self,
        name: &str,
        workspace: &str,
        template: &BackupTemplate,
    ) -> Result<WorkspaceBackup> {
        let request = pb::CreateWorkspaceBackupRequest {
            name: name.to_owned(),
            workspace: workspace.to_owned(),
            template: Some(template.to_pb()),
        };
        let r = self.inner.create_workspace_backup(request).await?;
        Ok(WorkspaceBackup::from_pb(r.into_inner())?)
    }

    /// One workspace backup with its members' backups.
    pub async fn workspace_backup(&mut self, name: &str) -> Result<WorkspaceBackup> {
        let r = self.inner.get_workspace_backup(get(name)).await?;
        Ok(WorkspaceBackup::from_pb(r.into_inner())?)
    }

    /// Creates a schedule.
    pub async fn create_schedule(&mut self, schedule: &Schedule) -> Result<Schedule> {
        let r = self.inner.create_schedule(schedule.to_pb()).await?;
        Ok(Schedule::from_pb(r.into_inner())?)
    }

    /// One schedule.
    pub async fn schedule(&mut self, name: &str) -> Result<Schedule> {
        let r = self.inner.get_schedule(get(name)).await?;
        Ok(Schedule::from_pb(r.into_inner())?)
    }

    /// Every schedule.
    pub async fn schedules(&mut self) -> Result<Vec<Schedule>> {
        let r = self
            .inner
            .list_schedules(pb::ListSchedulesRequest {})
            .await?
            .into_inner();
        Ok(r.schedules
            .into_iter()
            .map(Schedule::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Pauses (`true`) or resumes a schedule.
    pub async fn set_paused(&mut self, name: &str, paused: bool) -> Result<Schedule> {
        let r = if paused {
            self.inner.pause_schedule(get(name)).await?
        } else {
            self.inner.resume_schedule(get(name)).await?
        };
        Ok(Schedule::from_pb(r.into_inner())?)
    }

    /// Deletes a schedule.
    pub async fn delete_schedule(&mut self, name: &str) -> Result<()> {
        self.inner.delete_schedule(get(name)).await?;
        Ok(())
    }

    /// Runs a schedule once now.
    pub async fn run_schedule(&mut self, name: &str) -> Result<Schedule> {
        let r = self.inner.run_schedule(get(name)).await?;
        Ok(Schedule::from_pb(r.into_inner())?)
    }
}

fn get(name: &str) -> pb::GetRequest {
    pb::GetRequest {
        name: name.to_owned(),
    }
}
