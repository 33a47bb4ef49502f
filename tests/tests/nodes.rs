//! Real nodes: kubelet v1.20.2 and containerd on this machine, images built locally, pods that
//! really run on local volumes the kubelet mounts.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use kube::api::{Api, ListParams};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use testbed::{BUSYBOX_IMAGE, ControlPlane, wait_until};

/// How long pods may take to be scheduled, started and Ready (seconds when warm).
const RUNNING: Duration = Duration::from_secs(120);

/// The test application's entrypoint: on an empty volume, when `WRITE_IF_EMPTY=yes`, it writes
/// its data set (files of several sizes, an empty file, a symlink, a hard link, modes) and a
/// checksum of it; then, always, it verifies the data against the checksum and exits non-zero on
/// an empty volume or a mismatch, as an application that refuses to start on the wrong data.
/// Ready (`/tmp/verified`) only once verified.
const APP: &str = r#"set -eu
cd /data
list() { find set | sort | while read -r f; do stat -c '%n %a %F %s %h' "$f"; done; }
if [ ! -f SHA256SUMS ]; then
  if [ "${WRITE_IF_EMPTY:-no}" != yes ]; then echo "empty volume: no SHA256SUMS in /data" >&2; exit 3; fi
  mkdir -p set/sub
  echo "$HOSTNAME" > set/owner
  head -c 100 /dev/urandom > set/small
  head -c 307200 /dev/urandom > set/medium
  head -c 8388608 /dev/urandom > set/sub/large
  : > set/empty
  ln -s sub/large set/link
  ln set/medium set/hard
  chmod 0600 set/small; chmod 0444 set/medium; chmod 0750 set/sub
  list > LISTING
  find set -type f | sort | xargs sha256sum > SHA256SUMS.tmp
  mv SHA256SUMS.tmp SHA256SUMS
fi
sha256sum -c -s SHA256SUMS || { echo "checksum mismatch in /data" >&2; exit 4; }
list | cmp -s - LISTING || { echo "modes, types or links differ in /data" >&2; exit 5; }
[ "$(readlink set/link)" = sub/large ] || { echo "symlink set/link is wrong" >&2; exit 6; }
touch /tmp/verified
trap 'exit 0' TERM
while true; do sleep 1; done
"#;

