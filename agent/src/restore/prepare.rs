//! Turning a backed-up object into one the target accepts: the steps every object goes through
//! (controller-owned objects left to their controllers, server-owned fields dropped, namespaces
//! mapped), around the rules of its kind ([`super::rules`]).

use cairn_proto::model::{GroupKind, RestoreSpec, VolumeResult};
use serde_json::Value;

use super::guard::Guard;
use super::rules::{self, Known, remove};

/// What to do with one object.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Create (or update) this cleaned object.
    Restore(Value),
    /// Do not restore: a controller of the target recreates it; the reason says which.
    LeftToController(String),
    /// Do not restore unless asked: it would grant power over the target; the reason says how.
    Sensitive(String),
}

/// Metadata the API server owns: set afresh by the target.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    // Owners are matched by uid, which the target assigns anew: a kept reference would point to
    // nothing and the garbage collector would delete the restored object.
    "ownerReferences",
];

/// Decides and cleans, object by object, in restore order.
#[derive(Default)]
pub struct Preparer {
    /// What the rules know: the backup's volume data, and what earlier objects told them.
    known: Known,
    /// What holds back sensitive objects; `None`: the restore includes them.
    guard: Option<Guard>,
}

impl Preparer {
    /// For a backup whose volume data is `volumes`: claims with data get new volumes (the old
    /// PersistentVolumes are not restored; the data is written into the new ones).
    /// `guard`: what holds back objects that would grant power over the target (`None`: the
    /// restore includes them).
    /// `hold`: the image that holds restored pods until their data is in, and the restore's name
    /// (`None`: pods are not held).
    pub fn new(
        volumes: &[VolumeResult],
        guard: Option<Guard>,
        hold: Option<(crate::hold::Image, String)>,
    ) -> Self {
        Self {
            known: Known::new(volumes, hold),
            guard,
        }
    }

    /// ReplicaSet `object` (as backed up) is in the backup and restored with it: if its
    /// controller is a Deployment, or it has none, its pods with claim data are restored held.
    pub fn backed_up_set(&mut self, object: &Value) {
        let owner = controller_owner(object);
        if owner.is_none_or(|o| o.kind == GroupKind::DEPLOYMENT) {
            self.known.adoptable(object);
        }
    }

    /// What to do with `object` (of `kind`) under `spec`.
    pub fn prepare(&mut self, mut object: Value, kind: &GroupKind, spec: &RestoreSpec) -> Decision {
        if let Some(owner) = controller_owner(&object) {
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let adopts = owner.kind == GroupKind::STATEFUL_SET
                || owner.kind == GroupKind::REPLICA_SET && self.known.adoptable_set(namespace, owner.name);
            let held_pod = *kind == GroupKind::POD
                && adopts
                && !finished(&object)
                && !self.known.held_claims(&object).is_empty();
            let set_of_held = *kind == GroupKind::REPLICA_SET
                && owner.kind == GroupKind::DEPLOYMENT
                && self.known.set_of_held_pods(&object);
            if held_pod && owner.kind == GroupKind::REPLICA_SET {
                self.known.held_pod_of_set(namespace, owner.name);
            }
            let (owner_kind, owner) = (owner.kind.kind(), owner.name);
            if !(held_pod || set_of_held) {
                return Decision::LeftToController(format!(
                    "owned by {owner_kind} {owner}, whose controller recreates it"
                ));
            }
        }
        if let Some(why) = self.guard.as_mut().and_then(|g| g.check(kind, &object)) {
            return Decision::Sensitive(why);
        }
        for rule in rules::of(kind) {
            if let Some(why) = rule.decide(kind, &object, &mut self.known) {
                return Decision::LeftToController(why);
            }
        }
        for rule in rules::of(kind) {
            rule.clean(kind, &mut object, &self.known, spec);
        }
        clean(&mut object, spec);
        Decision::Restore(object)
    }
}

/// An object's controlling owner.
///
/// A pod that mounts claims with data is restored held ([`crate::hold`]) when its controller
/// adopts it rather than making one of its own: a StatefulSet claims the orphan pods its selector
/// matches, by name; a ReplicaSet claims those its selector matches, and is restored itself
/// (before its Deployment, which adopts it: it looks for a ReplicaSet whose template equals its
/// own, ignoring the hash in the name and labels, before it makes one) — if the backup holds it
/// and its controller is a Deployment or none ([`Known::adoptable_set`]).
struct Owner<'a> {
    /// Its group and kind.
    pub kind: GroupKind,
    /// Its name.
    pub name: &'a str,
}

