//! `cargo bench --bench nodes`: a volume's backup and restore through Cairn running in a cluster
//! with a real node — the cluster agent and the node agent deployed from `deploy/` with Cairn's
//! release image, the data on a local volume the kubelet mounts, instructions relayed by the hub,
//! the restored pod held until its data is in — against the same data through `cairn-agent repo`
//! directly (the release binary on the host), both into the same Azure bucket (azurite on
//! loopback). The overhead of the real path is what the user waits for beyond moving the data:
//! finding the claim's pod and node, the hub's relay, the restored claim's binding and the pod's
//! scheduling and mount (target: at most 10%).
//!
//! Data: `../shared/bench/gen_volume.py create` at its default size, 2 GiB, as in the volume bench
//! (`CAIRN_BENCH_NODE_MIB` for another size).
//! Each path runs three times (`CAIRN_BENCH_RUNS`), each run into a new bucket and repository,
//! each path first every other run; medians are reported. Page cache dropped before each step. Needs the release binaries and Cairn's images
//! (`cargo build --release --workspace --bins && deploy/images/build.sh target/release
//! target/images`) and the test bed (`tests/bed/setup.sh`).
//!
//! Each in-cluster row is split: the node agent's time moving the data (the volume's `started`
//! to `finished` in `describe`) and the rest, the fixed part — for a restore mostly Kubernetes':
//! the scheduler binding the new claim, the kubelet mounting it. `CAIRN_BENCH_LOGS=1` prints the
//! agents' logs at the end.
//!
//! Last line: `nodes backup_overhead=…% (… s) restore_overhead=…% (… s) backup_data=…%
//! restore_data=…%` (the in-cluster path's time over the direct one's, minus one, and the
//! difference in seconds; then the node agent's data time alone over the direct path's).

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testbed::bench::{drop_caches, du_bytes, generate, mib};
use testbed::cairn::{HubProcess, span};
use testbed::in_cluster::{add_pod_location, bucket_for_pods, deploy_agents};
use testbed::storage::{AZURE_ACCOUNT, AZURE_KEY, AzuriteServer};
use testbed::{BUSYBOX_IMAGE, ControlPlane, Node, wait_until};

/// The application whose claim is backed up and restored: a pod that mounts it and sleeps.
fn app(namespace: &str, volume: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {namespace}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  volumeName: {volume}
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: app, namespace: {namespace}}}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {BUSYBOX_IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - {{name: data, persistentVolumeClaim: {{claimName: data}}}}
"#
    )
}

/// Seconds `f` took.
async fn timed<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<(T, f64)> {
    let start = Instant::now();
    let value = f.await?;
    Ok((value, start.elapsed().as_secs_f64()))
}

/// The median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Seconds the node agent took moving the one volume's data of a backup or restore (`describe`).
fn data_secs(described: &serde_json::Value) -> Result<f64> {
    let (started, finished) = span(&described["status"]["volumes"][0])?;
    Ok(started.until(finished).as_secs_f64())
}

/// Removes everything in directory `dir`.
fn empty(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Seconds one run of the in-cluster path took: each step end to end, and its node agent's data time.
struct InCluster {
    backup: f64,
    backup_data: f64,
    restore: f64,
    restore_data: f64,
}

/// Run `run` of the in-cluster path: a backup of namespace `bench` with its claim's data into
/// location `bucket`, restored into a new namespace (a new claim, its pod held until the data is
/// in), whose restored data is then removed.
async fn in_cluster(hub: &HubProcess, node: &Node, run: usize, bucket: &str) -> Result<InCluster> {
    eprintln!("== run {run}: in the cluster: backup");
    let (backup, described) = step(hub, &format!(
        "backup create b{run} --cluster bench --include-namespaces bench --volumes --location {bucket} --wait"
    ), &format!("backup describe b{run}"))
    .await?;
    eprintln!("== run {run}: in the cluster: restore");
    let (restore, restored) = step(hub, &format!(
        "restore create r{run} --from-backup b{run} --target-cluster bench --namespace-mapping bench:bench-r{run} --wait"
    ), &format!("restore describe r{run}"))
    .await?;
    let written = &restored["status"]["volumes"][0];
    if written["bytes"].as_u64().unwrap_or_default() == 0 {
        bail!("the restore wrote no data: {restored}");
    }
    // The restored copy is measured: its disk space is given back for the next runs.
    let volume = written["volume"]
        .as_str()
        .context("the restored claim's volume")?;
    empty(&node.volume_dir(volume)?)?;
    Ok(InCluster {
        backup,
        backup_data: data_secs(&described)?,
        restore,
        restore_data: data_secs(&restored)?,
    })
}

/// Seconds `cairn LINE` took (page cache dropped first), and what `cairn DESCRIBE` then says.
async fn step(hub: &HubProcess, line: &str, describe: &str) -> Result<(f64, serde_json::Value)> {
    drop_caches();
    let (_, secs) = timed(async { hub.cli_line(line).await?.ok() }).await?;
    Ok((secs, hub.json(describe).await?))
}

/// The direct path: `cairn-agent repo` on the host, on the same data and azurite server.
struct Direct<'a> {
    agent: &'a Path,
    azure: &'a AzuriteServer,
    /// Where keys and restored copies go.
    files: &'a Path,
    data: &'a Path,
}

