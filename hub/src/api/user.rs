//! The user API (`cairn.v1.Cairn`): what the CLI calls.

use cairn_proto::convert::Wire;
use cairn_proto::model::{
    BackupName, BackupQuery, BackupSpec, BackupTemplate, ClusterName, Credentials, LocationName,
    LocationSpec, OperationId, RestoreName, RestoreSpec, ScheduleName, ScheduleSpec, WorkspaceName,
};
use cairn_proto::pb;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::invalid;
use crate::operations::Hub;

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

#[tonic::async_trait]
impl pb::cairn_server::Cairn for UserApi {
    async fn list_clusters(
        &self,
        _: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        let clusters = self.hub.clusters().await?;
        Ok(Response::new(pb::ListClustersResponse {
            clusters: clusters.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::JoinGrant>, Status> {
        let pb::CreateJoinTokenRequest {
            cluster,
            workspace,
            expires_seconds,
        } = request.into_inner();
        let workspace = (!workspace.is_empty()).then(|| name(workspace)).transpose()?;
        let ttl = (expires_seconds > 0).then(|| std::time::Duration::from_secs(expires_seconds));
        let grant = self.hub.create_join_token(name(cluster)?, workspace, ttl).await?;
        Ok(Response::new(grant.to_pb()))
    }

    async fn revoke_cluster(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        let cluster: ClusterName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.revoke_cluster(&cluster).await?.to_pb()))
    }

    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("spec is missing"))?;
        let spec = BackupSpec::from_pb(spec).map_err(|e| invalid(&e))?;
        Ok(Response::new(self.hub.create_backup(spec).await?.to_pb()))
    }

