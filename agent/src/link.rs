//! The agent's link to the hub: it dials out (never the reverse), registers its cluster, beats,
//! runs the instructions it receives and streams their progress and results back. When the link
//! breaks it dials again with backoff; operations keep running meanwhile, and the results of the
//! last operations are repeated on every new link, so a result sent into a dying link is not lost.
//! The only code of the agent that touches wire types.

use cairn_proto::convert::Wire;
use cairn_proto::model::{
    BackupSpec, ClusterName, Location, RepositoryKey, RestoreSpec, VolumeProgress, VolumeResult, VolumeTask,
};
use cairn_proto::pb::{self, agent_message::Kind as Up, hub_message::Kind as Down};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::relay::{Relay, Volumes};
use crate::report::{EVENT_QUEUE, Event, Reporter};
use cairn_proto::MAX_MESSAGE;

/// How often the agent tells the hub it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Messages queued for the hub on one link.
const UP_QUEUE: usize = 32;
/// Results of finished operations repeated on every new link (see [`Link::run`]).
const RECENT_RESULTS: usize = 32;
/// First and longest wait before dialling again.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// Why a link ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The hub URL is not a URL.
    #[error("invalid hub URL {0:?}")]
    Url(String),
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
}

/// The agent's identity and the cluster it serves.
pub struct Link {
    /// Hub URL.
    pub hub: String,
    /// The cluster's name.
    pub cluster: ClusterName,
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
    },
    /// Moves volume data on one node.
    Node(crate::node::Node),
}

