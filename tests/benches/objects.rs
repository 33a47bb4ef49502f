//! `cargo bench --bench objects`: Cairn against kubectl and the API server's own ceiling, on
//! 20,000 ConfigMaps and Secrets in 20 namespaces of a local 1.20 control plane.
//!
//! Backup: Cairn's backup of the namespaces, `kubectl get configmaps,secrets -A -o json`, and the
//! bare paginated LIST calls. Restore into empty control planes: Cairn's restore, `kubectl create
//! -f` of the same objects, and a plain client POSTing them over 32 connections with no ordering or
//! cleaning. Also the agent's peak RSS. `CAIRN_BENCH_SIZES=20000,100000` adds rows; the last line
//! is always the 20,000 row.
//!
//! The hub runs in this process; each agent is this binary re-run in agent mode, so its memory is
//! its own and it is built with the bench profile.

use anyhow::{Context, Result, bail};
use cairn_cli::client::Client;
use cairn_hub::inventory::{Inventory, rocks::RocksStore};
use cairn_proto::model::{
    BackupName, BackupSpec, ClusterName, ClusterResources, NamespaceFilter, OperationId, Phase, RestoreName,
    RestoreSpec,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testbed::{ControlPlane, wait_until};

/// Set (to `JOIN_TOKEN STATE_DIR KUBECONFIG`) when this binary runs as an agent.
const AGENT_MODE: &str = "CAIRN_BENCH_AGENT";
const NAMESPACES: usize = 20;
/// The plain client's connections, as in the measurement.
const PARALLEL: usize = 32;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    if let Ok(args) = std::env::var(AGENT_MODE) {
        let mut it = args.split(' ');
        let (token, state_dir, kubeconfig) = (
            it.next().context("join token")?,
            it.next().context("state directory")?,
            it.next().context("kubeconfig")?,
        );
        cairn_proto::process::init();
        let identity = cairn_agent::Identity {
            state_dir: Some(state_dir.into()),
            secret: String::new(),
            token: Some(token.to_owned()),
            hub: None,
            cluster: None,
            node_agents: cairn_agent::vouch::NodeAgents::default(),
            spool: None,
        };
        runtime.block_on(cairn_agent::run(
            identity,
            Some(std::path::Path::new(kubeconfig)),
            tokio_util::sync::CancellationToken::new(),
        ))?;
        bail!("agent stopped");
    }
    let sizes: Vec<usize> = std::env::var("CAIRN_BENCH_SIZES")
        .unwrap_or_else(|_| "20000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        for n in sizes {
            rows.push(measure(n).await?);
        }
        anyhow::Ok(rows)
    })?;
    println!();
    println!(
        "{:>7} {:>9} {:>10} {:>7} {:>9} {:>11} {:>11} {:>10} {:>11} {:>13}",
        "objects",
        "backup_s",
        "kubectl_s",
        "list_s",
        "backup/k",
        "restore_s",
        "kcreate_s",
        "parallel_s",
        "restore/par",
        "agent_rss_mib"
    );
    for r in &rows {
        println!(
            "{:>7} {:>9.2} {:>10.2} {:>7.2} {:>9.2} {:>11.2} {:>11.2} {:>10.2} {:>11.2} {:>13}",
            r.n,
            r.backup,
            r.kubectl_get,
            r.list,
            r.backup / r.kubectl_get,
            r.restore,
            r.kubectl_create,
            r.parallel,
            r.parallel / r.restore,
            r.agent_rss_mib
        );
    }
    let last = rows
        .iter()
        .find(|r| r.n == 20_000)
        .or(rows.last())
        .context("no rows")?;
    println!(
        "objects n={} backup_s={:.2} kubectl_get_s={:.2} list_s={:.2} restore_s={:.2} kubectl_create_s={:.2} parallel_create_s={:.2} agent_rss_mib={}",
        last.n,
        last.backup,
        last.kubectl_get,
        last.list,
        last.restore,
        last.kubectl_create,
        last.parallel,
        last.agent_rss_mib
    );
    Ok(())
}

struct Row {
    n: usize,
    backup: f64,
    kubectl_get: f64,
    list: f64,
    restore: f64,
    kubectl_create: f64,
    parallel: f64,
    agent_rss_mib: u64,
}

