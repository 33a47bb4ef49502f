//! Restores that cannot escalate. Whoever may restore into a cluster must not become its
//! administrator by restoring: objects that grant power over the target are skipped, each with
//! its reason, unless the restore asks for them (`--include-sensitive`):
//! - ClusterRoles and Roles that grant every verb or every resource, `escalate`, `bind` or
//!   `impersonate`, and bindings to such roles (roles of the backup, and ClusterRoles the target
//!   already has, `cluster-admin` among them);
//! - the cluster's own RBAC objects (named `system:…`);
//! - admission webhooks (they see or change every matching request) and APIServices (they route
//!   part of the API to a service).

use cairn_proto::model::GroupKind;
use serde_json::Value;
use std::collections::HashMap;

/// Kinds that are sensitive whatever they hold, and why.
const ALWAYS: &[(GroupKind, &str)] = &[
    (
        GroupKind::from_static("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        "an admission webhook sees every matching request to the API server",
    ),
    (
        GroupKind::from_static("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        "an admission webhook sees and changes every matching request to the API server",
    ),
    (
        GroupKind::from_static("apiregistration.k8s.io", "APIService"),
        "an APIService hands part of the Kubernetes API to a service",
    ),
];

/// Verbs that let a subject give itself or others more than it has.
const POWER_VERBS: &[&str] = &["escalate", "bind", "impersonate"];

/// Decides, object by object in restore order, what a restore without `--include-sensitive`
/// leaves out.
#[derive(Debug, Default)]
pub struct Guard {
    /// ClusterRoles that grant power, by name: what they grant.
    cluster_roles: HashMap<String, String>,
    /// Roles of the backup that grant power, by namespace and name.
    roles: HashMap<(String, String), String>,
    /// Why the target's ClusterRoles are not known, if they are not: then a binding to a
    /// ClusterRole the backup does not hold is held back too.
    unknown: Option<String>,
}

impl Guard {
    /// A guard that knows the target's ClusterRoles `existing` (as the API server lists them).
    pub fn new<'a>(existing: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut guard = Self::default();
        for role in existing {
            if let Some(grants) = grants(role) {
                guard.cluster_roles.insert(name(role).to_owned(), grants);
            }
        }
        guard
    }

    /// A guard that knows the ClusterRoles of the target `client` reaches (one list call).
    pub async fn of_target(client: &kube::Client) -> Self {
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
            client.clone(),
            &kube::api::ApiResource::erase::<k8s_openapi::api::rbac::v1::ClusterRole>(&()),
        );
        match api.list(&kube::api::ListParams::default()).await {
            Ok(list) => {
                let roles: Vec<Value> = list
                    .items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .collect();
                Self::new(&roles)
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing the target's ClusterRoles: bindings to them are held back");
                Self {
                    unknown: Some(format!("the target's ClusterRoles could not be listed: {e}")),
                    ..Self::default()
                }
            }
        }
    }

    /// Why `object` (of `kind`, as the backup holds it) is not restored without
    /// `--include-sensitive`; `None`: it may be.
    pub fn check(&mut self, kind: &GroupKind, object: &Value) -> Option<String> {
        if let Some((_, why)) = ALWAYS.iter().find(|(k, _)| k == kind) {
            return Some((*why).to_owned());
        }
        let rbac = [
            GroupKind::ROLE,
            GroupKind::CLUSTER_ROLE,
            GroupKind::ROLE_BINDING,
            GroupKind::CLUSTER_ROLE_BINDING,
        ];
        if !rbac.contains(kind) {
            return None;
        }
        let name = name(object);
        let system = name
            .starts_with("system:")
            .then(|| "it is one of the cluster's own (system:) RBAC objects".to_owned());
        if *kind == GroupKind::CLUSTER_ROLE || *kind == GroupKind::ROLE {
            let grants = grants(object);
            if let Some(grants) = &grants {
                if *kind == GroupKind::CLUSTER_ROLE {
                    self.cluster_roles.insert(name.to_owned(), grants.clone());
                } else {
                    let key = (namespace(object).to_owned(), name.to_owned());
                    self.roles.insert(key, grants.clone());
                }
            }
            return system.or(grants.map(|g| format!("it grants {g}")));
        }
        if system.is_some() {
            return system;
        }
        let role_kind = object.pointer("/roleRef/kind").and_then(Value::as_str)?;
        let role = object.pointer("/roleRef/name").and_then(Value::as_str)?;
        let grants = match role_kind {
            "ClusterRole" => self.cluster_roles.get(role),
            "Role" => self.roles.get(&(namespace(object).to_owned(), role.to_owned())),
            _ => None,
        };
        match (grants, &self.unknown) {
            (Some(grants), _) => Some(format!("it binds {role_kind} {role}, which grants {grants}")),
            (None, Some(why)) if role_kind == "ClusterRole" => Some(format!(
                "it binds ClusterRole {role}, and what that grants is not known ({why})"
            )),
            (None, _) => None,
        }
    }
}

