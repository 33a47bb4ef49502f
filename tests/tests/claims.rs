//! Claim data through the hub: `cairn backup create --volumes` has the node agent of the node
//! where the claim's pod runs back up the pod's volume directory under a kubelet root laid out
//! and mounted as the kubelet does; the restore into a second control plane writes it into the new
//! claim's volume once its pod is placed on that cluster's node and the volume mounted (not into
//! the directory the kubelet made before mounting it) — byte for byte, with modes,
//! times, symlinks and hard links — after the workspace's key was rotated between backup and
//! restore. A second backup, sealed with the new key version, reads only what changed; a claim on a node
//! without a node agent is reported, naming the node; a backup under way shows its progress and
//! ends, with the reason, when its node agent goes away; the hub prunes locations on its own, and
//! refuses a prune asked with less than its configured grace. A node agent refuses a task whose pod
//! uid or volume name would lead out of the pod's volume directory before it touches any file.
//! The node agent's DaemonSets (deploy/node-agent.yaml and its backup-only variant) keep their
//! least-privilege security context through the real API server.

use anyhow::{Context, Result, bail};
use cairn_proto::model::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, PostParams};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use testbed::cairn::{HubProcess, span};
use testbed::mount::Mount;
use testbed::storage::{LocalDir, files_under};
use testbed::tree::{picture, random_bytes, write};
use testbed::{ControlPlane, wait_until};

const SETTLE: Duration = Duration::from_secs(90);
/// The node agent's DaemonSet, and its variant for nodes that are only backed up.
const NODE_AGENT: &str = include_str!("../../deploy/node-agent.yaml");
const NODE_AGENT_READONLY: &str = include_str!("../../deploy/node-agent-readonly.yaml");
/// The owner of a tenant's files, not the node agent's uid.
const TENANT: u32 = 999;

/// A namespace with a CSI-provisioned volume, its claim, and a pod mounting it on `node`.
fn app(volume: &str, handle: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
{}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: shop}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: fast
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: db, namespace: shop}}
spec:
  nodeName: {node}
  containers:
  - {{name: db, image: postgres:13, volumeMounts: [{{name: data, mountPath: /var/lib/postgresql/data}}]}}
  volumes:
  - {{name: data, persistentVolumeClaim: {{claimName: data}}}}
"#,
        provisioned(volume, handle)
    )
}

/// A CSI volume, as a provisioner makes one (in the target, the test plays the provisioner).
fn provisioned(volume: &str, handle: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {volume}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: fast
  csi: {{driver: disk.csi.example.com, volumeHandle: {handle}}}
"#
    )
}

async fn bound(cp: &ControlPlane, namespace: &str, claim: &str) -> Result<String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cp.client(), namespace);
    wait_until(&format!("claim {namespace}/{claim} bound"), SETTLE, || async {
        let pvc = claims.get(claim).await?;
        let bound = pvc.status.and_then(|s| s.phase).as_deref() == Some("Bound");
        Ok(bound.then(|| pvc.spec.and_then(|s| s.volume_name)).flatten())
    })
    .await
}

/// Where the kubelet under `root` mounts CSI volume `volume` of pod `uid`.
fn mount_dir(root: &Path, uid: &str, volume: &str) -> PathBuf {
    root.join("pods")
        .join(uid)
        .join("volumes/kubernetes.io~csi")
        .join(volume)
        .join("mount")
}

/// The names in directory `dir`.
fn entries(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    Ok(names)
}

/// The volumes' own directories (a CSI driver's disks), outside every kubelet root.
struct Disks(LocalDir);

impl Disks {
    fn new() -> Result<Self> {
        Ok(Self(LocalDir::new()?))
    }

    /// Volume `volume`'s directory.
    fn dir(&self, volume: &str) -> PathBuf {
        self.0.path().join(volume)
    }

    /// Mounts volume `volume` (made if new) on `target` as the kubelet does: `target` made first.
    fn mount(&self, volume: &str, target: &Path) -> Result<Mount> {
        std::fs::create_dir_all(self.dir(volume))?;
        Mount::bind(&self.dir(volume), target)
    }
}

/// `describe` (as JSON) of `kind` (backup, restore) `name` once it has ended.
async fn ended(hub: &HubProcess, kind: &str, name: &str) -> Result<Value> {
    wait_until(&format!("{kind} {name} to end"), SETTLE, || async {
        let described = hub.json(&format!("{kind} describe {name}")).await?;
        let phase = described["status"]["phase"].as_str().unwrap_or_default();
        let over = ["Completed", "PartiallyFailed", "Failed"].contains(&phase);
        Ok(over.then_some(described))
    })
    .await
}

