//! `cargo bench --bench nodes`: a volume's backup and restore through Cairn running in a cluster
//! with a real node — the cluster agent and the node agent deployed from `deploy/` with Cairn's
//! release image, the data on a local volume the kubelet mounts, instructions relayed by the hub,
//! the restored pod held until its data is in — against the same data through `cairn-agent repo`
//! directly (the release binary on the host), both into the same Azure bucket (azurite on
//! loopback). The overhead of the real path is what the user waits for beyond moving the data:
//! finding the claim's pod and node, the hub's relay, the restored claim's binding and the pod's
//! scheduling and mount (target: at most 10%).
//!
//! Data: `../shared/bench/gen_volume.py create` (1 GiB; `CAIRN_BENCH_NODE_MIB` for another size).
//! Page cache dropped before each step. Needs the release binaries and Cairn's images
//! (`cargo build --release --workspace --bins && deploy/images/build.sh target/release
//! target/images`) and the test bed (`tests/bed/setup.sh`).
//!
//! Last line: `nodes backup_overhead=…% restore_overhead=…%` (the in-cluster path's time over the
//! direct one's, minus one).

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use testbed::bench::{drop_caches, du_bytes, generate, mib};
use testbed::cairn::HubProcess;
use testbed::in_cluster::{bucket_for_pods, deploy_agents};
use testbed::storage::{AZURE_ACCOUNT, AZURE_KEY};
use testbed::{BUSYBOX_IMAGE, ControlPlane};

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

/// `cairn-agent repo ARGS` against the azurite bucket, directly.
fn repo(agent: &Path, key: &Path, endpoint: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(agent)
        .arg("repo")
        .args(args)
        .args(["--location-url", "az://vault/direct", "--key-file"])
        .arg(key)
        .env("AZURE_STORAGE_ACCOUNT_NAME", AZURE_ACCOUNT)
        .env("AZURE_STORAGE_ACCOUNT_KEY", AZURE_KEY)
        .env("AZURE_STORAGE_ENDPOINT", endpoint)
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

#[tokio::main]
async fn main() -> Result<()> {
    testbed::init();
    let size_mib: u64 = std::env::var("CAIRN_BENCH_NODE_MIB")
        .unwrap_or_else(|_| "1024".into())
        .parse()?;
    let agent = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("cairn-agent"))
        .context("target dir")?;
    if !agent.exists() {
        bail!(
            "{} missing: cargo build --release -p cairn-agent",
            agent.display()
        );
    }

    let hub = HubProcess::start().await?;
    let azure = bucket_for_pods(&hub).await?;
    let files = tempfile::tempdir()?;

    let cp = ControlPlane::start_with_nodes("bench", 1).await?;
    cp.provide_local_volumes(2).await?;
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

    eprintln!("== in the cluster: backup");
    drop_caches();
    let (_, cluster_backup) = timed(async {
        hub.cli_line("backup create b --cluster bench --include-namespaces bench --volumes --wait")
            .await?
            .ok()
    })
    .await?;
    eprintln!("== in the cluster: restore (a new claim, its pod held until the data is in)");
    drop_caches();
    let (_, cluster_restore) = timed(async {
        hub.cli_line("restore create r --from-backup b --target-cluster bench --namespace-mapping bench:bench-r --wait")
            .await?
            .ok()
    })
    .await?;
    let restored = hub.json("restore describe r").await?;
    if restored["status"]["volumes"][0]["bytes"]
        .as_u64()
        .unwrap_or_default()
        == 0
    {
        bail!("the restore wrote no data: {restored}");
    }

    eprintln!("== direct: cairn-agent repo");
    let key = files.path().join("key");
    repo(&agent, &key, azure.endpoint(), &["init", "--new-key"])?;
    drop_caches();
    let started = Instant::now();
    let out = repo(
        &agent,
        &key,
        azure.endpoint(),
        &["backup", data.to_str().context("utf-8")?],
    )?;
    let direct_backup = started.elapsed().as_secs_f64();
    let snapshot = out
        .split_whitespace()
        .nth(1)
        .context("no snapshot id")?
        .to_owned();
    let target = files.path().join("restored");
    drop_caches();
    let started = Instant::now();
    repo(
        &agent,
        &key,
        azure.endpoint(),
        &["restore", &snapshot, target.to_str().context("utf-8")?],
    )?;
    let direct_restore = started.elapsed().as_secs_f64();

    let rate = |secs: f64| mib(size) / secs;
    println!(
        "\n{:<50} {:>9} {:>9}",
        "volume data (same data, same bucket)", "seconds", "MiB/s"
    );
    for (what, secs) in [
        ("backup, in the cluster (cairn backup --volumes)", cluster_backup),
        ("backup, direct (cairn-agent repo backup)", direct_backup),
        ("restore, in the cluster (cairn restore, held)", cluster_restore),
        ("restore, direct (cairn-agent repo restore)", direct_restore),
    ] {
        println!("{what:<50} {secs:>9.1} {:>9.1}", rate(secs));
    }
    println!("data: {:.0} MiB", mib(size));
    println!(
        "nodes backup_overhead={:+.1}% restore_overhead={:+.1}%",
        (cluster_backup / direct_backup - 1.0) * 100.0,
        (cluster_restore / direct_restore - 1.0) * 100.0
    );
    Ok(())
}
