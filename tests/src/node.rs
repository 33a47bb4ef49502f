//! A real node on this machine: containerd (Debian's, with runc and the CNI plugins) and the
//! kubelet v1.20.2, registered with a [`ControlPlane`](crate::ControlPlane) started with nodes.
//!
//! Each node is a machine of its own as far as its pods can tell:
//! - **its own mount namespace**, made by `unshare` for containerd and entered by the kubelet,
//!   in which `/var/lib/kubelet`, `/var/log`, `/var/lib/cni` and `/run/containerd` are the node's
//!   own directories in its sandbox (the kubelet and containerd hard-code some of those paths, and
//!   a kubelet's garbage collection deletes what another node's put in `/var/log/pods`). A pod's
//!   `hostPath: /var/lib/kubelet/pods` is therefore this node's kubelet root, as on a real node.
//!   The namespace, and every mount the kubelet made in it, goes when its last process ends;
//! - **its own address**, a loopback one (`127.0.0.11`, `127.0.0.12`, …), which is also its name:
//!   the kubelet reports it as the InternalIP, so the API server reaches the kubelet (logs, exec)
//!   without leaving the machine;
//! - **its own containerd** (one containerd shared by two kubelets makes each kill the other's
//!   pods), CNI bridge `cairn-brN` and pod network `10.244.N.0/24` (no gateway, no masquerade:
//!   pods reach each other on the node, nothing else; in-cluster clients use the host network);
//! - **its own cgroups** (`/cairn-node-N` for the pods, `/cairn-node-N-runtime` for containerd,
//!   its shims and the kubelet), which is how [`Node`]'s drop finds and kills every process the
//!   node started, containers and shims included.
//!
//! Images are never pulled: `tests/bed/nodes.sh` builds `local.test/pause:3.4` and
//! `local.test/busybox:1` as OCI archives, imported into each node's containerd at start;
//! [`Node::import`] adds others. Pods name them with `imagePullPolicy: Never`.
//!
//! The kubelet rewrites six host sysctls at start (no flag stops it): they are saved before the
//! first node of a process starts and put back when its last node stops. Tests with nodes run one
//! at a time (`.config/nextest.toml`, group `real-nodes`), since nodes share those sysctls and
//! their numbering starts again in each test process.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::api::Api;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::paths::cache_dir;
use crate::{Ca, Sandbox, bin};

/// How long a node may take to become Ready (7–18 s measured; a loaded CI machine is slower).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The sandbox image every node imports (`tests/bed/nodes.sh`).
pub const PAUSE_IMAGE: &str = "local.test/pause:3.4";
/// A busybox image for test applications (`tests/bed/nodes.sh`): `/bin/sh` and the applets.
pub const BUSYBOX_IMAGE: &str = "local.test/busybox:1";
/// The node-level paths each node has its own copy of, in its mount namespace.
const NODE_PATHS: [(&str, &str); 4] = [
    ("kubelet", "/var/lib/kubelet"),
    ("log", "/var/log"),
    ("cni", "/var/lib/cni"),
    ("run-containerd", "/run/containerd"),
];
/// Host sysctls the kubelet sets at start (`setupKernelTunables`), put back when nodes stop.
const KUBELET_SYSCTLS: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// Numbers handed to this process's nodes; see the module docs.
static NEXT_NODE: AtomicU8 = AtomicU8::new(0);
/// The host's sysctls before this process's first live node, while any node lives.
static SAVED_SYSCTLS: Mutex<(usize, Vec<(String, String)>)> = Mutex::new((0, Vec::new()));

/// What a node needs from its control plane.
pub(crate) struct Cluster<'a> {
    pub name: &'a str,
    pub server: &'a str,
    pub ca: &'a Ca,
    pub client: kube::Client,
}

/// A running node; stopped, with everything it started, on drop.
pub struct Node {
    name: String,
    number: u8,
    sandbox: Sandbox,
}

