//! The agent's client certificate: how it gets one, keeps it and renews it.
//!
//! A cluster agent enrols once with a join token: it fetches the hub's CA, checked against the
//! token's fingerprint, makes its key here (the key never leaves the agent), sends a certificate
//! request with the token's secret, and keeps key, certificate, CA and hub address ([`Keep`]: a
//! Secret in its namespace, or a state directory). A node agent enrols at every start with its
//! pod's service-account token, which its cluster's agent vouches for, and keeps its certificate
//! in memory only. Both renew theirs when two thirds of its life have passed, without a restart:
//! new connections present the new certificate (a live session is not cut: the hub checks a
//! certificate when a connection is made).

use cairn_proto::dial;
use cairn_proto::join::JoinToken;
use cairn_proto::model::ClusterName;
use cairn_proto::pb;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long an enrolment or renewal call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Wait between failed renewals.
const RETRY: Duration = Duration::from_secs(10);
/// The Secret key (or file name) the identity is kept under.
const IDENTITY: &str = "identity.json";

/// Why the agent has no certificate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not enrolled and no join token given.
    #[error(
        "this agent is not enrolled yet and has no join token: pass --join TOKEN (cairn cluster add NAME prints one)"
    )]
    NoToken,
    /// The join token does not parse.
    #[error(transparent)]
    Token(#[from] cairn_proto::join::InvalidJoinToken),
    /// The hub cannot be dialled or is not the one the token names.
    #[error(transparent)]
    Dial(#[from] dial::Error),
    /// The hub refused.
    #[error("the hub refused: {}", .0.message())]
    Refused(#[from] tonic::Status),
    /// The hub did not answer.
    #[error("reaching the hub")]
    Transport(#[from] tonic::transport::Error),
    /// The hub did not answer in time.
    #[error("the hub did not answer within {0:?}")]
    Timeout(Duration),
    /// A key or certificate request cannot be made, or the certificate does not parse.
    #[error("{0}")]
    Certificate(String),
    /// The identity cannot be read or written.
    #[error("{what} {place}")]
    Keep {
        /// Reading or writing.
        what: &'static str,
        /// Where.
        place: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The kept identity is of another cluster than asked.
    #[error("the identity kept in {place} is cluster {kept}'s, not {asked}'s")]
    OtherCluster {
        /// Where.
        place: String,
        /// The kept cluster.
        kept: ClusterName,
        /// The cluster asked for.
        asked: ClusterName,
    },
}

/// A certificate and its key. `Debug` shows neither.
#[derive(Clone)]
pub struct Certificate {
    /// PEM.
    pub cert_pem: String,
    key_pem: SecretString,
    /// When the agent got it (or read it back at start-up).
    obtained: SystemTime,
    not_after: SystemTime,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    fn new(cert_pem: String, key_pem: SecretString) -> Result<Self, Error> {
        use x509_parser::prelude::FromDer;
        let unreadable =
            |why: &str| Error::Certificate(format!("the hub's certificate does not read: {why}"));
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| unreadable(&e.to_string()))?;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&pem.contents)
            .map_err(|e| unreadable(&e.to_string()))?;
        let at = |t: x509_parser::time::ASN1Time| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
        };
        Ok(Self {
            obtained: SystemTime::now(),
            not_after: at(cert.validity().not_after),
            cert_pem,
            key_pem,
        })
    }

    /// When two thirds of what was left of its life when the agent got it have passed (the hub
    /// back-dates certificates a little, for clocks behind its own: that slack is not life).
    fn renew_at(&self) -> SystemTime {
        let left = self.not_after.duration_since(self.obtained).unwrap_or_default();
        self.obtained + left * 2 / 3
    }
}

/// A fresh key and a certificate request for it (the hub sets everything but the key).
fn request() -> Result<(SecretString, String), Error> {
    let failed = |e: rcgen::Error| Error::Certificate(format!("making a key and certificate request: {e}"));
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(failed)?;
    Ok((SecretString::from(key.serialize_pem()), csr))
}

/// What an enrolled agent keeps.
#[derive(Serialize, Deserialize)]
struct Kept {
    hub: String,
    ca_pem: String,
    cluster: String,
    cert_pem: String,
    key_pem: String,
    /// The key the agent's state at rest is sealed with (base64; made on first start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_key: Option<String>,
}

/// Where a cluster agent keeps its identity, and its standing orders next to it.
pub enum Keep {
    /// A directory: `identity.json` and `state.sealed`, mode 0600.
    Dir(PathBuf),
    /// A Secret (keys `identity.json` and `state.sealed`).
    Secret {
        /// Secrets of the agent's namespace.
        api: Box<Api<Secret>>,
        /// The Secret's name.
        name: String,
    },
}

impl Keep {
    fn place(&self, entry: &str) -> String {
        match self {
            Self::Dir(dir) => dir.join(entry).display().to_string(),
            Self::Secret { api, name } => format!("Secret {name}{} (key {entry})", api_namespace(api)),
        }
    }

    async fn load(&self) -> Result<Option<Kept>, Error> {
        let Some(bytes) = self.read(IDENTITY, "reading the agent's identity from").await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.failed("reading the agent's identity from", IDENTITY, e.into()))
    }

    async fn save(&self, kept: &Kept) -> Result<(), Error> {
        let what = "writing the agent's identity to";
        let bytes = serde_json::to_vec(kept).map_err(|e| self.failed(what, IDENTITY, e.into()))?;
        self.write(IDENTITY, bytes, what).await
    }

    fn failed(
        &self,
        what: &'static str,
        entry: &str,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Error {
        Error::Keep {
            what,
            place: self.place(entry),
            source,
        }
    }

    /// The bytes kept under `entry`, if any.
    async fn read(&self, entry: &str, what: &'static str) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Self::Dir(dir) => match std::fs::read(dir.join(entry)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.failed(what, entry, e.into())),
            },
            Self::Secret { api, name } => {
                let secret = api
                    .get_opt(name)
                    .await
                    .map_err(|e| self.failed(what, entry, e.into()))?;
                Ok(secret
                    .and_then(|s| s.data)
                    .and_then(|mut d| d.remove(entry))
                    .map(|b| b.0))
            }
        }
    }

    /// Keeps `bytes` under `entry`, whole or not at all. In a Secret each entry has its own field
    /// manager, so writing one leaves the other as it is.
    async fn write(&self, entry: &str, bytes: Vec<u8>, what: &'static str) -> Result<(), Error> {
        match self {
            Self::Dir(dir) => cairn_proto::seal::write_private(&dir.join(entry), &bytes)
                .map_err(|e| self.failed(what, entry, e.into())),
            Self::Secret { api, name } => {
                let secret = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(
                            [("app.kubernetes.io/name".to_owned(), "cairn-agent".to_owned())].into(),
                        ),
                        ..Default::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some([(entry.to_owned(), k8s_openapi::ByteString(bytes))].into()),
                    ..Default::default()
                };
                let manager = if entry == IDENTITY {
                    "cairn-agent".to_owned()
                } else {
                    format!("cairn-agent-{}", entry.replace('.', "-"))
                };
                let params = kube::api::PatchParams::apply(&manager).force();
                api.patch(name, &params, &kube::api::Patch::Apply(&secret))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.failed(what, entry, e.into()))
            }
        }
    }
}

