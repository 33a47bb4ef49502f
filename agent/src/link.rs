//! The agent's link to the hub: it dials out (never the reverse), registers its cluster, beats,
//! runs the instructions it receives and streams their progress and results back. When the link
//! breaks it dials again with backoff; operations keep running meanwhile, and the results of the
//! last operations are repeated on every new link, so a result sent into a dying link is not lost.
//! The only code of the agent that touches wire types.

use cairn_proto::convert::Wire;
use cairn_proto::model::{Instruction, Registration, Report, RepositoryKey};
use cairn_proto::pb;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::relay::{Relay, Volumes};
use crate::report::{EVENT_QUEUE, Reporter};
use cairn_proto::MAX_MESSAGE;

/// How often the agent tells the hub it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Messages queued for the hub on one link.
const UP_QUEUE: usize = 32;
/// Results of finished operations repeated on every new link (see [`Link::run`]).
const RECENT_RESULTS: usize = 32;
/// How long a stopping agent lets running operations finish and report (Kubernetes gives a
/// pod 30 s between SIGTERM and SIGKILL by default).
pub const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long a stopping agent waits for the hub to close the link after closing its side.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// First and longest ceiling of the wait before dialling again.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// How long to wait before dialling again under `ceiling`: anywhere from nothing to the ceiling
/// ("full jitter"), so agents that lost the hub together do not all dial it again together.
pub fn jittered(ceiling: Duration) -> Duration {
    ceiling.mul_f64(rand::random::<f64>())
}

