//! The test bed's control plane is a real Kubernetes 1.20 control plane: controllers run,
//! namespaces finalise, custom resources work, and no server outlives a killed test.

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use testbed::{ControlPlane, is_running, reap_stale, wait_until};

const SHOP: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.25}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: production}
";

const CONTROLLERS: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn two_control_planes_run_independently() -> Result<()> {
    let (a, b) = tokio::try_join!(ControlPlane::start("source"), ControlPlane::start("target"))?;
    assert_ne!(a.server(), b.server());

    let applied = a.apply(SHOP).await?;
    assert_eq!(applied.len(), 4);

    // The controller-manager turns the Deployment into a ReplicaSet and the ReplicaSet into Pods.
    let replica_sets: Api<ReplicaSet> = Api::namespaced(a.client(), "shop");
    let rs = wait_until("the Deployment's ReplicaSet", CONTROLLERS, || async {
        let list = replica_sets.list(&ListParams::default()).await?;
        Ok(list.items.into_iter().next())
    })
    .await?;
    let owner = &rs
        .metadata
        .owner_references
        .as_ref()
        .context("ReplicaSet has an owner")?[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Deployment", "web"));
    let pods: Api<Pod> = Api::namespaced(a.client(), "shop");
    let made = wait_until("two Pods of the ReplicaSet", CONTROLLERS, || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await?;
        Ok((list.items.len() == 2).then_some(list.items))
    })
    .await?;
    for pod in &made {
        let owner = &pod
            .metadata
            .owner_references
            .as_ref()
            .context("Pod has an owner")?[0];
        assert_eq!(owner.kind, "ReplicaSet");
        // No scheduler, no kubelet: Pods stay Pending.
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Pending")
        );
    }

    // The second control plane has its own etcd: nothing of the first shows there.
    let b_namespaces: Api<Namespace> = Api::all(b.client());
    assert!(b_namespaces.get_opt("shop").await?.is_none());

    // Deleting the namespace finalises it: the namespace controller removes its content, then it.
    let a_namespaces: Api<Namespace> = Api::all(a.client());
    a_namespaces.delete("shop", &DeleteParams::default()).await?;
    wait_until("namespace shop to be finalised", CONTROLLERS, || async {
        Ok(a_namespaces.get_opt("shop").await?.is_none().then_some(()))
    })
    .await?;
    assert!(replica_sets.list(&ListParams::default()).await?.items.is_empty());

    // The second is untouched and still serves.
    assert!(b_namespaces.get_opt("default").await?.is_some());
    Ok(())
}

const WIDGETS: &str = r"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.cairn.dev}
spec:
  group: example.cairn.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
---
apiVersion: example.cairn.dev/v1
kind: Widget
metadata: {name: gizmo, namespace: default, labels: {tier: gold}}
spec: {size: 3, color: blue}
";

/// The apiserver survives encoding a custom resource: the vendored reflect2 was replaced.
#[tokio::test(flavor = "multi_thread")]
async fn custom_resources_are_stored_and_served() -> Result<()> {
    let cp = ControlPlane::start("crd").await?;
    cp.apply(WIDGETS).await?;

    let resource = ApiResource {
        group: "example.cairn.dev".into(),
        version: "v1".into(),
        api_version: "example.cairn.dev/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(cp.client(), "default", &resource);
    let gizmo = widgets.get("gizmo").await?;
    assert_eq!(
        gizmo.data["spec"],
        serde_json::json!({"size": 3, "color": "blue"})
    );
    let listed = widgets.list(&ListParams::default().labels("tier=gold")).await?;
    assert_eq!(listed.items.len(), 1);
    cp.sandbox().ensure_running("kube-apiserver")?;
    Ok(())
}

/// A test process killed outright (SIGKILL, no destructors) leaves no server running and its
/// sandbox is reaped by the next run.
#[tokio::test(flavor = "multi_thread")]
async fn killed_test_process_leaves_no_servers_behind() -> Result<()> {
    let mut holder = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["control-plane", "doomed"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = holder.stdout.take().context("stdout")?;
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("ready "))
    })
    .await?
    .context("testbed printed no ready line")?;
    let sandbox = ready.split("sandbox=").nth(1).context("sandbox path")?.to_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(&sandbox)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "pid") {
            let text = std::fs::read_to_string(&path)?;
            pids.push(text.split_whitespace().next().context("pid")?.parse::<u32>()?);
        }
    }
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager in {sandbox}"
    );
    assert!(
        pids.iter().all(|&pid| is_running(pid)),
        "servers {pids:?} of {sandbox} running before the kill"
    );

    holder.kill()?; // SIGKILL
    holder.wait()?;
    reap_stale()?;
    wait_until(
        &format!("the killed run's servers {pids:?} to end"),
        Duration::from_secs(10),
        || async { Ok(pids.iter().all(|&pid| !is_running(pid)).then_some(())) },
    )
    .await?;
    // Another test process may be reaping the same sandbox at this moment: wait for its removal
    // to finish rather than look once.
    wait_until(
        &format!("sandbox {sandbox} to be reaped"),
        Duration::from_secs(10),
        || async { Ok((!std::path::Path::new(&sandbox).exists()).then_some(())) },
    )
    .await?;
    Ok(())
}
