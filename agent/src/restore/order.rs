//! Restore order, computed in one place from the objects' own dependencies.
//!
//! At backup time every resource type records the kinds its objects reference (`depends_on`,
//! see [`crate::references`]): a Deployment its ServiceAccount, ConfigMaps, Secrets and claims; a
//! claim its PersistentVolume and StorageClass; a RoleBinding its Role or ClusterRole; a custom
//! resource its CRD; every namespaced object its Namespace. Restore creates referenced kinds
//! first: a topological order of the backup's types under those edges. Where the edges leave a
//! choice, CRDs come first (custom resources cannot be served before them), then cluster-scoped
//! types, then namespaced ones, each group by name so the order is stable. A cycle (rare:
//! Endpoints and Services refer to each other only one way) is broken at the type that would
//! come first by that same rule. Controllers come after what they control ([`CONTROLLED_FIRST`]).

use cairn_proto::model::{GroupKind, ResourceSummary};
use std::collections::{BTreeMap, BTreeSet};

/// Tie-break rank: lower first.
fn rank(r: &ResourceSummary) -> (u8, GroupKind) {
    let tier = if r.group_kind() == GroupKind::CRD {
        0
    } else if r.group_kind() == GroupKind::NAMESPACE {
        1
    } else if !r.namespaced {
        2
    } else {
        3
    };
    (tier, r.group_kind())
}

/// (controller, controlled): a pod held until its data is in is created before its ReplicaSet or
/// StatefulSet, and its ReplicaSet before its Deployment, so each controller adopts what the
/// restore made rather than making its own, unheld ([`crate::hold`]).
const CONTROLLED_FIRST: &[(GroupKind, GroupKind)] = &[
    (GroupKind::DEPLOYMENT, GroupKind::REPLICA_SET),
    (GroupKind::REPLICA_SET, GroupKind::POD),
    (GroupKind::STATEFUL_SET, GroupKind::POD),
];

/// The backup's resource types in restore order.
pub fn restore_order(resources: &[ResourceSummary]) -> Vec<ResourceSummary> {
    let present: BTreeSet<GroupKind> = resources.iter().map(ResourceSummary::group_kind).collect();
    // Edges among present types only: a dependency on a kind not in the backup is the target's
    // business (it exists there, or the object is reported when it fails).
    let mut waiting_on: BTreeMap<GroupKind, BTreeSet<GroupKind>> = resources
        .iter()
        .map(|r| {
            let deps = r
                .depends_on
                .iter()
                .filter(|d| present.contains(*d) && **d != r.group_kind())
                .cloned()
                .collect();
            (r.group_kind(), deps)
        })
        .collect();
    for (controller, controlled) in CONTROLLED_FIRST {
        if present.contains(controlled)
            && let Some(deps) = waiting_on.get_mut(controller)
        {
            deps.insert(controlled.clone());
        }
    }
    let mut remaining: Vec<&ResourceSummary> = resources.iter().collect();
    remaining.sort_by_key(|r| rank(r));
    let mut order = Vec::with_capacity(resources.len());
    while !remaining.is_empty() {
        let next = remaining
            .iter()
            .position(|r| waiting_on.get(&r.group_kind()).is_none_or(BTreeSet::is_empty))
            .unwrap_or(0); // a cycle: take the best-ranked type anyway
        let chosen = remaining.remove(next);
        let done = chosen.group_kind();
        for deps in waiting_on.values_mut() {
            deps.remove(&done);
        }
        order.push(chosen.clone());
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, kind: &str, namespaced: bool, deps: &[&str]) -> ResourceSummary {
        ResourceSummary {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            resource: format!("{}s", kind.to_lowercase()),
            namespaced,
            count: 1,
            parts: vec![],
            depends_on: deps.iter().map(|d| d.parse().expect("group/Kind")).collect(),
        }
    }

    fn kinds(order: &[ResourceSummary]) -> Vec<String> {
        order.iter().map(|r| r.kind.clone()).collect()
    }

    #[test]
    fn referenced_kinds_come_first() {
        let backup = vec![
            res(
                "example.com",
                "Widget",
                true,
                &["/Namespace", "apiextensions.k8s.io/CustomResourceDefinition"],
            ),
            res(
                "apps",
                "Deployment",
                true,
                &[
                    "/Namespace",
                    "/ConfigMap",
                    "/ServiceAccount",
                    "/PersistentVolumeClaim",
                ],
            ),
            res(
                "",
                "PersistentVolumeClaim",
                true,
                &["/Namespace", "/PersistentVolume"],
            ),
            res("", "ConfigMap", true, &["/Namespace"]),
            res("", "ServiceAccount", true, &["/Namespace"]),
            res("", "PersistentVolume", false, &["storage.k8s.io/StorageClass"]),
            res("storage.k8s.io", "StorageClass", false, &[]),
            res(
                "rbac.authorization.k8s.io",
                "RoleBinding",
                true,
                &["/Namespace", "rbac.authorization.k8s.io/Role", "/ServiceAccount"],
            ),
            res("rbac.authorization.k8s.io", "Role", true, &["/Namespace"]),
            res("", "Namespace", false, &[]),
            res("apiextensions.k8s.io", "CustomResourceDefinition", false, &[]),
        ];
        let order = kinds(&restore_order(&backup));
        let pos = |k: &str| {
            order
                .iter()
                .position(|o| o == k)
                .unwrap_or_else(|| panic!("{k} missing"))
        };
        assert_eq!(pos("CustomResourceDefinition"), 0);
        assert_eq!(pos("Namespace"), 1);
        assert!(pos("StorageClass") < pos("PersistentVolume"));
        assert!(pos("PersistentVolume") < pos("PersistentVolumeClaim"));
        assert!(pos("PersistentVolumeClaim") < pos("Deployment"));
        assert!(pos("ConfigMap") < pos("Deployment"));
        assert!(pos("ServiceAccount") < pos("RoleBinding"));
        assert!(pos("Role") < pos("RoleBinding"));
        assert_eq!(order.len(), backup.len());
    }

    #[test]
    fn controllers_come_after_what_they_control() {
        let backup = vec![
            res("apps", "Deployment", true, &["/Namespace"]),
            res("apps", "StatefulSet", true, &["/Namespace"]),
            res("apps", "ReplicaSet", true, &["/Namespace"]),
            res("", "Pod", true, &["/Namespace"]),
            res("", "Namespace", false, &[]),
        ];
        assert_eq!(
            kinds(&restore_order(&backup)),
            ["Namespace", "Pod", "ReplicaSet", "Deployment", "StatefulSet"]
        );
    }

    #[test]
    fn a_cycle_still_yields_every_type() {
        let backup = vec![res("", "A", true, &["/B"]), res("", "B", true, &["/A"])];
        assert_eq!(restore_order(&backup).len(), 2);
    }
}