    async fn get_backup(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Backup>, Status> {
        let name: BackupName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.backup(&name).await?.to_pb()))
    }

    async fn list_backups(
        &self,
        request: Request<pb::ListBackupsRequest>,
    ) -> Result<Response<pb::ListBackupsResponse>, Status> {
        let query = BackupQuery::from_pb(request.into_inner()).map_err(|e| invalid(&e))?;
        let backups = self.hub.backups(&query).await?;
        Ok(Response::new(pb::ListBackupsResponse {
            backups: backups.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn list_backup_items(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::ItemIndex>, Status> {
        let name: BackupName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.backup_items(&name).await?.to_pb()))
    }

    async fn delete_backup(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let name: BackupName = name(request.into_inner().name)?;
        self.hub.delete_backup(&name).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_restore(
        &self,
        request: Request<pb::CreateRestoreRequest>,
    ) -> Result<Response<pb::Restore>, Status> {
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("spec is missing"))?;
        let spec = RestoreSpec::from_pb(spec).map_err(|e| invalid(&e))?;
        Ok(Response::new(self.hub.create_restore(spec).await?.to_pb()))
    }

    async fn get_restore(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Restore>, Status> {
        let name: RestoreName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.restore(&name).await?.to_pb()))
    }

    async fn list_restores(
        &self,
        _: Request<pb::ListRestoresRequest>,
    ) -> Result<Response<pb::ListRestoresResponse>, Status> {
        let restores = self.hub.restores().await?;
        Ok(Response::new(pb::ListRestoresResponse {
            restores: restores.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn list_restore_items(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::RestoreItems>, Status> {
        let name: RestoreName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.restore_items(&name).await?.to_pb()))
    }

    type WatchStream = Events;

    async fn watch(&self, request: Request<pb::GetRequest>) -> Result<Response<Events>, Status> {
        let operation: OperationId = name(request.into_inner().name)?;
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
        let name: WorkspaceName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.create_workspace(name).await?.to_pb()))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let name: WorkspaceName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.workspace(&name).await?.to_pb()))
    }

    async fn list_workspaces(
        &self,
        _: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let workspaces = self.hub.workspaces().await?;
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: workspaces.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn add_cluster(&self, request: Request<pb::Membership>) -> Result<Response<pb::Workspace>, Status> {
        let (workspace, cluster) = membership(request.into_inner())?;
        Ok(Response::new(
            self.hub.add_cluster(&workspace, &cluster).await?.to_pb(),
        ))
    }

    async fn remove_cluster(
        &self,
        request: Request<pb::Membership>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let (workspace, cluster) = membership(request.into_inner())?;
        Ok(Response::new(
            self.hub.remove_cluster(&workspace, &cluster).await?.to_pb(),
        ))
    }

    async fn add_location(
        &self,
        request: Request<pb::AddLocationRequest>,
    ) -> Result<Response<pb::LocationInfo>, Status> {
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
        let info = self
            .hub
            .add_location(spec, &credentials, request.make_default)
            .await?;
        Ok(Response::new(info.to_pb()))
    }

    async fn get_location(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::LocationInfo>, Status> {
        let name: LocationName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.location(&name).await?.to_pb()))
    }

    async fn list_locations(
        &self,
        request: Request<pb::ListLocationsRequest>,
    ) -> Result<Response<pb::ListLocationsResponse>, Status> {
        let workspace = optional_name::<WorkspaceName>(request.into_inner().workspace)?;
        let locations = self.hub.locations(workspace.as_ref()).await?;
        Ok(Response::new(pb::ListLocationsResponse {
            locations: locations.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn verify_location(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::LocationInfo>, Status> {
        let name: LocationName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.verify_location(&name).await?.to_pb()))
    }

    async fn prune_location(
        &self,
        request: Request<pb::PruneLocationRequest>,
    ) -> Result<Response<pb::PruneLocationResponse>, Status> {
        let request = request.into_inner();
        let name: LocationName = name(request.name)?;
        let grace = std::time::Duration::from_secs(request.grace_seconds);
        let cluster = self.hub.prune_location(&name, grace).await?;
        Ok(Response::new(pb::PruneLocationResponse {
            cluster: cluster.to_string(),
        }))
    }

    async fn remove_location(
        &self,
        request: Request<pb::RemoveLocationRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let request = request.into_inner();
        let name: LocationName = name(request.name)?;
        self.hub.remove_location(&name, request.force).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_workspace_backup(
        &self,
        request: Request<pb::CreateWorkspaceBackupRequest>,
    ) -> Result<Response<pb::WorkspaceBackup>, Status> {
        let r = request.into_inner();
        let group: BackupName = name(r.name)?;
        let workspace: WorkspaceName = name(r.workspace)?;
        let template = r
            .template
            .map(BackupTemplate::from_pb)
            .transpose()
            .map_err(|e| invalid(&e))?
            .unwrap_or_default();
        let made = self
            .hub
            .create_workspace_backup(group, &workspace, &template)
            .await?;
        Ok(Response::new(made.to_pb()))
    }

    async fn get_workspace_backup(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::WorkspaceBackup>, Status> {
        let name: BackupName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.workspace_backup(&name).await?.to_pb()))
    }

    async fn create_schedule(
        &self,
        request: Request<pb::Schedule>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let spec = ScheduleSpec::from_pb(request.into_inner()).map_err(|e| invalid(&e))?;
        Ok(Response::new(self.hub.create_schedule(spec).await?.to_pb()))
    }

    async fn get_schedule(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Schedule>, Status> {
        let name: ScheduleName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.schedule(&name).await?.to_pb()))
    }

    async fn list_schedules(
        &self,
        _: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let schedules = self.hub.schedules().await?;
        Ok(Response::new(pb::ListSchedulesResponse {
            schedules: schedules.iter().map(Wire::to_pb).collect(),
        }))
    }

    async fn pause_schedule(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let name: ScheduleName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.set_paused(&name, true).await?.to_pb()))
    }

    async fn resume_schedule(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let name: ScheduleName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.set_paused(&name, false).await?.to_pb()))
    }

    async fn delete_schedule(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let name: ScheduleName = name(request.into_inner().name)?;
        self.hub.delete_schedule(&name).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn run_schedule(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Schedule>, Status> {
        let name: ScheduleName = name(request.into_inner().name)?;
        Ok(Response::new(self.hub.run_schedule(&name).await?.to_pb()))
    }
}

fn membership(m: pb::Membership) -> Result<(WorkspaceName, ClusterName), Status> {
    Ok((name(m.workspace)?, name(m.cluster)?))
}
