//! Vouching for a node agent: when one asks the hub to enrol as a node of this cluster, the hub
//! asks this cluster's agent whether to believe it. The proof is its pod's service-account token
//! (a projected token with audience `cairn`, bound to the pod): the API server says whose it is
//! and which pod it was issued to (TokenReview), and that pod must be a node agent's (its
//! service account is the node agents' one) running on the node claimed, a node the cluster has.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use secrecy::ExposeSecret;

use cairn_proto::model::Vouch;

/// The audience a node agent's token must be issued for.
pub const AUDIENCE: &str = "cairn";

/// The service account node agents run as: `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAgents {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Default for NodeAgents {
    /// The one `deploy/node-agent.yaml` makes.
    fn default() -> Self {
        Self {
            namespace: "cairn-system".into(),
            name: "cairn-node-agent".into(),
        }
    }
}

impl std::fmt::Display for NodeAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for NodeAgents {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Ok(Self {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
        }
    }
}

/// Whether `vouch` comes from a node agent of this cluster running on the node it names; `Err`
/// says why not, for the hub's log and the node agent's error.
pub async fn check(client: &kube::Client, agents: &NodeAgents, vouch: &Vouch) -> Result<(), String> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(vouch.token.expose_secret().to_owned()),
            audiences: Some(vec![AUDIENCE.to_owned()]),
        },
        ..Default::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&Default::default(), &review)
        .await
        .map_err(|e| format!("reviewing its token: {}", crate::kube_error(&e)))?;
    let status = reviewed.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(format!(
            "its token is not valid for audience {AUDIENCE}: {}",
            status.error.unwrap_or_else(|| "not authenticated".into())
        ));
    }
    let user = status.user.unwrap_or_default();
    let expected = format!("system:serviceaccount:{}:{}", agents.namespace, agents.name);
    let username = user.username.unwrap_or_default();
    if username != expected {
        return Err(format!(
            "its token is {username}'s, not the node agents' ({expected})"
        ));
    }
    let extra = user.extra.unwrap_or_default();
    let first = |key: &str| extra.get(key).and_then(|v| v.first()).cloned();
    let (Some(pod_name), Some(pod_uid)) = (
        first("authentication.kubernetes.io/pod-name"),
        first("authentication.kubernetes.io/pod-uid"),
    ) else {
        return Err("its token is not bound to a pod (mount a projected service-account token)".into());
    };
    let pod = Api::<Pod>::namespaced(client.clone(), &agents.namespace)
        .get_opt(&pod_name)
        .await
        .map_err(|e| format!("reading its pod {pod_name}: {}", crate::kube_error(&e)))?
        .ok_or_else(|| format!("its pod {pod_name} no longer exists"))?;
    if pod.metadata.uid.as_deref() != Some(pod_uid.as_str()) {
        return Err(format!(
            "its pod {pod_name} was replaced since the token was issued"
        ));
    }
    let on = pod.spec.and_then(|s| s.node_name).unwrap_or_default();
    if on != vouch.node {
        return Err(format!(
            "its pod {pod_name} runs on node {on:?}, not {}",
            vouch.node
        ));
    }
    Api::<Node>::all(client.clone())
        .get_opt(&vouch.node)
        .await
        .map_err(|e| format!("reading node {}: {}", vouch.node, crate::kube_error(&e)))?
        .ok_or_else(|| format!("the cluster has no node {}", vouch.node))?;
    Ok(())
}
