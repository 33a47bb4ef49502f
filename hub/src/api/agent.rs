//! The agent channel: one long-lived bidirectional stream per connected agent.

use cairn_proto::convert::Wire;
use cairn_proto::model::{Cluster, ClusterName, Instruction, Report};
use cairn_proto::pb;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::invalid;
use crate::operations::Hub;
use crate::operations::agents::{INSTRUCTION_QUEUE, NodeAgent, SessionId};

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
        let Report::Register(register) = Report::from_pb(first).map_err(|e| invalid(&e))? else {
            return Err(Status::invalid_argument(
                "the first message of an agent stream must be Register",
            ));
        };
        let name = register.cluster;
        if let Some(node) = register.node {
            let node = NodeAgent { cluster: name, node };
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
/// side ends; then the hub learns that session `session` is gone. A stopping hub ends the
/// session telling the agent so, and leaves its operations as they are: the agent reports them
/// to the next hub.
fn serve(
    hub: Hub,
    agent: Agent,
    session: SessionId,
    mut instructions: mpsc::Receiver<Instruction>,
    mut up: Streaming<pb::AgentMessage>,
) -> Down_ {
    let (tx, rx) = mpsc::channel(INSTRUCTION_QUEUE);
    let stopping = hub.stopping();
    hub.clone().spawn(async move {
        tokio::pin!(stopping);
        let why = loop {
            tokio::select! {
                () = &mut stopping => {
                    let _ = tx.send(Err(Status::unavailable("the hub is stopping"))).await;
                    return;
                }
                instruction = instructions.recv() => {
                    let Some(instruction) = instruction else { break "replaced by a newer session".to_owned() };
                    if tx.send(Ok(instruction.to_pb())).await.is_err() {
                        break "stream closed".to_owned();
                    }
                }
                message = up.next() => match message {
                    Some(Ok(message)) => match (Report::from_pb(message), &agent) {
                        (Ok(report), Agent::Cluster(name)) => {
                            if let Err(e) = hub.report(name, session, report).await {
                                tracing::warn!(cluster = %name, error = %cairn_proto::error_chain(&e), "agent report refused");
                            }
                        }
                        (Ok(report), Agent::Node(node)) => hub.node_report(node, session, report).await,
                        (Err(e), _) => tracing::warn!(error = %cairn_proto::error_chain(&e), "malformed agent message"),
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
