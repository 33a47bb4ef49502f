//! A cluster as the hub sees it through its agent.

use serde::{Deserialize, Serialize};

use super::{ClusterName, Timestamp, WorkspaceName};

/// A registered cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Its name.
    pub name: ClusterName,
    /// Whether its agent is connected now.
    pub connected: bool,
    /// Kubernetes version its agent reported.
    pub kubernetes_version: String,
    /// The agent's version.
    pub agent_version: String,
    /// When the hub last heard from the agent.
    pub last_heartbeat: Option<Timestamp>,
    /// Its workspace (filled by the hub when it answers; membership is kept apart).
    pub workspace: Option<WorkspaceName>,
    /// Its certificates are refused until it is added again (`cairn cluster revoke`).
    pub revoked: bool,
    /// Which enrolment its certificates must come from: adding a cluster again after a
    /// revocation starts a new one, and certificates of older ones stay refused.
    pub generation: u64,
    /// Revoked and no longer listed (`cairn cluster remove`); the record stays so that its
    /// certificates stay refused.
    pub removed: bool,
    /// When its last successful (`Completed`) backup was taken (filled by the hub when it
    /// answers).
    #[serde(default)]
    pub last_success: Option<Timestamp>,
    /// No successful backup within the period of one of its schedules plus the hub's
    /// `rpo_grace` (filled by the hub when it answers).
    #[serde(default)]
    pub rpo_at_risk: bool,
    /// Bytes of backups in its site's spool, not yet shipped to their locations, as its agent
    /// last reported them (filled by the hub when it answers).
    #[serde(default)]
    pub spool_bytes: u64,
    /// Backups in its site's spool (filled by the hub when it answers).
    #[serde(default)]
    pub spool_backups: u64,
}

impl Cluster {
    /// Cluster `name`, enrolled (enrolment `generation`), its agent not yet heard from.
    pub fn enrolled(name: ClusterName, generation: u64) -> Self {
        Self {
            name,
            connected: false,
            kubernetes_version: String::new(),
            agent_version: String::new(),
            last_heartbeat: None,
            workspace: None,
            revoked: false,
            generation,
            removed: false,
            last_success: None,
            rpo_at_risk: false,
            spool_bytes: 0,
            spool_backups: 0,
        }
    }
}

/// What the hub grants for one cluster's agent to enrol: the CLI makes a
/// [`JoinToken`](crate::join::JoinToken) of it with the hub's address.
#[derive(Debug, Clone)]
pub struct JoinGrant {
    /// The one-time secret. `Debug` does not show it.
    pub secret: secrecy::SecretString,
    /// When it stops working.
    pub expires: Timestamp,
    /// Hex SHA-256 of the CA the hub's clients trust.
    pub ca_sha256: String,
}

/// The hub's record of an unused join secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTicket {
    /// The cluster it enrols (placed in its workspace when the ticket was made).
    pub cluster: ClusterName,
    /// When it stops working.
    pub expires: Timestamp,
}
