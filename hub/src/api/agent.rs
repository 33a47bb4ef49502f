//! The agent channel: one long-lived bidirectional stream per connected agent, and renewal of
//! its certificate. Who the agent is comes from its client certificate, never from what it
//! sends: a `Register` naming another cluster or node is refused.

use cairn_proto::convert::Wire;
use cairn_proto::model::{AgentId, ClusterName, Instruction, Report};
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
        let id = self.admitted(&request).await?;
        self.hub.pace()?;
        let mut up = request.into_inner();
        let first = up
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty agent stream"))?;
        within_limit(&first)?;
        let Report::Register(register) = Report::from_pb(first).map_err(|e| invalid(&e))? else {
            return Err(Status::invalid_argument(
                "the first message of an agent stream must be Register",
            ));
        };
        let agent = match &id {
            AgentId::Cluster { cluster, .. } if register.cluster == *cluster && register.node.is_none() => {
                Agent::Cluster(cluster.clone())
            }
            AgentId::Node { cluster, node, .. }
                if register.cluster == *cluster && register.node.as_deref() == Some(node.as_str()) =>
            {
                Agent::Node(NodeAgent {
                    cluster: cluster.clone(),
                    node: node.clone(),
                })
            }
            _ => {
                let claimed = register.node.as_deref().map_or_else(
                    || format!("the agent of cluster {}", register.cluster),
                    |node| format!("the agent of node {node} of cluster {}", register.cluster),
                );
                tracing::warn!(agent = %id, %claimed, "registration refused: it claims to be another agent");
                return Err(Status::permission_denied(format!(
                    "this certificate is {id}'s: it cannot register as {claimed}"
                )));
            }
        };
        let (session, instructions) = match &agent {
            Agent::Cluster(name) => {
                self.hub
                    .register(name, register.agent_version, register.kubernetes_version)
                    .await?
            }
            Agent::Node(node) => self.hub.register_node(node).await,
        };
        Ok(Response::new(serve(
            self.hub.clone(),
            Session { agent, id, session },
            instructions,
            up,
        )))
    }

    async fn renew(
        &self,
        request: Request<pb::CertificateRequest>,
    ) -> Result<Response<pb::IssuedCertificate>, Status> {
        let id = self.admitted(&request).await?;
        let csr_pem = request.into_inner().csr_pem;
        super::enrol::bounded("certificate request", &csr_pem)?;
        let renewed = self.hub.renew(&id, &csr_pem).await;
        let outcome = renewed
            .as_ref()
            .map(|_| ())
            .map_err(|e| cairn_proto::error_chain(e));
        self.hub
            .audit(&id.to_string(), "renew", "certificate", outcome)
            .await;
        let issued = renewed?;
        Ok(Response::new(pb::IssuedCertificate {
            cert_pem: issued.cert_pem,
            cluster: id.cluster().to_string(),
        }))
    }
}

impl AgentChannel {
    /// Who sent `request` (its client certificate, which the TLS handshake checked against the
    /// agents' CA), if the hub still admits it.
    async fn admitted<T>(&self, request: &Request<T>) -> Result<AgentId, Status> {
        let Some(id) = request
            .peer_certs()
            .and_then(|certs| certs.first().and_then(|leaf| crate::pki::peer(leaf)))
        else {
            return Err(Status::unauthenticated(
                "the agent channel needs the client certificate the hub issued at enrolment: \
                 enrol with a join token (cairn cluster add NAME, then cairn-agent --join TOKEN)",
            ));
        };
        if let Err(e) = self.hub.admit(&id).await {
            tracing::warn!(agent = %id, error = %e, "agent refused");
            return Err(e.into());
        }
        Ok(id)
    }
}

/// The largest agent message the hub decodes at all: the largest of [`within_limit`]'s.
pub const AGENT_MESSAGE_MAX: usize = 16 << 20;

/// Reports of one session waiting to be handled; when full, the session stops reading the
/// agent's stream until there is room (the agent's own queue then holds its reports).
const REPORT_QUEUE: usize = 64;

/// Refuses `message` if it is larger than any agent needs to send of its kind.
fn within_limit(message: &pb::AgentMessage) -> Result<(), Status> {
    use pb::agent_message::Kind;
    use prost::Message;
    let (kind, limit) = match &message.kind {
        None => return Ok(()),
        Some(Kind::Register(_)) => ("registration", 4 << 10),
        Some(Kind::Heartbeat(_)) => ("heartbeat", 4 << 10),
        Some(Kind::Vouched(_)) => ("verdict on a node agent", 4 << 10),
        Some(Kind::Progress(_)) => ("progress report", 64 << 10),
        Some(Kind::VolumeProgress(_)) => ("volume progress report", 64 << 10),
        Some(Kind::VolumeTask(_)) => ("volume task", 1 << 20),
        Some(Kind::VolumeDone(_)) => ("volume result", 1 << 20),
        Some(Kind::PruneDone(_)) => ("prune result", 1 << 20),
        Some(Kind::BackupDone(_)) => ("backup result", AGENT_MESSAGE_MAX),
        Some(Kind::RestoreDone(_)) => ("restore result", AGENT_MESSAGE_MAX),
        Some(Kind::OfflineBackup(_)) => ("backup run offline", AGENT_MESSAGE_MAX),
    };
    let size = message.encoded_len();
    if size > limit {
        return Err(Status::invalid_argument(format!(
            "a {kind} of {size} bytes is larger than the {limit} bytes an agent may send"
        )));
    }
    Ok(())
}

