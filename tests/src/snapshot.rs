//! A normalised picture of a namespace, to compare before a backup and after a restore as a user
//! would: every object a user made, with the fields the API server or controllers own removed.
//! Written independently of the product's own cleaning, so a restore that loses or alters
//! anything shows up here.

use anyhow::Result;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;
use std::collections::BTreeMap;

/// Kinds never compared: made by controllers or the API server, not by users.
const DERIVED_KINDS: &[&str] = &[
    "Event",
    "Endpoints",
    "EndpointSlice",
    "Lease",
    "ControllerRevision",
];

/// Every user-made object in `namespace`, normalised, by `group/Kind name`. The namespace itself
/// is written as `<ns>`, so a namespace-mapped copy compares equal to its original.
pub async fn namespace(client: &kube::Client, namespace: &str) -> Result<BTreeMap<String, Value>> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut out = BTreeMap::new();
    for group in discovery.groups() {
        for (api, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced
                || !caps.supports_operation(verbs::LIST)
                || DERIVED_KINDS.contains(&api.kind.as_str())
            {
                continue;
            }
            let list: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &api);
            for object in list.list(&ListParams::default()).await?.items {
                let mut value = serde_json::to_value(&object)?;
                if is_derived(&api.kind, &value) {
                    continue;
                }
                normalise(&mut value, namespace);
                let name = object.metadata.name.unwrap_or_default();
                out.insert(format!("{}/{} {name}", api.group, api.kind), value);
            }
        }
    }
    Ok(out)
}

fn is_derived(kind: &str, object: &Value) -> bool {
    let controlled = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(|r| r.get("controller") == Some(&Value::Bool(true))));
    let token = kind == "Secret"
        && object.get("type").and_then(Value::as_str) == Some("kubernetes.io/service-account-token");
    let root_ca = kind == "ConfigMap"
        && object.pointer("/metadata/name").and_then(Value::as_str) == Some("kube-root-ca.crt");
    controlled || token || root_ca
}

fn drop_keys(value: &mut Value, pointer: &str, keys: &[&str]) {
    if let Some(Value::Object(map)) = value.pointer_mut(pointer) {
        for k in keys {
            map.remove(*k);
        }
        if map.is_empty() && !pointer.is_empty() {
            // An emptied annotations map compares equal to none at all.
            if let Some((parent, last)) = pointer.rsplit_once('/')
                && let Some(Value::Object(p)) = value.pointer_mut(parent)
            {
                p.remove(last);
            }
        }
    }
}

fn normalise(value: &mut Value, namespace: &str) {
    drop_keys(
        value,
        "/metadata",
        &[
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
        ],
    );
    drop_keys(value, "", &["status", "types"]);
    if let Some(ns) = value.pointer_mut("/metadata/namespace") {
        *ns = Value::String("<ns>".into());
    }
    // Set afresh by the target: cluster IPs, node ports (unless preserved), binding bookkeeping,
    // the token references the token controller maintains.
    drop_keys(value, "/spec", &["clusterIP", "clusterIPs"]);
    if let Some(Value::Array(ports)) = value.pointer_mut("/spec/ports") {
        for p in ports {
            drop_keys(p, "", &["nodePort"]);
        }
    }
    drop_keys(
        value,
        "/metadata/annotations",
        &[
            "pv.kubernetes.io/bind-completed",
            "pv.kubernetes.io/bound-by-controller",
        ],
    );
    drop_keys(value, "", &["secrets"]);
    if let Some(Value::Array(subjects)) = value.pointer_mut("/subjects") {
        for s in subjects {
            if s.get("namespace").and_then(Value::as_str) == Some(namespace) {
                s["namespace"] = Value::String("<ns>".into());
            }
        }
    }
}
