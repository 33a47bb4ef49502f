//! Real nodes: kubelet v1.20.2 and containerd on this machine, images built locally, pods that
//! really run on local volumes the kubelet mounts.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use kube::api::{Api, ListParams};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use testbed::cairn::HubProcess;
use testbed::in_cluster::{bucket_for_pods, deploy_agents, pod_logs};
use testbed::{BUSYBOX_IMAGE, ControlPlane, Node, wait_until};

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

/// The Deployment's entrypoint: writes its page into an empty volume while allowed, refuses to
/// start on an empty volume otherwise; Ready once it has its page.
const WEB: &str = r#"set -eu
if [ ! -f /data/page ]; then
  if [ "${WRITE_IF_EMPTY:-no}" != yes ]; then echo "empty volume: no page in /data" >&2; exit 3; fi
  echo "the page of shop" > /data/page
fi
grep -q "the page of shop" /data/page || { echo "wrong page in /data" >&2; exit 4; }
touch /tmp/verified
trap 'exit 0' TERM
while true; do sleep 1; done
"#;

/// Container `name` of `shop`'s applications: script `/app/{script}`, its data in volume `data`,
/// Ready once the script has verified it.
fn app_container(name: &str, script: &str) -> String {
    format!(
        r#"      - name: {name}
        image: {BUSYBOX_IMAGE}
        imagePullPolicy: Never
        command: [sh, /app/{script}]
        env: [{{name: WRITE_IF_EMPTY, valueFrom: {{configMapKeyRef: {{name: app, key: write-if-empty}}}}}}]
        readinessProbe: {{exec: {{command: [cat, /tmp/verified]}}, periodSeconds: 1}}
        volumeMounts:
        - {{name: data, mountPath: /data}}
        - {{name: app, mountPath: /app}}"#
    )
}