impl Direct<'_> {
    /// Run `run`: a new repository in `bucket`, a backup of the data into it and a restore of
    /// that (then removed); seconds of each.
    fn run(&self, run: usize, bucket: &str) -> Result<(f64, f64)> {
        eprintln!("== run {run}: direct: cairn-agent repo");
        let url = format!("az://{bucket}/direct");
        let key = self.files.join(format!("key-{run}"));
        self.repo(&key, &url, &["init", "--new-key"])?;
        drop_caches();
        let started = Instant::now();
        let out = self.repo(&key, &url, &["backup", self.data.to_str().context("utf-8")?])?;
        let backup = started.elapsed().as_secs_f64();
        let snapshot = out
            .split_whitespace()
            .nth(1)
            .context("no snapshot id")?
            .to_owned();
        let target = self.files.join(format!("restored-{run}"));
        drop_caches();
        let started = Instant::now();
        self.repo(
            &key,
            &url,
            &["restore", &snapshot, target.to_str().context("utf-8")?],
        )?;
        let restore = started.elapsed().as_secs_f64();
        std::fs::remove_dir_all(&target)?;
        Ok((backup, restore))
    }

    /// `cairn-agent repo ARGS` against the repository at `url`.
    fn repo(&self, key: &Path, url: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(self.agent)
            .arg("repo")
            .args(args)
            .args(["--location-url", url, "--key-file"])
            .arg(key)
            .env("AZURE_STORAGE_ACCOUNT_NAME", AZURE_ACCOUNT)
            .env("AZURE_STORAGE_ACCOUNT_KEY", AZURE_KEY)
            .env("AZURE_STORAGE_ENDPOINT", self.azure.endpoint())
            .env("AZURE_ALLOW_HTTP", "true")
            .output()?;
        if !out.status.success() {
            bail!(
                "cairn-agent repo {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    testbed::init();
    let size_mib: u64 = std::env::var("CAIRN_BENCH_NODE_MIB")
        .unwrap_or_else(|_| "2048".into())
        .parse()?;
    let runs: usize = std::env::var("CAIRN_BENCH_RUNS")
        .unwrap_or_else(|_| "3".into())
        .parse()?;
    let agent = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("cairn-agent"))
        .context("target dir")?;
    if !agent.exists() {
        bail!(
            "{} missing: cargo build --release --workspace --bins",
            agent.display()
        );
    }

    let hub = HubProcess::start().await?;
    let azure = bucket_for_pods(&hub).await?;
    let files = tempfile::tempdir()?;

    let cp = ControlPlane::start_with_nodes("bench", 1).await?;
    cp.provide_local_volumes(1 + runs).await?;
    let node = &cp.nodes()[0];
    let source_volume = format!("local-{}-0", node.name());
    let data = node.volume_dir(&source_volume)?;
    eprintln!("== generating {size_mib} MiB in {}", data.display());
    generate(&[
        "create",
        data.to_str().context("utf-8")?,
        "--size-mib",
        &size_mib.to_string(),
    ])?;
    let size = du_bytes(&data)?;
    cp.apply(&app("bench", &source_volume)).await?;
    deploy_agents(&hub, &cp).await?;
    let pods: Api<Pod> = Api::namespaced(cp.client(), "bench");
    wait_until(
        "the application's pod running",
        Duration::from_secs(120),
        || async {
            let pod = pods.get("app").await?;
            let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
            Ok((phase == "Running").then_some(()))
        },
    )
    .await?;

    let (mut cluster_backups, mut cluster_restores) = (Vec::new(), Vec::new());
    let (mut backup_data, mut restore_data) = (Vec::new(), Vec::new());
    let (mut direct_backups, mut direct_restores) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Each run into a new bucket and repository, so each backup is a first one.
        let bucket = format!("run-{run}");
        add_pod_location(&hub, &azure, &bucket, false).await?;
        let direct = Direct {
            agent: &agent,
            azure: &azure,
            files: files.path(),
            data: &data,
        };
        // Each path goes first every other run: what the machine does after one step (its disk
        // still writing back, say) weighs on both alike.
        let (cluster, direct) = if run % 2 == 0 {
            let cluster = in_cluster(&hub, node, run, &bucket).await?;
            (cluster, direct.run(run, &bucket)?)
        } else {
            let direct = direct.run(run, &bucket)?;
            (in_cluster(&hub, node, run, &bucket).await?, direct)
        };
        eprintln!(
            "== run {run}: backup {:.1} s (data {:.1} s) against {:.1} s; restore {:.1} s (data {:.1} s) against {:.1} s",
            cluster.backup, cluster.backup_data, direct.0, cluster.restore, cluster.restore_data, direct.1
        );
        cluster_backups.push(cluster.backup);
        backup_data.push(cluster.backup_data);
        cluster_restores.push(cluster.restore);
        restore_data.push(cluster.restore_data);
        direct_backups.push(direct.0);
        direct_restores.push(direct.1);
    }
    if std::env::var_os("CAIRN_BENCH_LOGS").is_some() {
        // For a look at where the in-cluster path's time goes: the agents' logs, timed.
        let agents: Api<Pod> = Api::namespaced(cp.client(), "cairn-system");
        for pod in agents.list(&Default::default()).await?.items {
            let name = pod.metadata.name.unwrap_or_default();
            let log = agents.logs(&name, &Default::default()).await?;
            eprintln!("--- {name}:\n{log}");
        }
    }
    // The rest of each in-cluster step, run by run, before the medians sort them.
    let mut backup_rest: Vec<f64> = cluster_backups
        .iter()
        .zip(&backup_data)
        .map(|(t, d)| t - d)
        .collect();
    let mut restore_rest: Vec<f64> = cluster_restores
        .iter()
        .zip(&restore_data)
        .map(|(t, d)| t - d)
        .collect();
    let (cluster_backup, direct_backup) = (median(&mut cluster_backups), median(&mut direct_backups));
    let (cluster_restore, direct_restore) = (median(&mut cluster_restores), median(&mut direct_restores));
    let (backup_data, restore_data) = (median(&mut backup_data), median(&mut restore_data));

    let rate = |secs: f64| mib(size) / secs;
    println!(
        "\n{:<50} {:>9} {:>9}",
        "volume data (same data, same bucket)", "seconds", "MiB/s"
    );
    for (what, secs, moves_data) in [
        (
            "backup, in the cluster (cairn backup --volumes)",
            cluster_backup,
            true,
        ),
        ("  the node agent moving the data", backup_data, true),
        (
            "  the rest (finding the pod, the relay)",
            median(&mut backup_rest),
            false,
        ),
        ("backup, direct (cairn-agent repo backup)", direct_backup, true),
        (
            "restore, in the cluster (cairn restore, held)",
            cluster_restore,
            true,
        ),
        ("  the node agent moving the data", restore_data, true),
        (
            "  the rest (objects, binding, mount, release)",
            median(&mut restore_rest),
            false,
        ),
        ("restore, direct (cairn-agent repo restore)", direct_restore, true),
    ] {
        let rate = if moves_data {
            format!("{:.1}", rate(secs))
        } else {
            "-".into()
        };
        println!("{what:<50} {secs:>9.1} {rate:>9}");
    }
    println!("data: {:.0} MiB", mib(size));
    println!(
        "nodes backup_overhead={:+.1}% ({:+.1} s) restore_overhead={:+.1}% ({:+.1} s) backup_data={:+.1}% restore_data={:+.1}%",
        (cluster_backup / direct_backup - 1.0) * 100.0,
        cluster_backup - direct_backup,
        (cluster_restore / direct_restore - 1.0) * 100.0,
        cluster_restore - direct_restore,
        (backup_data / direct_backup - 1.0) * 100.0,
        (restore_data / direct_restore - 1.0) * 100.0,
    );
    Ok(())
}