impl Node {
    /// Starts a node for `cluster` and waits until it is Ready.
    pub(crate) async fn start(cluster: &Cluster<'_>) -> Result<Self> {
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            bail!("this machine mounts cgroup v2 alone: the test bed's nodes need the v1 hierarchies");
        }
        let number = NEXT_NODE.fetch_add(1, Ordering::SeqCst);
        let name = format!("127.0.0.{}", 11 + u16::from(number));
        clean_up(number); // what a killed test process left under this number
        let sandbox = Sandbox::new(&format!("node-{}-{number}", cluster.name))?;
        save_sysctls();
        let node = Self {
            name,
            number,
            sandbox,
        };
        node.run(cluster)
            .await
            .with_context(|| format!("starting node {} of cluster {}", node.name, cluster.name))?;
        Ok(node)
    }

    /// The node's name, which is also its address (`127.0.0.11`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sandbox holding the node's directories and its kubelet's and containerd's logs.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Where the node's `path` (`/var/lib/kubelet/pods/…`, say) is on the host.
    pub fn host_path(&self, path: &str) -> Result<PathBuf> {
        for (dir, at) in NODE_PATHS {
            if let Some(rest) = path.strip_prefix(at) {
                return Ok(self.sandbox.dir().join(dir).join(rest.trim_start_matches('/')));
            }
        }
        bail!("{path} is the host's own on node {}, not the node's", self.name)
    }

    /// The directory of local volume `name` on this node (made if missing): what its
    /// PersistentVolume's `spec.local.path` names, and where its data is on the host.
    pub fn volume_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.sandbox.dir().join("volumes").join(name);
        fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
        Ok(dir)
    }

    /// Imports an OCI archive (`ctr images import`) as image `base_name:<its tag>`.
    pub fn import(&self, archive: &Path, base_name: &str) -> Result<()> {
        let out = Command::new("ctr")
            .arg(format!("--address={}", self.socket().display()))
            .arg("--timeout=120s")
            .args(["-n", "k8s.io", "images", "import", "--base-name", base_name])
            .arg(archive)
            .output()
            .context("running ctr")?;
        if !out.status.success() {
            bail!(
                "importing {} into node {}: {}",
                archive.display(),
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// CPU time the node's pods have used so far (cgroup v1 `cpuacct.usage` of its pods cgroup).
    pub fn pods_cpu(&self) -> Result<Duration> {
        let usage = hierarchies()
            .into_iter()
            .map(|h| h.join(self.cgroup()).join("cpuacct.usage"))
            .find(|p| p.exists())
            .with_context(|| format!("no cpuacct hierarchy for node {}", self.name))?;
        let nanos = fs::read_to_string(&usage).with_context(|| format!("reading {}", usage.display()))?;
        Ok(Duration::from_nanos(nanos.trim().parse().with_context(|| {
            format!("{} holds {nanos:?}", usage.display())
        })?))
    }

    fn socket(&self) -> PathBuf {
        self.sandbox.dir().join("containerd.sock")
    }

    fn cgroup(&self) -> String {
        format!("cairn-node-{}", self.number)
    }

    async fn run(&self, cluster: &Cluster<'_>) -> Result<()> {
        let dir = self.sandbox.dir();
        for (sub, _) in NODE_PATHS {
            fs::create_dir_all(dir.join(sub))?;
        }
        for sub in ["cni-conf", "cni-data", "pki"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        for (_, at) in NODE_PATHS {
            fs::create_dir_all(at).with_context(|| format!("making mount point {at}"))?;
        }
        let pods_cgroup = self.cgroup();
        let runtime_cgroup = format!("{pods_cgroup}-runtime");
        make_cgroup(&pods_cgroup)?;
        make_cgroup(&runtime_cgroup)?;
        weigh_as_a_machine(&pods_cgroup)?;

        let number = self.number;
        write(
            dir,
            "cni-conf/10-cairn.conflist",
            &format!(
                r#"{{"cniVersion": "0.4.0", "name": "cairn-node-{number}", "plugins": [
  {{"type": "bridge", "bridge": "cairn-br{number}", "isGateway": false, "ipMasq": false,
    "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "10.244.{number}.0/24"}}]],
             "dataDir": "{data}"}}}}]}}
"#,
                data = dir.join("cni-data").display()
            ),
        )?;
        write(dir, "containerd.toml", &containerd_config(dir, &self.name))?;

        // containerd, in the node's new mount namespace (unshare and sh exec: one pid throughout).
        let binds: String = NODE_PATHS
            .iter()
            .map(|(sub, at)| format!("mount --bind '{}' {at} && ", dir.join(sub).display()))
            .collect();
        let script = format!(
            "set -e; {binds}mount --make-rshared /var/lib/kubelet && {join} exec containerd --config '{config}'",
            join = join_cgroup(&runtime_cgroup),
            config = dir.join("containerd.toml").display()
        );
        let mut containerd = Command::new("unshare");
        containerd.args(["--mount", "--propagation", "private", "--", "sh", "-c", &script]);
        let pid = self.sandbox.spawn("containerd", containerd)?;
        let socket = self.socket();
        self.sandbox
            .wait_ready("containerd", "containerd's socket", READY_TIMEOUT, || {
                let up = socket.exists();
                async move { Ok(up.then_some(())) }
            })
            .await?;
        let images = cache_dir().join("images");
        self.import(&images.join("pause.tar"), "local.test/pause")?;
        self.import(&images.join("busybox.tar"), "local.test/busybox")?;

        // The kubelet: a client certificate of user system:node:<name>, the cluster's CA.
        let pair = cluster
            .ca
            .issue_client(&format!("system:node:{}", self.name), &["system:nodes"])?;
        write(dir, "pki/kubelet-client.crt", &pair.cert_pem)?;
        write(dir, "pki/kubelet-client.key", &pair.key_pem)?;
        fs::set_permissions(
            dir.join("pki/kubelet-client.key"),
            fs::Permissions::from_mode(0o600),
        )?;
        write(dir, "pki/ca.crt", &cluster.ca.cert_pem())?;
        let p = |f: &str| dir.join(f).display().to_string();
        write(
            dir,
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{server}', certificate-authority: '{ca}'}}\n\
             users:\n- name: u\n  user: {{client-certificate: '{crt}', client-key: '{key}'}}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
                server = cluster.server,
                ca = p("pki/ca.crt"),
                crt = p("pki/kubelet-client.crt"),
                key = p("pki/kubelet-client.key"),
            ),
        )?;
        write(
            dir,
            "kubelet.yaml",
            &format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             address: {name}\nport: 10250\nreadOnlyPort: 0\nhealthzPort: 0\n\
             cgroupDriver: cgroupfs\ncgroupRoot: /{pods_cgroup}\nfailSwapOn: false\n\
             makeIPTablesUtilChains: false\n\
             authentication: {{anonymous: {{enabled: false}}, webhook: {{enabled: true}}, x509: {{clientCAFile: '{ca}'}}}}\n\
             authorization: {{mode: Webhook}}\n\
             evictionHard: {{memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}}\n\
             imageGCHighThresholdPercent: 100\nimageGCLowThresholdPercent: 99\n\
             serializeImagePulls: false\n",
                name = self.name,
                ca = p("pki/ca.crt"),
            ),
        )?;
        let sock = format!("unix://{}", socket.display());
        let kubelet_args = [
            "--container-runtime=remote".to_owned(),
            format!("--container-runtime-endpoint={sock}"),
            format!("--image-service-endpoint={sock}"),
            format!("--pod-infra-container-image={PAUSE_IMAGE}"),
            "--root-dir=/var/lib/kubelet".to_owned(),
            format!("--cert-dir={}", p("pki")),
            format!("--hostname-override={}", self.name),
            format!("--kubeconfig={}", p("kubeconfig")),
            format!("--config={}", p("kubelet.yaml")),
            "--v=1".to_owned(),
        ]
        .map(|a| format!("'{a}'"))
        .join(" ");
        let script = format!(
            "set -e; {join} exec '{kubelet}' {kubelet_args}",
            join = join_cgroup(&runtime_cgroup),
            kubelet = bin("kubelet")?.display()
        );
        let mut kubelet = Command::new("nsenter");
        kubelet.args([format!("--target={pid}"), "--mount".to_owned(), "--".to_owned()]);
        kubelet.args(["sh", "-c", &script]);
        self.sandbox.spawn("kubelet", kubelet)?;

        let nodes: Api<KubeNode> = Api::all(cluster.client.clone());
        self.sandbox
            .wait_ready(
                "kubelet",
                &format!("node {} Ready", self.name),
                READY_TIMEOUT,
                || async {
                    let node = nodes.get_opt(&self.name).await.ok().flatten();
                    let conditions = node
                        .and_then(|n| n.status)
                        .and_then(|s| s.conditions)
                        .unwrap_or_default();
                    let ready = conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    Ok(ready.then_some(()))
                },
            )
            .await?;
        self.sandbox.ensure_running("containerd")?;
        tracing::info!(node = self.name, cluster = cluster.name, "node ready");
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.sandbox.kill("kubelet");
        self.sandbox.kill("containerd");
        clean_up(self.number);
        restore_sysctls();
    }
}

