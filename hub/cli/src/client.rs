//! A typed client of the user API, for the CLI and tests: model types in, model types out, and
//! an [`Error`] that says whether the hub refused the request, could not be reached, or failed.
//! The only place in `cairn-cli` that reads a gRPC status code.

use cairn_proto::MAX_MESSAGE;
use cairn_proto::convert::{self, Wire};
use cairn_proto::dial::{Bearer, Hub};
use cairn_proto::model::{
    AuditEntry, Backup, BackupName, BackupQuery, BackupSpec, BackupTemplate, Cluster, ClusterName,
    Credentials, Denial, IndexEntry, ItemResult, JoinGrant, Live, LocationInfo, LocationName, LocationSpec,
    OperationId, Progress, Refusal, Restore, RestoreName, RestoreSpec, Role, Schedule, ScheduleName,
    ScheduleSpec, TokenName, UserToken, Workspace, WorkspaceBackup, WorkspaceName,
};
use cairn_proto::pb::{self, cairn_client::CairnClient};
use tokio_stream::StreamExt;
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

/// How long connecting to the hub may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A call that failed. Every message is the hub's own (already complete, so no status or code is
/// added to it): the user reads what the hub said.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The hub address cannot be dialled (not https://, a CA that does not read).
    #[error(transparent)]
    Dial(#[from] cairn_proto::dial::Error),
    /// The hub cannot be reached.
    #[error("cannot reach the hub at {url}")]
    Connect {
        /// The hub URL.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The hub refused the request: the user asked for something invalid, unknown, already
    /// there, not allowed, or not possible in the present state.
    #[error("{message}")]
    Refused {
        /// Why, as the hub's status code said.
        refusal: Refusal,
        /// The hub's message.
        message: String,
    },
    /// The hub went away during the call, or what the call needs is not there now (a cluster's
    /// agent that is not connected): worth trying again later.
    #[error("{message}")]
    Unavailable {
        /// The hub URL.
        url: String,
        /// The hub's message (or the transport's, if the hub went away).
        message: String,
    },
    /// The hub failed the call (an internal error, or a status this client does not expect).
    #[error("{message}")]
    Failed {
        /// The hub's message.
        message: String,
    },
    /// The hub answered something this client cannot read.
    #[error("unexpected answer from the hub")]
    Convert(#[from] convert::Error),
}

impl Error {
    /// What a gRPC status from the hub at `url` means to the user.
    fn status(url: &str, status: &tonic::Status) -> Self {
        let message = status.message().to_owned();
        match Denial::of(status.code()) {
            Some(Denial::Refused(refusal)) => Self::Refused { refusal, message },
            Some(Denial::Unavailable) => Self::Unavailable {
                url: url.to_owned(),
                message,
            },
            Some(Denial::Failed) | None => Self::Failed { message },
        }
    }

    /// Whether the hub said the named object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                refusal: Refusal::NotFound,
                ..
            }
        )
    }
}

/// Result of a call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connected client.
#[derive(Clone)]
pub struct Client {
    inner: CairnClient<InterceptedService<Channel, Bearer>>,
    url: String,
}