async fn pod_uid(cp: &ControlPlane, namespace: &str, name: &str) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(cp.client(), namespace);
    wait_until(&format!("pod {namespace}/{name}"), SETTLE, || async {
        Ok(pods.get_opt(name).await?.and_then(|p| p.metadata.uid))
    })
    .await
}

/// A database's files: text, random data, a sparse file, a symlink, a hard link, odd modes.
fn fill(dir: &Path) -> Result<()> {
    let t = |secs: u64| SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000 + secs, 250_000_000);
    let log: Vec<u8> = (0..50_000)
        .flat_map(|i| format!("txn {i} committed\n").into_bytes())
        .collect();
    write(&dir.join("pg_wal/000001"), &log, 0o600, t(1))?;
    write(&dir.join("base/16384/2619"), &random_bytes(3 << 20), 0o600, t(2))?;
    write(&dir.join("PG_VERSION"), b"13\n", 0o644, t(3))?;
    write(&dir.join("postmaster.opts"), b"postgres -D data\n", 0o640, t(4))?;
    std::os::unix::fs::symlink("pg_wal/000001", dir.join("current_wal"))?;
    std::fs::hard_link(dir.join("PG_VERSION"), dir.join("base/PG_VERSION"))?;
    let f = std::fs::File::create(dir.join("base/sparse"))?;
    f.set_len(16 << 20)?;
    std::os::unix::fs::FileExt::write_at(&f, b"page", 8 << 20)?;
    drop(f);
    std::fs::set_permissions(dir.join("base"), std::fs::Permissions::from_mode(0o700))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // The database's user owns it all, as in a pod: a node agent reads and restores it only
    // with its capabilities. (Not root, the test cannot give files away.)
    if nix::unistd::geteuid().is_root() {
        for path in owners(dir)?.keys() {
            std::os::unix::fs::lchown(dir.join(path), Some(TENANT), Some(TENANT))?;
        }
    }
    Ok(())
}

/// Owner and group of every entry under `root` (and of `root` itself, as ""), links as links.
fn owners(root: &Path) -> Result<std::collections::BTreeMap<String, (u32, u32)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let meta = std::fs::symlink_metadata(root)?;
    out.insert(String::new(), (meta.uid(), meta.gid()));
    for path in picture(root)?.keys() {
        let meta = std::fs::symlink_metadata(root.join(path))?;
        out.insert(path.clone(), (meta.uid(), meta.gid()));
    }
    Ok(out)
}

