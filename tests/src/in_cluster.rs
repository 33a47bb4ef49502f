//! Cairn running inside a cluster with real [`Node`](crate::Node)s, deployed as a user deploys it:
//! `deploy/agent.yaml` and `deploy/node-agent.yaml`, with Cairn's images as
//! `deploy/images/build.sh` builds them from the release binaries (`tests/run.sh` does, into
//! `<target>/images`).
//!
//! The test bed's overlay changes only what a cluster without kube-proxy or registry needs, and
//! what names this hub:
//! - `imagePullPolicy: Never` (each node imports the image archive; nothing is pulled);
//! - the host network, with `KUBERNETES_SERVICE_HOST=127.0.0.1` and `KUBERNETES_SERVICE_PORT` the
//!   API server's port: no pod here reaches a ClusterIP, and the hub listens on loopback;
//! - the environment variables the manifests tell users to set (`CAIRN_HUB`, `CAIRN_CLUSTER`), and
//!   the Secret `cairn-join` and ConfigMap `cairn-hub-ca` their comments tell users to create.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

use crate::ControlPlane;
use crate::cairn::HubProcess;
use crate::storage::{AZURE_ACCOUNT, AZURE_KEY, AzuriteServer};

/// The cluster agent's manifest, as shipped.
pub const AGENT_YAML: &str = include_str!("../../deploy/agent.yaml");
/// The node agent's DaemonSet, as shipped.
pub const NODE_AGENT_YAML: &str = include_str!("../../deploy/node-agent.yaml");
/// How long Cairn's pods may take to start and link to the hub.
const LINK_TIMEOUT: Duration = Duration::from_secs(120);

/// Image archive `name` (`cairn-agent`, `cairn-hub`) built by `deploy/images/build.sh` into
/// `<target>/images`, next to the release binaries it was built from.
pub fn image_archive(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/<test> → target/images/<name>.tar
    let target = exe
        .ancestors()
        .nth(3)
        .context("test executable has no target directory")?;
    let path = target.join("images").join(format!("{name}.tar"));
    if !path.exists() {
        bail!(
            "{} not found: build the images first (cargo build --release -p cairn-agent -p cairn-hub \
             && deploy/images/build.sh {} {}; tests/run.sh does)",
            path.display(),
            target.join("release").display(),
            target.join("images").display()
        );
    }
    Ok(path)
}

/// Applies `yaml` (one of deploy/'s manifests) to `cp` with the test bed's overlay (module docs),
/// each workload's container environment variables in `env` set to the values given.
pub async fn apply_overlaid(cp: &ControlPlane, yaml: &str, env: &[(&str, &str)]) -> Result<()> {
    let port = cp.server().rsplit(':').next().unwrap_or_default().to_owned();
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let mut value: Value = serde::Deserialize::deserialize(doc).context("parsing a deploy/ manifest")?;
        if let Some(pod) = value.pointer_mut("/spec/template/spec") {
            overlay(pod, &port, env);
        }
        if !value.is_null() {
            docs.push(serde_json::to_string(&value)?);
        }
    }
    cp.apply(&docs.join("\n---\n")).await?;
    Ok(())
}

