//! Backup filters pick exactly what they say: namespaces, resources, labels, and the three
//! cluster-resource modes. Checked against every item in each backup's index.

use anyhow::Result;
use cairn_proto::model::IndexEntry;
use std::collections::BTreeSet;
use testbed::ControlPlane;
use testbed::cairn::HubProcess;

const APP: &str = include_str!("../fixtures/app.yaml");

/// `Kind namespace/name` of every item.
fn items(entries: &[IndexEntry]) -> BTreeSet<String> {
    entries
        .iter()
        .map(|e| format!("{} {}/{}", e.item.kind, e.item.namespace, e.item.name))
        .collect()
}

/// Files below `dir` (0 if it does not exist).
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

fn kinds(entries: &[IndexEntry]) -> BTreeSet<String> {
    entries.iter().map(|e| e.item.kind.clone()).collect()
}

fn cluster_scoped(entries: &[IndexEntry]) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|e| e.item.namespace.is_empty())
        .map(|e| format!("{} {}", e.item.kind, e.item.name))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_take_exactly_what_they_name() -> Result<()> {
    let cp = ControlPlane::start("source").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.apply(APP).await?;
    let mut client = hub.client().await?;
    let mut backup = async |name: &str, args: &[&str]| -> Result<Vec<IndexEntry>> {
        let mut argv = vec!["backup", "create", name, "--cluster", "source", "--wait"];
        argv.extend_from_slice(args);
        hub.cli(&argv).await?.ok()?;
        Ok(client.backup_items(&name.parse()?).await?)
    };

    // Namespaces.
    let only_app = backup("only-app", &["--include-namespaces", "app"]).await?;
    assert!(
        only_app
            .iter()
            .all(|e| ["app", ""].contains(&e.item.namespace.as_str()))
    );
    assert!(items(&only_app).contains("Widget app/gizmo"));
    let not_app = backup("not-app", &["--exclude-namespaces", "app"]).await?;
    assert!(not_app.iter().all(|e| e.item.namespace != "app"));
    assert!(items(&not_app).contains("ConfigMap other/elsewhere"));
    assert!(!items(&not_app).contains("Namespace /app") && items(&not_app).contains("Namespace /other"));

    // Resources: named ones, plus (auto) the Namespace they need.
    let some = backup(
        "some-kinds",
        &[
            "--include-namespaces",
            "app",
            "--include-resources",
            "configmaps,deployments.apps",
        ],
    )
    .await?;
    assert_eq!(
        kinds(&some),
        ["ConfigMap", "Deployment", "Namespace"].map(String::from).into()
    );
    let no_secrets = backup(
        "no-secrets",
        &["--include-namespaces", "app", "--exclude-resources", "secrets"],
    )
    .await?;
    assert!(!kinds(&no_secrets).contains("Secret") && kinds(&no_secrets).contains("ConfigMap"));

    // Labels.
    let web = backup(
        "web",
        &[
            "--include-namespaces",
            "app",
            "--selector",
            "app=web,tier!=frontend",
        ],
    )
    .await?;
    let web_items = items(&web);
    for expected in [
        "ConfigMap app/settings",
        "Deployment app/web",
        "Service app/web-public",
        "Widget app/gizmo",
        "Secret app/web-tls",
        "Ingress app/web",
    ] {
        assert!(web_items.contains(expected), "{expected} missing: {web_items:?}");
    }
    for unexpected in [
        "ConfigMap app/feature-flags",
        "Secret app/db-credentials",
        "Widget app/sprocket",
        "Service app/db",
    ] {
        assert!(
            !web_items.contains(unexpected),
            "{unexpected} taken: {web_items:?}"
        );
    }

    // Cluster-scoped objects: what the namespace needs, everything, or nothing.
    let auto = backup("auto", &["--include-namespaces", "app"]).await?;
    assert_eq!(
        cluster_scoped(&auto),
        [
            "ClusterRole view",
            "CustomResourceDefinition widgets.example.cairn.dev",
            "Namespace app",
            "PersistentVolume app-data-pv",
        ]
        .map(String::from)
        .into()
    );
    let always = backup(
        "always",
        &["--include-namespaces", "app", "--cluster-resources", "always"],
    )
    .await?;
    let all_cluster = cluster_scoped(&always);
    assert!(all_cluster.is_superset(&cluster_scoped(&auto)));
    assert!(
        all_cluster.contains("ClusterRole cluster-admin")
            && all_cluster.contains("ClusterRoleBinding system:basic-user")
    );
    let never = backup(
        "never",
        &["--include-namespaces", "app", "--cluster-resources", "never"],
    )
    .await?;
    assert!(cluster_scoped(&never).is_empty(), "{:?}", cluster_scoped(&never));
    for namespaced in [
        "Widget app/gizmo",
        "Deployment app/web",
        "PersistentVolumeClaim app/data",
    ] {
        assert!(
            items(&never).contains(namespaced),
            "{namespaced} missing with --cluster-resources never"
        );
    }

    // Deleting a backup removes its objects from the location and its record from the hub.
    let folder = hub.data_dir().join("backups/backups/some-kinds");
    assert!(files_under(&folder) > 0);
    hub.cli(&["backup", "delete", "some-kinds"]).await?.ok()?;
    assert_eq!(files_under(&folder), 0, "objects left in {}", folder.display());
    let gone = hub.cli(&["backup", "describe", "some-kinds"]).await?;
    assert!(
        gone.code == Some(1) && gone.stderr.contains("unknown backup some-kinds"),
        "{}",
        gone.stderr
    );

    // The same inventory as JSON, for scripts.
    let json = hub.cli(&["backup", "list", "-o", "json"]).await?.ok()?;
    let listed: Vec<serde_json::Value> = serde_json::from_str(&json.stdout)?;
    assert_eq!(listed.len(), 7, "{}", json.stdout);
    assert!(
        listed
            .iter()
            .all(|b| b["status"]["phase"] == "Completed" && b["spec"]["cluster"] == "source")
    );
    Ok(())
}