/// The object's controlling owner, if it has one.
fn controller_owner(object: &Value) -> Option<Owner<'_>> {
    let owners = object.pointer("/metadata/ownerReferences")?.as_array()?;
    let owner = owners
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?;
    let field = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or_default();
    // `apps/v1`, or `v1` for the core group.
    let group = field("apiVersion")
        .rsplit_once('/')
        .map_or("", |(group, _)| group);
    Some(Owner {
        kind: GroupKind::new(group.to_owned(), field("kind").to_owned()),
        name: field("name"),
    })
}

/// Whether pod `object` has ended (`Succeeded` or `Failed`, an evicted pod say): its controller
/// has replaced it, so it is not restored held.
fn finished(object: &Value) -> bool {
    matches!(
        object.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// Drops server-owned state and maps the object's namespace.
fn clean(object: &mut Value, spec: &RestoreSpec) {
    remove(object, "/metadata", SERVER_METADATA);
    remove(object, "", &["status"]);
    if let Some(Value::String(ns)) = object.pointer_mut("/metadata/namespace") {
        *ns = spec.map_namespace(ns).to_owned();
    }
}

/// Before overwriting `current` with `object` (`--existing-policy update`): keep what the target
/// assigned and will not let change, as the rules of `kind` say (a Service's cluster IPs and node
/// ports unless the backup sets them, a claim's volume, a Job's generated selector, the token
/// references of an account).
pub fn carry_over(current: &Value, object: &mut Value, kind: &GroupKind) {
    for rule in rules::of(kind) {
        rule.carry_over(kind, current, object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::rules::tests::spec;
    use serde_json::json;

    /// Claim `claim` of namespace `app` backed up with data, and the image that holds pods.
    fn held_data(claim: &str) -> ([VolumeResult; 1], crate::hold::Image) {
        let data = [VolumeResult {
            namespace: "app".into(),
            claim: claim.into(),
            volume: "pv-1".into(),
            snapshot: "s".into(),
            ..VolumeResult::default()
        }];
        let image = crate::hold::Image {
            image: "cairn/agent:0.1.0".into(),
            pull_policy: None,
        };
        (data, image)
    }

    /// A StatefulSet's pod that mounts a claim with data is restored, held, for its controller to
    /// adopt; without a hold image, or without data, it is left to the controller as before.
    #[test]
    fn a_controllers_pod_with_claim_data_is_restored_held() {
        let pod = json!({"metadata": {"name": "db-0", "namespace": "app", "uid": "u",
            "labels": {"app": "db", "controller-revision-hash": "db-7f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true, "uid": "s"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "db"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]}});
        let (data, image) = held_data("data-db-0");
        let spec = spec(&[("app", "app")], false);
        let mut held = Preparer::new(&data, None, Some((image.clone(), "back".into())));
        let Decision::Restore(out) = held.prepare(pod.clone(), &GroupKind::POD, &spec) else {
            panic!("restored")
        };
        assert_eq!(out["spec"]["initContainers"][0]["name"], crate::hold::NAME);
        assert_eq!(
            out["metadata"]["labels"]["controller-revision-hash"], "db-7f",
            "its controller adopts it"
        );
        assert!(out["metadata"].get("ownerReferences").is_none());
        assert!(out["spec"].get("nodeName").is_none());

        let unheld = Preparer::new(&data, None, None).prepare(pod.clone(), &GroupKind::POD, &spec);
        assert!(matches!(unheld, Decision::LeftToController(_)), "{unheld:?}");
        let no_data =
            Preparer::new(&[], None, Some((image, "back".into()))).prepare(pod, &GroupKind::POD, &spec);
        assert!(matches!(no_data, Decision::LeftToController(_)), "{no_data:?}");
    }

    /// A Deployment's pod that mounts a claim with data is restored held, and its ReplicaSet
    /// after it, for the Deployment to adopt, if the backup holds that ReplicaSet and a
    /// Deployment controls it; the Deployment's other ReplicaSets are left to it.
    #[test]
    fn a_deployments_held_pod_brings_its_replica_set() {
        let owned = |kind: &str, name: &str| json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": true, "uid": "o"}]);
        let pod = json!({"metadata": {"name": "web-5d8-x2", "namespace": "app",
            "labels": {"app": "web", "pod-template-hash": "5d8"}, "ownerReferences": owned("ReplicaSet", "web-5d8")},
            "spec": {"containers": [{"name": "web"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}]}});
        let set = |name: &str| {
            json!({"metadata": {"name": name, "namespace": "app", "ownerReferences": owned("Deployment", "web")},
                   "spec": {"replicas": 1}})
        };
        let (data, image) = held_data("web-data");
        let spec = spec(&[], false);
        let mut preparer = Preparer::new(&data, None, Some((image, "back".into())));
        // Its ReplicaSet not in the backup (or another kind's): nothing would adopt it.
        assert!(matches!(
            preparer.prepare(pod.clone(), &GroupKind::POD, &spec),
            Decision::LeftToController(_)
        ));
        let mut rollout = set("web-5d8");
        rollout["metadata"]["ownerReferences"] = json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "controller": true}]);
        preparer.backed_up_set(&rollout);
        assert!(matches!(
            preparer.prepare(pod.clone(), &GroupKind::POD, &spec),
            Decision::LeftToController(_)
        ));
        preparer.backed_up_set(&set("web-5d8"));
        let Decision::Restore(held) = preparer.prepare(pod, &GroupKind::POD, &spec) else {
            panic!("restored")
        };
        assert_eq!(held["spec"]["initContainers"][0]["name"], crate::hold::NAME);
        assert_eq!(held["metadata"]["labels"]["pod-template-hash"], "5d8");
        let Decision::Restore(restored) = preparer.prepare(set("web-5d8"), &GroupKind::REPLICA_SET, &spec)
        else {
            panic!("its ReplicaSet restored")
        };
        assert!(
            restored["metadata"].get("ownerReferences").is_none(),
            "for its Deployment to adopt"
        );
        assert_eq!(
            preparer.prepare(set("web-4c1"), &GroupKind::REPLICA_SET, &spec),
            Decision::LeftToController("owned by Deployment web, whose controller recreates it".into())
        );
    }

    #[test]
    fn services_lose_cluster_ips_and_node_ports_unless_asked() {
        let svc = json!({"metadata": {"name": "web", "namespace": "app", "uid": "u", "resourceVersion": "9"},
            "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "type": "NodePort",
                     "ports": [{"port": 80, "nodePort": 30080}], "selector": {"app": "web"}},
            "status": {"loadBalancer": {}}});
        let mut p = Preparer::default();
        let Decision::Restore(out) =
            p.prepare(svc.clone(), &GroupKind::SERVICE, &spec(&[("app", "copy")], false))
        else {
            panic!("restored")
        };
        assert_eq!(
            out,
            json!({"metadata": {"name": "web", "namespace": "copy"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": "web"}}})
        );
        let Decision::Restore(kept) = p.prepare(svc, &GroupKind::SERVICE, &spec(&[], true)) else {
            panic!("restored")
        };
        assert_eq!(kept.pointer("/spec/ports/0/nodePort"), Some(&json!(30080)));
        // Its Endpoints come later in restore order and are left to the controller.
        let ep = json!({"metadata": {"name": "web", "namespace": "app"}});
        assert!(matches!(
            p.prepare(ep, &GroupKind::ENDPOINTS, &spec(&[], false)),
            Decision::LeftToController(_)
        ));
    }

    #[test]
    fn headless_services_keep_none_and_owned_objects_are_left_to_controllers() {
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
        let Decision::Restore(out) =
            Preparer::default().prepare(headless, &GroupKind::SERVICE, &spec(&[], false))
        else {
            panic!()
        };
        assert_eq!(out.pointer("/spec/clusterIP"), Some(&json!("None")));
        let rs = json!({"metadata": {"name": "web-1", "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]}});
        assert_eq!(
            Preparer::default().prepare(rs, &GroupKind::new("apps", "ReplicaSet"), &spec(&[], false)),
            Decision::LeftToController("owned by Deployment web, whose controller recreates it".into())
        );
    }

    #[test]
    fn updates_keep_what_the_target_assigned() {
        let live = json!({"spec": {"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"],
                                   "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}});
        let mut restored = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        carry_over(&live, &mut restored, &GroupKind::SERVICE);
        assert_eq!(restored, live);
    }

    #[test]
    fn mapping_rewrites_namespaces_names_and_subjects() {
        let rb = json!({"metadata": {"name": "b", "namespace": "app"}, "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "app"}]});
        let Decision::Restore(out) =
            Preparer::default().prepare(rb, &GroupKind::ROLE_BINDING, &spec(&[("app", "copy")], false))
        else {
            panic!()
        };
        assert_eq!(out.pointer("/subjects/0/namespace"), Some(&json!("copy")));
        let ns = json!({"metadata": {"name": "app"}, "spec": {"finalizers": ["kubernetes"]}});
        let Decision::Restore(out) =
            Preparer::default().prepare(ns, &GroupKind::NAMESPACE, &spec(&[("app", "copy")], false))
        else {
            panic!()
        };
        assert_eq!(out.pointer("/metadata/name"), Some(&json!("copy")));
    }
}
