//! The agent channel: one long-lived bidirectional stream per connected agent.

use cairn_proto::convert::Wire;
use cairn_proto::model::{
    BackupName, BackupStatus, Cluster, ClusterName, LocationName, Progress, Prune, RestoreName,
    RestoreStatus, VolumeProgress, VolumeResult, VolumeTask,
};
use cairn_proto::pb::{self, agent_message::Kind as Up, hub_message::Kind as Down};
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::invalid;
use crate::operations::agents::{INSTRUCTION_QUEUE, Instruction, NodeAgent, SessionId};
use crate::operations::{Hub, Report};

/// The `AgentChannel` service.
pub struct AgentChannel {
    hub: Hub,
}

impl AgentChannel {
    /// Over `hub`.
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }
}

type Down_ = Pin<Box<dyn Stream<Item = Result<pb::HubMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_channel_server::AgentChannel for AgentChannel {
    type SessionStream = Down_;

    async fn session(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Down_>, Status> {
        let mut up = request.into_inner();
        let first = up
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty agent stream"))?;
        let Some(Up::Register(register)) = first.kind else {
            return Err(Status::invalid_argument(
                "the first message of an agent stream must be Register",
            ));
        };
        let name = ClusterName::new(register.cluster).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !register.node.is_empty() {
            let node = NodeAgent {
                cluster: name,
                node: register.node,
            };
            return Ok(Response::new(self.node_session(node, up).await));
        }
        let cluster = Cluster {
            name: name.clone(),
            connected: true,
            kubernetes_version: register.kubernetes_version,
            agent_version: register.agent_version,
            last_heartbeat: None,
            workspace: None,
        };
        let (session, instructions) = self.hub.register(cluster).await?;
        Ok(Response::new(serve(
            self.hub.clone(),
            Agent::Cluster(name),
            session,
            instructions,
            up,
        )))
    }
}

impl AgentChannel {
    /// The session of a node agent: volume tasks down, their progress and results up.
    async fn node_session(&self, node: NodeAgent, up: Streaming<pb::AgentMessage>) -> Down_ {
        let (session, instructions) = self.hub.register_node(&node).await;
        serve(self.hub.clone(), Agent::Node(node), session, instructions, up)
    }
}

/// Who holds a session.
enum Agent {
    Cluster(ClusterName),
    Node(NodeAgent),
}

/// Streams `instructions` down to `agent` and hands what it sends up to the hub, until either
/// side ends; then the hub learns that session `session` is gone.
fn serve(
    hub: Hub,
    agent: Agent,
    session: SessionId,
    mut instructions: mpsc::Receiver<Instruction>,
    mut up: Streaming<pb::AgentMessage>,
) -> Down_ {
    let (tx, rx) = mpsc::channel(INSTRUCTION_QUEUE);
    tokio::spawn(async move {
        let why = loop {
            tokio::select! {
                instruction = instructions.recv() => {
                    let Some(instruction) = instruction else { break "replaced by a newer session".to_owned() };
                    if tx.send(Ok(to_pb(instruction))).await.is_err() {
                        break "stream closed".to_owned();
                    }
                }
                message = up.next() => match message {
                    Some(Ok(message)) => match (from_pb(message), &agent) {
                        (Ok(Some(report)), Agent::Cluster(name)) => {
                            if let Err(e) = hub.report(name, session, report).await {
                                tracing::warn!(cluster = %name, error = %cairn_proto::error_chain(&e), "agent report refused");
                            }
                        }
                        (Ok(Some(report)), Agent::Node(node)) => hub.node_report(node, session, report).await,
                        (Ok(None), _) => {}
                        (Err(status), _) => tracing::warn!(error = %status.message(), "malformed agent message"),
                    },
                    Some(Err(status)) => break format!("stream error: {}", status.message()),
                    None => break "agent closed the stream".to_owned(),
                }
            }
        };
        match &agent {
            Agent::Cluster(name) => hub.disconnect(name, session, &why).await,
            Agent::Node(node) => hub.disconnect_node(node, session, &why).await,
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

fn to_pb(instruction: Instruction) -> pb::HubMessage {
    let kind = match instruction {
        Instruction::Backup { spec, location, key } => Down::RunBackup(pb::RunBackup {
            spec: Some(spec.to_pb()),
            location: Some(location.to_pb()),
            repository_key: key.0,
        }),
        Instruction::Restore { spec, location, key } => Down::RunRestore(pb::RunRestore {
            spec: Some(spec.to_pb()),
            location: Some(location.to_pb()),
            repository_key: key.0,
        }),
        Instruction::Prune { location, key, grace } => Down::RunPrune(pb::RunPrune {
            location: Some(location.to_pb()),
            repository_key: key.0,
            grace_seconds: grace.as_secs(),
        }),
        Instruction::Volume(task) => Down::VolumeTask(task.to_pb()),
        Instruction::VolumeDone(id, result) => Down::VolumeDone(pb::VolumeDone {
            id,
            result: Some(result.to_pb()),
        }),
        Instruction::VolumeProgress(p) => Down::VolumeProgress(p.to_pb()),
    };
    pb::HubMessage { kind: Some(kind) }
}

fn from_pb(message: pb::AgentMessage) -> Result<Option<Report>, Status> {
    let conv = |e: cairn_proto::convert::Error| invalid(&e);
    Ok(Some(match message.kind {
        None | Some(Up::Register(_)) => return Ok(None),
        Some(Up::Heartbeat(_)) => Report::Heartbeat,
        Some(Up::Progress(p)) => Report::Progress(Progress::from_pb(p).map_err(conv)?),
        Some(Up::BackupDone(done)) => {
            let name = BackupName::new(done.backup).map_err(|e| Status::invalid_argument(e.to_string()))?;
            let status = done
                .status
                .ok_or_else(|| Status::invalid_argument("BackupDone.status is missing"))?;
            Report::BackupDone(name, BackupStatus::from_pb(status).map_err(conv)?)
        }
        Some(Up::RestoreDone(done)) => {
            let name = RestoreName::new(done.restore).map_err(|e| Status::invalid_argument(e.to_string()))?;
            let status = done
                .status
                .ok_or_else(|| Status::invalid_argument("RestoreDone.status is missing"))?;
            Report::RestoreDone(name, RestoreStatus::from_pb(status).map_err(conv)?)
        }
        Some(Up::VolumeTask(task)) => Report::VolumeTask(VolumeTask::from_pb(task).map_err(conv)?),
        Some(Up::VolumeDone(done)) => Report::VolumeDone(
            done.id,
            VolumeResult::from_pb(done.result.unwrap_or_default()).map_err(conv)?,
        ),
        Some(Up::VolumeProgress(p)) => Report::VolumeProgress(VolumeProgress::from_pb(p).map_err(conv)?),
        Some(Up::PruneDone(done)) => Report::PruneDone(
            LocationName::new(done.location).map_err(|e| Status::invalid_argument(e.to_string()))?,
            Prune::from_pb(done.prune.unwrap_or_default()).map_err(conv)?,
        ),
    }))
}