/// Why a link ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate cannot be presented.
    #[error("presenting the agent's certificate")]
    Identity(#[from] cairn_proto::dial::Error),
    /// Dialling failed.
    #[error("cannot reach the hub at {url}")]
    Connect {
        /// The hub.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The hub refused or ended the stream.
    #[error("hub: {}", .0.message())]
    Status(#[from] tonic::Status),
    /// The stream closed.
    #[error("the hub closed the link")]
    Closed,
    /// The agent was asked to stop.
    #[error("the agent is stopping")]
    Stopped,
}

/// The agent's identity and what it does.
pub struct Link {
    /// The hub, the agent's cluster and certificate.
    pub enrolled: Arc<crate::enrol::Enrolled>,
    /// What this agent does there.
    pub role: Role,
}

/// What an agent does in its cluster.
pub enum Role {
    /// Backs up and restores the cluster's resources, and asks node agents to move volume data.
    Cluster {
        /// Client of the cluster.
        client: kube::Client,
        /// The cluster's Kubernetes version.
        kubernetes_version: String,
        /// The service account node agents run as (to vouch for them).
        node_agents: crate::vouch::NodeAgents,
        /// Its standing orders, and the slots it has started.
        standing: Arc<crate::orders::Standing>,
        /// The site's spool, if it has one.
        spool: Option<crate::spool::Spool>,
    },
    /// Moves volume data on one node.
    Node(crate::node::Node),
}

/// What outlives one link: reports on their way up, volume tasks in flight, the recent results,
/// the running operations.
struct Local {
    events: mpsc::Sender<Report>,
    rx: mpsc::Receiver<Report>,
    relay: Relay,
    recent: VecDeque<Report>,
    operations: TaskTracker,
    stop: CancellationToken,
    /// Once stopping: when to stop waiting for the running operations.
    deadline: Option<Instant>,
}

impl Local {
    /// Keeps `report` to repeat on the next links if it is a result.
    fn remember(&mut self, report: &Report) {
        if report.is_result() {
            if self.recent.len() == RECENT_RESULTS {
                self.recent.pop_front();
            }
            self.recent.push_back(report.clone());
        }
    }
}

impl Link {
    /// Keeps a link to the hub up until `stop` is cancelled; then takes no new instructions,
    /// lets running operations finish and report (for up to [`STOP_GRACE`]) and closes the link.
    pub async fn run(self, stop: CancellationToken) -> Result<(), Error> {
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let mut local = Local {
            relay: Relay::new(events.clone()),
            events,
            rx,
            recent: VecDeque::new(),
            operations: TaskTracker::new(),
            stop,
            deadline: None,
        };
        let renewing = self.enrolled.clone();
        let stop_renewing = local.stop.clone();
        let renewal = tokio::spawn(async move { renewing.renew_until(stop_renewing).await });
        let orders = match &self.role {
            Role::Cluster {
                client,
                kubernetes_version,
                standing,
                spool,
                ..
            } => {
                let runner = crate::orders::Runner {
                    client: client.clone(),
                    kubernetes_version: kubernetes_version.clone(),
                    cluster: self.enrolled.cluster.clone(),
                    events: local.events.clone(),
                    spool: spool.clone(),
                };
                Some(tokio::spawn(crate::orders::keep(
                    standing.clone(),
                    runner,
                    local.stop.clone(),
                )))
            }
            Role::Node(_) => None,
        };
        let ended = self.keep_up(&mut local).await;
        renewal.abort();
        if let Some(orders) = orders {
            let _ = orders.await;
        }
        ended
    }

    /// Dials and redials until stopped.
    async fn keep_up(&self, local: &mut Local) -> Result<(), Error> {
        let mut delay = BACKOFF.0;
        loop {
            let started = tokio::time::Instant::now();
            let e = self.session(local).await;
            if let Error::Stopped = e {
                tracing::info!(hub = %self.enrolled.hub, "agent stopped; link closed");
                return Ok(());
            }
            // Refused by the hub (revoked, removed): its orders, with their credentials, go.
            if let (Error::Status(status), Role::Cluster { standing, .. }) = (&e, &self.role)
                && matches!(
                    status.code(),
                    tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                )
            {
                standing.forget_orders().await;
            }
            if started.elapsed() > BACKOFF.1 {
                delay = BACKOFF.0; // the last link was up for a while: start backing off afresh
            }
            let wait = jittered(delay);
            tracing::warn!(hub = %self.enrolled.hub, error = %cairn_proto::error_chain(&e), retry_in = ?wait, "link to the hub down");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // No link to report on: running operations are given up; the hub fails them.
                () = local.stop.cancelled() => return Ok(()),
            }
            delay = (delay * 2).min(BACKOFF.1);
        }
    }

    async fn session(&self, local: &mut Local) -> Error {
        let endpoint = match self.enrolled.endpoint() {
            Ok(e) => e,
            Err(e) => return e.into(),
        };
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(10))
            .http2_keep_alive_interval(HEARTBEAT);
        // Until the link is up there is nothing to drain: a stop ends the attempt.
        let channel = tokio::select! {
            connected = endpoint.connect() => match connected {
                Ok(c) => c,
                Err(source) => {
                    return Error::Connect {
                        url: self.enrolled.hub.url().to_owned(),
                        source,
                    };
                }
            },
            () = local.stop.cancelled() => return Error::Stopped,
        };
        let mut client = pb::agent_channel_client::AgentChannelClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let (up, up_rx) = mpsc::channel(UP_QUEUE);
        let _ = up.send(Report::Register(self.registration()).to_pb()).await;
        let mut down = tokio::select! {
            linked = client.session(ReceiverStream::new(up_rx)) => match linked {
                Ok(r) => r.into_inner(),
                Err(status) => return status.into(),
            },
            () = local.stop.cancelled() => return Error::Stopped,
        };
        tracing::info!(hub = %self.enrolled.hub, cluster = %self.enrolled.cluster, "linked to the hub");
        // Results sent on a link that broke may never have arrived, and nothing acknowledges
        // them: every new link repeats the recent ones. The hub records a result idempotently.
        for report in &local.recent {
            if up.send(report.to_pb()).await.is_err() {
                return Error::Closed;
            }
        }
        // So are backups run on its own, until the hub adopts them.
        if let Role::Cluster { standing, .. } = &self.role {
            for backup in standing.unreported().await {
                if up.send(Report::OfflineBackup(backup).to_pb()).await.is_err() {
                    return Error::Closed;
                }
            }
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            let deadline = local.deadline.unwrap_or_else(|| Instant::now() + STOP_GRACE);
            tokio::select! {
                _ = heartbeat.tick() => {
                    if up.send(Report::Heartbeat.to_pb()).await.is_err() {
                        return Error::Closed;
                    }
                }
                Some(report) = local.rx.recv() => {
                    local.remember(&report);
                    if up.send(report.to_pb()).await.is_err() {
                        return Error::Closed;
                    }
                }
                message = down.message() => match message {
                    Ok(Some(m)) => match Instruction::from_pb(m) {
                        Ok(_) if local.deadline.is_some() => {
                            tracing::warn!("instruction refused: the agent is stopping");
                        }
                        Ok(instruction) => self.dispatch(instruction, local),
                        Err(e) => tracing::error!(error = %cairn_proto::error_chain(&e), "malformed instruction ignored"),
                    },
                    Ok(None) => return Error::Closed,
                    Err(status) => return status.into(),
                },
                () = local.stop.cancelled(), if local.deadline.is_none() => {
                    local.operations.close();
                    local.deadline = Some(Instant::now() + STOP_GRACE);
                    tracing::info!(running = local.operations.len(), "stopping: no new instructions; running operations finish first");
                }
                () = local.operations.wait(), if local.deadline.is_some() => {
                    // Every operation has ended and queued its result: send them, then close.
                    while let Ok(report) = local.rx.try_recv() {
                        local.remember(&report);
                        if up.send(report.to_pb()).await.is_err() {
                            return Error::Closed;
                        }
                    }
                    break;
                }
                () = tokio::time::sleep_until(deadline), if local.deadline.is_some() => {
                    tracing::warn!(running = local.operations.len(), grace = ?STOP_GRACE, "stopping with operations still running: the hub fails them");
                    break;
                }
            }
        }
        // Close our side, then let the hub close its own: it sees the link end, not break.
        drop(up);
        let closed = async { while let Ok(Some(_)) = down.message().await {} };
        let _ = tokio::time::timeout(CLOSE_WAIT, closed).await;
        Error::Stopped
    }

    /// Who this agent is, for the hub.
    fn registration(&self) -> Registration {
        let (kubernetes_version, node) = match &self.role {
            Role::Cluster {
                kubernetes_version, ..
            } => (kubernetes_version.clone(), None),
            Role::Node(node) => (String::new(), Some(node.name.clone())),
        };
        Registration {
            cluster: self.enrolled.cluster.clone(),
            agent_version: crate::VERSION.into(),
            kubernetes_version,
            node,
        }
    }

    /// What a backup or restore needs to have volume data moved.
    fn volumes(&self, relay: &Relay, key: RepositoryKey) -> Volumes {
        Volumes {
            relay: relay.clone(),
            key,
            cluster: self.enrolled.cluster.clone(),
        }
    }

    /// Starts `instruction` in the background.
    fn dispatch(&self, instruction: Instruction, local: &Local) {
        let (events, relay, operations) = (&local.events, &local.relay, &local.operations);
        match (instruction, &self.role) {
            (
                Instruction::Backup {
                    spec,
                    location,
                    key,
                    resources,
                },
                Role::Cluster {
                    client,
                    kubernetes_version,
                    standing,
                    ..
                },
            ) => {
                let reporter = Reporter::new(spec.name.clone(), events.clone());
                let volumes = self.volumes(relay, key);
                let (client, kubernetes_version) = (client.clone(), kubernetes_version.clone());
                let (standing, events) = (standing.clone(), events.clone());
                operations.spawn(async move {
                    // A slot's backup runs once, whoever started it first.
                    if spec.origin.schedule.is_some() {
                        match standing.start(&spec.name).await {
                            crate::orders::Start::New => {}
                            crate::orders::Start::Already(Some(ran)) => {
                                let _ = events.send(Report::OfflineBackup(*ran)).await;
                                return;
                            }
                            crate::orders::Start::Already(None) => {
                                // Running on its own: taken up; its result is reported when it ends.
                                tracing::info!(backup.id = %spec.name, "this slot's backup is running here already: not run again");
                                let mut reporter = reporter;
                                reporter.started().await;
                                return;
                            }
                        }
                    }
                    crate::backup::run(
                        client,
                        spec,
                        (location, resources),
                        reporter,
                        volumes,
                        kubernetes_version,
                    )
                    .await;
                });
            }
            (
                Instruction::Restore {
                    spec,
                    location,
                    key,
                    resources,
                },
                Role::Cluster { client, .. },
            ) => {
                let reporter = Reporter::new(spec.name.clone(), events.clone());
                let volumes = self.volumes(relay, key);
                operations.spawn(crate::restore::run(
                    client.clone(),
                    spec,
                    (location, resources),
                    reporter,
                    volumes,
                ));
            }
            (Instruction::Prune { location, key, grace }, Role::Cluster { .. }) => {
                operations.spawn(crate::maintenance::prune(
                    location,
                    key,
                    grace,
                    self.enrolled.cluster.clone(),
                    events.clone(),
                ));
            }
            (
                Instruction::Vouch(vouch),
                Role::Cluster {
                    client, node_agents, ..
                },
            ) => {
                let (client, node_agents, events) = (client.clone(), node_agents.clone(), events.clone());
                // Not an operation: a stopping agent need not wait for it.
                tokio::spawn(async move {
                    let verdict = crate::vouch::check(&client, &node_agents, &vouch).await;
                    if let Err(why) = &verdict {
                        tracing::warn!(node = %vouch.node, %why, "node agent not vouched for");
                    }
                    let _ = events.send(Report::Vouched(vouch.id, verdict)).await;
                });
            }
            (Instruction::Orders(orders), Role::Cluster { standing, .. }) => standing.offer(orders),
            (Instruction::Adopted { backup, spooled }, Role::Cluster { standing, .. }) => {
                let standing = standing.clone();
                tokio::spawn(async move { standing.adopted(&backup, spooled).await });
            }
            (Instruction::VolumeDone(id, result), Role::Cluster { .. }) => relay.done(&id, result),
            (Instruction::VolumeProgress(p), Role::Cluster { .. }) => relay.progress(&p),
            (Instruction::Volume(task), Role::Node(node)) => {
                operations.spawn(node.clone().run(task, events.clone()));
            }
            (Instruction::Cancel(operation), _) => {
                tracing::warn!(%operation, "cancel is not supported yet");
            }
            _ => tracing::warn!("instruction for another kind of agent ignored"),
        }
    }
}
