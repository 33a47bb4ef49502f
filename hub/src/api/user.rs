//! The user API (`cairn.v1.Cairn`): what the CLI calls.

use cairn_proto::convert::Wire;
use cairn_proto::model::{BackupName, BackupSpec, ClusterName, RestoreName, RestoreSpec};
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
        let cluster = request.into_inner().cluster;
        let cluster: Option<ClusterName> = if cluster.is_empty() {
            None
        } else {
            Some(name(cluster)?)
        };
        let backups = self.hub.backups(cluster.as_ref()).await?;
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
        let operation = request.into_inner().name;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let Some(mut live) = self.hub.watch(&operation) else {
            // Not running (ended, or unknown): the caller reads the record instead.
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        };
        tokio::spawn(async move {
            loop {
                let state = live.borrow_and_update().clone();
                let event = pb::WatchEvent {
                    progress: Some(state.progress.to_pb()),
                    phase: cairn_proto::convert::phase_to_pb(state.phase),
                };
                if tx.send(Ok(event)).await.is_err()
                    || state.phase.is_final()
                    || live.changed().await.is_err()
                {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
