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
//! Each path runs three times (`CAIRN_BENCH_RUNS`) after a warm-up run that is not counted, each
//! run into a new bucket and repository, each path first every other run; medians are reported.
//! Page cache dropped before each step. The CPU column: the time used by all the node's pods (its
//! cgroup: the node agent, the cluster agent, the applications) for the in-cluster path, by
//! `cairn-agent` for the direct one. Needs the release binaries and Cairn's images (`cargo build
//! --release --workspace --bins && deploy/images/build.sh target/release target/images`) and the
//! test bed (`tests/bed/setup.sh`).
//!
//! Each in-cluster row is split: the node agent's time moving the data (the volume's `started`
//! to `finished` in `describe`; a restore's starts once the kubelet has mounted the volume, its
//! repository opened meanwhile) and the rest, the fixed part — for a restore mostly Kubernetes':
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

/// One step of one run, a backup or a restore, on both paths.
#[derive(Clone, Copy, Default)]
struct Step {
    /// Seconds end to end in the cluster (`cairn … --wait`).
    cluster: f64,
    /// Seconds of it the node agent took moving the data (`describe`).
    data: f64,
    /// CPU seconds the node's pods used in it.
    cluster_cpu: f64,
    /// Seconds of `cairn-agent repo` on the host.
    direct: f64,
    /// CPU seconds `cairn-agent repo` used.
    direct_cpu: f64,
}

