//! What a cluster serves: every API group's preferred version and its resources, custom resources
//! included, minus those Cairn never backs up. Discovered per operation, never assumed, so a 1.20
//! cluster and a 1.33 one are both read as they are.

use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};

/// Resources never backed up, as `resource.group` (`resource` for core), with the reason.
///
/// Everything else that can be listed is taken. Resources without `list` (reviews, bindings) drop
/// out by themselves.
pub const SKIPPED: &[(&str, &str)] = &[
    (
        "events",
        "a record of the past, not state; restoring it would replay stale events",
    ),
    (
        "events.events.k8s.io",
        "the same events through the events.k8s.io API",
    ),
    (
        "leases.coordination.k8s.io",
        "leader-election and heartbeat locks of the source cluster's components",
    ),
    ("nodes", "machines of the source cluster; the target has its own"),
    (
        "componentstatuses",
        "health of the source cluster's control plane",
    ),
    (
        "csinodes.storage.k8s.io",
        "per-node CSI driver state of the source cluster",
    ),
    (
        "volumeattachments.storage.k8s.io",
        "attachments to the source cluster's nodes",
    ),
    (
        "certificatesigningrequests.certificates.k8s.io",
        "one-time requests, signed for the source cluster",
    ),
    (
        "apiservices.apiregistration.k8s.io",
        "the API server's own aggregation state",
    ),
    (
        "flowschemas.flowcontrol.apiserver.k8s.io",
        "API server priority settings, maintained by the server",
    ),
    (
        "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
        "API server priority settings, maintained by the server",
    ),
    ("pods.metrics.k8s.io", "live metrics"),
    ("nodes.metrics.k8s.io", "live metrics"),
];

/// The same objects served under two groups, as (`legacy`, `current`): the legacy one is not
/// taken when the current one is served, or each object would be backed up and restored twice.
pub const ALIASES: &[(&str, &str)] = &[
    ("ingresses.extensions", "ingresses.networking.k8s.io"),
    ("networkpolicies.extensions", "networkpolicies.networking.k8s.io"),
    ("podsecuritypolicies.extensions", "podsecuritypolicies.policy"),
    ("deployments.extensions", "deployments.apps"),
    ("daemonsets.extensions", "daemonsets.apps"),
    ("replicasets.extensions", "replicasets.apps"),
];

/// A resource type the cluster serves and Cairn takes.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Group, version, kind, plural.
    pub api: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl Resource {
    /// `resource.group`, or `resource` for core: the form of [`SKIPPED`] and of user filters.
    pub fn qualified(&self) -> String {
        qualified(&self.api.plural, &self.api.group)
    }
}

/// `resource.group`, or `resource` for the core group.
pub fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

/// Why `resource.group` is never backed up, if it is not.
pub fn skip_reason(qualified: &str) -> Option<&'static str> {
    SKIPPED.iter().find(|(r, _)| *r == qualified).map(|(_, why)| *why)
}

/// Every listable resource of the preferred version of every group, minus [`SKIPPED`].
pub async fn resources(client: &kube::Client) -> Result<Vec<Resource>, kube::Error> {
    // `run()`, not `run_aggregated()`: the aggregated discovery endpoint does not exist on 1.20
    // and yields no groups at all there.
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (api, caps) in group.recommended_resources() {
            if is_taken(&api, &caps) {
                out.push(Resource {
                    namespaced: caps.scope == Scope::Namespaced,
                    api,
                });
            }
        }
    }
    let served: std::collections::HashSet<String> = out.iter().map(Resource::qualified).collect();
    out.retain(|r| {
        let name = r.qualified();
        !ALIASES
            .iter()
            .any(|(legacy, current)| *legacy == name && served.contains(*current))
    });
    Ok(out)
}

fn is_taken(api: &ApiResource, caps: &ApiCapabilities) -> bool {
    let subresource = api.plural.contains('/');
    !subresource
        && caps.supports_operation(verbs::LIST)
        && skip_reason(&qualified(&api.plural, &api.group)).is_none()
}