fn api_namespace(api: &Api<Secret>) -> String {
    api.namespace()
        .map(|ns| format!(" in namespace {ns}"))
        .unwrap_or_default()
}

/// An enrolled agent's identity: the hub it dials, its cluster, its present certificate.
pub struct Enrolled {
    /// The hub.
    pub hub: dial::Hub,
    /// Its cluster, as its certificate names it.
    pub cluster: ClusterName,
    certificate: watch::Sender<Certificate>,
    /// Where a cluster agent keeps its identity and state; node agents keep nothing.
    keep: Option<Place>,
}

/// A cluster agent's place to keep things, and the key its state is sealed with there.
struct Place {
    keep: Keep,
    state: cairn_proto::seal::Key,
    state_text: SecretString,
}

/// What fails if the state key cannot be made or read.
const MAKING_STATE_KEY: &str = "making or reading the agent's state key in";

/// The entry the agent's state (standing orders, backups not yet reported) is kept under.
const STATE: &str = "state.sealed";

impl Enrolled {
    /// Whether the present certificate has expired (renewal failed for its whole life).
    pub fn expired(&self) -> bool {
        self.certificate.borrow().not_after < SystemTime::now()
    }

    /// The agent's state as it last kept it (opened), if any; `None` too for node agents.
    pub async fn load_state(&self) -> Result<Option<Vec<u8>>, Error> {
        let Some(kept) = &self.keep else { return Ok(None) };
        let what = "reading the agent's state from";
        let Some(sealed) = kept.keep.read(STATE, what).await? else {
            return Ok(None);
        };
        kept.state
            .open(STATE, &sealed)
            .map(Some)
            .map_err(|e| kept.keep.failed(what, STATE, e.into()))
    }