/// The capabilities the container of DaemonSet manifest `yaml` (its first document) adds.
fn capabilities(yaml: &str) -> Result<Vec<String>> {
    let first = serde_yaml_ng::Deserializer::from_str(yaml)
        .next()
        .context("an empty manifest")?;
    let daemonset: Value = serde::Deserialize::deserialize(first)?;
    let add =
        &daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"];
    Ok(serde_json::from_value(add.clone())?)
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_data_restored_into_another_clusters_new_volume() -> Result<()> {
    let (source, target) = tokio::try_join!(ControlPlane::start("vol-src"), ControlPlane::start("vol-dst"))?;
    let roots = LocalDir::new()?;
    let (root_a, root_b) = (roots.path().join("node-a"), roots.path().join("node-b"));
    let disks = Disks::new()?;
    // No grace: the prunes at the end delete at once what the first planned.
    let hub = HubProcess::start_with(&[("CAIRN_VOLUME_PRUNE_GRACE", "0s")]).await?;
    let (_a, _b) = tokio::try_join!(hub.agent(&source, None), hub.agent(&target, None))?;
    // Each node agent with only the capabilities its DaemonSet grants (if the test runs as root):
    // node-a only backs up, as node-agent-readonly.yaml; node-b restores, as node-agent.yaml.
    let (read_only, read_write) = (capabilities(NODE_AGENT_READONLY)?, capabilities(NODE_AGENT)?);
    let (_node_a, node_b) = tokio::try_join!(
        hub.node_agent_with(&source, "node-a", &root_a, Some(read_only.as_slice())),
        hub.node_agent_with(&target, "node-b", &root_b, Some(read_write.as_slice()))
    )?;

    source.apply(&app("pv-src", "disk-1", "node-a")).await?;
    assert_eq!(bound(&source, "shop", "data").await?, "pv-src");
    let uid = pod_uid(&source, "shop", "db").await?;
    let data = mount_dir(&root_a, &uid, "pv-src");
    let _src = disks.mount("pv-src", &data)?;
    fill(&data)?;
    let before = picture(&data)?;
    let owned_before = owners(&data)?;

    let out = hub
        .cli_line("backup create first --cluster vol-src --include-namespaces shop --volumes --wait")
        .await?
        .ok()?;
    assert!(
        out.stdout.contains("Volume data backed up:") && out.stdout.contains("shop/data"),
        "{}",
        out.stdout
    );
    // Nothing of the cluster is readable in the bucket: every object of the backup is sealed.
    let folder = hub.data_dir().join("backups/backups/first");
    let objects = files_under(&folder)?;
    assert!(objects.len() >= 3, "{objects:?}");
    for object in objects {
        let bytes = std::fs::read(&object)?;
        let clear = |word: &[u8]| bytes.windows(word.len()).any(|w| w == word);
        assert!(
            !clear(b"vol-src") && !clear(b"shop") && !bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "{} is not sealed",
            object.display()
        );
    }
    let described = hub.json("backup describe first").await?;
    let volume = &described["status"]["volumes"][0];
    assert_eq!(volume["node"], "node-a", "{described}");
    assert_eq!(volume["files"], 6, "{described}");
    let (started, finished) = span(volume)?;
    let backup = span(&described["status"])?;
    assert!(
        backup.0 <= started && started <= finished && finished <= backup.1,
        "the volume's data time is within its backup's: {described}"
    );

    // The workspace's key is rotated: the volume repository's master key is re-wrapped (the key
    // file the old version opened is gone), new backups are sealed with version 2, and the
    // second backup still deduplicates against the first (same repository, new key).
    let key_files = || files_under(&hub.data_dir().join("backups/volumes/keys"));
    let old_key_files = key_files()?;
    assert_eq!(old_key_files.len(), 1, "{old_key_files:?}");
    let rotated = hub.cli_line("workspace rotate-key default").await?.ok()?;
    assert!(
        rotated
            .stdout
            .contains("location default: new backups are sealed with key version 2"),
        "{}",
        rotated.stdout
    );
    let new_key_files = key_files()?;
    assert_eq!(new_key_files.len(), 1, "{new_key_files:?}");
    assert_ne!(new_key_files, old_key_files, "the master key was not re-wrapped");
    assert!(
        files_under(&hub.data_dir().join("backups/keyring"))?.len() == 2,
        "the bucket keeps both key versions"
    );
    let described = hub.cli_line("location describe default").await?.ok()?;
    assert!(
        described.stdout.contains("Key version:        2"),
        "{}",
        described.stdout
    );

    // Incremental: one file changed; the next backup reads that file only.
    let changed = random_bytes(256 << 10);
    write(&data.join("pg_wal/000002"), &changed, 0o600, SystemTime::now())?;
    hub.cli_line("backup create second --cluster vol-src --include-namespaces shop --volumes --wait")
        .await?
        .ok()?;
    let second = hub.json("backup describe second").await?;
    let volume = &second["status"]["volumes"][0];
    assert_eq!(volume["files"], 7, "{second}");
    assert_eq!(volume["bytes_read"], changed.len(), "{second}");

    let sealed_with = |backup: &str| -> Result<Option<u32>> {
        let manifest = std::fs::read(
            hub.data_dir()
                .join(format!("backups/backups/{backup}/manifest.pb")),
        )?;
        Ok(cairn_proto::format::key_version_of(&manifest))
    };
    assert_eq!(sealed_with("first")?, Some(1));
    assert_eq!(sealed_with("second")?, Some(2));

    // The first backup, sealed before the rotation, restores: objects and volume data.
    // The target's "scheduler" and "kubelet" are this test: it places the restored pod on
    // node-b and mounts the new volume there once the claim is bound to it.
    target.apply(&provisioned("pv-dst", "disk-2")).await?;
    hub.cli_line("restore create back --from-backup first --target-cluster vol-dst")
        .await?
        .ok()?;
    let new_uid = pod_uid(&target, "shop", "db").await?;
    let pods: Api<Pod> = Api::namespaced(target.client(), "shop");
    let binding = serde_json::json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "db", "namespace": "shop"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-b"}
    });
    pods.create_subresource::<Value, Value>("binding", "db", &PostParams::default(), &binding)
        .await
        .context("binding the restored pod to node-b")?;
    assert_eq!(
        bound(&target, "shop", "data").await?,
        "pv-dst",
        "the restored claim binds to a new volume, not the source's"
    );
    // As the kubelet: the volume's directory first, the volume mounted on it later. Data written
    // in between would be hidden under the mount, and the pod would find its volume empty: the
    // node agent, asked meanwhile, waits for the mount.
    let restored = mount_dir(&root_b, &new_uid, "pv-dst");
    std::fs::create_dir_all(&restored)?;
    wait_until("the restore to ask node-b for the data", SETTLE, || async {
        let described = hub.cli_line("restore describe back").await?.ok()?;
        Ok(described
            .stdout
            .contains("volumes: 0 of 1 claims done")
            .then_some(()))
    })
    .await?;
    wait_until("node-b to wait for the mount", SETTLE, || async {
        Ok(node_b
            .full_log()
            .contains("waiting for the kubelet to mount the volume")
            .then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let early = entries(&restored)?;
    assert!(
        early.is_empty(),
        "written before the volume was mounted: {early:?}"
    );
    let mounted = Timestamp::now();
    let dst = disks.mount("pv-dst", &restored)?;
    let done = ended(&hub, "restore", "back").await?;
    assert_eq!(done["status"]["phase"], "Completed", "{done}");
    assert_eq!(done["status"]["volumes"][0]["node"], "node-b", "{done}");
    // The volume's time is its data's alone: from its mount being there to the restore's end.
    let (started, finished) = span(&done["status"]["volumes"][0])?;
    let restore = span(&done["status"])?;
    assert!(
        mounted <= started && started <= finished && finished <= restore.1,
        "mounted at {mounted}: {done}"
    );
    let described = hub.cli_line("restore describe back").await?.ok()?;
    let row = described.stdout.lines().find(|l| l.contains("node-b"));
    let seconds = |w: &str| {
        w.strip_suffix('s')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    assert!(
        described.stdout.contains(" TIME ") && row.is_some_and(|r| r.split_whitespace().any(seconds)),
        "{}",
        described.stdout
    );
    assert_eq!(
        picture(&restored)?,
        before,
        "restored volume differs from the source's"
    );
    assert_eq!(owners(&restored)?, owned_before, "restored owners differ");
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o7777);
    assert_eq!(
        mode(&restored)?,
        0o700,
        "the volume's own directory keeps its mode"
    );
    // Nothing lies beneath the mount: the data is in the volume itself.
    drop(dst);
    let beneath = entries(&restored)?;
    assert!(
        beneath.is_empty(),
        "written beneath the volume's mount: {beneath:?}"
    );
    assert_eq!(picture(&disks.dir("pv-dst"))?, before, "the volume's own data");

    // The second backup, sealed with the new key version, restored into a namespace where
    // nothing binds the claim: its objects come back; its data is given up after the wait the
    // restore was given, saying what it waited for.
    let late = hub
        .cli_line("restore create late --from-backup second --target-cluster vol-dst --namespace-mapping shop:shop-late --volume-wait 3s --wait")
        .await?;
    assert_ne!(late.code, Some(0), "{late:?}");
    let late = hub.json("restore describe late").await?;
    assert_eq!(late["status"]["phase"], "PartiallyFailed", "{late}");
    let error = late["status"]["volumes"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("gave up after 3s (--volume-wait) waiting for the restored claim")
            && error.ends_with("the claim is not bound to a volume"),
        "{late}"
    );

    // Deleting the backups gives their volume data up: the hub has an agent prune the
    // repository; the first prune plans the unused packs, one past the grace period deletes them.
    let packs = hub.data_dir().join("backups/volumes/data");
    assert!(!files_under(&packs)?.is_empty());
    hub.cli_line("backup delete first").await?.ok()?;
    hub.cli_line("backup delete second").await?.ok()?;
    let planned = prune(&hub, "").await?;
    assert!(planned.contains("0 snapshots; deleted 0 packs"), "{planned}");
    let deleted = prune(&hub, &planned).await?;
    assert!(deleted.contains("0 snapshots; deleted"), "{deleted}");
    assert_eq!(files_under(&packs)?, Vec::<PathBuf>::new(), "{deleted}");
    Ok(())
}

/// Has the hub prune the default location with its configured grace (none: the test started it
/// with `CAIRN_VOLUME_PRUNE_GRACE=0s`); returns the last-prune line of `location describe` once it
/// differs from `before`.
async fn prune(hub: &HubProcess, before: &str) -> Result<String> {
    let out = hub.cli_line("location prune default").await?.ok()?;
    assert!(
        out.stdout.contains("started by the agent of cluster vol-"),
        "{}",
        out.stdout
    );
    prune_line(hub, |line| line != before).await
}

/// The last-prune line of `location describe default`, once there is one that is `done`.
async fn prune_line(hub: &HubProcess, done: impl Fn(&str) -> bool) -> Result<String> {
    wait_until("the prune to end", SETTLE, || async {
        let described = hub.cli_line("location describe default").await?.ok()?;
        let line = described
            .stdout
            .lines()
            .find(|l| l.starts_with("Last volume prune:"))
            .map(str::to_owned);
        Ok(line.filter(|l| done(l)))
    })
    .await
}

/// A claim on a node without a node agent is named in a `PartiallyFailed` backup. Besides, on the
/// same hub and cluster: the node agent's DaemonSets are accepted by the API server with their
/// security context intact, and a prune asked with less than the hub's grace is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_on_a_node_without_a_node_agent_is_reported() -> Result<()> {
    let source = ControlPlane::start("vol-lone").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&source, None).await?;
    // The DaemonSets users deploy are ones the cluster accepts, least privilege and all; the
    // backup-only variant replaces the first (same DaemonSet).
    source.apply(include_str!("../../deploy/agent.yaml")).await?;
    let applied = source.apply(NODE_AGENT).await?;
    assert_eq!(
        applied[0].types.as_ref().map(|t| t.kind.as_str()),
        Some("DaemonSet")
    );
    least_privilege(&applied[0].data, &["CHOWN", "DAC_OVERRIDE", "FOWNER"], false)?;
    let applied = source.apply(NODE_AGENT_READONLY).await?;
    least_privilege(&applied[0].data, &["DAC_OVERRIDE"], true)?;

    // A prune shorter than the hub's configured grace (24h by default): refused, saying the least.
    let out = hub.cli_line("location prune default --grace 0s").await?;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains(
            "refused: grace 0s is shorter than the hub's volume_prune_grace (1day): \
             packs of backups still running could be deleted"
        ),
        "{out:?}"
    );
    let out = hub.cli_line("location prune default --grace 23h").await?;
    assert!(out.stderr.contains("refused: grace 23h is shorter"), "{out:?}");
    source.apply(&app("pv-lone", "disk-9", "node-z")).await?;
    bound(&source, "shop", "data").await?;
    let out = hub
        .cli_line("backup create lone --cluster vol-lone --include-namespaces shop --volumes --wait")
        .await?;
    if out.code == Some(0) {
        bail!("a backup missing a claim's data succeeded: {}", out.stdout);
    }
    let described = hub.json("backup describe lone").await?;
    assert_eq!(described["status"]["phase"], "PartiallyFailed", "{described}");
    let error = described["status"]["volumes"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("no node agent is connected on node node-z of cluster vol-lone"),
        "{described}"
    );
    Ok(())
}