fn overlay(pod: &mut Value, api_port: &str, env: &[(&str, &str)]) {
    pod["hostNetwork"] = json!(true);
    pod["dnsPolicy"] = json!("ClusterFirstWithHostNet");
    let Some(containers) = pod.get_mut("containers").and_then(Value::as_array_mut) else {
        return;
    };
    for container in containers {
        container["imagePullPolicy"] = json!("Never");
        let vars = container["env"].as_array().cloned().unwrap_or_default();
        let mut vars: Vec<Value> = vars
            .into_iter()
            .filter(|v| {
                let name = v["name"].as_str().unwrap_or_default();
                !env.iter().any(|(n, _)| *n == name) && !name.starts_with("KUBERNETES_SERVICE_")
            })
            .collect();
        for (name, value) in env {
            vars.push(json!({"name": name, "value": value}));
        }
        vars.push(json!({"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}));
        vars.push(json!({"name": "KUBERNETES_SERVICE_PORT", "value": api_port}));
        container["env"] = Value::Array(vars);
    }
}

/// A bucket the agents' pods reach, made `hub`'s default location `vault`: container `vault` of
/// azurite on loopback (the hub's built-in location is a directory on its own host, which no pod
/// sees). Keep the server while the test runs.
pub async fn bucket_for_pods(hub: &HubProcess) -> Result<AzuriteServer> {
    let azure = AzuriteServer::start().await?;
    add_pod_location(hub, &azure, "vault", true).await?;
    Ok(azure)
}

/// Adds location `name` to `hub` (its default if `default`): container `name` of `azure`, made here.
pub async fn add_pod_location(
    hub: &HubProcess,
    azure: &AzuriteServer,
    name: &str,
    default: bool,
) -> Result<()> {
    azure.create_container(name).await?;
    let credentials = azure.dir().join(format!("{name}.env"));
    std::fs::write(&credentials, format!("AZURE_STORAGE_ACCOUNT_KEY={AZURE_KEY}\n"))?;
    hub.cli_line(&format!(
        "location add {name} --provider azure --account {AZURE_ACCOUNT} --bucket {name} --endpoint {} \
         --credentials-file {}{}",
        azure.endpoint(),
        credentials.display(),
        if default { " --default" } else { "" }
    ))
    .await?
    .ok()?;
    Ok(())
}

/// Deploys Cairn's cluster agent and node agents into `cp` (which has nodes) for `hub`, as a user
/// would: each node imports the agent's image, the cluster is added to the hub and its join token
/// kept in Secret `cairn-join`, the hub's CA in ConfigMap `cairn-hub-ca`, then deploy/agent.yaml
/// and deploy/node-agent.yaml. Returns once the hub shows the cluster connected and every node's
/// node agent has linked to the hub.
pub async fn deploy_agents(hub: &HubProcess, cp: &ControlPlane) -> Result<()> {
    let archive = image_archive("cairn-agent")?;
    for node in cp.nodes() {
        node.import(&archive, "docker.io/cairn/agent")?;
    }
    let token = hub.join_token(cp.name(), &[]).await?;
    let ca = std::fs::read_to_string(hub.ca_file())?;
    let prerequisites = json!([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cairn-system"}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "cairn-join", "namespace": "cairn-system"},
         "stringData": {"token": token}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "cairn-hub-ca", "namespace": "cairn-system"},
         "data": {"ca.crt": ca}},
    ]);
    let docs: Vec<String> = prerequisites
        .as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect();
    cp.apply(&docs.join("\n---\n")).await?;

    apply_overlaid(cp, AGENT_YAML, &[]).await?;
    let client = hub.client().await?;
    crate::wait_until(
        &format!("the agent of {} in its cluster to connect", cp.name()),
        LINK_TIMEOUT,
        || crate::cairn::connected(client.clone(), cp.name()),
    )
    .await
    .with_context(|| pod_logs(cp, "cairn-system", 20))?;

    apply_overlaid(
        cp,
        NODE_AGENT_YAML,
        &[("CAIRN_HUB", hub.url()), ("CAIRN_CLUSTER", cp.name())],
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(cp.client(), "cairn-system");
    let nodes = cp.nodes().len();
    crate::wait_until(
        &format!("{nodes} node agents of {} to link to the hub", cp.name()),
        LINK_TIMEOUT,
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=cairn-node-agent"))
                .await?;
            let mut linked = 0;
            for pod in &list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let log = pods.logs(&name, &LogParams::default()).await.unwrap_or_default();
                if log.contains("linked to the hub") {
                    linked += 1;
                }
            }
            Ok((linked == nodes).then_some(()))
        },
    )
    .await
    .with_context(|| pod_logs(cp, "cairn-system", 20))?;
    Ok(())
}

/// For a failed wait: the last `lines` lines of every container log of `namespace` (every run of
/// each container, init containers too), read from the nodes' `/var/log/pods`: a container that
/// crashed at start has no log the API serves, and one that restarted has more than one.
pub fn pod_logs(cp: &ControlPlane, namespace: &str, lines: usize) -> String {
    let mut out = String::new();
    for node in cp.nodes() {
        let Ok(pods) = node.host_path("/var/log/pods") else {
            continue;
        };
        for pod in std::fs::read_dir(pods).into_iter().flatten().flatten() {
            if !pod
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{namespace}_"))
            {
                continue;
            }
            for container in std::fs::read_dir(pod.path()).into_iter().flatten().flatten() {
                for file in std::fs::read_dir(container.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                    let all: Vec<&str> = text.lines().collect();
                    let tail = all[all.len().saturating_sub(lines)..].join("\n");
                    out.push_str(&format!(
                        "--- {} on {}:\n{tail}\n",
                        file.path().display(),
                        node.name()
                    ));
                }
            }
        }
    }
    out
}

/// The log of the container in pod `name` of `namespace`, through the API server and the kubelet.
pub async fn pod_log(cp: &ControlPlane, namespace: &str, name: &str) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(cp.client(), namespace);
    Ok(pods.logs(name, &LogParams::default()).await?)
}