/// The objects: namespaces first, then ConfigMaps and Secrets round-robin over them (~600 bytes each).
fn objects(n: usize) -> Vec<Value> {
    let mut out: Vec<Value> = (0..NAMESPACES)
        .map(|i| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("bench-{i:02}")}}))
        .collect();
    for i in 0..n {
        let ns = format!("bench-{:02}", i % NAMESPACES);
        let payload = format!("{i:08}-").repeat(40);
        out.push(if i % 2 == 0 {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i:06}"), "namespace": ns, "labels": {"bench": "objects"}},
                "data": {"payload": payload}})
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": format!("secret-{i:06}"), "namespace": ns, "labels": {"bench": "objects"}},
                "stringData": {"payload": payload}})
        });
    }
    out
}

/// POSTs `objects` over `PARALLEL` connections: namespaces first, the rest in any order.
async fn parallel_create(client: &kube::Client, objects: &[Value]) -> Result<()> {
    let (namespaces, rest): (Vec<&Value>, Vec<&Value>) =
        objects.iter().partition(|o| o["kind"] == "Namespace");
    for batch in [namespaces, rest] {
        futures::stream::iter(batch)
            .map(|o| {
                let client = client.clone();
                async move {
                    let ns = o
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let pp = PostParams::default();
                    match o["kind"].as_str() {
                        Some("Namespace") => Api::<Namespace>::all(client)
                            .create(&pp, &serde_json::from_value(o.clone())?)
                            .await
                            .map(drop),
                        Some("ConfigMap") => Api::<ConfigMap>::namespaced(client, ns)
                            .create(&pp, &serde_json::from_value(o.clone())?)
                            .await
                            .map(drop),
                        _ => Api::<Secret>::namespaced(client, ns)
                            .create(&pp, &serde_json::from_value(o.clone())?)
                            .await
                            .map(drop),
                    }
                    .context("POST")
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<()>>()
            .await?;
    }
    Ok(())
}

/// The bare paginated LIST of every ConfigMap and Secret: bytes fetched, nothing decoded but the
/// continue token.
async fn bare_list(client: &kube::Client) -> Result<usize> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "continue", default)]
        token: String,
    }
    #[derive(serde::Deserialize)]
    struct Page {
        metadata: Meta,
    }
    let mut bytes = 0;
    for path in ["/api/v1/configmaps", "/api/v1/secrets"] {
        let mut token = String::new();
        loop {
            let uri = format!(
                "{path}?limit=500{}",
                if token.is_empty() {
                    String::new()
                } else {
                    format!("&continue={token}")
                }
            );
            let text = client
                .request_text(http::Request::get(uri).body(Vec::new())?)
                .await?;
            bytes += text.len();
            token = serde_json::from_str::<Page>(&text)?.metadata.token;
            if token.is_empty() {
                break;
            }
        }
    }
    Ok(bytes)
}

fn timed(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).status()?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(start.elapsed().as_secs_f64())
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn agent(hub: &str, state: &std::path::Path, cp: &ControlPlane, client: &Client) -> Result<Agent> {
    let token = testbed::cairn::join_token(&mut client.clone(), hub, cp.name()).await?;
    let child = Command::new(std::env::current_exe()?)
        .env(
            AGENT_MODE,
            format!(
                "{token} {} {}",
                state.join(cp.name()).display(),
                cp.kubeconfig().display(),
            ),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    wait_until(
        &format!("agent of {}", cp.name()),
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            async move {
                Ok(client
                    .clusters()
                    .await?
                    .iter()
                    .any(|c| c.name.as_str() == cp.name() && c.connected)
                    .then_some(()))
            }
        },
    )
    .await?;
    Ok(Agent(child))
}

/// Follows operation `name` through the hub's progress events until it ends; its final phase.
async fn until_done(client: &Client, name: &str, backup: bool) -> Result<Phase> {
    let mut client = client.clone();
    let operation = if backup {
        OperationId::Backup(name.parse()?)
    } else {
        OperationId::Restore(name.parse()?)
    };
    client.watch(&operation, |_| {}).await?;
    let phase = if backup {
        client.backup(&name.parse()?).await?.status.phase
    } else {
        client.restore(&name.parse()?).await?.status.phase
    };
    Ok(phase)
}

