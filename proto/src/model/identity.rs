//! Who an agent is, as its client certificate says: the hub issues each enrolled agent a
//! certificate naming its cluster (and node, for a node agent) and the enrolment it came from, in
//! one URI subject-alternative name. Messages never say who sends them; the certificate does.

use std::fmt;

use super::ClusterName;

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentId {
    /// The agent of a cluster: backs it up and restores into it.
    Cluster {
        /// The cluster.
        cluster: ClusterName,
        /// The cluster's enrolment it holds a certificate of.
        generation: u64,
    },
    /// The agent of one node: moves volume data there.
    Node {
        /// The cluster.
        cluster: ClusterName,
        /// The node, as in pods' `spec.nodeName`.
        node: String,
        /// The cluster's enrolment it holds a certificate of.
        generation: u64,
    },
}

/// A URI that names no agent.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a Cairn agent identity (urn:cairn:cluster:<cluster>:<generation> or urn:cairn:node:<cluster>:<generation>:<node>)"
)]
pub struct InvalidAgentId(String);

impl AgentId {
    /// Its cluster.
    pub fn cluster(&self) -> &ClusterName {
        match self {
            Self::Cluster { cluster, .. } | Self::Node { cluster, .. } => cluster,
        }
    }

    /// The enrolment its certificate comes from.
    pub fn generation(&self) -> u64 {
        match self {
            Self::Cluster { generation, .. } | Self::Node { generation, .. } => *generation,
        }
    }

    /// As written in its certificate.
    pub fn uri(&self) -> String {
        match self {
            Self::Cluster { cluster, generation } => format!("urn:cairn:cluster:{cluster}:{generation}"),
            Self::Node {
                cluster,
                node,
                generation,
            } => format!("urn:cairn:node:{cluster}:{generation}:{node}"),
        }
    }

    /// From the URI in its certificate.
    pub fn from_uri(uri: &str) -> Result<Self, InvalidAgentId> {
        let invalid = || InvalidAgentId(uri.to_owned());
        let rest = uri.strip_prefix("urn:cairn:").ok_or_else(invalid)?;
        let mut parts = rest.splitn(4, ':');
        let (kind, cluster, generation) = (parts.next(), parts.next(), parts.next());
        let cluster: ClusterName = cluster.ok_or_else(invalid)?.parse().map_err(|_| invalid())?;
        let generation: u64 = generation.ok_or_else(invalid)?.parse().map_err(|_| invalid())?;
        match (kind, parts.next()) {
            (Some("cluster"), None) => Ok(Self::Cluster { cluster, generation }),
            (Some("node"), Some(node)) if valid_node(node) => Ok(Self::Node {
                cluster,
                node: node.to_owned(),
                generation,
            }),
            _ => Err(invalid()),
        }
    }
}

/// Whether `node` can be a node's name (a DNS subdomain: [`super::is_object_name`]).
pub fn valid_node(node: &str) -> bool {
    super::is_object_name(node)
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cluster { cluster, .. } => write!(f, "the agent of cluster {cluster}"),
            Self::Node { cluster, node, .. } => write!(f, "the agent of node {node} of cluster {cluster}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_their_uri_and_nothing_else_parses() {
        let cluster: ClusterName = "east".parse().expect("name");
        for id in [
            AgentId::Cluster {
                cluster: cluster.clone(),
                generation: 3,
            },
            AgentId::Node {
                cluster,
                node: "node-1.zone-a".into(),
                generation: 0,
            },
        ] {
            assert_eq!(AgentId::from_uri(&id.uri()).expect("parses"), id);
        }
        for bad in [
            "urn:cairn:cluster:east",
            "urn:cairn:cluster:east:x",
            "urn:cairn:cluster:east:1:node-1",
            "urn:cairn:node:east:1",
            "urn:cairn:node:east:1:Node_1",
            "urn:cairn:node:East:1:n",
            "spiffe://cairn/east",
        ] {
            assert!(AgentId::from_uri(bad).is_err(), "{bad} parsed");
        }
    }
}
