//! Enrolment: how agents get their client certificates, renew them and lose them.
//!
//! - A cluster's agent presents a one-time join secret (`cairn cluster add` makes one; the hub
//!   keeps only its SHA-256) with a certificate request; it gets a certificate naming its
//!   cluster and the cluster's enrolment ([`AgentId`]).
//! - A node agent presents its pod's service-account token: the hub asks the connected agent of
//!   the cluster it claims to vouch for it (a TokenReview, and the pod the token was issued to
//!   runs on the node it claims), and only then issues a certificate naming that node.
//! - Certificates are short-lived; an agent renews its own before expiry.
//! - `cairn cluster revoke` moves the cluster to a new enrolment: every certificate of the old one
//!   is refused from then on, and the sessions holding them end at once.

use cairn_proto::model::{
    AgentId, Cluster, ClusterName, Instruction, JoinGrant, JoinTicket, Timestamp, Vouch, WorkspaceName,
};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

use super::{Failure, Hub, Refused, Result};
use crate::pki::{self, Authority, Issued};

/// How long a join secret works unless asked otherwise.
const JOIN_TTL: Duration = Duration::from_secs(3600);
/// The longest a join secret may work.
const MAX_JOIN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a cluster agent may take to vouch for a node agent.
const VOUCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Vouches asked of one cluster's agent at once: enrolment is open to anyone who reaches the hub,
/// and each vouch costs the cluster's API server a TokenReview.
const VOUCHES_IN_FLIGHT: usize = 32;

/// A vouch asked: of which cluster's agent, and where its verdict goes.
type Asked = (ClusterName, oneshot::Sender<Result<(), String>>);

/// The hub's side of enrolment.
pub struct Enrolment {
    authority: Authority,
    ca_sha256: String,
    lifetime: Duration,
    /// Vouches asked and not yet answered.
    vouches: Mutex<HashMap<u64, Asked>>,
    next_vouch: AtomicU64,
    /// One join at a time: a secret is taken once.
    joining: tokio::sync::Mutex<()>,
}

impl Enrolment {
    /// Issuing with `authority` (the agents' CA) certificates valid `lifetime`; `trusted_ca_pem`
    /// is the CA the hub's clients trust (its fingerprint goes into join tokens).
    pub fn new(authority: Authority, trusted_ca_pem: &str, lifetime: Duration) -> Result<Self, pki::Error> {
        let der = x509_parser::pem::parse_x509_pem(trusted_ca_pem.as_bytes())
            .map_err(|_| pki::Error::Unusable("the hub's CA certificate is not PEM"))?
            .1
            .contents;
        Ok(Self {
            authority,
            ca_sha256: cairn_proto::join::fingerprint(&der),
            lifetime,
            vouches: Mutex::default(),
            next_vouch: AtomicU64::new(0),
            joining: tokio::sync::Mutex::new(()),
        })
    }

    /// The agents' CA certificate, PEM: what the hub checks client certificates against.
    pub fn client_ca_pem(&self) -> &str {
        self.authority.cert_pem()
    }

    fn issue(&self, csr_pem: &str, id: &AgentId) -> Result<Issued> {
        self.authority
            .issue(csr_pem, id, self.lifetime)
            .map_err(|e| Refused::Enrolment(cairn_proto::error_chain(&e)).into())
    }

