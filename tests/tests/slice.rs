//! The vertical slice on the real control plane: `cairn` backs up a varied namespace through the
//! hub and the agent, and restores it in place, beside itself under another name, and into
//! another cluster; the namespace comes back as it was.

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;
use testbed::cairn::HubProcess;
use testbed::{ControlPlane, snapshot, wait_until};

const APP: &str = include_str!("../fixtures/app.yaml");
const SETTLE: Duration = Duration::from_secs(60);

/// Applies the app and waits until the controllers have done their part (claim bound, pods made).
async fn deploy_app(cp: &ControlPlane) -> Result<()> {
    cp.apply(APP).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cp.client(), "app");
    wait_until("claim data bound", SETTLE, || async {
        let pvc = claims.get("data").await?;
        Ok((pvc.status.and_then(|s| s.phase).as_deref() == Some("Bound")).then_some(()))
    })
    .await?;
    wait_for_replica_set(cp, "app").await
}

async fn wait_for_replica_set(cp: &ControlPlane, ns: &str) -> Result<()> {
    let replica_sets: Api<ReplicaSet> = Api::namespaced(cp.client(), ns);
    wait_until(
        &format!("the web Deployment's ReplicaSet in {ns}"),
        SETTLE,
        || async {
            let list = replica_sets
                .list(&ListParams::default().labels("app=web"))
                .await?;
            Ok(list
                .items
                .iter()
                .any(|rs| {
                    rs.metadata
                        .owner_references
                        .as_ref()
                        .is_some_and(|o| o[0].name == "web")
                })
                .then_some(()))
        },
    )
    .await
}

/// `cairn backup create shop --cluster source --include-namespaces app --wait`, which must succeed.
async fn back_up_app(hub: &HubProcess) -> Result<testbed::cairn::CliOutput> {
    hub.cli(&[
        "backup",
        "create",
        "shop",
        "--cluster",
        "source",
        "--include-namespaces",
        "app",
        "--wait",
    ])
    .await?
    .ok()
}

async fn mode(config_maps: &Api<ConfigMap>) -> Result<String> {
    let cm = config_maps.get("settings").await?;
    Ok(cm
        .data
        .unwrap_or_default()
        .get("mode")
        .cloned()
        .unwrap_or_default())
}

