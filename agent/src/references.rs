//! What an object refers to: the objects it needs in the same cluster. Computed from the objects
//! themselves, it serves two ends:
//! - backup with `--cluster-resources auto` takes the cluster-scoped objects that selected
//!   namespaced ones need (their Namespace, PVs, StorageClasses, ClusterRoles, CRDs);
//! - each resource type's `depends_on` in the manifest, from which restore derives its order.

use cairn_proto::model::GroupKind;
use serde_json::Value;

/// A reference: the kind, and the object's namespace (if namespaced) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The referenced object's group and kind.
    pub group_kind: GroupKind,
    /// Namespace of the target; `None` for cluster-scoped targets.
    pub namespace: Option<String>,
    /// Name of the target.
    pub name: String,
}

/// The cluster-scoped kinds references point to.
const CLUSTER_SCOPED: &[GroupKind] = &[
    GroupKind::NAMESPACE,
    GroupKind::PERSISTENT_VOLUME,
    GroupKind::STORAGE_CLASS,
    GroupKind::CRD,
    GroupKind::CLUSTER_ROLE,
];

/// Whether objects of `group_kind` are cluster-scoped, among the kinds references point to.
pub fn is_cluster_scoped(group_kind: &GroupKind) -> bool {
    CLUSTER_SCOPED.contains(group_kind)
}

/// Everything `object` (of `kind`; `crd` set for custom resources) refers to.
pub fn of(object: &Value, kind: &GroupKind, crd: Option<&str>) -> Vec<Reference> {
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let mut refs = Refs { ns, out: Vec::new() };
    if let Some(ns) = ns {
        refs.cluster(&GroupKind::NAMESPACE, Some(ns));
    }
    if let Some(crd) = crd {
        refs.cluster(&GroupKind::CRD, Some(crd));
    }
    let spec = object.get("spec").unwrap_or(&Value::Null);
    if *kind == GroupKind::PERSISTENT_VOLUME_CLAIM {
        refs.cluster(&GroupKind::PERSISTENT_VOLUME, str_at(spec, "/volumeName"));
        refs.cluster(&GroupKind::STORAGE_CLASS, str_at(spec, "/storageClassName"));
    } else if *kind == GroupKind::PERSISTENT_VOLUME {
        refs.cluster(&GroupKind::STORAGE_CLASS, str_at(spec, "/storageClassName"));
    } else if *kind == GroupKind::POD {
        refs.pod_spec(spec);
    } else if *kind == GroupKind::ENDPOINTS {
        refs.local(&GroupKind::SERVICE, str_at(object, "/metadata/name"));
    } else if *kind == GroupKind::ENDPOINT_SLICE {
        refs.local(
            &GroupKind::SERVICE,
            str_at(object, "/metadata/labels/kubernetes.io~1service-name"),
        );
    } else if [GroupKind::ROLE_BINDING, GroupKind::CLUSTER_ROLE_BINDING].contains(kind) {
        let role = str_at(object, "/roleRef/name");
        match str_at(object, "/roleRef/kind") {
            Some("ClusterRole") => refs.cluster(&GroupKind::CLUSTER_ROLE, role),
            Some("Role") => refs.local(&GroupKind::ROLE, role),
            _ => {}
        }
        for subject in object
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if str_at(subject, "/kind") == Some("ServiceAccount") {
                let name = str_at(subject, "/name").unwrap_or_default().to_owned();
                let namespace = str_at(subject, "/namespace").map(str::to_owned);
                refs.out.push(Reference {
                    group_kind: GroupKind::SERVICE_ACCOUNT,
                    namespace,
                    name,
                });
            }
        }
    } else if [GroupKind::INGRESS, GroupKind::EXTENSIONS_INGRESS].contains(kind) {
        for tls in spec.get("tls").and_then(Value::as_array).into_iter().flatten() {
            refs.local(&GroupKind::SECRET, str_at(tls, "/secretName"));
        }
        let mut services = Vec::new();
        collect_strings(spec, "serviceName", &mut services); // v1beta1
        collect_service_names(spec, &mut services); // v1: backend.service.name
        for s in services {
            refs.local(&GroupKind::SERVICE, Some(&s));
        }
    }
    // Workloads: the pod template, wherever the kind keeps it.
    if let Some(template) = spec
        .pointer("/template/spec")
        .or_else(|| spec.pointer("/jobTemplate/spec/template/spec"))
    {
        refs.pod_spec(template);
    }
    // Any group: the test has always matched the kind alone.
    if kind.kind() == "StatefulSet" {
        refs.local(&GroupKind::SERVICE, str_at(spec, "/serviceName"));
        for claim in spec
            .get("volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            refs.cluster(&GroupKind::STORAGE_CLASS, str_at(claim, "/spec/storageClassName"));
        }
    }
    refs.out.sort();
    refs.out.dedup();
    refs.out
}

struct Refs<'a> {
    ns: Option<&'a str>,
    out: Vec<Reference>,
}