/// Who holds a session.
#[derive(Clone)]
enum Agent {
    Cluster(ClusterName),
    Node(NodeAgent),
}

/// A session: whose, on which certificate.
struct Session {
    agent: Agent,
    id: AgentId,
    session: SessionId,
}

/// Streams `instructions` down to the agent of `session` and hands what it sends up to the hub,
/// until either side ends; then the hub learns that the session is gone. Reports are handled by
/// a worker of the session's own, in order, behind a bounded queue (when it is full, the session
/// reads no more until there is room); heartbeats and instructions never wait for it, and an
/// agent that reads nothing the hub sends for the instruction deadline loses its session. A
/// certificate is
/// checked when a connection is made (expiry by the TLS handshake, revocation by the hub): a
/// session outlives its certificate's expiry, as the agent renews it, but not a revocation,
/// which ends it and tells the agent why. A stopping hub ends the session telling the
/// agent so, and leaves its operations as they are: the agent reports them to the next hub.
fn serve(
    hub: Hub,
    Session { agent, id, session }: Session,
    mut instructions: mpsc::Receiver<Instruction>,
    mut up: Streaming<pb::AgentMessage>,
) -> Down_ {
    let (tx, rx) = mpsc::channel(INSTRUCTION_QUEUE);
    let stopping = hub.stopping();
    let deadline = hub.instruction_deadline();
    hub.clone().spawn(async move {
        tokio::pin!(stopping);
        let (reports, handled) = mpsc::channel(REPORT_QUEUE);
        let worker = tokio::spawn(handle(hub.clone(), agent.clone(), handled));
        let why = loop {
            tokio::select! {
                () = &mut stopping => {
                    let _ = tx.send(Err(Status::unavailable("the hub is stopping"))).await;
                    return;
                }
                instruction = instructions.recv() => {
                    let Some(instruction) = instruction else {
                        if let Err(e) = hub.admit(&id).await {
                            let _ = tx.send(Err(e.into())).await;
                            break "its certificate was revoked".to_owned();
                        }
                        break "replaced by a newer session".to_owned()
                    };
                    match tx.send_timeout(Ok(instruction.to_pb()), deadline).await {
                        Ok(()) => {}
                        Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                            break format!(
                                "it read nothing the hub sent for {}",
                                humantime::format_duration(deadline)
                            );
                        }
                        Err(mpsc::error::SendTimeoutError::Closed(_)) => break "stream closed".to_owned(),
                    }
                }
                message = up.next() => match message {
                    Some(Ok(message)) => {
                        agent.heard_from(&hub, session);
                        if let Err(status) = within_limit(&message) {
                            tracing::warn!(agent = %id, error = status.message(), "agent message refused");
                            let _ = tx.try_send(Err(status));
                            break "it sent a message larger than allowed".to_owned();
                        }
                        match Report::from_pb(message) {
                            Ok(Report::Heartbeat) => {}
                            Ok(report) => {
                                // Taken up when said, however far behind the handling is.
                                if let (Report::Progress(p), Agent::Cluster(name)) = (&report, &agent) {
                                    hub.took(name, &p.operation);
                                }
                                if reports.send(report).await.is_err() {
                                    break "its reports could not be handled".to_owned();
                                }
                            }
                            Err(e) => tracing::warn!(agent = %id, error = %cairn_proto::error_chain(&e), "malformed agent message"),
                        }
                    }
                    Some(Err(status)) => break format!("stream error: {}", status.message()),
                    None => break "agent closed the stream".to_owned(),
                }
            }
        };
        // Reports already read are handled before the session's operations fail.
        drop(reports);
        if tokio::time::timeout(deadline, worker).await.is_err() {
            tracing::warn!(agent = %id, "reports of an ended session still being handled");
        }
        match &agent {
            Agent::Cluster(name) => hub.disconnect(name, session, &why).await,
            Agent::Node(node) => hub.disconnect_node(node, session, &why).await,
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Hands the reports of one session of `agent` to the hub, one after another, until it ends.
async fn handle(hub: Hub, agent: Agent, mut reports: mpsc::Receiver<Report>) {
    while let Some(report) = reports.recv().await {
        match &agent {
            Agent::Cluster(name) => {
                if let Err(e) = hub.report(name, report).await {
                    tracing::warn!(cluster = %name, error = %cairn_proto::error_chain(&e), "agent report refused");
                }
            }
            Agent::Node(node) => hub.node_report(node, report).await,
        }
    }
}

impl Agent {
    /// Notes a sign of life from `session` of this agent.
    fn heard_from(&self, hub: &Hub, session: SessionId) {
        match self {
            Self::Cluster(name) => hub.heard_from(name, session),
            Self::Node(node) => hub.heard_from_node(node, session),
        }
    }
}