/// Deletes a cluster object and waits until it is gone (finalisers included).
async fn delete_and_wait<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    api.delete(name, &DeleteParams::default()).await?;
    wait_until(&format!("{name} to be deleted"), SETTLE, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_restored_in_place_and_beside_itself() -> Result<()> {
    let cp = ControlPlane::start("source").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    deploy_app(&cp).await?;
    let before = snapshot::namespace(&cp.client(), "app").await?;
    assert!(before.len() >= 18, "the app has its objects: {:?}", before.keys());

    let out = back_up_app(&hub).await?;
    assert!(
        out.stdout.contains("Phase:              Completed"),
        "{}",
        out.stdout
    );
    let details = hub
        .cli(&["backup", "describe", "shop", "--details"])
        .await?
        .ok()?;
    for expected in [
        "Deployment.apps",
        "Widget.example.cairn.dev",
        "CustomResourceDefinition.apiextensions.k8s.io",
        "PersistentVolume ",
    ] {
        assert!(
            details.stdout.contains(expected),
            "{expected} missing from:\n{}",
            details.stdout
        );
    }

    // Disaster: the namespace and the cluster-scoped objects it needs are gone.
    delete_and_wait(&Api::<Namespace>::all(cp.client()), "app").await?;
    delete_and_wait(&Api::<PersistentVolume>::all(cp.client()), "app-data-pv").await?;
    delete_and_wait(
        &Api::<CustomResourceDefinition>::all(cp.client()),
        "widgets.example.cairn.dev",
    )
    .await?;

    // A dry run prints the ordered plan and changes nothing.
    let plan = hub
        .cli(&["restore", "create", "plan", "--from-backup", "shop", "--dry-run"])
        .await?
        .ok()?;
    let rows: Vec<&str> = plan
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Plan (in order)"))
        .skip(2)
        .collect();
    assert!(
        rows[0].starts_with("CustomResourceDefinition.apiextensions.k8s.io")
            && rows[0].ends_with("would create"),
        "{}",
        plan.stdout
    );
    assert!(
        rows[1].starts_with("Namespace ") && rows[1].contains(" app ") && rows[1].ends_with("would create"),
        "{}",
        plan.stdout
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("ReplicaSet.apps") && r.contains("left to controller")),
        "{}",
        plan.stdout
    );
    assert!(
        Api::<Namespace>::all(cp.client()).get_opt("app").await?.is_none(),
        "a dry run created the namespace"
    );

    hub.cli(&["restore", "create", "back", "--from-backup", "shop", "--wait"])
        .await?
        .ok()?;
    let after = snapshot::namespace(&cp.client(), "app").await?;
    assert_eq!(before, after, "the restored namespace differs from the original");

    // Existing objects: skipped (and reported) by default, overwritten on request.
    let settings: Api<ConfigMap> = Api::namespaced(cp.client(), "app");
    let patch = serde_json::json!({"data": {"mode": "changed"}});
    settings
        .patch("settings", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let skip = hub
        .cli(&[
            "restore",
            "create",
            "again",
            "--from-backup",
            "shop",
            "--include-namespaces",
            "app",
            "--wait",
        ])
        .await?
        .ok()?;
    assert!(
        skip.stdout.contains("ConfigMap app/settings (skipped (exists))"),
        "{}",
        skip.stdout
    );
    assert_eq!(mode(&settings).await?, "changed");
    hub.cli(&[
        "restore",
        "create",
        "overwrite",
        "--from-backup",
        "shop",
        "--include-namespaces",
        "app",
        "--existing-policy",
        "update",
        "--wait",
    ])
    .await?
    .ok()?;
    assert_eq!(mode(&settings).await?, "production");
    // Controllers, not the restore, recreate what they own.
    wait_for_replica_set(&cp, "app").await?;
    let described = hub
        .cli(&["restore", "describe", "back", "--details"])
        .await?
        .ok()?;
    assert!(
        described
            .stdout
            .contains("left to controller: owned by Deployment web"),
        "{}",
        described.stdout
    );
    let pv: Api<PersistentVolume> = Api::all(cp.client());
    assert!(
        pv.get_opt("app-data-pv").await?.is_some(),
        "PV restored with its claim"
    );

    // The same backup beside the original, under another namespace.
    hub.cli(&[
        "restore",
        "create",
        "copy",
        "--from-backup",
        "shop",
        "--namespace-mapping",
        "app:app-copy",
        "--wait",
    ])
    .await?
    .ok()?;
    let copy = snapshot::namespace(&cp.client(), "app-copy").await?;
    assert_eq!(before, copy, "the mapped copy differs from the original");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_restored_into_another_cluster() -> Result<()> {
    let (source, target) = tokio::try_join!(ControlPlane::start("source"), ControlPlane::start("target"))?;
    let hub = HubProcess::start().await?;
    // Both agents run as the ServiceAccount of deploy/agent.yaml: its RBAC is enough for backup
    // and restore.
    let rbac = include_str!("../../deploy/agent.yaml");
    tokio::try_join!(source.apply(rbac), target.apply(rbac))?;
    let (source_kc, target_kc) = tokio::try_join!(
        source.service_account_kubeconfig("cairn-system", "cairn-agent"),
        target.service_account_kubeconfig("cairn-system", "cairn-agent")
    )?;
    let (_a, _b) = tokio::try_join!(
        hub.agent(&source, Some(&source_kc)),
        hub.agent(&target, Some(&target_kc))
    )?;
    deploy_app(&source).await?;
    let before = snapshot::namespace(&source.client(), "app").await?;
    back_up_app(&hub).await?;

    let clusters = hub.cli(&["cluster", "list"]).await?.ok()?;
    let target_row = clusters
        .stdout
        .lines()
        .find(|l| l.starts_with("target"))
        .context("target listed")?;
    assert!(
        target_row.contains(" connected ") && target_row.contains("v1.20.2"),
        "{}",
        clusters.stdout
    );

    hub.cli(&[
        "restore",
        "create",
        "move",
        "--from-backup",
        "shop",
        "--target-cluster",
        "target",
        "--wait",
    ])
    .await?
    .ok()?;
    let after = snapshot::namespace(&target.client(), "app").await?;
    assert_eq!(
        before, after,
        "the namespace in the target cluster differs from the source's"
    );
    wait_for_replica_set(&target, "app").await
}

/// A bare pod: nothing but restore makes it again.
const LONE_POD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: solo}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: solo}
spec:
  containers:
  - {name: db, image: busybox}
"#;

/// A namespace's `default` ServiceAccount comes from the target's controller, a moment after the
/// namespace, and (before 1.24) its token Secret a moment after the account: until then the API
/// server holds or refuses pods in it. Restore waits for them: with the controller-manager frozen
/// for 10 s, a bare pod restored into a new namespace, and one into a namespace whose account has
/// no token yet (the server answers `ServerTimeout`: come back later; without the wait this pod
/// failed), both come back and the restores end `Completed`.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_restored_while_the_targets_controllers_lag_waits_for_its_service_account() -> Result<()> {
    let cp = ControlPlane::start("lagging").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.apply(LONE_POD).await?;
    hub.cli_line("backup create lone --cluster lagging --include-namespaces solo --wait")
        .await?
        .ok()?;

    let frozen = cp.sandbox().freeze("kube-controller-manager")?;
    // A namespace made before the restore, its account by hand: no token until the controller runs.
    cp.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: solo-token}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: solo-token}\n")
        .await?;
    let restores = async {
        tokio::try_join!(
            hub.cli_line("restore create fresh --from-backup lone --target-cluster lagging --namespace-mapping solo:solo-fresh --wait"),
            hub.cli_line("restore create token --from-backup lone --target-cluster lagging --namespace-mapping solo:solo-token --wait"),
        )
    };
    let thaw = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(frozen);
    };
    let (restored, ()) = tokio::join!(restores, thaw);
    let (fresh, token) = restored?;
    for (name, namespace, out) in [("fresh", "solo-fresh", fresh), ("token", "solo-token", token)] {
        let described = hub.json(&format!("restore describe {name}")).await?;
        assert_eq!(described["status"]["phase"], "Completed", "{out:?}\n{described}");
        let pods: Api<Pod> = Api::namespaced(cp.client(), namespace);
        let pod = pods.get_opt("db").await?;
        assert!(pod.is_some(), "pod {namespace}/db was not restored: {described}");
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(cp.client(), "solo-token");
    let account = accounts.get("default").await?;
    assert!(
        account.secrets.is_some_and(|s| !s.is_empty()),
        "the restore waited for the token controller, which gave the account its token"
    );
    Ok(())
}