    /// Keeps the agent's state `plain`, sealed (a node agent keeps nothing).
    pub async fn save_state(&self, plain: &[u8]) -> Result<(), Error> {
        let Some(kept) = &self.keep else { return Ok(()) };
        let what = "writing the agent's state to";
        let sealed = kept
            .state
            .seal(STATE, plain)
            .map_err(|e| kept.keep.failed(what, STATE, e.into()))?;
        kept.keep.write(STATE, sealed, what).await
    }
}

impl Enrolled {
    /// An endpoint to the hub presenting the present certificate.
    pub fn endpoint(&self) -> Result<tonic::transport::Endpoint, dial::Error> {
        let c = self.certificate.borrow();
        self.hub.endpoint_as(&c.cert_pem, c.key_pem.expose_secret())
    }

    /// The cluster agent's identity: the one kept in `keep`, else enrolled with `token` and kept.
    /// `hub` (a URL) replaces the kept address (the hub moved); `cluster`, if given, must be the
    /// kept one.
    pub async fn cluster_agent(
        keep: Keep,
        token: Option<&str>,
        hub: Option<&str>,
        cluster: Option<&ClusterName>,
    ) -> Result<Self, Error> {
        let mut kept = match keep.load().await? {
            Some(kept) => kept,
            None => {
                let token = JoinToken::parse(token.ok_or(Error::NoToken)?)?;
                let kept = join(&token).await?;
                keep.save(&kept).await?;
                tracing::info!(cluster = %kept.cluster, hub = %kept.hub, kept = %keep.place(IDENTITY), "enrolled with the hub");
                kept
            }
        };
        let kept_cluster: ClusterName = kept
            .cluster
            .parse()
            .map_err(|e: cairn_proto::model::InvalidName| Error::Certificate(e.to_string()))?;
        if let Some(asked) = cluster.filter(|c| **c != kept_cluster) {
            return Err(Error::OtherCluster {
                place: keep.place(IDENTITY),
                kept: kept_cluster,
                asked: asked.clone(),
            });
        }
        if kept.state_key.is_none() {
            // Kept before agents held state: made now, once.
            let (_, bytes) = cairn_proto::seal::Key::random()
                .map_err(|e| keep.failed(MAKING_STATE_KEY, IDENTITY, e.into()))?;
            kept.state_key = Some(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                bytes,
            ));
            keep.save(&kept).await?;
        }
        let state_text = SecretString::from(kept.state_key.take().unwrap_or_default());
        let state = cairn_proto::seal::Key::from_base64(state_text.expose_secret(), &keep.place(IDENTITY))
            .map_err(|e| keep.failed(MAKING_STATE_KEY, IDENTITY, e.into()))?;
        let hub = dial::Hub::new(hub.unwrap_or(&kept.hub), Some(&kept.ca_pem))?;
        let certificate = Certificate::new(kept.cert_pem, kept.key_pem.into())?;
        Ok(Self {
            hub,
            cluster: kept_cluster,
            certificate: watch::Sender::new(certificate),
            keep: Some(Place {
                keep,
                state,
                state_text,
            }),
        })
    }

    /// A node agent's identity, enrolled now as `node` of `cluster` with its pod's
    /// service-account token `token`; kept in memory only.
    pub async fn node_agent(
        hub: dial::Hub,
        cluster: ClusterName,
        node: &str,
        token: SecretString,
    ) -> Result<Self, Error> {
        let (key_pem, csr_pem) = request()?;
        let mut client = pb::enrolment_client::EnrolmentClient::new(connect(hub.endpoint()).await?);
        let issued = within(client.join_node(pb::JoinNodeRequest {
            cluster: cluster.to_string(),
            node: node.to_owned(),
            csr_pem,
            token: token.expose_secret().to_owned(),
        }))
        .await?;
        tracing::info!(%cluster, node, "enrolled with the hub, vouched for by the cluster's agent");
        Ok(Self {
            hub,
            cluster,
            certificate: watch::Sender::new(Certificate::new(issued.cert_pem, key_pem)?),
            keep: None,
        })
    }

    /// Renews the certificate when two thirds of its life have passed, again and again, until
    /// `stop`. A failed renewal is tried again every [`RETRY`]; once the certificate has expired
    /// the agent can only enrol again, and says so.
    pub async fn renew_until(&self, stop: CancellationToken) {
        loop {
            let at = self.certificate.borrow().renew_at();
            let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
            match self.renew().await {
                Ok(not_after) => {
                    tracing::info!(not_after = %cairn_proto::model::Timestamp::from(not_after), "certificate renewed")
                }
                Err(e) => {
                    let expired = self.certificate.borrow().not_after < SystemTime::now();
                    if expired {
                        tracing::error!(error = %cairn_proto::error_chain(&e), "certificate expired and not renewed: enrol this agent again");
                    } else {
                        tracing::warn!(error = %cairn_proto::error_chain(&e), retry_in = ?RETRY, "certificate renewal failed");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    async fn renew(&self) -> Result<SystemTime, Error> {
        let (key_pem, csr_pem) = request()?;
        let mut client = pb::agent_channel_client::AgentChannelClient::new(connect(self.endpoint()?).await?);
        let issued = within(client.renew(pb::CertificateRequest { csr_pem })).await?;
        let fresh = Certificate::new(issued.cert_pem, key_pem)?;
        let not_after = fresh.not_after;
        if let Some(kept) = &self.keep {
            kept.keep
                .save(&Kept {
                    hub: self.hub.url().to_owned(),
                    ca_pem: self.hub.ca_pem().unwrap_or_default().to_owned(),
                    cluster: self.cluster.to_string(),
                    cert_pem: fresh.cert_pem.clone(),
                    key_pem: fresh.key_pem.expose_secret().to_owned(),
                    state_key: Some(kept.state_text.expose_secret().to_owned()),
                })
                .await?;
        }
        self.certificate.send_replace(fresh);
        Ok(not_after)
    }
}

/// Enrols with join token `token`: the hub's CA checked against its fingerprint, a key made here.
async fn join(token: &JoinToken) -> Result<Kept, Error> {
    let ca_pem = dial::pinned_ca(&token.hub, &token.ca_sha256).await?;
    let hub = dial::Hub::new(&token.hub, Some(&ca_pem))?;
    let (key_pem, csr_pem) = request()?;
    let mut client = pb::enrolment_client::EnrolmentClient::new(connect(hub.endpoint()).await?);
    let issued = within(client.join(pb::JoinRequest {
        secret: token.secret.expose_secret().to_owned(),
        csr_pem,
    }))
    .await?;
    Ok(Kept {
        hub: token.hub.clone(),
        ca_pem,
        cluster: issued.cluster,
        cert_pem: issued.cert_pem,
        key_pem: key_pem.expose_secret().to_owned(),
        state_key: None,
    })
}

async fn connect(endpoint: tonic::transport::Endpoint) -> Result<tonic::transport::Channel, Error> {
    Ok(endpoint
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await?)
}

/// `call`'s answer, within [`CALL_TIMEOUT`].
async fn within<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Error> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| Error::Timeout(CALL_TIMEOUT))?
        .map(tonic::Response::into_inner)
        .map_err(Error::from)
}
