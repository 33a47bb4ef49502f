//! Turning a backed-up object into one the target accepts: which objects to leave to the target's
//! controllers, which server-owned fields to drop, and how namespace mapping rewrites names.

use cairn_proto::model::{RestoreSpec, VolumeResult};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// What to do with one object.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Create (or update) this cleaned object.
    Restore(Value),
    /// Do not restore: a controller of the target recreates it; the reason says which.
    LeftToController(String),
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

/// Annotations the PV controller sets on bound claims; dropping them lets it bind afresh.
const BIND_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
];

/// Labels the Job controller puts on its pod template (and selector) from the source Job's uid.
const JOB_LABELS: &[&str] = &["controller-uid", "job-name"];

/// Annotations naming the provisioner or node of a claim's old volume: a claim whose data Cairn
/// restores is provisioned afresh.
const PROVISIONING_ANNOTATIONS: &[&str] = &[
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// Decides and cleans, object by object, in restore order.
#[derive(Default)]
pub struct Preparer {
    /// Services with a selector, as (namespace, name) in the backup: their Endpoints are derived.
    selector_services: HashSet<(String, String)>,
    /// Claims whose data the backup holds, as (namespace, name) in the backup.
    claims_with_data: HashSet<(String, String)>,
    /// The volumes those claims were bound to.
    volumes_with_data: HashSet<String>,
}

impl Preparer {
    /// For a backup whose volume data is `volumes`: claims with data get new volumes (the old
    /// PersistentVolumes are not restored; the data is written into the new ones).
    pub fn new(volumes: &[VolumeResult]) -> Self {
        let taken = volumes.iter().filter(|v| !v.snapshot.is_empty());
        Self {
            claims_with_data: taken
                .clone()
                .map(|v| (v.namespace.clone(), v.claim.clone()))
                .collect(),
            volumes_with_data: taken.map(|v| v.volume.clone()).collect(),
            ..Self::default()
        }
    }

    /// What to do with `object` (of `group`, `kind`) under `spec`.
    pub fn prepare(&mut self, mut object: Value, group: &str, kind: &str, spec: &RestoreSpec) -> Decision {
        let meta = |o: &Value, f: &str| {
            o.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (namespace, name) = (meta(&object, "namespace"), meta(&object, "name"));
        if let Some(owner) = controller_owner(&object) {
            return Decision::LeftToController(format!("owned by {owner}, whose controller recreates it"));
        }
        match (group, kind) {
            ("", "Secret")
                if object.get("type").and_then(Value::as_str)
                    == Some("kubernetes.io/service-account-token") =>
            {
                return Decision::LeftToController(
                    "service-account token: the target's token controller issues a new one".into(),
                );
            }
            ("", "ServiceAccount") if name == "default" && !customised_default_account(&object) => {
                return Decision::LeftToController(
                    "created in every namespace by the target's service-account controller".into(),
                );
            }
            ("", "ConfigMap") if name == "kube-root-ca.crt" => {
                return Decision::LeftToController(
                    "published in every namespace by the target's root-CA controller".into(),
                );
            }
            ("", "Service")
                if object
                    .pointer("/spec/selector")
                    .and_then(Value::as_object)
                    .is_some_and(|s| !s.is_empty()) =>
            {
                self.selector_services.insert((namespace.clone(), name.clone()));
            }
            ("", "Endpoints")
                if self
                    .selector_services
                    .contains(&(namespace.clone(), name.clone())) =>
            {
                return Decision::LeftToController(
                    "endpoints of a Service with a selector: the endpoints controller derives them".into(),
                );
            }
            ("", "PersistentVolume") if self.volumes_with_data.contains(&name) => {
                return Decision::LeftToController(
                    "its claim's data is in the backup: the claim gets a new volume from its provisioner, and Cairn writes the data into it".into(),
                );
            }
            ("", "PersistentVolumeClaim")
                if self.claims_with_data.contains(&(namespace.clone(), name.clone())) =>
            {
                clean(&mut object, group, kind, spec);
                remove(&mut object, "/spec", &["volumeName"]);
                remove(&mut object, "/metadata/annotations", PROVISIONING_ANNOTATIONS);
                return Decision::Restore(object);
            }
            ("discovery.k8s.io", "EndpointSlice") => {
                let service = object
                    .pointer("/metadata/labels/kubernetes.io~1service-name")
                    .and_then(Value::as_str);
                if service.is_some_and(|s| {
                    self.selector_services
                        .contains(&(namespace.clone(), s.to_owned()))
                }) {
                    return Decision::LeftToController("endpoint slice of a Service with a selector: the endpoint-slice controller derives it".into());
                }
            }
            _ => {}
        }
        clean(&mut object, group, kind, spec);
        Decision::Restore(object)
    }
}

/// Whether a `default` ServiceAccount carries more than the controller gives it (pull secrets,
/// labels, annotations, a token-mount setting): then it is restored like any other object.
fn customised_default_account(object: &Value) -> bool {
    let has = |p: &str| {
        object
            .pointer(p)
            .is_some_and(|v| !v.is_null() && v != &Value::Array(vec![]) && v != &Value::Object(Map::new()))
    };
    has("/imagePullSecrets")
        || has("/automountServiceAccountToken")
        || has("/metadata/labels")
        || has("/metadata/annotations")
}

/// `Kind name` of the object's controlling owner, if it has one.
fn controller_owner(object: &Value) -> Option<String> {
    let owners = object.pointer("/metadata/ownerReferences")?.as_array()?;
    let owner = owners
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?;
    let field = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or_default();
    Some(format!("{} {}", field("kind"), field("name")))
}

fn remove(value: &mut Value, pointer: &str, keys: &[&str]) {
    if let Some(Value::Object(map)) = value.pointer_mut(pointer) {
        for key in keys {
            map.remove(*key);
        }
    }
}

fn object_mut<'a>(value: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    value.pointer_mut(pointer).and_then(Value::as_object_mut)
}

/// Drops server-owned state and applies namespace mapping.
pub fn clean(object: &mut Value, group: &str, kind: &str, spec: &RestoreSpec) {
    remove(object, "/metadata", SERVER_METADATA);
    remove(object, "", &["status"]);
    if let Some(meta) = object_mut(object, "/metadata") {
        if let Some(Value::String(ns)) = meta.get_mut("namespace") {
            *ns = spec.map_namespace(ns).to_owned();
        }
        if kind == "Namespace"
            && group.is_empty()
            && let Some(Value::String(name)) = meta.get_mut("name")
        {
            *name = spec.map_namespace(name).to_owned();
        }
    }
    match (group, kind) {
        ("", "Service") => {
            let headless = object.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            if !headless {
                remove(object, "/spec", &["clusterIP", "clusterIPs"]);
            }
            remove(object, "/spec", &["healthCheckNodePort"]);
            if !spec.preserve_node_ports
                && let Some(Value::Array(ports)) = object.pointer_mut("/spec/ports")
            {
                for port in ports {
                    remove(port, "", &["nodePort"]);
                }
            }
        }
        ("", "PersistentVolume") => {
            remove(object, "/spec/claimRef", &["uid", "resourceVersion"]);
            if let Some(Value::String(ns)) = object.pointer_mut("/spec/claimRef/namespace") {
                *ns = spec.map_namespace(ns).to_owned();
            }
        }
        ("", "PersistentVolumeClaim") => remove(object, "/metadata/annotations", BIND_ANNOTATIONS),
        ("", "Pod") => remove(object, "/spec", &["nodeName"]),
        ("", "ServiceAccount") => {
            // References to the source's token Secrets: the target's token controller adds its own.
            let prefix = format!(
                "{}-token-",
                object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
            if let Some(Value::Array(secrets)) = object.pointer_mut("/secrets") {
                secrets.retain(|s| {
                    !s.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.starts_with(&prefix))
                });
            }
        }
        ("batch", "Job") if object.pointer("/spec/manualSelector").and_then(Value::as_bool) != Some(true) => {
            remove(object, "/spec", &["selector"]);
            remove(object, "/spec/template/metadata/labels", JOB_LABELS);
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if let Some(Value::Array(subjects)) = object.pointer_mut("/subjects") {
                for subject in subjects {
                    if let Some(Value::String(ns)) = subject.get_mut("namespace") {
                        *ns = spec.map_namespace(ns).to_owned();
                    }
                }
            }
        }
        _ => {}
    }
}

/// Before overwriting `current` with `object` (`--existing-policy update`): keep what the target
/// assigned and will not let change — a Service's cluster IPs and node ports (unless the backup
/// sets them), a claim's volume, a Job's generated selector, the token references of an account.
pub fn carry_over(current: &Value, object: &mut Value, group: &str, kind: &str) {
    let mut keep = |pointer: &str| {
        if object.pointer(pointer).is_none()
            && let Some(value) = current.pointer(pointer).cloned()
        {
            set(object, pointer, value);
        }
    };
    match (group, kind) {
        ("", "Service") => {
            keep("/spec/clusterIP");
            keep("/spec/clusterIPs");
            keep("/spec/healthCheckNodePort");
            let live_ports = current
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(Value::Array(ports)) = object.pointer_mut("/spec/ports") {
                for port in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                    let same = live_ports.iter().find(|l| {
                        l.get("port") == port.get("port") && l.get("protocol") == port.get("protocol")
                    });
                    if let (Some(node_port), Some(map)) =
                        (same.and_then(|l| l.get("nodePort")), port.as_object_mut())
                    {
                        map.insert("nodePort".into(), node_port.clone());
                    }
                }
            }
        }
        ("", "PersistentVolumeClaim") => keep("/spec/volumeName"),
        ("", "ServiceAccount") => keep("/secrets"),
        ("batch", "Job") => {
            keep("/spec/selector");
            for label in JOB_LABELS {
                keep(&format!("/spec/template/metadata/labels/{label}"));
            }
        }
        _ => {}
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
mod tests {
    use super::*;
    use cairn_proto::model::{BackupName, ExistingPolicy, NamespaceFilter, RestoreName};
    use serde_json::json;

    fn spec(mapping: &[(&str, &str)], preserve_node_ports: bool) -> RestoreSpec {
        RestoreSpec {
            name: RestoreName::new("r").expect("name"),
            backup: BackupName::new("b").expect("name"),
            target_cluster: None,
            namespaces: NamespaceFilter::default(),
            namespace_mapping: mapping.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect(),
            existing_policy: ExistingPolicy::Skip,
            preserve_node_ports,
            dry_run: false,
            volume_wait: None,
        }
    }

    #[test]
    fn services_lose_cluster_ips_and_node_ports_unless_asked() {
        let svc = json!({"metadata": {"name": "web", "namespace": "app", "uid": "u", "resourceVersion": "9"},
            "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "type": "NodePort",
                     "ports": [{"port": 80, "nodePort": 30080}], "selector": {"app": "web"}},
            "status": {"loadBalancer": {}}});
        let mut p = Preparer::default();
        let Decision::Restore(out) = p.prepare(svc.clone(), "", "Service", &spec(&[("app", "copy")], false))
        else {
            panic!("restored")
        };
        assert_eq!(
            out,
            json!({"metadata": {"name": "web", "namespace": "copy"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": "web"}}})
        );
        let Decision::Restore(kept) = p.prepare(svc, "", "Service", &spec(&[], true)) else {
            panic!("restored")
        };
        assert_eq!(kept.pointer("/spec/ports/0/nodePort"), Some(&json!(30080)));
        // Its Endpoints come later in restore order and are left to the controller.
        let ep = json!({"metadata": {"name": "web", "namespace": "app"}});
        assert!(matches!(
            p.prepare(ep, "", "Endpoints", &spec(&[], false)),
            Decision::LeftToController(_)
        ));
    }

    #[test]
    fn headless_services_keep_none_and_owned_objects_are_left_to_controllers() {
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
        let Decision::Restore(out) = Preparer::default().prepare(headless, "", "Service", &spec(&[], false))
        else {
            panic!()
        };
        assert_eq!(out.pointer("/spec/clusterIP"), Some(&json!("None")));
        let rs = json!({"metadata": {"name": "web-1", "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]}});
        assert_eq!(
            Preparer::default().prepare(rs, "apps", "ReplicaSet", &spec(&[], false)),
            Decision::LeftToController("owned by Deployment web, whose controller recreates it".into())
        );
    }

    #[test]
    fn updates_keep_what_the_target_assigned() {
        let live = json!({"spec": {"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"],
                                   "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}});
        let mut restored = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        carry_over(&live, &mut restored, "", "Service");
        assert_eq!(restored, live);
    }

    #[test]
    fn mapping_rewrites_namespaces_names_and_subjects() {
        let rb = json!({"metadata": {"name": "b", "namespace": "app"}, "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "app"}]});
        let Decision::Restore(out) = Preparer::default().prepare(
            rb,
            "rbac.authorization.k8s.io",
            "RoleBinding",
            &spec(&[("app", "copy")], false),
        ) else {
            panic!()
        };
        assert_eq!(out.pointer("/subjects/0/namespace"), Some(&json!("copy")));
        let ns = json!({"metadata": {"name": "app"}, "spec": {"finalizers": ["kubernetes"]}});
        let Decision::Restore(out) =
            Preparer::default().prepare(ns, "", "Namespace", &spec(&[("app", "copy")], false))
        else {
            panic!()
        };
        assert_eq!(out.pointer("/metadata/name"), Some(&json!("copy")));
    }
}
