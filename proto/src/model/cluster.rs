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
}
