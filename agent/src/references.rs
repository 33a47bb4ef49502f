//! What an object refers to: the objects it needs in the same cluster. Computed from the objects
//! themselves, it serves two ends:
//! - backup with `--cluster-resources auto` takes the cluster-scoped objects that selected
//!   namespaced ones need (their Namespace, PVs, StorageClasses, ClusterRoles, CRDs);
//! - each resource type's `depends_on` in the manifest, from which restore derives its order.

use serde_json::Value;

/// A reference: `group/Kind` (`/Kind` for core), and the object's namespace (if namespaced) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `group/Kind`.
    pub group_kind: String,
    /// Namespace of the target; `None` for cluster-scoped targets.
    pub namespace: Option<String>,
    /// Name of the target.
    pub name: String,
}

/// `group/Kind` of the CustomResourceDefinition kind.
pub const CRD: &str = "apiextensions.k8s.io/CustomResourceDefinition";
/// `group/Kind` of Namespaces.
pub const NAMESPACE: &str = "/Namespace";

const SERVICE_ACCOUNT: &str = "/ServiceAccount";
const SECRET: &str = "/Secret";
const CONFIG_MAP: &str = "/ConfigMap";
/// Claims, as `group/Kind`.
pub const PVC: &str = "/PersistentVolumeClaim";
const PV: &str = "/PersistentVolume";
const SERVICE: &str = "/Service";
const STORAGE_CLASS: &str = "storage.k8s.io/StorageClass";

/// Whether objects of `group_kind` are cluster-scoped, among the kinds references point to.
pub fn is_cluster_scoped(group_kind: &str) -> bool {
    matches!(
        group_kind,
        NAMESPACE | PV | STORAGE_CLASS | CRD | "rbac.authorization.k8s.io/ClusterRole"
    )
}