/// Checks the node agent's DaemonSet `daemonset` as the API server stored it: its container runs
/// with no privilege escalation, the runtime's seccomp profile, a read-only root filesystem, as
/// root with every capability dropped but `capabilities`; the kubelet's pods directory mounted
/// with HostToContainer propagation, read-only if `read_only`; no toleration of every taint.
fn least_privilege(daemonset: &Value, capabilities: &[&str], read_only: bool) -> Result<()> {
    let pod = &daemonset["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let context = &container["securityContext"];
    assert_eq!(context["allowPrivilegeEscalation"], false, "{context}");
    assert_eq!(context["privileged"], false, "{context}");
    assert_eq!(context["readOnlyRootFilesystem"], true, "{context}");
    assert_eq!(context["runAsUser"], 0, "{context}");
    assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault", "{context}");
    assert_eq!(
        context["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{context}"
    );
    assert_eq!(
        context["capabilities"]["add"],
        serde_json::json!(capabilities),
        "{context}"
    );
    let mounts = container["volumeMounts"].as_array().context("volumeMounts")?;
    let pods = mounts
        .iter()
        .find(|m| m["mountPath"] == "/host/kubelet/pods")
        .context("no mount of the kubelet's pods directory")?;
    assert_eq!(pods["mountPropagation"], "HostToContainer", "{pods}");
    assert_eq!(pods["readOnly"].as_bool().unwrap_or(false), read_only, "{pods}");
    assert!(
        mounts
            .iter()
            .filter(|m| m["mountPath"] != "/host/kubelet/pods")
            .all(|m| m["readOnly"] == true),
        "{mounts:?}"
    );
    let tolerations = pod["tolerations"].as_array().cloned().unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .all(|t| !(t["operator"] == "Exists" && t.get("key").is_none())),
        "tolerates every taint: {tolerations:?}"
    );
    Ok(())
}

/// A volume backup under way shows its progress, growing, in `backup describe`; when its node
/// agent goes away mid-task the claim's data fails with that reason at once and the backup ends.
/// Meanwhile the hub prunes the location on its own, every `volume_prune_interval`.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_volume_backup_shows_progress_and_ends_when_its_node_agent_goes() -> Result<()> {
    let source = ControlPlane::start("vol-long").await?;
    let root = LocalDir::new()?;
    let disks = Disks::new()?;
    let hub = HubProcess::start_with(&[("CAIRN_VOLUME_PRUNE_INTERVAL", "2s")]).await?;
    let _agent = hub.agent(&source, None).await?;
    let node = hub.node_agent(&source, "node-a", root.path()).await?;
    source.apply(&app("pv-long", "disk-3", "node-a")).await?;
    bound(&source, "shop", "data").await?;
    let uid = pod_uid(&source, "shop", "db").await?;
    let data = mount_dir(root.path(), &uid, "pv-long");
    let _mounted = disks.mount("pv-long", &data)?;
    // A 1 TiB sparse disk image: read as zeros, it keeps the node agent busy far longer than
    // this test waits, and takes no room.
    std::fs::File::create(data.join("disk.img"))?.set_len(1 << 40)?;

    hub.cli_line("backup create long --cluster vol-long --include-namespaces shop --volumes")
        .await?
        .ok()?;
    let progress = || async {
        let out = hub.cli_line("backup describe long").await?.ok()?;
        Ok(out
            .stdout
            .lines()
            .find(|l| l.starts_with("Progress:") && l.contains("iB · volumes: 0 of 1 claims done"))
            .map(str::to_owned))
    };
    let first = wait_until("volume bytes in the backup's progress", SETTLE, progress).await?;
    let later = wait_until("the backup's progress to move on", SETTLE, || async {
        Ok(progress().await?.filter(|l| *l != first))
    })
    .await?;
    assert_ne!(first, later);

    drop(node); // the node agent's process is killed mid-task
    let done = ended(&hub, "backup", "long").await?;
    assert_eq!(done["status"]["phase"], "PartiallyFailed", "{done}");
    let error = done["status"]["volumes"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("the agent of node node-a disconnected"), "{done}");

    // Nobody asked for a prune: the hub's own schedule ran one, by the remaining agent.
    let pruned = prune_line(&hub, |line| line.contains("deleted")).await?;
    assert!(pruned.contains("by vol-long ("), "{pruned}");
    Ok(())
}