impl Refs<'_> {
    fn cluster(&mut self, group_kind: &GroupKind, name: Option<&str>) {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            self.out.push(Reference {
                group_kind: group_kind.clone(),
                namespace: None,
                name: name.into(),
            });
        }
    }

    fn local(&mut self, group_kind: &GroupKind, name: Option<&str>) {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            let namespace = self.ns.map(str::to_owned);
            self.out.push(Reference {
                group_kind: group_kind.clone(),
                namespace,
                name: name.into(),
            });
        }
    }

    fn pod_spec(&mut self, pod: &Value) {
        self.local(&GroupKind::SERVICE_ACCOUNT, str_at(pod, "/serviceAccountName"));
        for s in pod
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.local(&GroupKind::SECRET, str_at(s, "/name"));
        }
        for v in pod.get("volumes").and_then(Value::as_array).into_iter().flatten() {
            self.local(&GroupKind::SECRET, str_at(v, "/secret/secretName"));
            self.local(&GroupKind::CONFIG_MAP, str_at(v, "/configMap/name"));
            self.local(
                &GroupKind::PERSISTENT_VOLUME_CLAIM,
                str_at(v, "/persistentVolumeClaim/claimName"),
            );
            for source in v
                .pointer("/projected/sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.local(&GroupKind::SECRET, str_at(source, "/secret/name"));
                self.local(&GroupKind::CONFIG_MAP, str_at(source, "/configMap/name"));
            }
        }
        for list in ["containers", "initContainers"] {
            for c in pod.get(list).and_then(Value::as_array).into_iter().flatten() {
                for from in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                    self.local(&GroupKind::SECRET, str_at(from, "/secretRef/name"));
                    self.local(&GroupKind::CONFIG_MAP, str_at(from, "/configMapRef/name"));
                }
                for env in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                    self.local(&GroupKind::SECRET, str_at(env, "/valueFrom/secretKeyRef/name"));
                    self.local(
                        &GroupKind::CONFIG_MAP,
                        str_at(env, "/valueFrom/configMapKeyRef/name"),
                    );
                }
            }
        }
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Every string under a key named `key`, anywhere below `value`.
fn collect_strings(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k == key, v) {
                    (true, Value::String(s)) => out.push(s.clone()),
                    _ => collect_strings(v, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, key, out)),
        _ => {}
    }
}

/// `service.name` of every `backend` below `value` (networking.k8s.io/v1 Ingress).
fn collect_service_names(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("service")
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
            {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| collect_service_names(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_service_names(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(refs: &[Reference]) -> Vec<(GroupKind, &str)> {
        refs.iter()
            .map(|r| (r.group_kind.clone(), r.name.as_str()))
            .collect()
    }

    fn gk(text: &str) -> GroupKind {
        text.parse().expect("group/Kind")
    }

    #[test]
    fn a_deployment_needs_its_namespace_account_config_secrets_and_claims() {
        let deploy = json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {
                "serviceAccountName": "web",
                "volumes": [{"configMap": {"name": "settings"}}, {"persistentVolumeClaim": {"claimName": "data"}}],
                "containers": [{"envFrom": [{"secretRef": {"name": "creds"}}]}]
            }}}
        });
        let refs = of(&deploy, &GroupKind::new("apps", "Deployment"), None);
        assert_eq!(
            kinds(&refs),
            [
                (gk("/ConfigMap"), "settings"),
                (gk("/Namespace"), "shop"),
                (gk("/PersistentVolumeClaim"), "data"),
                (gk("/Secret"), "creds"),
                (gk("/ServiceAccount"), "web")
            ]
        );
        assert!(
            refs.iter()
                .filter(|r| r.group_kind != GroupKind::NAMESPACE)
                .all(|r| r.namespace.as_deref() == Some("shop"))
        );
    }

    #[test]
    fn bindings_claims_and_custom_resources_point_to_cluster_objects() {
        let rb = json!({"metadata": {"name": "b", "namespace": "a"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "a"}]});
        let refs = of(&rb, &GroupKind::ROLE_BINDING, None);
        assert!(kinds(&refs).contains(&(gk("rbac.authorization.k8s.io/ClusterRole"), "view")));
        assert!(kinds(&refs).contains(&(gk("/ServiceAccount"), "robot")));
        let pvc = json!({"metadata": {"name": "c", "namespace": "a"}, "spec": {"volumeName": "pv-1", "storageClassName": "fast"}});
        let refs = of(&pvc, &GroupKind::PERSISTENT_VOLUME_CLAIM, None);
        assert!(
            refs.iter()
                .any(|r| r.group_kind == gk("/PersistentVolume") && r.namespace.is_none())
        );
        let cr = json!({"metadata": {"name": "w", "namespace": "a"}});
        let widget = GroupKind::new("example.com", "Widget");
        assert!(
            kinds(&of(&cr, &widget, Some("widgets.example.com")))
                .contains(&(GroupKind::CRD, "widgets.example.com"))
        );
    }
}