/// Namespace `shop`: a Deployment `web` of two busybox pods sharing a claim `web-data`, a
/// StatefulSet `db` of two replicas, one per node, each with its own claim (`data-db-0`,
/// `data-db-1`) of StorageClass `local`, and a bare pod `tool` with a claim `scratch`. The
/// applications write their data into an empty volume while ConfigMap `app` says
/// `write-if-empty: "yes"`, and refuse to start on one otherwise.
fn shop() -> String {
    let script = serde_json::to_string(APP).expect("a string serialises");
    let web = serde_json::to_string(WEB).expect("a string serialises");
    let (web_container, db_container) = (app_container("web", "web.sh"), app_container("db", "run.sh"));
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: app, namespace: shop}}
data: {{run.sh: {script}, web.sh: {web}, write-if-empty: "yes"}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: web-data, namespace: shop}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  resources: {{requests: {{storage: 10Mi}}}}
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
{web_container}
      volumes:
      - {{name: data, persistentVolumeClaim: {{claimName: web-data}}}}
      - {{name: app, configMap: {{name: app}}}}
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
{db_container}
      volumes:
      - {{name: app, configMap: {{name: app}}}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: local
      resources: {{requests: {{storage: 100Mi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: scratch, namespace: shop}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  resources: {{requests: {{storage: 10Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: tool, namespace: shop}}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  containers:
  - name: tool
    image: {BUSYBOX_IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, "[ -f /scratch/note ] || echo kept > /scratch/note; trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
  volumes:
  - {{name: scratch, persistentVolumeClaim: {{claimName: scratch}}}}
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

/// Waits until `namespace`'s Deployment `web` has two replicas available and returns its pods.
async fn web_available(cp: &ControlPlane, namespace: &str) -> Result<Vec<Pod>> {
    let deployments: Api<Deployment> = Api::namespaced(cp.client(), namespace);
    wait_until(
        &format!("Deployment {namespace}/web Available"),
        RUNNING,
        || async {
            let d = deployments.get("web").await?;
            let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
            Ok((available == 2).then_some(()))
        },
    )
    .await
    .with_context(|| pod_report(cp, namespace))?;
    let pods: Api<Pod> = Api::namespaced(cp.client(), namespace);
    Ok(pods.list(&ListParams::default().labels("app=web")).await?.items)
}

/// For a failed wait: the logs of `namespace`'s containers (every run), of Cairn's agents and of
/// each node's kubelet.
fn pod_report(cp: &ControlPlane, namespace: &str) -> String {
    let kubelets: Vec<String> = cp
        .nodes()
        .iter()
        .map(|n| format!("kubelet {}:\n{}", n.name(), n.sandbox().log_tail("kubelet")))
        .collect();
    format!(
        "pods of {namespace} not ready; their logs:\n{}\nCairn's agents:\n{}\n{}",
        pod_logs(cp, namespace, 20),
        pod_logs(cp, "cairn-system", 80),
        kubelets.join("\n")
    )
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
    cp.provide_local_volumes(3).await?;
    cp.apply(&shop()).await?;

    web_available(&cp, "shop").await?;

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

/// The node and the directory (on the host) of the local volume bound to claim `namespace/claim`.
async fn volume_of<'a>(cp: &'a ControlPlane, namespace: &str, claim: &str) -> Result<(&'a Node, PathBuf)> {
    let volumes: Api<PersistentVolume> = Api::all(cp.client());
    let pv = volumes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find(|pv| {
            let by = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
            by.is_some_and(|c| c.namespace.as_deref() == Some(namespace) && c.name.as_deref() == Some(claim))
        })
        .with_context(|| format!("no volume bound to {namespace}/{claim}"))?;
    let name = pv.metadata.name.clone().unwrap_or_default();
    let node = cp
        .nodes()
        .iter()
        .find(|n| name.starts_with(&format!("local-{}-", n.name())))
        .with_context(|| format!("{name} is on no node"))?;
    Ok((node, node.volume_dir(&name)?))
}

/// The state of container `name` of `pod` (init containers included).
fn container<'a>(pod: &'a Pod, name: &str) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find(|c| c.name == name)
}

/// Acceptance 2–5: Cairn's agents run in the cluster from deploy/ with its locally built images;
/// `cairn backup create --volumes` takes the StatefulSet's two replicas' data and the bare pod's;
/// restored into a second cluster with two nodes, each pod waits in the hold until its data is
/// in, then starts once (its entrypoint refuses an empty volume or a wrong checksum), each
/// replica with its own data. With the node agents gone, the same restore leaves the pods held
/// and ends PartiallyFailed naming each claim and why. A backup after the restore holds no trace
/// of the hold.
#[tokio::test(flavor = "multi_thread")]
async fn restored_pods_start_only_on_their_data_on_real_nodes() -> Result<()> {
    let hub = HubProcess::start().await?;
    let _bucket = bucket_for_pods(&hub).await?;
    let source = ControlPlane::start_with_nodes("shop-a", 2).await?;
    source.provide_local_volumes(3).await?;
    source.apply(&shop()).await?;
    ready_pods(&source, "shop", "db", 2).await?;
    web_available(&source, "shop").await?;
    // From now on the application refuses to start on an empty volume: a restored replica that
    // started before its data was in would fail and restart.
    source
        .apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: shop}\ndata: {write-if-empty: \"no\"}\n")
        .await?;
    deploy_agents(&hub, &source).await?;

    let out = hub
        .cli_line("backup create b1 --cluster shop-a --include-namespaces shop --volumes --wait")
        .await?
        .ok()?;
    let described = hub.json("backup describe b1").await?;
    let mut claims: Vec<(String, String)> = described["status"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["claim"].as_str().unwrap_or_default().to_owned(),
                v["node"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    claims.sort();
    let nodes_of = |claim: &str| claims.iter().find(|c| c.0 == claim).map(|c| c.1.clone());
    assert_eq!(
        claims.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["data-db-0", "data-db-1", "scratch", "web-data"],
        "{}\n{described}",
        out.stdout
    );
    assert_ne!(
        nodes_of("data-db-0"),
        nodes_of("data-db-1"),
        "each replica's data moved by its own node's agent"
    );

    // Restored into a second cluster with two nodes and Cairn deployed the same way.
    let target = ControlPlane::start_with_nodes("shop-b", 2).await?;
    // Enough for every claim of r1 (4), r2's pods that still look for one in the background (3)
    // and r3 (4): a claim r3 cannot place would keep it waiting its --volume-wait.
    target.provide_local_volumes(6).await?;
    deploy_agents(&hub, &target).await?;
    let restored = hub
        .cli_line("restore create r1 --from-backup b1 --target-cluster shop-b --volume-wait 2m --wait")
        .await?;
    let r1 = hub.json("restore describe r1").await?;
    assert_eq!(r1["status"]["phase"], "Completed", "{restored:?}\n{r1}");
    let pods = ready_pods(&target, "shop", "db", 2).await?;
    let placed: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    assert_eq!(placed.len(), 2, "one replica per node");
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let hold = container(pod, "cairn-hold").with_context(|| format!("{name} was not held"))?;
        let held = hold
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code);
        assert_eq!(held, Some(0), "{name}'s hold ended released");
        let db = container(pod, "db").context("db container")?;
        assert_eq!(db.restart_count, 0, "{name} started once, on its data");
        let (_, dir) = volume_of(&target, "shop", &format!("data-{name}")).await?;
        check_data_set(&dir, &name)?;
    }
    let (_, scratch) = volume_of(&target, "shop", "scratch").await?;
    assert_eq!(std::fs::read_to_string(scratch.join("note"))?, "kept\n");
    // The Deployment's pods were held too, and adopted: its one ReplicaSet is the restored one,
    // owning both pods, and no other pod of it ever ran (one would have started on an empty
    // volume and failed).
    let web = web_available(&target, "shop").await?;
    let sets = Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(target.client(), "shop")
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items;
    let set_names: Vec<String> = sets.iter().filter_map(|s| s.metadata.name.clone()).collect();
    let backed_up_sets = Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(source.client(), "shop")
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items;
    let backed_up_names: Vec<String> = backed_up_sets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(
        set_names, backed_up_names,
        "the restored ReplicaSet, adopted, and no new one"
    );
    let adopted_by = sets[0]
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{} {}", o.kind, o.name));
    assert_eq!(adopted_by.as_deref(), Some("Deployment web"));
    assert_eq!(web.len(), 2, "two pods of web, no extra: {web:?}");
    for pod in &web {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let hold = container(pod, "cairn-hold").with_context(|| format!("{name} was not held"))?;
        let held = hold
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code);
        assert_eq!(held, Some(0), "{name}'s hold ended released");
        assert_eq!(
            container(pod, "web").map(|c| c.restart_count),
            Some(0),
            "{name} started once"
        );
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        assert_eq!(
            owner.map(|o| o.name.clone()).as_ref(),
            set_names.first(),
            "{name} adopted"
        );
    }
    let (_, page) = volume_of(&target, "shop", "web-data").await?;
    assert_eq!(std::fs::read_to_string(page.join("page"))?, "the page of shop\n");

    // A backup of the restored namespace holds no trace of the hold: the bare pod, restored from
    // it (without volume data, so not held again) as it was backed up, has no hold container,
    // volume or annotation.
    hub.cli_line("backup create b2 --cluster shop-b --include-namespaces shop --wait")
        .await?
        .ok()?;
    hub.cli_line("restore create r2 --from-backup b2 --target-cluster shop-b --namespace-mapping shop:shop-check --wait")
        .await?
        .ok()?;
    let tool = Api::<Pod>::namespaced(target.client(), "shop-check")
        .get("tool")
        .await?;
    let tool = serde_json::to_value(&tool)?;
    assert!(
        !tool.to_string().contains("cairn-hold") && !tool.to_string().contains("cairn.dev/hold"),
        "{tool}"
    );
    let live = Api::<Pod>::namespaced(target.client(), "shop")
        .get("tool")
        .await?;
    assert!(
        serde_json::to_string(&live)?.contains("cairn-hold"),
        "the live pod was held: the check above can fail"
    );

    // The node agents gone, the same backup restored again: nothing can write the data, so the
    // pods stay held, their containers never started, and the restore says which claims and why.
    Api::<k8s_openapi::api::apps::v1::DaemonSet>::namespaced(target.client(), "cairn-system")
        .delete("cairn-node-agent", &Default::default())
        .await?;
    let agents: Api<Pod> = Api::namespaced(target.client(), "cairn-system");
    wait_until("the node agents to stop", RUNNING, || async {
        let left = agents
            .list(&ListParams::default().labels("app=cairn-node-agent"))
            .await?;
        Ok(left.items.is_empty().then_some(()))
    })
    .await?;
    let failed = hub
        .cli_line("restore create r3 --from-backup b1 --target-cluster shop-b --namespace-mapping shop:shop-held --volume-wait 2m --wait")
        .await?;
    assert_ne!(failed.code, Some(0), "{failed:?}");
    let r3 = hub.json("restore describe r3").await?;
    assert_eq!(r3["status"]["phase"], "PartiallyFailed", "{r3}");
    for claim in ["data-db-0", "data-db-1", "scratch", "web-data"] {
        let volume = r3["status"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["claim"] == claim)
            .with_context(|| format!("{claim} not in {r3}"))?;
        let error = volume["error"].as_str().unwrap_or_default();
        assert!(error.contains("no node agent"), "{claim}: {error}");
    }
    let held: Api<Pod> = Api::namespaced(target.client(), "shop-held");
    let web_pods: Vec<String> = held
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(web_pods.len(), 2, "{web_pods:?}");
    let names = ["db-0", "db-1", "tool"]
        .into_iter()
        .map(String::from)
        .chain(web_pods);
    for name in names {
        let name = name.as_str();
        let app = match name {
            "tool" => "tool",
            "db-0" | "db-1" => "db",
            _ => "web",
        };
        let pod = wait_until(&format!("{name}'s hold to fail"), RUNNING, || async {
            let pod = held.get_opt(name).await?;
            let failed = pod
                .as_ref()
                .and_then(|p| container(p, "cairn-hold"))
                .is_some_and(|c| {
                    let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                    let now = c.state.as_ref().and_then(|s| s.terminated.as_ref());
                    last.or(now).is_some_and(|t| t.exit_code != 0)
                });
            Ok(pod.filter(|_| failed))
        })
        .await?;
        let annotation = pod.metadata.annotations.clone().unwrap_or_default();
        let state = annotation.get("cairn.dev/hold").cloned().unwrap_or_default();
        assert!(
            state.starts_with("failed: restore r3 could not write the data of claim"),
            "{name}: {state}"
        );
        let main = container(&pod, app).context("application container")?;
        let started = main
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .map(|w| w.reason.clone());
        assert_eq!(
            started,
            Some(Some("PodInitializing".into())),
            "{name} never started: {main:?}"
        );
        assert_eq!(main.restart_count, 0);
    }
    Ok(())
}
