//! What restore does differently for each kind, one [`Rule`] per kind or family of kinds (after
//! Velero's restore actions: `AppliesTo` + `Execute`). A rule may leave an object to a controller
//! of the target ([`Rule::decide`]), drop or rewrite what the target assigns afresh
//! ([`Rule::clean`]), and keep what the target assigned when an existing object is overwritten
//! ([`Rule::carry_over`]). Adding a kind is adding a rule here and listing it in [`RULES`].
//!
//! The steps every object goes through (controller-owned objects left alone, server metadata and
//! status dropped, namespaces mapped) are [`super::prepare`]'s, not a rule's.

mod claim;
mod config_map;
mod job;
mod namespace;
mod pod;
mod rbac;
mod secret;
mod service;
mod service_account;

use cairn_proto::model::{GroupKind, RestoreSpec, VolumeResult};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// What restore does with the objects of some kinds. Every step defaults to doing nothing.
pub trait Rule: Sync {
    /// The kinds the rule is for.
    fn applies_to(&self) -> &'static [GroupKind];

    /// Whether to leave `object` (of `kind`, as the backup holds it) to a controller of the
    /// target: `Some(why)`, or `None` to restore it. May note in `known` what later objects
    /// (later in restore order) need.
    fn decide(&self, _kind: &GroupKind, _object: &Value, _known: &mut Known) -> Option<String> {
        None
    }

    /// Drops or rewrites what the target assigns afresh in `object`, an object to restore. Runs
    /// before the generic cleaning: `object` still has its backed-up namespace and metadata.
    fn clean(&self, _kind: &GroupKind, _object: &mut Value, _known: &Known, _spec: &RestoreSpec) {}

    /// Before `current`, in the target, is overwritten with `object` (`--existing-policy update`):
    /// copies into `object` what the target assigned and will not let change.
    fn carry_over(&self, _kind: &GroupKind, _current: &Value, _object: &mut Value) {}
}

/// Every rule. A kind may have more than one; they run in this order.
static RULES: &[&dyn Rule] = &[
    &namespace::Namespaces,
    &service::Services,
    &claim::Claims,
    &service_account::ServiceAccounts,
    &secret::Secrets,
    &config_map::ConfigMaps,
    &pod::Pods,
    &job::Jobs,
    &rbac::Bindings,
];

/// The rules for `kind`.
pub fn of(kind: &GroupKind) -> impl Iterator<Item = &'static dyn Rule> {
    RULES
        .iter()
        .copied()
        .filter(move |rule| rule.applies_to().contains(kind))
}

/// What the rules know during one restore: from the backup's volume data, and from the objects
/// already decided. Objects are keyed by their namespace and name in the backup.
#[derive(Debug, Default)]
pub struct Known {
    /// Services with a selector: their Endpoints and EndpointSlices are derived.
    selector_services: HashSet<(String, String)>,
    /// Claims whose data the backup holds.
    claims_with_data: HashSet<(String, String)>,
    /// The volumes those claims were bound to.
    volumes_with_data: HashSet<String>,
    /// What holds restored pods until their claims' data is in ([`crate::hold`]), and the restore's
    /// name; `None`: pods are not held.
    hold: Option<(crate::hold::Image, String)>,
    /// ReplicaSets of the backup, restored with it, that adopt held pods (their controller is a
    /// Deployment, or they have none).
    adoptable_sets: HashSet<(String, String)>,
    /// ReplicaSets whose pods are restored held: restored too, for their Deployment to adopt.
    sets_of_held_pods: HashSet<(String, String)>,
}

impl Known {
    /// For a backup whose volume data is `volumes`, restored pods held by `hold` (the image, and
    /// the restore's name).
    pub fn new(volumes: &[VolumeResult], hold: Option<(crate::hold::Image, String)>) -> Self {
        let taken = volumes.iter().filter(|v| !v.snapshot.is_empty());
        Self {
            claims_with_data: taken
                .clone()
                .map(|v| (v.namespace.clone(), v.claim.clone()))
                .collect(),
            volumes_with_data: taken.map(|v| v.volume.clone()).collect(),
            hold,
            ..Self::default()
        }
    }
}