/// Everything `object` (of `group`, `kind`; `crd` set for custom resources) refers to.
pub fn of(object: &Value, group: &str, kind: &str, crd: Option<&str>) -> Vec<Reference> {
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let mut refs = Refs { ns, out: Vec::new() };
    if let Some(ns) = ns {
        refs.cluster(NAMESPACE, Some(ns));
    }
    if let Some(crd) = crd {
        refs.cluster(CRD, Some(crd));
    }
    let spec = object.get("spec").unwrap_or(&Value::Null);
    match (group, kind) {
        ("", "PersistentVolumeClaim") => {
            refs.cluster(PV, str_at(spec, "/volumeName"));
            refs.cluster(STORAGE_CLASS, str_at(spec, "/storageClassName"));
        }
        ("", "PersistentVolume") => refs.cluster(STORAGE_CLASS, str_at(spec, "/storageClassName")),
        ("", "Pod") => refs.pod_spec(spec),
        ("", "Endpoints") => refs.local(SERVICE, str_at(object, "/metadata/name")),
        ("discovery.k8s.io", "EndpointSlice") => {
            refs.local(
                SERVICE,
                str_at(object, "/metadata/labels/kubernetes.io~1service-name"),
            );
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let role = str_at(object, "/roleRef/name");
            match str_at(object, "/roleRef/kind") {
                Some("ClusterRole") => refs.cluster("rbac.authorization.k8s.io/ClusterRole", role),
                Some("Role") => refs.local("rbac.authorization.k8s.io/Role", role),
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
                        group_kind: SERVICE_ACCOUNT.into(),
                        namespace,
                        name,
                    });
                }
            }
        }
        ("networking.k8s.io" | "extensions", "Ingress") => {
            for tls in spec.get("tls").and_then(Value::as_array).into_iter().flatten() {
                refs.local(SECRET, str_at(tls, "/secretName"));
            }
            let mut services = Vec::new();
            collect_strings(spec, "serviceName", &mut services); // v1beta1
            collect_service_names(spec, &mut services); // v1: backend.service.name
            for s in services {
                refs.local(SERVICE, Some(&s));
            }
        }
        _ => {}
    }
    // Workloads: the pod template, wherever the kind keeps it.
    if let Some(template) = spec
        .pointer("/template/spec")
        .or_else(|| spec.pointer("/jobTemplate/spec/template/spec"))
    {
        refs.pod_spec(template);
    }
    if kind == "StatefulSet" {
        refs.local(SERVICE, str_at(spec, "/serviceName"));
        for claim in spec
            .get("volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            refs.cluster(STORAGE_CLASS, str_at(claim, "/spec/storageClassName"));
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
    fn cluster(&mut self, group_kind: &str, name: Option<&str>) {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            self.out.push(Reference {
                group_kind: group_kind.into(),
                namespace: None,
                name: name.into(),
            });
        }
    }

    fn local(&mut self, group_kind: &str, name: Option<&str>) {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            let namespace = self.ns.map(str::to_owned);
            self.out.push(Reference {
                group_kind: group_kind.into(),
                namespace,
                name: name.into(),
            });
        }
    }

    fn pod_spec(&mut self, pod: &Value) {
        self.local(SERVICE_ACCOUNT, str_at(pod, "/serviceAccountName"));
        for s in pod
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.local(SECRET, str_at(s, "/name"));
        }
        for v in pod.get("volumes").and_then(Value::as_array).into_iter().flatten() {
            self.local(SECRET, str_at(v, "/secret/secretName"));
            self.local(CONFIG_MAP, str_at(v, "/configMap/name"));
            self.local(PVC, str_at(v, "/persistentVolumeClaim/claimName"));
            for source in v
                .pointer("/projected/sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.local(SECRET, str_at(source, "/secret/name"));
                self.local(CONFIG_MAP, str_at(source, "/configMap/name"));
            }
        }
        for list in ["containers", "initContainers"] {
            for c in pod.get(list).and_then(Value::as_array).into_iter().flatten() {
                for from in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                    self.local(SECRET, str_at(from, "/secretRef/name"));
                    self.local(CONFIG_MAP, str_at(from, "/configMapRef/name"));
                }
                for env in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                    self.local(SECRET, str_at(env, "/valueFrom/secretKeyRef/name"));
                    self.local(CONFIG_MAP, str_at(env, "/valueFrom/configMapKeyRef/name"));
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

    fn kinds(refs: &[Reference]) -> Vec<(&str, &str)> {
        refs.iter()
            .map(|r| (r.group_kind.as_str(), r.name.as_str()))
            .collect()
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
        let refs = of(&deploy, "apps", "Deployment", None);
        assert_eq!(
            kinds(&refs),
            [
                ("/ConfigMap", "settings"),
                ("/Namespace", "shop"),
                ("/PersistentVolumeClaim", "data"),
                ("/Secret", "creds"),
                ("/ServiceAccount", "web")
            ]
        );
        assert!(
            refs.iter()
                .filter(|r| r.group_kind != NAMESPACE)
                .all(|r| r.namespace.as_deref() == Some("shop"))
        );
    }

    #[test]
    fn bindings_claims_and_custom_resources_point_to_cluster_objects() {
        let rb = json!({"metadata": {"name": "b", "namespace": "a"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "a"}]});
        let refs = of(&rb, "rbac.authorization.k8s.io", "RoleBinding", None);
        assert!(kinds(&refs).contains(&("rbac.authorization.k8s.io/ClusterRole", "view")));
        assert!(kinds(&refs).contains(&("/ServiceAccount", "robot")));
        let pvc = json!({"metadata": {"name": "c", "namespace": "a"}, "spec": {"volumeName": "pv-1", "storageClassName": "fast"}});
        let refs = of(&pvc, "", "PersistentVolumeClaim", None);
        assert!(
            refs.iter()
                .any(|r| r.group_kind == "/PersistentVolume" && r.namespace.is_none())
        );
        let cr = json!({"metadata": {"name": "w", "namespace": "a"}});
        assert!(
            kinds(&of(&cr, "example.com", "Widget", Some("widgets.example.com")))
                .contains(&(CRD, "widgets.example.com"))
        );
    }
}