/// Namespace `shop`: a Deployment of two busybox pods and a StatefulSet `db` of two replicas, one
/// per node, each with its own claim (`data-db-0`, `data-db-1`) of StorageClass `local`.
fn shop(write_if_empty: bool) -> String {
    let write = if write_if_empty { "yes" } else { "no" };
    let script = serde_json::to_string(APP).expect("a string serialises");
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: app, namespace: shop}}
data: {{run.sh: {script}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 2
      containers:
      - {{name: web, image: {BUSYBOX_IMAGE}, imagePullPolicy: Never, command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: shop}}
spec:
  serviceName: db
  replicas: 2
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 2
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {{topologyKey: kubernetes.io/hostname, labelSelector: {{matchLabels: {{app: db}}}}}}
      containers:
      - name: db
        image: {BUSYBOX_IMAGE}
        imagePullPolicy: Never
        command: [sh, /app/run.sh]
        env: [{{name: WRITE_IF_EMPTY, value: "{write}"}}]
        readinessProbe: {{exec: {{command: [cat, /tmp/verified]}}, periodSeconds: 1}}
        volumeMounts:
        - {{name: data, mountPath: /data}}
        - {{name: app, mountPath: /app}}
      volumes:
      - {{name: app, configMap: {{name: app}}}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: local
      resources: {{requests: {{storage: 100Mi}}}}
"#
    )
}

/// Waits until `namespace`'s StatefulSet `name` has `replicas` Ready and returns its pods.
async fn ready_pods(cp: &ControlPlane, namespace: &str, name: &str, replicas: i32) -> Result<Vec<Pod>> {
    let sets: Api<StatefulSet> = Api::namespaced(cp.client(), namespace);
    let pods: Api<Pod> = Api::namespaced(cp.client(), namespace);
    wait_until(
        &format!("StatefulSet {namespace}/{name} Ready"),
        RUNNING,
        || async {
            let set = sets.get(name).await?;
            let ready = set.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            Ok((ready == replicas).then_some(()))
        },
    )
    .await
    .with_context(|| pod_report(cp, namespace))?;
    let list = pods
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await?;
    Ok(list.items)
}

/// For a failed wait: each pod's phase, node and container states, as `kubectl get pods` shows.
fn pod_report(cp: &ControlPlane, namespace: &str) -> String {
    let logs: Vec<String> = cp
        .nodes()
        .iter()
        .map(|n| format!("kubelet {}:\n{}", n.name(), n.sandbox().log_tail("kubelet")))
        .collect();
    format!("pods of {namespace} not ready; {}", logs.join("\n"))
}

/// What the data set of `dir` (a volume's directory on the host) must be: written by pod `owner`,
/// with the files, modes and links the application made.
fn check_data_set(dir: &Path, owner: &str) -> Result<()> {
    let set = dir.join("set");
    let written_by =
        std::fs::read_to_string(set.join("owner")).with_context(|| format!("{}", set.display()))?;
    if written_by.trim() != owner {
        bail!(
            "{} was written by {}, not {owner}",
            dir.display(),
            written_by.trim()
        );
    }
    let size = |f: &str| std::fs::metadata(set.join(f)).map(|m| m.len());
    assert_eq!(size("small")?, 100);
    assert_eq!(size("medium")?, 307_200);
    assert_eq!(size("sub/large")?, 8_388_608);
    assert_eq!(size("empty")?, 0);
    let mode = |f: &str| std::fs::metadata(set.join(f)).map(|m| m.permissions().mode() & 0o7777);
    assert_eq!(mode("small")?, 0o600);
    assert_eq!(mode("medium")?, 0o444);
    assert_eq!(mode("sub")?, 0o750);
    assert_eq!(std::fs::read_link(set.join("link"))?, Path::new("sub/large"));
    assert_eq!(
        std::fs::metadata(set.join("hard"))?.ino(),
        std::fs::metadata(set.join("medium"))?.ino()
    );
    assert!(dir.join("SHA256SUMS").is_file(), "checksum written");
    Ok(())
}

/// Acceptance 1: two nodes Ready; a Deployment of busybox pods Available; a StatefulSet with
/// volumeClaimTemplates runs one replica per node, each writing its own data set into its own
/// local volume, which the kubelet mounted from the volume's directory on that node.
#[tokio::test(flavor = "multi_thread")]
async fn pods_run_on_two_nodes_on_real_nodes() -> Result<()> {
    let cp = ControlPlane::start_with_nodes("farm", 2).await?;
    cp.provide_local_volumes(1).await?;
    cp.apply(&shop(true)).await?;

    let deployments: Api<Deployment> = Api::namespaced(cp.client(), "shop");
    wait_until("Deployment shop/web Available", RUNNING, || async {
        let d = deployments.get("web").await?;
        let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
        Ok((available == 2).then_some(()))
    })
    .await
    .with_context(|| pod_report(&cp, "shop"))?;

    let pods = ready_pods(&cp, "shop", "db", 2).await?;
    let nodes: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    let names: BTreeSet<String> = cp.nodes().iter().map(|n| n.name().to_owned()).collect();
    assert_eq!(nodes, names, "one replica on each node");
    for pod in &pods {
        let restarts: i32 = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| c.iter().map(|c| c.restart_count).sum())
            .unwrap_or(-1);
        assert_eq!(restarts, 0, "{:?} never restarted", pod.metadata.name);
    }

    // Each replica's claim is bound to the local volume of the node it runs on, and the data set
    // in that volume's directory is the one that replica wrote.
    let volumes: Api<PersistentVolume> = Api::all(cp.client());
    for pod in &pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let node = cp
            .nodes()
            .iter()
            .find(|n| n.name() == node_name)
            .context("the pod's node")?;
        let pv = volumes
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .and_then(|c| c.name.clone())
                    == Some(format!("data-{pod_name}"))
            })
            .with_context(|| format!("no volume bound to data-{pod_name}"))?;
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        assert!(
            pv_name.starts_with(&format!("local-{node_name}-")),
            "{pv_name} is on {node_name}"
        );
        check_data_set(&node.volume_dir(&pv_name)?, &pod_name)?;
    }
    Ok(())
}