impl Link {
    /// Keeps a link to the hub up, for ever.
    pub async fn run(self) -> Error {
        let (events, mut rx) = mpsc::channel(EVENT_QUEUE);
        let relay = Relay::new(events.clone());
        let mut recent = VecDeque::new();
        let mut delay = BACKOFF.0;
        loop {
            let started = tokio::time::Instant::now();
            let e = self.session(&events, &relay, &mut rx, &mut recent).await;
            if matches!(e, Error::Url(_)) {
                return e;
            }
            if started.elapsed() > BACKOFF.1 {
                delay = BACKOFF.0; // the last link was up for a while: start backing off afresh
            }
            tracing::warn!(hub = %self.hub, error = %cairn_proto::error_chain(&e), retry_in = ?delay, "link to the hub down");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF.1);
        }
    }

    async fn session(
        &self,
        events: &mpsc::Sender<Event>,
        relay: &Relay,
        rx: &mut mpsc::Receiver<Event>,
        recent: &mut VecDeque<Event>,
    ) -> Error {
        let endpoint = match Endpoint::from_shared(self.hub.clone()) {
            Ok(e) => e
                .connect_timeout(Duration::from_secs(10))
                .http2_keep_alive_interval(HEARTBEAT),
            Err(_) => return Error::Url(self.hub.clone()),
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(source) => {
                return Error::Connect {
                    url: self.hub.clone(),
                    source,
                };
            }
        };
        let mut client = pb::agent_channel_client::AgentChannelClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let (up, up_rx) = mpsc::channel(UP_QUEUE);
        let register = match &self.role {
            Role::Cluster {
                kubernetes_version, ..
            } => pb::Register {
                cluster: self.cluster.to_string(),
                agent_version: crate::VERSION.into(),
                kubernetes_version: kubernetes_version.clone(),
                node: String::new(),
            },
            Role::Node(node) => pb::Register {
                cluster: self.cluster.to_string(),
                agent_version: crate::VERSION.into(),
                kubernetes_version: String::new(),
                node: node.name.clone(),
            },
        };
        let _ = up.send(message(Up::Register(register))).await;
        let mut down = match client.session(ReceiverStream::new(up_rx)).await {
            Ok(r) => r.into_inner(),
            Err(status) => return status.into(),
        };
        tracing::info!(hub = %self.hub, cluster = %self.cluster, "linked to the hub");
        // Results sent on a link that broke may never have arrived, and nothing acknowledges
        // them: every new link repeats the recent ones. The hub records a result idempotently.
        for event in recent.iter() {
            if up.send(to_pb(event)).await.is_err() {
                return Error::Closed;
            }
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    if up.send(message(Up::Heartbeat(pb::Heartbeat {}))).await.is_err() {
                        return Error::Closed;
                    }
                }
                Some(event) = rx.recv() => {
                    if event.is_result() {
                        if recent.len() == RECENT_RESULTS {
                            recent.pop_front();
                        }
                        recent.push_back(event.clone());
                    }
                    if up.send(to_pb(&event)).await.is_err() {
                        return Error::Closed;
                    }
                }
                message = down.message() => match message {
                    Ok(Some(m)) => self.dispatch(m, events, relay),
                    Ok(None) => return Error::Closed,
                    Err(status) => return status.into(),
                },
            }
        }
    }

    /// What a backup or restore needs to have volume data moved.
    fn volumes(&self, relay: &Relay, key: RepositoryKey) -> Volumes {
        Volumes {
            relay: relay.clone(),
            key,
            cluster: self.cluster.clone(),
        }
    }

    /// Starts the instruction in `m` in the background.
    fn dispatch(&self, m: pb::HubMessage, events: &mpsc::Sender<Event>, relay: &Relay) {
        let wrong_role = || tracing::warn!("instruction for another kind of agent ignored");
        match (m.kind, &self.role) {
            (
                Some(Down::RunBackup(run)),
                Role::Cluster {
                    client,
                    kubernetes_version,
                },
            ) => match backup_of(run) {
                Ok((spec, location, key)) => {
                    let reporter = Reporter::new(&spec.name.operation(), events.clone());
                    let volumes = self.volumes(relay, key);
                    tokio::spawn(crate::backup::run(
                        client.clone(),
                        spec,
                        location,
                        reporter,
                        volumes,
                        kubernetes_version.clone(),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "malformed backup instruction"),
            },
            (Some(Down::RunRestore(run)), Role::Cluster { client, .. }) => match restore_of(run) {
                Ok((spec, location, key)) => {
                    let reporter = Reporter::new(&spec.name.operation(), events.clone());
                    let volumes = self.volumes(relay, key);
                    tokio::spawn(crate::restore::run(
                        client.clone(),
                        spec,
                        location,
                        reporter,
                        volumes,
                    ));
                }
                Err(e) => tracing::error!(error = %e, "malformed restore instruction"),
            },
            (Some(Down::RunPrune(run)), Role::Cluster { .. }) => match run.location.map(Location::from_pb) {
                Some(Ok(location)) => {
                    tokio::spawn(crate::maintenance::prune(
                        location,
                        RepositoryKey(run.repository_key),
                        std::time::Duration::from_secs(run.grace_seconds),
                        self.cluster.clone(),
                        events.clone(),
                    ));
                }
                _ => tracing::error!("malformed prune instruction"),
            },
            (Some(Down::VolumeDone(done)), Role::Cluster { .. }) => {
                match VolumeResult::from_pb(done.result.unwrap_or_default()) {
                    Ok(result) => relay.done(&done.id, result),
                    Err(e) => tracing::error!(error = %e, "malformed volume result"),
                }
            }
            (Some(Down::VolumeProgress(p)), Role::Cluster { .. }) => match VolumeProgress::from_pb(p) {
                Ok(p) => relay.progress(&p),
                Err(e) => tracing::error!(error = %e, "malformed volume progress"),
            },
            (Some(Down::VolumeTask(task)), Role::Node(node)) => match VolumeTask::from_pb(task) {
                Ok(task) => node.start(task, events.clone()),
                Err(e) => tracing::error!(error = %e, "malformed volume task"),
            },
            (Some(Down::Cancel(cancel)), _) => {
                tracing::warn!(operation = %cancel.operation, "cancel is not supported yet")
            }
            (None, _) => {}
            _ => wrong_role(),
        }
    }
}

fn message(kind: Up) -> pb::AgentMessage {
    pb::AgentMessage { kind: Some(kind) }
}

type Instruction<S> = Result<(S, Location, RepositoryKey), cairn_proto::convert::Error>;

fn backup_of(run: pb::RunBackup) -> Instruction<BackupSpec> {
    let missing = |field| cairn_proto::convert::Error::Missing { field };
    let spec = BackupSpec::from_pb(run.spec.ok_or_else(|| missing("RunBackup.spec"))?)?;
    let location = Location::from_pb(run.location.ok_or_else(|| missing("RunBackup.location"))?)?;
    Ok((spec, location, RepositoryKey(run.repository_key)))
}

fn restore_of(run: pb::RunRestore) -> Instruction<RestoreSpec> {
    let missing = |field| cairn_proto::convert::Error::Missing { field };
    let spec = RestoreSpec::from_pb(run.spec.ok_or_else(|| missing("RunRestore.spec"))?)?;
    let location = Location::from_pb(run.location.ok_or_else(|| missing("RunRestore.location"))?)?;
    Ok((spec, location, RepositoryKey(run.repository_key)))
}

fn to_pb(event: &Event) -> pb::AgentMessage {
    message(match event {
        Event::Progress(p) => Up::Progress(p.to_pb()),
        Event::BackupDone(name, status) => Up::BackupDone(pb::BackupDone {
            backup: name.to_string(),
            status: Some(status.to_pb()),
        }),
        Event::RestoreDone(name, status) => Up::RestoreDone(pb::RestoreDone {
            restore: name.to_string(),
            status: Some(status.to_pb()),
        }),
        Event::VolumeTask(task) => Up::VolumeTask(task.to_pb()),
        Event::PruneDone(location, prune) => Up::PruneDone(pb::PruneDone {
            location: location.to_string(),
            prune: Some(prune.to_pb()),
        }),
        Event::VolumeProgress(p) => Up::VolumeProgress(p.to_pb()),
        Event::VolumeDone(id, result) => Up::VolumeDone(pb::VolumeDone {
            id: id.clone(),
            result: Some(result.to_pb()),
        }),
    })
}