fn name(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What power a role's rules grant, in words; `None`: none of the dangerous kind.
fn grants(role: &Value) -> Option<String> {
    let rules = role.get("rules")?.as_array()?;
    let mut what: Vec<String> = Vec::new();
    for rule in rules {
        let list = |field: &str| -> Vec<&str> {
            rule.get(field)
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        };
        let (verbs, resources) = (list("verbs"), list("resources"));
        let mut add = |text: String| {
            if !what.contains(&text) {
                what.push(text);
            }
        };
        if verbs.contains(&"*") && (resources.contains(&"*") || !list("nonResourceURLs").is_empty()) {
            add("every verb on every resource".to_owned());
        } else if verbs.contains(&"*") {
            add(format!("every verb on {}", resources.join(", ")));
        } else if resources.contains(&"*") {
            add(format!("{} on every resource", verbs.join(", ")));
        }
        for verb in POWER_VERBS {
            if verbs.contains(verb) {
                add(format!("'{verb}'"));
            }
        }
    }
    (!what.is_empty()).then(|| what.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster_admin() -> Value {
        json!({"metadata": {"name": "cluster-admin"}, "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]}]})
    }

    #[test]
    fn bindings_to_the_targets_cluster_admin_are_held_back() {
        let existing = [
            cluster_admin(),
            json!({"metadata": {"name": "view"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        ];
        let mut guard = Guard::new(&existing);
        let crb = json!({"metadata": {"name": "ops-admin"},
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "ops"}]});
        assert_eq!(
            guard.check(&GroupKind::CLUSTER_ROLE_BINDING, &crb).as_deref(),
            Some("it binds ClusterRole cluster-admin, which grants every verb on every resource")
        );
        let viewer = json!({"metadata": {"name": "ops-view"},
            "roleRef": {"kind": "ClusterRole", "name": "view"}});
        assert_eq!(guard.check(&GroupKind::CLUSTER_ROLE_BINDING, &viewer), None);
    }

    #[test]
    fn roles_of_the_backup_that_grant_power_are_held_back_with_their_bindings() {
        let mut guard = Guard::default();
        let binder = json!({"metadata": {"name": "binder", "namespace": "app"}, "rules": [
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
             "verbs": ["create", "bind"]}]});
        assert_eq!(
            guard.check(&GroupKind::ROLE, &binder).as_deref(),
            Some("it grants 'bind'")
        );
        let rb = json!({"metadata": {"name": "b", "namespace": "app"},
            "roleRef": {"kind": "Role", "name": "binder"}});
        assert_eq!(
            guard.check(&GroupKind::ROLE_BINDING, &rb).as_deref(),
            Some("it binds Role binder, which grants 'bind'")
        );
        let elsewhere = json!({"metadata": {"name": "b", "namespace": "other"},
            "roleRef": {"kind": "Role", "name": "binder"}});
        assert_eq!(guard.check(&GroupKind::ROLE_BINDING, &elsewhere), None);
        let reader = json!({"metadata": {"name": "reader", "namespace": "app"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
        assert_eq!(guard.check(&GroupKind::ROLE, &reader), None);
    }

    #[test]
    fn webhooks_apiservices_and_system_objects_are_held_back() {
        let mut guard = Guard::default();
        let webhook =
            GroupKind::from_static("admissionregistration.k8s.io", "ValidatingWebhookConfiguration");
        assert!(
            guard
                .check(&webhook, &json!({"metadata": {"name": "policy"}}))
                .is_some()
        );
        let system = json!({"metadata": {"name": "system:controller:foo"},
            "roleRef": {"kind": "ClusterRole", "name": "view"}});
        assert_eq!(
            guard.check(&GroupKind::CLUSTER_ROLE_BINDING, &system).as_deref(),
            Some("it is one of the cluster's own (system:) RBAC objects")
        );
        assert_eq!(
            guard.check(&GroupKind::CONFIG_MAP, &json!({"metadata": {"name": "system:x"}})),
            None
        );
    }
}