async fn measure(n: usize) -> Result<Row> {
    eprintln!("== {n} objects: starting four control planes");
    let (source, into_cairn, into_kubectl, into_parallel) = tokio::try_join!(
        ControlPlane::start("bench-src"),
        ControlPlane::start("bench-cairn"),
        ControlPlane::start("bench-kubectl"),
        ControlPlane::start("bench-parallel"),
    )?;
    let data = tempfile::tempdir()?;
    let store = RocksStore::open(&data.path().join("db"))?;
    let (_hub, url, dial) =
        testbed::cairn::in_process_hub(data.path(), Inventory::new(Arc::new(store))).await?;
    let mut client = Client::connect(&dial).await?;
    let state = data.path().join("agents");
    let source_agent = agent(&url, &state, &source, &client).await?;
    let target_agent = agent(&url, &state, &into_cairn, &client).await?;

    let objects = objects(n);
    eprintln!("== creating {n} objects in the source");
    parallel_create(&source.client(), &objects).await?;

    eprintln!("== backup");
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("bench-{i:02}")).collect();
    let spec = BackupSpec {
        name: BackupName::new(format!("bench-{n}"))?,
        cluster: ClusterName::new("bench-src")?,
        location: None,
        namespaces: NamespaceFilter {
            include: namespaces,
            exclude: vec![],
        },
        include_resources: vec![],
        exclude_resources: vec![],
        selector: None,
        cluster_resources: ClusterResources::Auto,
        ttl: None,
        volumes: false,
        origin: Default::default(),
    };
    let start = Instant::now();
    client.create_backup(&spec).await?;
    let phase = until_done(&client, spec.name.as_str(), true).await?;
    let backup = start.elapsed().as_secs_f64();
    if phase != Phase::Completed {
        bail!("backup ended {phase}");
    }
    let backup_rss = testbed::proc_stats::peak_rss_mib(source_agent.0.id());

    eprintln!("== kubectl get");
    let out = tempfile::NamedTempFile::new()?;
    let kubectl_get = timed(Command::new("sh").arg("-c").arg(format!(
        "kubectl --kubeconfig {} get configmaps,secrets -A -o json > {}",
        source.kubeconfig().display(),
        out.path().display()
    )))?;
    eprintln!("== bare LIST");
    let start = Instant::now();
    bare_list(&source.client()).await?;
    let list = start.elapsed().as_secs_f64();

    eprintln!("== restore");
    let restore_spec = RestoreSpec {
        name: RestoreName::new(format!("bench-{n}"))?,
        backup: spec.name.clone(),
        target_cluster: Some(ClusterName::new("bench-cairn")?),
        namespaces: NamespaceFilter::default(),
        namespace_mapping: Default::default(),
        existing_policy: Default::default(),
        preserve_node_ports: false,
        dry_run: false,
        include_sensitive: false,
        partial: false,
        keep_setid: false,
        volume_wait: None,
    };
    let start = Instant::now();
    client.create_restore(&restore_spec).await?;
    let phase = until_done(&client, restore_spec.name.as_str(), false).await?;
    let restore = start.elapsed().as_secs_f64();
    if phase != Phase::Completed {
        let r = client.restore(&restore_spec.name).await?;
        let failed: Vec<_> = r.status.problems.iter().take(3).collect();
        bail!("restore ended {phase}: {:?} {failed:?}", r.status.error);
    }
    let restore_rss = testbed::proc_stats::peak_rss_mib(target_agent.0.id());

    eprintln!("== kubectl create -f");
    let manifest = tempfile::NamedTempFile::new()?;
    serde_json::to_writer(
        &manifest,
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}),
    )?;
    let kubectl_create = timed(
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(into_kubectl.kubeconfig())
            .args(["create", "-f"])
            .arg(manifest.path()),
    )?;
    eprintln!("== parallel client");
    let start = Instant::now();
    parallel_create(&into_parallel.client(), &objects).await?;
    let parallel = start.elapsed().as_secs_f64();

    let row = Row {
        n,
        backup,
        kubectl_get,
        list,
        restore,
        kubectl_create,
        parallel,
        agent_rss_mib: backup_rss.max(restore_rss),
    };
    eprintln!(
        "== {n}: backup {backup:.2}s (kubectl {kubectl_get:.2}s, list {list:.2}s), restore {restore:.2}s (kubectl {kubectl_create:.2}s, parallel {parallel:.2}s), agent peak rss: backup {backup_rss} MiB, restore {restore_rss} MiB"
    );
    Ok(row)
}