    fn vouches(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Asked>> {
        self.vouches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `cluster` is revoked.
fn revoked(cluster: &ClusterName) -> super::Error {
    Refused::Enrolment(format!(
        "cluster {cluster} is revoked: add it again to enrol (cairn cluster add {cluster})"
    ))
    .into()
}

/// Hex SHA-256 of a join secret: all the hub keeps of it.
fn hash(secret: &str) -> String {
    cairn_proto::join::fingerprint(secret.as_bytes())
}

impl Hub {
    /// The agents' CA certificate, PEM: what the hub checks client certificates against.
    pub fn client_ca_pem(&self) -> &str {
        self.inner.enrolment.client_ca_pem()
    }

    /// A one-time join secret for the agent of `cluster`, placing the cluster in `workspace`
    /// (if `None`: where it is, `default` for a new one), working for `ttl` ([`JOIN_TTL`] if
    /// `None`). The cluster is recorded
    /// now (shown not connected); a revoked cluster may enrol again with it.
    #[tracing::instrument(name = "create_join_token", skip_all, fields(cluster = %cluster))]
    pub async fn create_join_token(
        &self,
        cluster: ClusterName,
        workspace: Option<WorkspaceName>,
        ttl: Option<Duration>,
    ) -> Result<JoinGrant> {
        let ttl = ttl.unwrap_or(JOIN_TTL);
        if ttl.is_zero() || ttl > MAX_JOIN_TTL {
            return Err(Refused::Enrolment(format!(
                "a join token may work from a second to {}, not {}",
                humantime::format_duration(MAX_JOIN_TTL),
                humantime::format_duration(ttl)
            ))
            .into());
        }
        let workspace = match workspace {
            Some(w) if w != super::default_workspace() => {
                self.add_cluster(&w, &cluster).await?;
                w
            }
            Some(w) => {
                let current = self.workspace_of(&cluster).await?;
                if current != w {
                    return Err(Refused::Membership(format!(
                        "cluster {cluster} is in workspace {current}: remove it there first"
                    ))
                    .into());
                }
                w
            }
            None => self.workspace_of(&cluster).await?,
        };
        let mut record = self
            .inner
            .inventory
            .cluster(&cluster)
            .await?
            .unwrap_or_else(|| Cluster::enrolled(cluster.clone(), 1));
        record.revoked = false;
        record.removed = false;
        self.inner.inventory.put_cluster(&record).await?;
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Refused::Enrolment("no randomness".into()))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let expires = Timestamp::from(std::time::SystemTime::now() + ttl);
        tracing::info!(%workspace, %expires, "join token created");
        let ticket = JoinTicket { cluster, expires };
        self.inner.inventory.put_ticket(&hash(&secret), &ticket).await?;
        Ok(JoinGrant {
            secret: SecretString::from(secret),
            expires,
            ca_sha256: self.inner.enrolment.ca_sha256.clone(),
        })
    }

    /// A cluster agent enrols with join secret `secret`: its certificate, for the key of
    /// `csr_pem`, and its cluster's name.
    pub async fn join(&self, secret: &SecretString, csr_pem: &str) -> Result<(Issued, ClusterName)> {
        // A request that cannot be signed does not use the secret up.
        rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| Refused::Invalid(format!("the certificate request does not read: {e}")))?;
        let _one_at_a_time = self.inner.enrolment.joining.lock().await;
        let Some(ticket) = self
            .inner
            .inventory
            .take_ticket(&hash(secret.expose_secret()))
            .await?
        else {
            return Err(Refused::Enrolment(
                "this join token is unknown or was used already: a token enrols once (ask for a new one: cairn cluster add NAME)".into(),
            )
            .into());
        };
        if ticket.expires < Timestamp::now() {
            return Err(Refused::Enrolment(format!(
                "this join token for cluster {} expired at {}: ask for a new one (cairn cluster add {})",
                ticket.cluster, ticket.expires, ticket.cluster
            ))
            .into());
        }
        let record = self.enrolled(&ticket.cluster).await?;
        let id = AgentId::Cluster {
            cluster: ticket.cluster.clone(),
            generation: record.generation,
        };
        let issued = self.inner.enrolment.issue(csr_pem, &id)?;
        tracing::info!(cluster = %ticket.cluster, not_after = %Timestamp::from(issued.not_after), "cluster agent enrolled");
        Ok((issued, ticket.cluster))
    }

    /// A node agent enrols as `node` of `cluster`, its pod's service-account token `token`
    /// vouched for by the cluster's agent.
    #[tracing::instrument(name = "join_node", skip_all, fields(cluster = %cluster, node = %node))]
    pub async fn join_node(
        &self,
        cluster: &ClusterName,
        node: &str,
        csr_pem: &str,
        token: SecretString,
    ) -> Result<Issued> {
        if !cairn_proto::model::valid_node(node) {
            return Err(Refused::Enrolment(format!("{node:?} is not a node name")).into());
        }
        let record = self.enrolled(cluster).await?;
        let (tx, rx) = oneshot::channel();
        let id = self.inner.enrolment.next_vouch.fetch_add(1, Ordering::Relaxed);
        {
            let mut vouches = self.inner.enrolment.vouches();
            if vouches.values().filter(|(c, _)| c == cluster).count() >= VOUCHES_IN_FLIGHT {
                return Err(Failure::Busy(format!(
                    "{VOUCHES_IN_FLIGHT} node agents of cluster {cluster} are already being vouched for: try again shortly"
                ))
                .into());
            }
            vouches.insert(id, (cluster.clone(), tx));
        }
        let asked = match self.inner.agents.queue(cluster) {
            Some(queue) => queue
                .try_send(Instruction::Vouch(Vouch {
                    id,
                    node: node.to_owned(),
                    token,
                }))
                .is_ok(),
            None => false,
        };
        let verdict = if asked {
            tokio::time::timeout(VOUCH_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        self.inner.enrolment.vouches().remove(&id);
        let Some(verdict) = verdict else {
            return Err(Failure::NotConnected {
                cluster: cluster.clone(),
                last_seen: record.last_heartbeat,
            }
            .into());
        };
        if let Err(why) = verdict {
            tracing::warn!(%why, "node agent refused: its cluster's agent does not vouch for it");
            return Err(Refused::NotVouched {
                cluster: cluster.clone(),
                node: node.to_owned(),
                why,
            }
            .into());
        }
        let id = AgentId::Node {
            cluster: cluster.clone(),
            node: node.to_owned(),
            generation: record.generation,
        };
        let issued = self.inner.enrolment.issue(csr_pem, &id)?;
        tracing::info!("node agent enrolled");
        Ok(issued)
    }

    /// The agent of `cluster` answers vouch `id`.
    pub(super) fn vouched(&self, cluster: &ClusterName, id: u64, verdict: Result<(), String>) {
        let mut vouches = self.inner.enrolment.vouches();
        match vouches.get(&id) {
            Some((asked, _)) if asked == cluster => {
                if let Some((_, tx)) = vouches.remove(&id) {
                    let _ = tx.send(verdict);
                }
            }
            _ => tracing::warn!(%cluster, vouch = id, "vouch answer refused: it was not asked of this agent"),
        }
    }

    /// A fresh certificate for `id`, for the key of `csr_pem`.
    pub async fn renew(&self, id: &AgentId, csr_pem: &str) -> Result<Issued> {
        self.admit(id).await?;
        let issued = self.inner.enrolment.issue(csr_pem, id)?;
        tracing::debug!(agent = %id, not_after = %Timestamp::from(issued.not_after), "certificate renewed");
        Ok(issued)
    }

    /// Whether a certificate naming `id` is still good: its cluster enrolled, not revoked, and of
    /// the cluster's present enrolment. A hub that has no record of the cluster at all (rebuilt
    /// from its master key on an empty data directory) adopts it: only the agents' CA, which that
    /// key makes, can have issued the certificate. A revoked cluster's record is kept for this.
    pub async fn admit(&self, id: &AgentId) -> Result<()> {
        let record = match self.inner.inventory.cluster(id.cluster()).await? {
            Some(record) => record,
            None => {
                let adopted = Cluster::enrolled(id.cluster().clone(), id.generation());
                self.inner.inventory.put_cluster(&adopted).await?;
                tracing::warn!(agent = %id, "cluster adopted: unknown to this hub, its certificate is one this hub's CA issued");
                adopted
            }
        };
        if record.revoked {
            return Err(revoked(id.cluster()));
        }
        if record.generation != id.generation() {
            return Err(Refused::Enrolment(format!(
                "this certificate of cluster {} was revoked: enrol again (cairn cluster add {})",
                id.cluster(),
                id.cluster()
            ))
            .into());
        }
        Ok(())
    }

    /// The record of `cluster`, if it is enrolled and not revoked.
    async fn enrolled(&self, cluster: &ClusterName) -> Result<Cluster> {
        match self.inner.inventory.cluster(cluster).await? {
            Some(c) if !c.revoked => Ok(c),
            Some(_) => Err(revoked(cluster)),
            None => Err(Refused::Enrolment(format!(
                "cluster {cluster} is not enrolled: add it first (cairn cluster add {cluster})"
            ))
            .into()),
        }
    }

    /// Refuses `cluster`'s certificates from now on, its node agents' too, and ends their
    /// sessions.
    #[tracing::instrument(name = "revoke_cluster", skip_all, fields(cluster = %cluster))]
    pub async fn revoke_cluster(&self, cluster: &ClusterName) -> Result<Cluster> {
        let Some(mut record) = self.inner.inventory.cluster(cluster).await? else {
            return Err(Refused::UnknownCluster(cluster.clone()).into());
        };
        record.revoked = true;
        record.generation += 1;
        record.connected = false;
        self.inner.inventory.put_cluster(&record).await?;
        for (agent, session) in self.inner.agents.sessions() {
            if agent == *cluster {
                self.disconnect(&agent, session, "its certificate was revoked")
                    .await;
            }
        }
        for (node, session) in self.inner.nodes.sessions() {
            if node.cluster == *cluster {
                self.disconnect_node(&node, session, "its certificate was revoked")
                    .await;
            }
        }
        tracing::warn!("cluster revoked: its certificates are refused and its sessions ended");
        Ok(record)
    }

    /// Revokes `cluster` and stops listing it (its record stays, so its certificates stay
    /// refused; its backups stay too). `create_join_token` adds it again.
    #[tracing::instrument(name = "forget_cluster", skip_all, fields(cluster = %cluster))]
    pub async fn forget_cluster(&self, cluster: &ClusterName) -> Result<Cluster> {
        let mut record = self.revoke_cluster(cluster).await?;
        record.removed = true;
        self.inner.inventory.put_cluster(&record).await?;
        self.inner.inventory.set_member(cluster, None).await?;
        tracing::info!("cluster removed");
        Ok(record)
    }
}
