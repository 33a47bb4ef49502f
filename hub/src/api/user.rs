//! The user API (`cairn.v1.Cairn`): what the CLI calls. Every call carries a user's bearer token
//! (`authorization: Bearer …`); a token of one workspace reads and lists only what is in it, every
//! change needs the permission its role grants in the workspace it touches (see
//! [`cairn_proto::model::Role`]), and every change, done or refused, goes into the audit log.

use cairn_proto::convert::Wire;
use cairn_proto::model::{
    BackupName, BackupQuery, BackupSpec, BackupTemplate, ClusterName, Credentials, LocationName,
    LocationSpec, OperationId, Permission, RestoreName, RestoreSpec, Role, ScheduleName, ScheduleSpec,
    ScheduleTarget, TokenName, UserToken, WorkspaceName,
};
use cairn_proto::pb;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::invalid;
use crate::operations::{self, Hub};

/// Watch events buffered per subscriber; the watcher's pace throttles nothing but its own view.
const WATCH_BUFFER: usize = 8;

/// The `Cairn` service.
pub struct UserApi {
    hub: Hub,
}

impl UserApi {
    /// Over `hub`.
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }
}

fn name<T: std::str::FromStr>(text: String) -> Result<T, Status>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| Status::invalid_argument(e.to_string()))
}

fn optional_name<T: std::str::FromStr>(text: String) -> Result<Option<T>, Status>
where
    T::Err: std::fmt::Display,
{
    if text.is_empty() {
        Ok(None)
    } else {
        name(text).map(Some)
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

impl UserApi {
    /// Who calls: the token `request` carries, if the hub made it and it still works.
    async fn caller<T>(&self, request: &Request<T>) -> Result<UserToken, Status> {
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no token: log in (cairn login --hub URL --ca FILE --token TOKEN), or use the \
                     administrator config the hub wrote (CAIRN_CONFIG=<data_dir>/admin.conf)",
                )
            })?;
        let peer = request.remote_addr();
        self.hub
            .authenticate(&secrecy::SecretString::from(bearer.to_owned()))
            .await
            .map_err(|e| {
                tracing::warn!(?peer, error = %e, "call refused: no valid token");
                e.into()
            })
    }

    /// Carries out `work`, `action` on `target`, for `caller` if its token allows `permission` in
    /// `workspace` (`None`: across the hub); the outcome, or the refusal, goes to the audit log.
    async fn change<R>(
        &self,
        caller: &UserToken,
        (action, target): (&str, String),
        permission: Permission,
        workspace: Option<&WorkspaceName>,
        work: impl Future<Output = operations::Result<R>>,
    ) -> Result<R, Status> {
        let done = match self.hub.authorize(caller, permission, workspace) {
            Ok(()) => work.await,
            Err(refused) => Err(refused),
        };
        let outcome = done.as_ref().map(|_| ()).map_err(|e| cairn_proto::error_chain(e));
        self.hub
            .audit(caller.name.as_str(), action, &target, outcome)
            .await;
        done.map_err(Status::from)
    }

    /// Refuses `caller` unless it may read in `workspace`.
    fn reads(&self, caller: &UserToken, workspace: &WorkspaceName) -> Result<(), Status> {
        Ok(self.hub.authorize(caller, Permission::Read, Some(workspace))?)
    }

    /// The workspace restore `restore` restores into.
    async fn restore_workspace(
        &self,
        restore: &cairn_proto::model::Restore,
    ) -> Result<WorkspaceName, Status> {
        match &restore.spec.target_cluster {
            Some(c) => Ok(self.hub.workspace_of(c).await?),
            None => self.backup_workspace(&restore.spec.backup).await,
        }
    }

    /// The workspace of the backup called `name`.
    async fn backup_workspace(&self, name: &BackupName) -> Result<WorkspaceName, Status> {
        let backup = self.hub.backup(name).await?;
        match backup.spec.origin.workspace {
            Some(w) => Ok(w),
            None => Ok(self.hub.workspace_of(&backup.spec.cluster).await?),
        }
    }

    /// The workspace of the location called `name`.
    async fn location_workspace(&self, name: &LocationName) -> Result<WorkspaceName, Status> {
        Ok(self.hub.location(name).await?.spec.workspace)
    }

    /// The workspace schedule `name` backs up.
    async fn schedule_workspace(&self, name: &ScheduleName) -> Result<WorkspaceName, Status> {
        self.target_workspace(&self.hub.schedule(name).await?.spec.target)
            .await
    }

    async fn target_workspace(&self, target: &ScheduleTarget) -> Result<WorkspaceName, Status> {
        match target {
            ScheduleTarget::Cluster(c) => Ok(self.hub.workspace_of(c).await?),
            ScheduleTarget::Workspace(w) => Ok(w.clone()),
        }
    }
}