/// containerd's configuration: its state in the node's sandbox, the CRI plugin with the local
/// pause image and the node's CNI configuration.
fn containerd_config(dir: &Path, address: &str) -> String {
    let d = |s: &str| dir.join(s).display().to_string();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "{address}"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  # This machine has no CAP_SYS_RESOURCE: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        socket = d("containerd.sock"),
        opt = d("containerd/opt"),
        cni = d("cni-conf"),
    )
}

/// The cgroup v1 hierarchies of this machine (`/sys/fs/cgroup/<name>`).
fn hierarchies() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    dirs.sort();
    dirs
}

/// Makes cgroup `name` in every hierarchy (the kubelet needs its cgroup root in all of them);
/// a new cpuset gets its parent's CPUs and memory nodes, without which no task may join it.
fn make_cgroup(name: &str) -> Result<()> {
    for h in hierarchies() {
        let dir = h.join(name);
        fs::create_dir_all(&dir).with_context(|| format!("making cgroup {}", dir.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(value) = fs::read_to_string(h.join(file)) {
                fs::write(dir.join(file), value.trim())
                    .with_context(|| format!("{}/{file}", dir.display()))?;
            }
        }
    }
    Ok(())
}

/// CPU weight of a node's pods cgroup: that of eight busy threads (each weighs 1024).
const NODE_CPU_SHARES: u32 = 8192;

/// Gives cgroup `name` the CPU weight of a machine of its own. A node's pods would otherwise weigh
/// together what one thread of a host process does: the cgroup's default `cpu.shares` (1024)
/// against each of azurite's, the hub's or a bench's threads at the root, so the node agent in
/// its pod got a fraction of the CPU the same binary gets on the host — where a real node's pods
/// compete only with the node's own pods and daemons.
fn weigh_as_a_machine(name: &str) -> Result<()> {
    for h in hierarchies() {
        let shares = h.join(name).join("cpu.shares");
        if shares.exists() {
            fs::write(&shares, NODE_CPU_SHARES.to_string())
                .with_context(|| format!("writing {}", shares.display()))?;
        }
    }
    Ok(())
}

/// Shell that moves the shell itself into cgroup `name` of every hierarchy.
fn join_cgroup(name: &str) -> String {
    hierarchies()
        .iter()
        .map(|h| format!("echo $$ > '{}/{name}/cgroup.procs' && ", h.display()))
        .collect()
}

/// Kills every process in node `number`'s cgroups (containers, shims, containerd, kubelet),
/// removes the cgroups and the node's bridge.
fn clean_up(number: u8) {
    let names = [
        format!("cairn-node-{number}"),
        format!("cairn-node-{number}-runtime"),
    ];
    for _ in 0..50 {
        let mut alive = 0;
        for h in hierarchies() {
            for name in &names {
                for dir in cgroup_tree(&h.join(name)) {
                    for pid in fs::read_to_string(dir.join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                    {
                        if let Ok(pid) = pid.trim().parse::<i32>() {
                            alive += 1;
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                    }
                }
            }
        }
        if alive == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for h in hierarchies() {
        for name in &names {
            // Deepest first: a cgroup is removed only once it has no children.
            for dir in cgroup_tree(&h.join(name)).into_iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
    }
    let _ = Command::new("ip")
        .args(["link", "delete", &format!("cairn-br{number}")])
        .output();
}

/// `root` and every cgroup below it, parents before children.
fn cgroup_tree(root: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        if !dir.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
            }
        }
        all.push(dir);
    }
    all
}

fn save_sysctls() {
    let mut saved = SAVED_SYSCTLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if saved.0 == 0 {
        saved.1 = KUBELET_SYSCTLS
            .iter()
            .filter_map(|k| {
                let value = fs::read_to_string(format!("/proc/sys/{k}")).ok()?;
                Some(((*k).to_owned(), value.trim().to_owned()))
            })
            .collect();
    }
    saved.0 += 1;
}

fn restore_sysctls() {
    let mut saved = SAVED_SYSCTLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    saved.0 = saved.0.saturating_sub(1);
    if saved.0 == 0 {
        for (key, value) in &saved.1 {
            if let Err(e) = fs::write(format!("/proc/sys/{key}"), value) {
                tracing::warn!(key, error = %e, "could not put a sysctl back after the kubelet");
            }
        }
    }
}

fn write(dir: &Path, name: &str, content: &str) -> Result<()> {
    fs::write(dir.join(name), content).with_context(|| format!("writing {name}"))
}