/// What a node agent is handed opens the volume repository only: the key of a volume task (a node
/// agent enrolled and vouched for like any other, played by this test) does not open the
/// backup's resource objects, which the hub itself reads.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_agents_key_opens_no_resource_backup() -> Result<()> {
    use cairn_proto::convert::Wire;
    use cairn_proto::format::{BackupKeys, ObjectSeal, SealedStore};
    use cairn_proto::model::{
        Instruction, Manifest, Registration, Report, ResourceKey, ResourceKeys, VolumeResult,
    };
    let source = ControlPlane::start("vol-keys").await?;
    let hub = HubProcess::start().await?;
    let agent = hub.agent(&source, None).await?;
    let token = testbed::cairn::node_agent_token(&source, "node-a").await?;
    let node = cairn_agent::enrol::Enrolled::node_agent(
        hub.dial()?,
        "vol-keys".parse()?,
        "node-a",
        secrecy::SecretString::from(token),
    )
    .await?;
    let mut client =
        cairn_proto::pb::agent_channel_client::AgentChannelClient::new(node.endpoint()?.connect().await?);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let register = Registration {
        cluster: "vol-keys".parse()?,
        agent_version: "test".into(),
        kubernetes_version: String::new(),
        node: Some("node-a".into()),
    };
    tx.send(Report::Register(register).to_pb()).await?;
    let mut down = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();

    source.apply(&app("pv-keys", "disk-7", "node-a")).await?;
    bound(&source, "shop", "data").await?;
    hub.cli_line("backup create keys --cluster vol-keys --include-namespaces shop --volumes")
        .await?
        .ok()?;
    let message = tokio::time::timeout(SETTLE, down.message())
        .await
        .context("no volume task for node-a")??
        .context("the stream ended")?;
    let Instruction::Volume(task) = Instruction::from_pb(message)? else {
        bail!("node-a got something other than a volume task");
    };
    let declined = VolumeResult {
        node: "node-a".into(),
        error: Some("declined by the test".into()),
        ..VolumeResult::default()
    };
    tx.send(Report::VolumeDone(task.id.clone(), declined).to_pb())
        .await?;
    wait_until("the backup to end", SETTLE, || async {
        let described = hub.json("backup describe keys").await?;
        Ok((described["status"]["phase"] == "PartiallyFailed").then_some(()))
    })
    .await?;

    // The hub reads the backup's manifest; the node agent's key does not open it.
    let items = hub.cli_line("backup describe keys --details").await?.ok()?;
    assert!(items.stdout.contains("shop"), "{}", items.stdout);
    let with_node_key = SealedStore::new(
        cairn_proto::format::open_location(&task.location)?,
        &task.location.name,
        // As whatever version the manifest names, or none.
        ObjectSeal::new(&ResourceKeys::new(
            (0..4)
                .map(|version| ResourceKey {
                    version,
                    bytes: task.key.0.clone(),
                })
                .collect(),
        ))?,
    );
    let manifest = with_node_key
        .read::<Manifest>(&BackupKeys::new(&"keys".parse()?).manifest())
        .await;
    assert!(
        manifest.is_err(),
        "the node agent's key opened the manifest: {:?}",
        manifest.map(|m| m.is_some())
    );

    // The key the hub handed out is nowhere in clear: not in its database, the hub's and the
    // agent's debug logs, or what `describe -o json` shows.
    let key = &task.key.0;
    assert_eq!(key.len(), 32);
    let spelled = [
        key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key),
        format!("{key:?}"),
    ];
    let described = [
        hub.cli_line("location describe default -o json")
            .await?
            .ok()?
            .stdout,
        hub.cli_line("backup describe keys -o json").await?.ok()?.stdout,
        hub.full_log(),
        agent.full_log(),
    ];
    for text in &described {
        for s in &spelled {
            assert!(!text.contains(s.as_str()), "a repository key in clear in: {text}");
        }
    }
    hub.stop();
    for file in files_under(&hub.data_dir().join("db"))? {
        let bytes = std::fs::read(&file)?;
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_slice()),
            "a repository key in clear in {}",
            file.display()
        );
    }
    Ok(())
}