/// Run `run` of the in-cluster path: a backup of namespace `bench` with its claim's data into
/// location `bucket`, restored into a new namespace (a new claim, its pod held until the data is
/// in), whose restored data is then removed. The backup's [`Step`] and the restore's, the direct
/// path's figures left out.
async fn in_cluster(hub: &HubProcess, node: &Node, run: usize, bucket: &str) -> Result<[Step; 2]> {
    eprintln!("== run {run}: in the cluster: backup");
    let (backup, _) = step(hub, node, &format!(
        "backup create b{run} --cluster bench --include-namespaces bench --volumes --location {bucket} --wait"
    ), &format!("backup describe b{run}"))
    .await?;
    eprintln!("== run {run}: in the cluster: restore");
    let (restore, restored) = step(hub, node, &format!(
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
    Ok([backup, restore])
}

/// `cairn LINE` (page cache dropped first) timed, with the node's CPU time in it, and what
/// `cairn DESCRIBE` then says.
async fn step(
    hub: &HubProcess,
    node: &Node,
    line: &str,
    describe: &str,
) -> Result<(Step, serde_json::Value)> {
    drop_caches();
    let cpu = node.pods_cpu()?;
    let (_, secs) = timed(async { hub.cli_line(line).await?.ok() }).await?;
    let cpu = node.pods_cpu()?.saturating_sub(cpu);
    let described = hub.json(describe).await?;
    let (started, finished) = span(&described["status"]["volumes"][0])?;
    let step = Step {
        cluster: secs,
        data: started.until(finished).as_secs_f64(),
        cluster_cpu: cpu.as_secs_f64(),
        ..Step::default()
    };
    Ok((step, described))
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
    /// that (then removed); for each, the seconds it took and the CPU seconds `cairn-agent` used.
    fn run(&self, run: usize, bucket: &str) -> Result<[(f64, f64); 2]> {
        eprintln!("== run {run}: direct: cairn-agent repo");
        let url = format!("az://{bucket}/direct");
        let key = self.files.join(format!("key-{run}"));
        self.repo(&key, &url, &["init", "--new-key"])?;
        let (out, backup) =
            measured(|| self.repo(&key, &url, &["backup", self.data.to_str().context("utf-8")?]))?;
        let snapshot = out
            .split_whitespace()
            .nth(1)
            .context("no snapshot id")?
            .to_owned();
        let target = self.files.join(format!("restored-{run}"));
        let (_, restore) = measured(|| {
            let target = target.to_str().context("utf-8")?;
            self.repo(&key, &url, &["restore", &snapshot, target])
        })?;
        std::fs::remove_dir_all(&target)?;
        Ok([backup, restore])
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

/// What `f` (which runs a child process) gives, page cache dropped first, with the seconds it
/// took and the CPU seconds of the child.
fn measured<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, (f64, f64))> {
    drop_caches();
    let (cpu, started) = (children_cpu()?, Instant::now());
    let value = f()?;
    let secs = started.elapsed().as_secs_f64();
    Ok((value, (secs, children_cpu()? - cpu)))
}

/// CPU seconds (user and system) of this process's children that have ended.
fn children_cpu() -> Result<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(secs(usage.user_time()) + secs(usage.system_time()))
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
    // The source, and a restored copy for each run and the warm-up.
    cp.provide_local_volumes(2 + runs).await?;
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

    let mut counted: Vec<[Step; 2]> = Vec::new();
    // Run 0 warms up and is not counted: the first step after generating the data is the slowest,
    // whichever path takes it. Counted runs 1, 3, … go to the cluster first.
    for run in 0..=runs {
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
        let (cluster, direct) = if run % 2 == 1 {
            let cluster = in_cluster(&hub, node, run, &bucket).await?;
            (cluster, direct.run(run, &bucket)?)
        } else {
            let direct = direct.run(run, &bucket)?;
            (in_cluster(&hub, node, run, &bucket).await?, direct)
        };
        let steps = [0, 1].map(|i| Step {
            direct: direct[i].0,
            direct_cpu: direct[i].1,
            ..cluster[i]
        });
        for (name, s) in ["backup", "restore"].iter().zip(&steps) {
            eprintln!(
                "== run {run}: {name} {:.1} s (data {:.1} s, CPU {:.1} s) against {:.1} s (CPU {:.1} s)",
                s.cluster, s.data, s.cluster_cpu, s.direct, s.direct_cpu
            );
        }
        if run == 0 {
            eprintln!("== run 0 was the warm-up: not counted");
        } else {
            counted.push(steps);
        }
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
    let backup = Medians::of(counted.iter().map(|r| r[0]));
    let restore = Medians::of(counted.iter().map(|r| r[1]));

    println!(
        "\n{:<50} {:>9} {:>9} {:>9}",
        "volume data (same data, same bucket)", "seconds", "MiB/s", "CPU s"
    );
    let mib = mib(size);
    backup.rows(
        mib,
        "backup, in the cluster (cairn backup --volumes)",
        "  the rest (finding the pod, the relay)",
        "backup, direct (cairn-agent repo backup)",
    );
    restore.rows(
        mib,
        "restore, in the cluster (cairn restore, held)",
        "  the rest (objects, binding, mount, release)",
        "restore, direct (cairn-agent repo restore)",
    );
    println!("data: {mib:.0} MiB; CPU: the node's pods in the cluster, cairn-agent direct");
    println!(
        "nodes backup_overhead={:+.1}% ({:+.1} s) restore_overhead={:+.1}% ({:+.1} s) backup_data={:+.1}% restore_data={:+.1}%",
        (backup.cluster / backup.direct - 1.0) * 100.0,
        backup.cluster - backup.direct,
        (restore.cluster / restore.direct - 1.0) * 100.0,
        restore.cluster - restore.direct,
        (backup.data / backup.direct - 1.0) * 100.0,
        (restore.data / restore.direct - 1.0) * 100.0,
    );
    Ok(())
}

/// The medians of one step's figures over the counted runs.
struct Medians {
    cluster: f64,
    data: f64,
    /// The median of each run's in-cluster time less its data time.
    rest: f64,
    cluster_cpu: f64,
    direct: f64,
    direct_cpu: f64,
}

impl Medians {
    fn of(steps: impl Iterator<Item = Step> + Clone) -> Self {
        let median_of = |f: fn(&Step) -> f64| median(&mut steps.clone().map(|s| f(&s)).collect::<Vec<_>>());
        Self {
            cluster: median_of(|s| s.cluster),
            data: median_of(|s| s.data),
            rest: median_of(|s| s.cluster - s.data),
            cluster_cpu: median_of(|s| s.cluster_cpu),
            direct: median_of(|s| s.direct),
            direct_cpu: median_of(|s| s.direct_cpu),
        }
    }

    /// The table's rows for this step (`mib` moved): in the cluster, split into the node agent's
    /// data time and the rest, then direct.
    fn rows(&self, mib: f64, cluster: &str, rest: &str, direct: &str) {
        let row = |what: &str, secs: f64, moves_data: bool, cpu: Option<f64>| {
            let rate = if moves_data {
                format!("{:.1}", mib / secs)
            } else {
                "-".into()
            };
            let cpu = cpu.map_or("-".into(), |c| format!("{c:.1}"));
            println!("{what:<50} {secs:>9.1} {rate:>9} {cpu:>9}");
        };
        row(cluster, self.cluster, true, Some(self.cluster_cpu));
        row("  the node agent moving the data", self.data, true, None);
        row(rest, self.rest, false, None);
        row(direct, self.direct, true, Some(self.direct_cpu));
    }
}
