//! Applying multi-document YAML manifests, much as `kubectl apply -f` does: each document is
//! created, or merged into the object that exists; kinds are resolved by discovery, so custom
//! resources work once their CRD is served.
//!
//! Not server-side apply: on 1.20 it rejects a Service port without an explicit `protocol`
//! ("associative list with keys has an element that omits key field").

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde::Deserialize as _;
use std::time::Duration;

use crate::wait_until;

/// Field manager recorded on everything the test bed applies.
const FIELD_MANAGER: &str = "cairn-testbed";
/// How long a kind may take to be served: a CRD applied in the same manifest needs a moment.
const KIND_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies every document of `yaml` in order and returns the objects as the server stored them.
/// Namespaced objects without a namespace go to `default`.
pub async fn apply(client: &kube::Client, yaml: &str) -> Result<Vec<DynamicObject>> {
    let mut applied = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(doc).context("parsing manifest YAML")?;
        if value.is_null() {
            continue; // an empty document between two `---`
        }
        let object: DynamicObject = serde_json::from_value(value).context("manifest document")?;
        applied.push(apply_one(client, object).await?);
    }
    Ok(applied)
}

async fn apply_one(client: &kube::Client, object: DynamicObject) -> Result<DynamicObject> {
    let Some(types) = object.types.clone() else {
        bail!("manifest document without apiVersion/kind")
    };
    let gvk = GroupVersionKind::try_from(&types)?;
    let name = object
        .metadata
        .name
        .clone()
        .context("manifest document without metadata.name")?;
    let what = format!("{} {name}", types.kind);
    let (resource, caps) = wait_until(&format!("kind {} to be served", types.kind), KIND_TIMEOUT, || {
        let gvk = gvk.clone();
        async move { Ok(discovery::pinned_kind(client, &gvk).await.ok()) }
    })
    .await?;
    let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
        let ns = object.metadata.namespace.as_deref().unwrap_or("default");
        Api::namespaced_with(client.clone(), ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let deadline = tokio::time::Instant::now() + KIND_TIMEOUT;
    let created = loop {
        match api.create(&params, &object).await {
            // The server asks to come back: a pod in a namespace whose service-account token
            // the token controller has not made yet.
            Err(kube::Error::Api(status))
                if status.reason == "ServerTimeout" && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            created => break created,
        }
    };
    match created {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            api.patch(&name, &params, &Patch::Merge(&object)).await
        }
        created => created,
    }
    .with_context(|| format!("applying {what}"))
}