/// A node agent checks the names in a task itself, whatever sent it: the test plays the cluster
/// agent (with its certificate, the real agent stopped) and has the hub route backup tasks of pod
/// `../..` and of volume `../../x` to a real node agent, where directories wait that those names
/// would reach. Each result names the field and the value; nothing under or beside the kubelet
/// root changed and the location's volume repository was not opened. A task naming the pod's real
/// volume, sent the same way, is backed up.
#[tokio::test(flavor = "multi_thread")]
async fn node_tasks_with_hostile_names_are_refused_before_any_file_is_touched() -> Result<()> {
    use cairn_proto::convert::Wire;
    use cairn_proto::model::{
        BackupName, Instruction, Location, Registration, Report, RepositoryKey, VolumeTask, VolumeTaskId,
    };
    let source = ControlPlane::start("vol-hostile").await?;
    let host = LocalDir::new()?;
    let root = host.path().join("kubelet");
    let disks = Disks::new()?;
    let hub = HubProcess::start().await?;
    let agent = hub.agent(&source, None).await?;
    let _node = hub.node_agent(&source, "node-a", &root).await?;
    // A pod's volume as the kubelet lays it out, and volume directories where the hostile names
    // lead if joined as they come: pod `../..`'s plugin directories beside the kubelet root,
    // volume `../../x`'s mount in the pod's own directory. Followed, either would be backed up.
    let uid = "0b3c5d7e-1f2a-4b6c-8d9e-a1b2c3d4e5f6";
    let data = mount_dir(&root, uid, "pv-1");
    let _mounted = disks.mount("pv-1", &data)?;
    fill(&data)?;
    let planted = [
        host.path().join("volumes/kubernetes.io~csi/pv-1/mount/stolen"),
        root.join("pods").join(uid).join("x/mount/stolen"),
    ];
    for path in &planted {
        write(path, b"not this task's\n", 0o600, SystemTime::now())?;
    }
    let before = picture(host.path())?;
    let repository = hub.data_dir().join("backups/volumes");
    assert!(!repository.exists(), "a volume repository before any volume task");

    // The cluster agent, played by the test.
    let kept = agent.kept_identity()?;
    let (cert, key) = (
        kept["cert_pem"].as_str().context("cert")?,
        kept["key_pem"].as_str().context("key")?,
    );
    agent.terminate(Duration::from_secs(10))?;
    let endpoint = hub.dial()?.endpoint_as(cert, key)?;
    let mut client =
        cairn_proto::pb::agent_channel_client::AgentChannelClient::new(endpoint.connect().await?);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let register = Registration {
        cluster: "vol-hostile".parse()?,
        agent_version: "test".into(),
        kubernetes_version: "v1.20.2".into(),
        node: None,
    };
    tx.send(Report::Register(register).to_pb()).await?;
    let mut down = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let beating = tx.clone();
    let heartbeat = tokio::spawn(async move {
        while beating.send(Report::Heartbeat.to_pb()).await.is_ok() {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });

    hub.cli_line("backup create hostile --cluster vol-hostile --include-namespaces shop --volumes")
        .await?
        .ok()?;
    while !matches!(instruction(&mut down).await?, Instruction::Backup { .. }) {}
    let task = |claim: &str, pod_uid: &str, volume: &str| -> Result<VolumeTask> {
        Ok(VolumeTask {
            id: VolumeTaskId::new("hostile".parse::<BackupName>()?, "shop", claim),
            cluster: "vol-hostile".parse()?,
            node: "node-a".into(),
            // The hub sends the backup's own location and key, whatever the task says.
            location: Location {
                name: "default".parse()?,
                url: "file:///nonexistent".into(),
                options: Default::default(),
            },
            key: RepositoryKey(vec![0; 32]),
            pod_uid: pod_uid.into(),
            volume: volume.into(),
            source: format!("vol-hostile/shop/{claim}"),
            tag: "hostile".into(),
            snapshot: None,
            keep_setid: false,
        })
    };
    tx.send(Report::VolumeTask(task("by-uid", "../..", "pv-1")?).to_pb())
        .await?;
    tx.send(Report::VolumeTask(task("by-volume", uid, "../../x")?).to_pb())
        .await?;
    let results = volume_results(&mut down, 2).await?;
    let errors: Vec<_> = results
        .iter()
        .map(|(claim, r)| (claim.as_str(), r.error.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        errors[0],
        ("by-uid", r#"volume task refused: pod uid "../.." is not a UUID"#)
    );
    assert_eq!(errors[1].0, "by-volume");
    assert!(
        errors[1]
            .1
            .starts_with(r#"volume task refused: volume "../../x" is not a Kubernetes object name"#),
        "{errors:?}"
    );
    assert!(results.iter().all(|(_, r)| r.snapshot.is_empty() && r.files == 0));
    assert_eq!(
        picture(host.path())?,
        before,
        "a refused task changed the kubelet root or beside it"
    );
    assert!(
        !repository.exists(),
        "a refused task opened the location's volume repository"
    );

    // The same way, the pod's real volume is backed up: the refusals were the names'.
    tx.send(Report::VolumeTask(task("data", uid, "pv-1")?).to_pb())
        .await?;
    let results = volume_results(&mut down, 1).await?;
    let (_, result) = &results[0];
    assert_eq!(result.error, None, "{result:?}");
    assert!(!result.snapshot.is_empty() && result.files > 0, "{result:?}");
    assert_eq!(picture(host.path())?, before);
    heartbeat.abort();
    Ok(())
}

/// The next instruction the hub sends a cluster agent on `down`, past its standing orders.
async fn instruction(
    down: &mut tonic::Streaming<cairn_proto::pb::HubMessage>,
) -> Result<cairn_proto::model::Instruction> {
    use cairn_proto::convert::Wire;
    loop {
        let message = tokio::time::timeout(SETTLE, down.message())
            .await
            .context("nothing from the hub")??
            .context("the session ended")?;
        match cairn_proto::model::Instruction::from_pb(message)? {
            cairn_proto::model::Instruction::Orders(_) => {}
            instruction => return Ok(instruction),
        }
    }
}

/// The results of the next `n` volume tasks to end, relayed to the cluster agent on `down`, by
/// claim.
async fn volume_results(
    down: &mut tonic::Streaming<cairn_proto::pb::HubMessage>,
    n: usize,
) -> Result<Vec<(String, cairn_proto::model::VolumeResult)>> {
    let mut results = Vec::new();
    while results.len() < n {
        if let cairn_proto::model::Instruction::VolumeDone(id, result) = instruction(down).await? {
            results.push((id.claim, result));
        }
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(results)
}