impl Known {
    /// The claims with data that pod `object` (as backed up) mounts, if restored pods are held:
    /// those the hold waits for.
    pub fn held_claims(&self, object: &Value) -> Vec<String> {
        if self.hold.is_none() {
            return Vec::new();
        }
        let namespace = str_at(object, "/metadata/namespace");
        let spec = object.get("spec").cloned().unwrap_or_default();
        crate::hold::claims_of(&spec)
            .into_iter()
            .filter(|c| self.claims_with_data.contains(&(namespace.to_owned(), c.clone())))
            .collect()
    }
}

impl Known {
    /// ReplicaSet `object` (as backed up) is restored and adopts held pods.
    pub fn adoptable(&mut self, object: &Value) {
        self.adoptable_sets.insert(id(object));
    }

    /// Whether ReplicaSet `name` of `namespace` (in the backup) is restored and adopts held pods.
    pub fn adoptable_set(&self, namespace: &str, name: &str) -> bool {
        self.adoptable_sets
            .contains(&(namespace.to_owned(), name.to_owned()))
    }

    /// ReplicaSet `name` of `namespace` (in the backup) controls a pod restored held.
    pub fn held_pod_of_set(&mut self, namespace: &str, name: &str) {
        self.sets_of_held_pods
            .insert((namespace.to_owned(), name.to_owned()));
    }

    /// Whether ReplicaSet `object` (as backed up) controls a pod restored held.
    pub fn set_of_held_pods(&self, object: &Value) -> bool {
        self.sets_of_held_pods.contains(&id(object))
    }
}

/// The string at `pointer` in `object`, `""` if none.
fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object's namespace and name.
fn id(object: &Value) -> (String, String) {
    (
        str_at(object, "/metadata/namespace").to_owned(),
        str_at(object, "/metadata/name").to_owned(),
    )
}

/// Removes `keys` from the object at `pointer`, if there is one.
pub(super) fn remove(value: &mut Value, pointer: &str, keys: &[&str]) {
    if let Some(Value::Object(map)) = value.pointer_mut(pointer) {
        for key in keys {
            map.remove(*key);
        }
    }
}

/// Rewrites the namespace at `pointer` by the restore's mapping.
fn map_namespace(value: &mut Value, pointer: &str, spec: &RestoreSpec) {
    if let Some(Value::String(ns)) = value.pointer_mut(pointer) {
        *ns = spec.map_namespace(ns).to_owned();
    }
}

/// Copies `pointer` from `current` into `object`, unless `object` sets it.
fn keep(current: &Value, object: &mut Value, pointer: &str) {
    if object.pointer(pointer).is_none()
        && let Some(value) = current.pointer(pointer).cloned()
    {
        set(object, pointer, value);
    }
}

/// Sets `pointer` in `value`, creating objects on the way.
fn set(value: &mut Value, pointer: &str, new: Value) {
    let mut at = value;
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(part) = parts.next() {
        let Some(map) = at.as_object_mut() else { return };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), new);
            return;
        }
        at = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cairn_proto::model::{BackupName, ExistingPolicy, NamespaceFilter, RestoreName};

    /// A restore mapping namespaces by `mapping`.
    pub(crate) fn spec(mapping: &[(&str, &str)], preserve_node_ports: bool) -> RestoreSpec {
        RestoreSpec {
            name: RestoreName::new("r").expect("name"),
            backup: BackupName::new("b").expect("name"),
            target_cluster: None,
            namespaces: NamespaceFilter::default(),
            namespace_mapping: mapping.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect(),
            existing_policy: ExistingPolicy::Skip,
            preserve_node_ports,
            dry_run: false,
            include_sensitive: false,
            partial: false,
            keep_setid: false,
            volume_wait: None,
        }
    }

    #[test]
    fn the_registry_finds_the_rules_of_a_kind() {
        for rule in RULES {
            for kind in rule.applies_to() {
                assert!(of(kind).count() >= 1, "{kind}");
            }
        }
        assert_eq!(of(&GroupKind::SERVICE).count(), 1);
        assert_eq!(of(&GroupKind::new("apps", "Deployment")).count(), 0);
    }

    #[test]
    fn set_creates_the_objects_on_its_way() {
        let mut object = serde_json::json!({"spec": {}});
        set(&mut object, "/spec/template/metadata/labels/app", "web".into());
        assert_eq!(
            object,
            serde_json::json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}})
        );
    }
}