impl Client {
    /// Connects to `hub`.
    pub async fn connect(hub: &Hub) -> Result<Self> {
        let url = hub.url().to_owned();
        let channel = hub
            .endpoint()
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|source| Error::Connect {
                url: url.clone(),
                source,
            })?;
        Ok(Self {
            inner: CairnClient::with_interceptor(channel, hub.bearer())
                .max_decoding_message_size(MAX_MESSAGE),
            url,
        })
    }

    /// Turns a status of the hub into an [`Error`].
    fn error(&self) -> impl Fn(tonic::Status) -> Error + '_ {
        |status| Error::status(&self.url, &status)
    }

    /// A one-time join secret for `cluster`'s agent, the cluster placed in `workspace`, working
    /// for `expires`.
    pub async fn create_join_token(
        &mut self,
        cluster: &ClusterName,
        workspace: Option<&WorkspaceName>,
        expires: std::time::Duration,
    ) -> Result<JoinGrant> {
        let grant = self
            .inner
            .create_join_token(pb::CreateJoinTokenRequest {
                cluster: cluster.to_string(),
                workspace: workspace.map(ToString::to_string).unwrap_or_default(),
                expires_seconds: expires.as_secs().max(1),
            })
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(JoinGrant::from_pb(grant)?)
    }

    /// Makes token `name` with `role`, limited to `workspace`, working for `expires` (`None`:
    /// until revoked): the token and its bearer text, shown this once.
    pub async fn create_token(
        &mut self,
        name: &TokenName,
        role: Role,
        workspace: Option<&WorkspaceName>,
        expires: Option<std::time::Duration>,
    ) -> Result<(UserToken, secrecy::SecretString)> {
        let made = self
            .inner
            .create_token(pb::CreateTokenRequest {
                name: name.to_string(),
                role: role.keyword().to_owned(),
                workspace: workspace.map(ToString::to_string).unwrap_or_default(),
                expires_seconds: expires.map_or(0, |e| e.as_secs().max(1)),
            })
            .await
            .map_err(self.error())?
            .into_inner();
        let token = UserToken::from_pb(convert::required("CreatedToken.token", made.token)?)?;
        Ok((token, made.bearer.into()))
    }

    /// Every token.
    pub async fn tokens(&mut self) -> Result<Vec<UserToken>> {
        let r = self
            .inner
            .list_tokens(pb::ListTokensRequest {})
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(r.tokens
            .into_iter()
            .map(UserToken::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Revokes token `name`.
    pub async fn revoke_token(&mut self, name: &TokenName) -> Result<()> {
        self.inner
            .revoke_token(pb::GetRequest {
                name: name.to_string(),
            })
            .await
            .map_err(self.error())?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit(&mut self, limit: u64) -> Result<Vec<AuditEntry>> {
        let r = self
            .inner
            .list_audit(pb::ListAuditRequest { limit })
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(r.entries
            .into_iter()
            .map(AuditEntry::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Revokes `cluster` and stops listing it.
    pub async fn forget_cluster(&mut self, cluster: &ClusterName) -> Result<Cluster> {
        let c = self
            .inner
            .forget_cluster(pb::GetRequest {
                name: cluster.to_string(),
            })
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(Cluster::from_pb(c)?)
    }

    /// Refuses `cluster`'s certificates from now on.
    pub async fn revoke_cluster(&mut self, cluster: &ClusterName) -> Result<Cluster> {
        let c = self
            .inner
            .revoke_cluster(pb::GetRequest {
                name: cluster.to_string(),
            })
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(Cluster::from_pb(c)?)
    }

    /// Registered clusters.
    pub async fn clusters(&mut self) -> Result<Vec<Cluster>> {
        let r = self
            .inner
            .list_clusters(pb::ListClustersRequest {})
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(r.clusters
            .into_iter()
            .map(Cluster::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Starts a backup.
    pub async fn create_backup(&mut self, spec: &BackupSpec) -> Result<Backup> {
        let request = pb::CreateBackupRequest {
            spec: Some(spec.to_pb()),
        };
        let r = self.inner.create_backup(request).await.map_err(self.error())?;
        Ok(Backup::from_pb(r.into_inner())?)
    }

    /// One backup.
    pub async fn backup(&mut self, name: &BackupName) -> Result<Backup> {
        let r = self.inner.get_backup(get(name)).await.map_err(self.error())?;
        Ok(Backup::from_pb(r.into_inner())?)
    }

    /// Backups matching `query`, newest first.
    pub async fn backups(&mut self, query: &BackupQuery) -> Result<Vec<Backup>> {
        let r = self
            .inner
            .list_backups(query.to_pb())
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(r.backups
            .into_iter()
            .map(Backup::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Every item of a backup.
    pub async fn backup_items(&mut self, name: &BackupName) -> Result<Vec<IndexEntry>> {
        let r = self
            .inner
            .list_backup_items(get(name))
            .await
            .map_err(self.error())?;
        Ok(Vec::<IndexEntry>::from_pb(r.into_inner())?)
    }

    /// Deletes a backup.
    pub async fn delete_backup(&mut self, name: &BackupName) -> Result<()> {
        self.inner.delete_backup(get(name)).await.map_err(self.error())?;
        Ok(())
    }

    /// Starts a restore.
    pub async fn create_restore(&mut self, spec: &RestoreSpec) -> Result<Restore> {
        let request = pb::CreateRestoreRequest {
            spec: Some(spec.to_pb()),
        };
        let r = self.inner.create_restore(request).await.map_err(self.error())?;
        Ok(Restore::from_pb(r.into_inner())?)
    }

    /// One restore.
    pub async fn restore(&mut self, name: &RestoreName) -> Result<Restore> {
        let r = self.inner.get_restore(get(name)).await.map_err(self.error())?;
        Ok(Restore::from_pb(r.into_inner())?)
    }

    /// Every item of a restore, in restore order.
    pub async fn restore_items(&mut self, name: &RestoreName) -> Result<Vec<ItemResult>> {
        let r = self
            .inner
            .list_restore_items(get(name))
            .await
            .map_err(self.error())?;
        Ok(Vec::<ItemResult>::from_pb(r.into_inner())?)
    }

    /// Every restore.
    pub async fn restores(&mut self) -> Result<Vec<Restore>> {
        let r = self
            .inner
            .list_restores(pb::ListRestoresRequest {})
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(r.restores
            .into_iter()
            .map(Restore::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Updates of running `operation` until it ends; `on_update` sees each one. Returns when the
    /// stream ends (immediately if the operation is not running).
    pub async fn watch(&mut self, operation: &OperationId, mut on_update: impl FnMut(Live)) -> Result<()> {
        let mut events = self
            .inner
            .watch(get(&operation.to_string()))
            .await
            .map_err(self.error())?
            .into_inner();
        while let Some(event) = events.next().await {
            on_update(Live::from_pb(event.map_err(self.error())?)?);
        }
        Ok(())
    }

    /// The live progress of running `operation`; `None` if it is not running.
    pub async fn progress(&mut self, operation: &OperationId) -> Result<Option<Progress>> {
        let mut events = self
            .inner
            .watch(get(&operation.to_string()))
            .await
            .map_err(self.error())?
            .into_inner();
        match events.next().await {
            Some(event) => Ok(Some(Live::from_pb(event.map_err(self.error())?)?.progress)),
            None => Ok(None),
        }
    }

    /// Creates a workspace.
    pub async fn create_workspace(&mut self, name: &WorkspaceName) -> Result<Workspace> {
        let request = pb::Workspace {
            name: name.to_string(),
            ..Default::default()
        };
        let r = self.inner.create_workspace(request).await.map_err(self.error())?;
        Ok(Workspace::from_pb(r.into_inner())?)
    }

    /// One workspace with its clusters.
    pub async fn workspace(&mut self, name: &WorkspaceName) -> Result<Workspace> {
        let r = self.inner.get_workspace(get(name)).await.map_err(self.error())?;
        Ok(Workspace::from_pb(r.into_inner())?)
    }

    /// Every workspace.
    pub async fn workspaces(&mut self) -> Result<Vec<Workspace>> {
        let r = self
            .inner
            .list_workspaces(pb::ListWorkspacesRequest {})
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(r.workspaces
            .into_iter()
            .map(Workspace::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Moves `cluster` into `workspace` (`add`) or back to `default`.
    pub async fn membership(
        &mut self,
        workspace: &WorkspaceName,
        cluster: &ClusterName,
        add: bool,
    ) -> Result<Workspace> {
        let m = pb::Membership {
            workspace: workspace.to_string(),
            cluster: cluster.to_string(),
        };
        let r = if add {
            self.inner.add_cluster(m).await
        } else {
            self.inner.remove_cluster(m).await
        }
        .map_err(self.error())?;
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
        let r = self.inner.add_location(request).await.map_err(self.error())?;
        Ok(LocationInfo::from_pb(r.into_inner())?)
    }

    /// One location.
    pub async fn location(&mut self, name: &LocationName) -> Result<LocationInfo> {
        let r = self.inner.get_location(get(name)).await.map_err(self.error())?;
        Ok(LocationInfo::from_pb(r.into_inner())?)
    }

    /// Rotates the keys of `workspace`'s locations; returns them.
    pub async fn rotate_workspace_key(&mut self, workspace: &WorkspaceName) -> Result<Vec<LocationInfo>> {
        let r = self
            .inner
            .rotate_workspace_key(get(workspace))
            .await
            .map_err(self.error())?;
        location_list(r.into_inner())
    }

    /// Locations, of `workspace` or all.
    pub async fn locations(&mut self, workspace: Option<&WorkspaceName>) -> Result<Vec<LocationInfo>> {
        let request = pb::ListLocationsRequest {
            workspace: workspace.map(ToString::to_string).unwrap_or_default(),
        };
        let r = self.inner.list_locations(request).await.map_err(self.error())?;
        location_list(r.into_inner())
    }

    /// Checks a location again.
    pub async fn verify_location(&mut self, name: &LocationName) -> Result<LocationInfo> {
        let r = self
            .inner
            .verify_location(get(name))
            .await
            .map_err(self.error())?;
        Ok(LocationInfo::from_pb(r.into_inner())?)
    }

    /// Has an agent prune location `name`'s volume repository with `grace` (`None`: the hub's
    /// `volume_prune_grace`, the least it accepts); returns that agent's cluster.
    pub async fn prune_location(
        &mut self,
        name: &LocationName,
        grace: Option<std::time::Duration>,
    ) -> Result<ClusterName> {
        let request = pb::PruneLocationRequest {
            name: name.to_string(),
            grace_seconds: grace.map(|g| g.as_secs()),
        };
        let cluster = self
            .inner
            .prune_location(request)
            .await
            .map_err(self.error())?
            .into_inner()
            .cluster;
        cluster
            .parse()
            .map_err(|e| convert::Error::field("PruneLocationResponse.cluster", e).into())
    }

    /// Removes a location.
    pub async fn remove_location(&mut self, name: &LocationName, force: bool) -> Result<()> {
        let request = pb::RemoveLocationRequest {
            name: name.to_string(),
            force,
        };
        self.inner.remove_location(request).await.map_err(self.error())?;
        Ok(())
    }

    /// Backs up every cluster of `workspace`.
    pub async fn create_workspace_backup(
        &mut self,
        name: &BackupName,
        workspace: &WorkspaceName,
        template: &BackupTemplate,
    ) -> Result<WorkspaceBackup> {
        let request = pb::CreateWorkspaceBackupRequest {
            name: name.to_string(),
            workspace: workspace.to_string(),
            template: Some(template.to_pb()),
        };
        let r = self
            .inner
            .create_workspace_backup(request)
            .await
            .map_err(self.error())?;
        Ok(WorkspaceBackup::from_pb(r.into_inner())?)
    }

    /// One workspace backup with its members' backups.
    pub async fn workspace_backup(&mut self, name: &BackupName) -> Result<WorkspaceBackup> {
        let r = self
            .inner
            .get_workspace_backup(get(name))
            .await
            .map_err(self.error())?;
        Ok(WorkspaceBackup::from_pb(r.into_inner())?)
    }

    /// Creates a schedule.
    pub async fn create_schedule(&mut self, spec: &ScheduleSpec) -> Result<Schedule> {
        let r = self
            .inner
            .create_schedule(spec.to_pb())
            .await
            .map_err(self.error())?;
        Ok(Schedule::from_pb(r.into_inner())?)
    }

    /// One schedule.
    pub async fn schedule(&mut self, name: &ScheduleName) -> Result<Schedule> {
        let r = self.inner.get_schedule(get(name)).await.map_err(self.error())?;
        Ok(Schedule::from_pb(r.into_inner())?)
    }

    /// Every schedule.
    pub async fn schedules(&mut self) -> Result<Vec<Schedule>> {
        let r = self
            .inner
            .list_schedules(pb::ListSchedulesRequest {})
            .await
            .map_err(self.error())?
            .into_inner();
        Ok(r.schedules
            .into_iter()
            .map(Schedule::from_pb)
            .collect::<Result<_, _>>()?)
    }

    /// Pauses (`true`) or resumes a schedule.
    pub async fn set_paused(&mut self, name: &ScheduleName, paused: bool) -> Result<Schedule> {
        let r = if paused {
            self.inner.pause_schedule(get(name)).await
        } else {
            self.inner.resume_schedule(get(name)).await
        }
        .map_err(self.error())?;
        Ok(Schedule::from_pb(r.into_inner())?)
    }

    /// Deletes a schedule.
    pub async fn delete_schedule(&mut self, name: &ScheduleName) -> Result<()> {
        self.inner
            .delete_schedule(get(name))
            .await
            .map_err(self.error())?;
        Ok(())
    }

    /// Runs a schedule once now.
    pub async fn run_schedule(&mut self, name: &ScheduleName) -> Result<Schedule> {
        let r = self.inner.run_schedule(get(name)).await.map_err(self.error())?;
        Ok(Schedule::from_pb(r.into_inner())?)
    }
}

/// The request naming one object (or, for `watch`, one running operation).
fn location_list(r: pb::ListLocationsResponse) -> Result<Vec<LocationInfo>> {
    Ok(r.locations
        .into_iter()
        .map(LocationInfo::from_pb)
        .collect::<Result<_, _>>()?)
}

fn get(name: &(impl std::fmt::Display + ?Sized)) -> pb::GetRequest {
    pb::GetRequest {
        name: name.to_string(),
    }
}
