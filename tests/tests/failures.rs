//! Bad input and broken parts give a clear error and a non-zero exit, and leave nothing half-done.

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use std::time::Duration;
use testbed::cairn::{HubProcess, run_cli};
use testbed::{ControlPlane, wait_until};

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_the_reason() -> Result<()> {
    let cp = ControlPlane::start("source").await?;
    let hub = HubProcess::start().await?;
    let agent = hub.agent(&cp, None).await?;

    let out = hub.cli(&["backup", "create", "b", "--cluster", "nosuch"]).await?;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("unknown cluster nosuch"), "{}", out.stderr);
    assert!(
        out.stderr.starts_with("refused: "),
        "a refusal says so: {}",
        out.stderr
    );

    let out = hub
        .cli(&["restore", "create", "r", "--from-backup", "nosuch"])
        .await?;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("unknown backup nosuch"), "{}", out.stderr);

    let out = hub
        .cli(&[
            "backup",
            "create",
            "b",
            "--cluster",
            "source",
            "--selector",
            "app=(web",
        ])
        .await?;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("invalid label selector \"app=(web\": unbalanced parentheses"),
        "{}",
        out.stderr
    );

    let out = run_cli("https://127.0.0.1:9", Some(&hub.ca_file()), &["cluster", "list"]).await?;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("cannot reach the hub at https://127.0.0.1:9"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.starts_with("failed: "),
        "a failure says so: {}",
        out.stderr
    );

    // The agent goes away: the hub says so instead of queueing work nobody will do.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    wait_until(
        "the cluster to show disconnected",
        Duration::from_secs(30),
        || async {
            let out = hub.cli(&["cluster", "list"]).await?;
            Ok(out
                .stdout
                .lines()
                .any(|l| l.starts_with("source") && l.contains(" offline since "))
                .then_some(()))
        },
    )
    .await?;
    let out = hub.cli(&["backup", "create", "b", "--cluster", "source"]).await?;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("cluster source is not connected"),
        "{}",
        out.stderr
    );
    let list = hub.cli(&["backup", "list"]).await?.ok()?;
    assert!(
        !list.stdout.contains("\nb "),
        "no backup recorded: {}",
        list.stdout
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_the_api_rejects_fails_alone() -> Result<()> {
    let cp = ControlPlane::start("source").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: site, namespace: web}\ndata: {a: b}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: public, namespace: web}\n\
         spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, protocol: TCP, nodePort: 30090}]}\n",
    )
    .await?;
    hub.cli(&[
        "backup",
        "create",
        "web",
        "--cluster",
        "source",
        "--include-namespaces",
        "web",
        "--wait",
    ])
    .await?
    .ok()?;

    // Beside the original with the same node port: the API server refuses that Service only.
    let out = hub
        .cli(&[
            "restore",
            "create",
            "twin",
            "--from-backup",
            "web",
            "--namespace-mapping",
            "web:web-twin",
            "--preserve-node-ports",
            "--wait",
        ])
        .await?;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("restore twin PartiallyFailed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("Service web-twin/public (failed)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("30090"),
        "the API server's reason is shown: {}",
        out.stdout
    );
    let copied: Api<ConfigMap> = Api::namespaced(cp.client(), "web-twin");
    assert!(copied.get_opt("site").await?.is_some(), "the rest was restored");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_agent_fails_its_backup_and_the_next_one_works() -> Result<()> {
    let cp = ControlPlane::start("source").await?;
    let hub = HubProcess::start().await?;
    let agent = hub.agent(&cp, None).await?;
    // Enough objects that the backup is still running when its agent dies.
    cp.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: bulk}\n")
        .await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(cp.client(), "bulk");
    let filler = "x".repeat(8 << 10);
    futures::stream::iter(0..1500)
        .map(|i| {
            let (api, filler) = (config_maps.clone(), filler.clone());
            async move {
                let mut cm = ConfigMap::default();
                cm.metadata.name = Some(format!("cm-{i:04}"));
                cm.data = Some([("filler".to_owned(), filler)].into());
                api.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;

    hub.cli(&["backup", "create", "doomed", "--cluster", "source"])
        .await?
        .ok()?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let mut client = hub.client().await?;
    let backup = wait_until("the backup to end", Duration::from_secs(30), || {
        let mut client = client.clone();
        async move {
            let b = client.backup(&"doomed".parse()?).await?;
            Ok(b.status.phase.is_final().then_some(b))
        }
    })
    .await?;
    assert_eq!(backup.status.phase, cairn_proto::model::Phase::Failed);
    assert!(
        backup
            .status
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("disconnected"),
        "{:?}",
        backup.status.error
    );
    let manifest = hub.data_dir().join("backups/backups/doomed/manifest.pb");
    assert!(!manifest.exists(), "an interrupted backup leaves no manifest");

    let _agent = hub.agent(&cp, None).await?;
    let out = hub
        .cli(&[
            "backup",
            "create",
            "again",
            "--cluster",
            "source",
            "--include-namespaces",
            "bulk",
            "--wait",
        ])
        .await?
        .ok()?;
    assert!(
        out.stdout.contains("Phase:              Completed"),
        "{}",
        out.stdout
    );
    let again = client.backup(&"again".parse()?).await?;
    let config_maps = again
        .status
        .resources
        .iter()
        .find(|r| r.resource == "configmaps")
        .map(|r| r.count);
    assert_eq!(config_maps, Some(1501), "1500 ConfigMaps and kube-root-ca.crt");
    Ok(())
}

/// An agent that may not list some types still backs up the rest: `PartiallyFailed`, naming each
/// type it could not list and why.
#[tokio::test(flavor = "multi_thread")]
async fn types_the_agent_may_not_list_make_a_partial_backup() -> Result<()> {
    let cp = ControlPlane::start("source").await?;
    let hub = HubProcess::start().await?;
    cp.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: site, namespace: web}\ndata: {a: b}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: narrow, namespace: web}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: narrow}\n\
         rules: [{apiGroups: [\"\"], resources: [configmaps, namespaces], verbs: [get, list]}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: narrow}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: narrow}\n\
         subjects: [{kind: ServiceAccount, name: narrow, namespace: web}]\n",
    )
    .await?;
    let kubeconfig = cp.service_account_kubeconfig("web", "narrow").await?;
    let _agent = hub.agent(&cp, Some(&kubeconfig)).await?;
    let out = hub
        .cli(&[
            "backup",
            "create",
            "partial",
            "--cluster",
            "source",
            "--include-namespaces",
            "web",
            "--wait",
        ])
        .await?;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("backup partial PartiallyFailed"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("(Forbidden)"), "{}", out.stdout);
    let mut client = hub.client().await?;
    let backup = client.backup(&"partial".parse()?).await?;
    let secrets = backup
        .status
        .problems
        .iter()
        .find(|p| p.item.resource == "secrets");
    let message = secrets.map(|p| p.message.as_str()).unwrap_or_default();
    assert!(
        message.starts_with("listing secrets: secrets is forbidden"),
        "{message:?}"
    );
    let items = client.backup_items(&"partial".parse()?).await?;
    assert!(
        items
            .iter()
            .any(|e| e.item.kind == "ConfigMap" && e.item.name == "site"),
        "what could be listed was backed up"
    );
    Ok(())
}

/// The hub crashes while a backup runs: the agent goes on, links again when the hub is back, and
/// the hub records the backup's real result.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_survives_a_hub_crash() -> Result<()> {
    let cp = ControlPlane::start("source").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.fill_config_maps("bulk", 500).await?;

    hub.cli(&[
        "backup",
        "create",
        "through-crash",
        "--cluster",
        "source",
        "--include-namespaces",
        "bulk",
    ])
    .await?
    .ok()?;
    hub.crash_and_restart().await?;
    let (backup, config_maps) = hub
        .ended_backup("through-crash", Duration::from_secs(60), "configmaps")
        .await?;
    assert_eq!(
        backup.status.phase,
        cairn_proto::model::Phase::Completed,
        "{:?}",
        backup.status.error
    );
    assert_eq!(config_maps, Some(501), "500 ConfigMaps and kube-root-ca.crt");
    let manifest = hub.data_dir().join("backups/backups/through-crash/manifest.pb");
    assert!(manifest.exists(), "the agent finished writing the backup");
    // The restarted hub (its log starts afresh) heard the result from the agent's new link.
    let log = hub.log();
    assert!(
        log.contains("backup ended") && log.contains("through-crash"),
        "{log}"
    );
    Ok(())
}