#[tonic::async_trait]
impl pb::cairn_server::Cairn for UserApi {
    async fn list_clusters(
        &self,
        request: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut clusters = self.hub.clusters().await?;
        clusters.retain(|c| {
            c.workspace
                .as_ref()
                .is_some_and(|w| caller.allows(Permission::Read, Some(w)))
        });
        Ok(Response::new(pb::ListClustersResponse {
            clusters: clusters.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::JoinGrant>, Status> {
        let caller = self.caller(&request).await?;
        let pb::CreateJoinTokenRequest {
            cluster,
            workspace,
            expires_seconds,
        } = request.into_inner();
        let workspace: Option<WorkspaceName> = optional_name(workspace)?;
        let cluster: ClusterName = name(cluster)?;
        let ttl = (expires_seconds > 0).then(|| std::time::Duration::from_secs(expires_seconds));
        let scope = match &workspace {
            Some(w) => w.clone(),
            None => self.hub.workspace_of(&cluster).await?,
        };
        let target = format!("cluster/{cluster}");
        let grant = self
            .change(
                &caller,
                ("create_join_token", target),
                Permission::Configure,
                Some(&scope),
                self.hub.create_join_token(cluster, workspace, ttl),
            )
            .await?;
        Ok(Response::new(grant.to_pb()))
    }

    async fn revoke_cluster(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        let caller = self.caller(&request).await?;
        let cluster: ClusterName = name(request.into_inner().name)?;
        let scope = self.hub.workspace_of(&cluster).await?;
        let revoked = self
            .change(
                &caller,
                ("revoke_cluster", format!("cluster/{cluster}")),
                Permission::Configure,
                Some(&scope),
                self.hub.revoke_cluster(&cluster),
            )
            .await?;
        Ok(Response::new(revoked.to_pb()))
    }

    async fn forget_cluster(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        let caller = self.caller(&request).await?;
        let cluster: ClusterName = name(request.into_inner().name)?;
        let scope = self.hub.workspace_of(&cluster).await?;
        let what = ("forget_cluster", format!("cluster/{cluster}"));
        let removed = self
            .change(
                &caller,
                what,
                Permission::Configure,
                Some(&scope),
                self.hub.forget_cluster(&cluster),
            )
            .await?;
        Ok(Response::new(removed.to_pb()))
    }

    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        let caller = self.caller(&request).await?;
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("spec is missing"))?;
        let spec = BackupSpec::from_pb(spec).map_err(|e| invalid(&e))?;
        let scope = self.hub.workspace_of(&spec.cluster).await?;
        let what = (
            "create_backup",
            format!("backup/{} of cluster {}", spec.name, spec.cluster),
        );
        let backup = self
            .change(
                &caller,
                what,
                Permission::Operate,
                Some(&scope),
                self.hub.create_backup(spec),
            )
            .await?;
        Ok(Response::new(backup.to_pb()))
    }

    async fn get_backup(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Backup>, Status> {
        let caller = self.caller(&request).await?;
        let name: BackupName = name(request.into_inner().name)?;
        self.reads(&caller, &self.backup_workspace(&name).await?)?;
        Ok(Response::new(self.hub.backup(&name).await?.to_pb()))
    }

    async fn list_backups(
        &self,
        request: Request<pb::ListBackupsRequest>,
    ) -> Result<Response<pb::ListBackupsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut query = BackupQuery::from_pb(request.into_inner()).map_err(|e| invalid(&e))?;
        // A token of one workspace lists that workspace's backups.
        if let Some(mine) = &caller.workspace {
            if let Some(asked) = &query.workspace {
                self.reads(&caller, asked)?;
            }
            query.workspace = Some(mine.clone());
        }
        let backups = self.hub.backups(&query).await?;
        Ok(Response::new(pb::ListBackupsResponse {
            backups: backups.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn list_backup_items(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::ItemIndex>, Status> {
        let caller = self.caller(&request).await?;
        let name: BackupName = name(request.into_inner().name)?;
        self.reads(&caller, &self.backup_workspace(&name).await?)?;
        Ok(Response::new(self.hub.backup_items(&name).await?.to_pb()))
    }

    async fn delete_backup(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = self.caller(&request).await?;
        let name: BackupName = name(request.into_inner().name)?;
        let scope = self.backup_workspace(&name).await?;
        self.change(
            &caller,
            ("delete_backup", format!("backup/{name}")),
            Permission::Operate,
            Some(&scope),
            self.hub.delete_backup(&name),
        )
        .await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_restore(
        &self,
        request: Request<pb::CreateRestoreRequest>,
    ) -> Result<Response<pb::Restore>, Status> {
        let caller = self.caller(&request).await?;
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("spec is missing"))?;
        let spec = RestoreSpec::from_pb(spec).map_err(|e| invalid(&e))?;
        let target = match &spec.target_cluster {
            Some(c) => c.clone(),
            None => self.hub.backup(&spec.backup).await?.spec.cluster,
        };
        let scope = self.hub.workspace_of(&target).await?;
        // Restoring what could make its runner the cluster's administrator (or setuid programs
        // into its volumes) is a workspace admin's.
        let permission = if spec.include_sensitive || spec.keep_setid {
            Permission::Configure
        } else {
            Permission::Operate
        };
        let what = (
            "create_restore",
            format!("restore/{} into cluster {target}", spec.name),
        );
        let restore = self
            .change(
                &caller,
                what,
                permission,
                Some(&scope),
                self.hub.create_restore(spec),
            )
            .await?;
        Ok(Response::new(restore.to_pb()))
    }

    async fn get_restore(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Restore>, Status> {
        let caller = self.caller(&request).await?;
        let name: RestoreName = name(request.into_inner().name)?;
        let restore = self.hub.restore(&name).await?;
        self.reads(&caller, &self.restore_workspace(&restore).await?)?;
        Ok(Response::new(restore.to_pb()))
    }

    async fn list_restores(
        &self,
        request: Request<pb::ListRestoresRequest>,
    ) -> Result<Response<pb::ListRestoresResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut restores = Vec::new();
        for restore in self.hub.restores().await? {
            if caller.workspace.is_none()
                || self
                    .reads(&caller, &self.restore_workspace(&restore).await?)
                    .is_ok()
            {
                restores.push(restore);
            }
        }
        Ok(Response::new(pb::ListRestoresResponse {
            restores: restores.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn list_restore_items(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::RestoreItems>, Status> {
        let caller = self.caller(&request).await?;
        let name: RestoreName = name(request.into_inner().name)?;
        let restore = self.hub.restore(&name).await?;
        self.reads(&caller, &self.restore_workspace(&restore).await?)?;
        Ok(Response::new(self.hub.restore_items(&name).await?.to_pb()))
    }

    type WatchStream = Events;

    async fn watch(&self, request: Request<pb::GetRequest>) -> Result<Response<Events>, Status> {
        let caller = self.caller(&request).await?;
        let operation: OperationId = name(request.into_inner().name)?;
        if caller.workspace.is_some() {
            let scope = match &operation {
                OperationId::Backup(b) => self.backup_workspace(b).await?,
                OperationId::Restore(r) => self.restore_workspace(&self.hub.restore(r).await?).await?,
                OperationId::Prune(l) => self.location_workspace(l).await?,
                OperationId::Volume(_) => {
                    return Err(Status::invalid_argument("watch a backup or a restore"));
                }
            };
            self.reads(&caller, &scope)?;
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let Some(mut live) = self.hub.watch(&operation) else {
            // Not running (ended, or unknown): the caller reads the record instead.
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        };
        let stopping = self.hub.stopping();
        self.hub.spawn(async move {
            tokio::pin!(stopping);
            loop {
                let state = live.borrow_and_update().clone();
                if tx.send(Ok(state.to_pb())).await.is_err() || state.phase.is_final() {
                    break;
                }
                tokio::select! {
                    changed = live.changed() => if changed.is_err() { break },
                    () = &mut stopping => {
                        let _ = tx.send(Err(Status::unavailable("the hub is stopping"))).await;
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn create_workspace(
        &self,
        request: Request<pb::Workspace>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let caller = self.caller(&request).await?;
        let name: WorkspaceName = name(request.into_inner().name)?;
        let what = ("create_workspace", format!("workspace/{name}"));
        let made = self
            .change(
                &caller,
                what,
                Permission::Administer,
                None,
                self.hub.create_workspace(name),
            )
            .await?;
        Ok(Response::new(made.to_pb()))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let caller = self.caller(&request).await?;
        let name: WorkspaceName = name(request.into_inner().name)?;
        self.reads(&caller, &name)?;
        Ok(Response::new(self.hub.workspace(&name).await?.to_pb()))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut workspaces = self.hub.workspaces().await?;
        workspaces.retain(|w| caller.allows(Permission::Read, Some(&w.name)));
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: workspaces.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn add_cluster(&self, request: Request<pb::Membership>) -> Result<Response<pb::Workspace>, Status> {
        let caller = self.caller(&request).await?;
        let (workspace, cluster) = membership(request.into_inner())?;
        let what = (
            "add_cluster",
            format!("cluster/{cluster} to workspace {workspace}"),
        );
        let changed = self
            .change(
                &caller,
                what,
                Permission::Administer,
                None,
                self.hub.add_cluster(&workspace, &cluster),
            )
            .await?;
        Ok(Response::new(changed.to_pb()))
    }

    async fn rotate_workspace_key(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::ListLocationsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let workspace: WorkspaceName = name(request.into_inner().name)?;
        let what = ("rotate_workspace_key", format!("workspace/{workspace}"));
        let locations = self
            .change(
                &caller,
                what,
                Permission::Configure,
                Some(&workspace),
                self.hub.rotate_workspace_key(&workspace),
            )
            .await?;
        Ok(Response::new(pb::ListLocationsResponse {
            locations: locations.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn remove_cluster(
        &self,
        request: Request<pb::Membership>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let caller = self.caller(&request).await?;
        let (workspace, cluster) = membership(request.into_inner())?;
        let what = (
            "remove_cluster",
            format!("cluster/{cluster} from workspace {workspace}"),
        );
        let changed = self
            .change(
                &caller,
                what,
                Permission::Administer,
                None,
                self.hub.remove_cluster(&workspace, &cluster),
            )
            .await?;
        Ok(Response::new(changed.to_pb()))
    }

    async fn add_location(
        &self,
        request: Request<pb::AddLocationRequest>,
    ) -> Result<Response<pb::LocationInfo>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let spec = request
            .spec
            .ok_or_else(|| Status::invalid_argument("spec is missing"))?;
        let spec = LocationSpec::from_pb(spec).map_err(|e| invalid(&e))?;
        let credentials = request
            .credentials
            .map(Credentials::from_pb)
            .transpose()
            .map_err(|e| invalid(&e))?
            .unwrap_or_default();
        let scope = spec.workspace.clone();
        let what = ("add_location", format!("location/{}", spec.name));
        let info = self
            .change(
                &caller,
                what,
                Permission::Configure,
                Some(&scope),
                self.hub.add_location(spec, &credentials, request.make_default),
            )
            .await?;
        Ok(Response::new(info.to_pb()))
    }

    async fn get_location(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::LocationInfo>, Status> {
        let caller = self.caller(&request).await?;
        let name: LocationName = name(request.into_inner().name)?;
        let location = self.hub.location(&name).await?;
        self.reads(&caller, &location.spec.workspace)?;
        Ok(Response::new(location.to_pb()))
    }

    async fn list_locations(
        &self,
        request: Request<pb::ListLocationsRequest>,
    ) -> Result<Response<pb::ListLocationsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut workspace = optional_name::<WorkspaceName>(request.into_inner().workspace)?;
        if let Some(mine) = &caller.workspace {
            if let Some(asked) = &workspace {
                self.reads(&caller, asked)?;
            }
            workspace = Some(mine.clone());
        }
        let locations = self.hub.locations(workspace.as_ref()).await?;
        Ok(Response::new(pb::ListLocationsResponse {
            locations: locations.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn verify_location(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::LocationInfo>, Status> {
        let caller = self.caller(&request).await?;
        let name: LocationName = name(request.into_inner().name)?;
        let scope = self.location_workspace(&name).await?;
        let what = ("verify_location", format!("location/{name}"));
        let info = self
            .change(
                &caller,
                what,
                Permission::Configure,
                Some(&scope),
                self.hub.verify_location(&name),
            )
            .await?;
        Ok(Response::new(info.to_pb()))
    }

    async fn prune_location(
        &self,
        request: Request<pb::PruneLocationRequest>,
    ) -> Result<Response<pb::PruneLocationResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let name: LocationName = name(request.name)?;
        let grace = request.grace_seconds.map(std::time::Duration::from_secs);
        let scope = self.location_workspace(&name).await?;
        let what = ("prune_location", format!("location/{name}"));
        let cluster = self
            .change(
                &caller,
                what,
                Permission::Configure,
                Some(&scope),
                self.hub.prune_location(&name, grace),
            )
            .await?;
        Ok(Response::new(pb::PruneLocationResponse {
            cluster: cluster.to_string(),
        }))
    }

    async fn remove_location(
        &self,
        request: Request<pb::RemoveLocationRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let name: LocationName = name(request.name)?;
        let scope = self.location_workspace(&name).await?;
        let what = ("remove_location", format!("location/{name}"));
        self.change(
            &caller,
            what,
            Permission::Configure,
            Some(&scope),
            self.hub.remove_location(&name, request.force),
        )
        .await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_workspace_backup(
        &self,
        request: Request<pb::CreateWorkspaceBackupRequest>,
    ) -> Result<Response<pb::WorkspaceBackup>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let group: BackupName = name(r.name)?;
        let workspace: WorkspaceName = name(r.workspace)?;
        let template = r
            .template
            .map(BackupTemplate::from_pb)
            .transpose()
            .map_err(|e| invalid(&e))?
            .unwrap_or_default();
        let what = (
            "create_workspace_backup",
            format!("backup/{group} of workspace {workspace}"),
        );
        let made = self
            .change(
                &caller,
                what,
                Permission::Operate,
                Some(&workspace),
                self.hub.create_workspace_backup(group, &workspace, &template),
            )
            .await?;
        Ok(Response::new(made.to_pb()))
    }

    async fn get_workspace_backup(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::WorkspaceBackup>, Status> {
        let caller = self.caller(&request).await?;
        let name: BackupName = name(request.into_inner().name)?;
        let group = self.hub.workspace_backup(&name).await?;
        self.reads(&caller, &group.group.workspace)?;
        Ok(Response::new(group.to_pb()))
    }

    async fn create_schedule(
        &self,
        request: Request<pb::Schedule>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let caller = self.caller(&request).await?;
        let spec = ScheduleSpec::from_pb(request.into_inner()).map_err(|e| invalid(&e))?;
        let scope = self.target_workspace(&spec.target).await?;
        let what = ("create_schedule", format!("schedule/{}", spec.name));
        let made = self
            .change(
                &caller,
                what,
                Permission::Configure,
                Some(&scope),
                self.hub.create_schedule(spec),
            )
            .await?;
        Ok(Response::new(made.to_pb()))
    }

    async fn get_schedule(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Schedule>, Status> {
        let caller = self.caller(&request).await?;
        let name: ScheduleName = name(request.into_inner().name)?;
        let schedule = self.hub.schedule(&name).await?;
        self.reads(&caller, &self.target_workspace(&schedule.spec.target).await?)?;
        Ok(Response::new(schedule.to_pb()))
    }

    async fn list_schedules(
        &self,
        request: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut schedules = Vec::new();
        for schedule in self.hub.schedules().await? {
            let scope = self.target_workspace(&schedule.spec.target).await?;
            if caller.allows(Permission::Read, Some(&scope)) {
                schedules.push(schedule);
            }
        }
        Ok(Response::new(pb::ListSchedulesResponse {
            schedules: schedules.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn pause_schedule(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let caller = self.caller(&request).await?;
        let name: ScheduleName = name(request.into_inner().name)?;
        let scope = self.schedule_workspace(&name).await?;
        let what = ("pause_schedule", format!("schedule/{name}"));
        let changed = self
            .change(
                &caller,
                what,
                Permission::Configure,
                Some(&scope),
                self.hub.set_paused(&name, true),
            )
            .await?;
        Ok(Response::new(changed.to_pb()))
    }

    async fn resume_schedule(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let caller = self.caller(&request).await?;
        let name: ScheduleName = name(request.into_inner().name)?;
        let scope = self.schedule_workspace(&name).await?;
        let what = ("resume_schedule", format!("schedule/{name}"));
        let changed = self
            .change(
                &caller,
                what,
                Permission::Configure,
                Some(&scope),
                self.hub.set_paused(&name, false),
            )
            .await?;
        Ok(Response::new(changed.to_pb()))
    }

    async fn delete_schedule(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = self.caller(&request).await?;
        let name: ScheduleName = name(request.into_inner().name)?;
        let scope = self.schedule_workspace(&name).await?;
        let what = ("delete_schedule", format!("schedule/{name}"));
        self.change(
            &caller,
            what,
            Permission::Configure,
            Some(&scope),
            self.hub.delete_schedule(&name),
        )
        .await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn run_schedule(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Schedule>, Status> {
        let caller = self.caller(&request).await?;
        let name: ScheduleName = name(request.into_inner().name)?;
        let scope = self.schedule_workspace(&name).await?;
        let what = ("run_schedule", format!("schedule/{name}"));
        let ran = self
            .change(
                &caller,
                what,
                Permission::Operate,
                Some(&scope),
                self.hub.run_schedule(&name),
            )
            .await?;
        Ok(Response::new(ran.to_pb()))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreatedToken>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let token: TokenName = name(r.name)?;
        let role: Role = name(r.role)?;
        let workspace: Option<WorkspaceName> = optional_name(r.workspace)?;
        let ttl = (r.expires_seconds > 0).then(|| std::time::Duration::from_secs(r.expires_seconds));
        let what = ("create_token", format!("token/{token} ({role})"));
        let (made, bearer) = self
            .change(
                &caller,
                what,
                Permission::Administer,
                None,
                self.hub.create_token(token, role, workspace, ttl),
            )
            .await?;
        Ok(Response::new(pb::CreatedToken {
            token: Some(made.to_pb()),
            bearer: secrecy::ExposeSecret::expose_secret(&bearer).to_owned(),
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.hub.authorize(&caller, Permission::Administer, None)?;
        let tokens = self.hub.tokens().await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = self.caller(&request).await?;
        let token: TokenName = name(request.into_inner().name)?;
        let what = ("revoke_token", format!("token/{token}"));
        self.change(
            &caller,
            what,
            Permission::Administer,
            None,
            self.hub.revoke_token(&token),
        )
        .await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.hub.authorize(&caller, Permission::Administer, None)?;
        let limit = usize::try_from(request.into_inner().limit).unwrap_or(usize::MAX);
        let limit = if limit == 0 {
            100
        } else {
            limit.min(operations::AUDIT_KEPT)
        };
        let entries = self.hub.audit_log(limit).await?;
        Ok(Response::new(pb::ListAuditResponse {
            entries: entries.iter().map(Wire::to_pb).collect(),
        }))
    }
}

fn membership(m: pb::Membership) -> Result<(WorkspaceName, ClusterName), Status> {
    Ok((name(m.workspace)?, name(m.cluster)?))
}
