//! Trust: the hub serves TLS only, with its own CA. A client that does not speak TLS, or that
//! trusts another CA, gets nothing from it; the CLI refuses a plaintext URL before dialling. A
//! restore cannot make whoever runs it the target's administrator unless asked.

use anyhow::{Context, Result};
use cairn_proto::model::Outcome;
use cairn_proto::pb;
use testbed::cairn::{HubProcess, run_cli};
use testbed::{Ca, ControlPlane};

/// A plaintext client and a client trusting another CA are both refused by the hub; the hub's own
/// CA works, and a plaintext URL is refused by the CLI itself, saying why.
#[tokio::test(flavor = "multi_thread")]
async fn only_clients_trusting_the_hubs_ca_over_tls_get_in() -> Result<()> {
    let hub = HubProcess::start().await?;
    let ca = std::fs::read_to_string(hub.ca_file())?;
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let port = hub.url().trim_start_matches("https://");

    // Plaintext HTTP/2 to the TLS port: no gRPC answer, whatever the call.
    let plain = format!("http://{port}");
    let listed = async {
        let channel = tonic::transport::Endpoint::from_shared(plain.clone())?
            .connect()
            .await?;
        let mut client = pb::cairn_client::CairnClient::new(channel);
        anyhow::Ok(client.list_clusters(pb::ListClustersRequest {}).await?)
    }
    .await;
    assert!(listed.is_err(), "a plaintext client was answered: {listed:?}");

    // TLS, but trusting another CA: the handshake fails and nothing is answered.
    let other = Ca::new("other")?;
    let stranger = cairn_proto::dial::Hub::new(hub.url(), Some(&other.cert_pem()))?;
    let refused = cairn_cli::client::Client::connect(&stranger).await;
    let err = refused.err().map(|e| cairn_proto::error_chain(&e));
    assert!(
        err.as_deref().is_some_and(|e| e.contains("cannot reach the hub")),
        "a client trusting another CA got in: {err:?}"
    );
    let other_ca = tempfile::NamedTempFile::new()?;
    std::fs::write(other_ca.path(), other.cert_pem())?;
    let out = run_cli(hub.url(), Some(other_ca.path()), &["cluster", "list"]).await?;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("failed: cannot reach the hub at https://"),
        "{out:?}"
    );

    // The hub's own CA: in.
    hub.cli(&["cluster", "list"]).await?.ok()?;

    // A plaintext URL is refused before anything is sent.
    let out = run_cli(&plain, None, &["cluster", "list"]).await?;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        format!("error: hub URL \"{plain}\" is not https://…: the hub serves TLS only")
    );
    Ok(())
}

/// Whoever may restore must not become the target's administrator by restoring: a backup holding
/// a ClusterRoleBinding to cluster-admin and an admission webhook restores without both (each
/// named as skipped, with why); asked for with `--include-sensitive`, both come back.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_holds_back_what_would_escalate_unless_asked() -> Result<()> {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    use kube::Api;

    let cp = ControlPlane::start("guarded").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    // The webhook matches no object (its selector), so it slows nothing down while it exists.
    cp.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: app}\ndata: {a: b}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: ops-admin}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n\
         subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: ops}]\n---\n\
         apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\n\
         metadata: {name: policy}\n\
         webhooks:\n- name: policy.example.com\n  admissionReviewVersions: [v1]\n  sideEffects: None\n\
         \x20 failurePolicy: Ignore\n  timeoutSeconds: 1\n\
         \x20 objectSelector: {matchLabels: {cairn-test: never}}\n\
         \x20 clientConfig: {service: {namespace: default, name: nowhere, path: /}}\n\
         \x20 rules: [{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [configmaps]}]\n",
    )
    .await?;
    hub.cli(&[
        "backup",
        "create",
        "guarded",
        "--cluster",
        "guarded",
        "--include-resources",
        "clusterrolebindings,validatingwebhookconfigurations,configmaps,namespaces",
        "--cluster-resources",
        "always",
        "--wait",
    ])
    .await?
    .ok()?;
    let bindings: Api<ClusterRoleBinding> = Api::all(cp.client());
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(cp.client());
    bindings.delete("ops-admin", &Default::default()).await?;
    webhooks.delete("policy", &Default::default()).await?;

    // An ordinary restore: both held back and named, nothing else lost.
    hub.cli(&["restore", "create", "held", "--from-backup", "guarded", "--wait"])
        .await?
        .ok()?;
    let held = hub.client().await?.restore(&"held".parse()?).await?;
    let skipped = |name: &str| {
        held.status
            .problems
            .iter()
            .find(|p| p.item.name == name)
            .map(|p| (p.outcome, p.message.clone()))
    };
    assert_eq!(
        skipped("ops-admin"),
        Some((
            Outcome::SkippedSensitive,
            "it binds ClusterRole cluster-admin, which grants every verb on every resource: \
             restore it with --include-sensitive"
                .to_owned()
        )),
        "{:?}",
        held.status.problems
    );
    assert_eq!(skipped("policy").map(|(o, _)| o), Some(Outcome::SkippedSensitive));
    assert!(
        bindings.get_opt("ops-admin").await?.is_none(),
        "the binding was restored"
    );
    assert!(
        webhooks.get_opt("policy").await?.is_none(),
        "the webhook was restored"
    );
    let described = hub.cli(&["restore", "describe", "held"]).await?.ok()?;
    assert!(
        described.stdout.contains("skipped (sensitive)") && described.stdout.contains("ops-admin"),
        "{}",
        described.stdout
    );

    // Asked for: both come back.
    hub.cli(&[
        "restore",
        "create",
        "opened",
        "--from-backup",
        "guarded",
        "--include-sensitive",
        "--wait",
    ])
    .await?
    .ok()?;
    let binding = bindings.get("ops-admin").await?;
    assert_eq!(binding.role_ref.name, "cluster-admin");
    assert!(
        webhooks.get_opt("policy").await?.is_some(),
        "the webhook did not come back"
    );
    Ok(())
}

/// An edge cluster that is only backed up runs its agent with deploy/agent-readonly.yaml: a backup
/// completes; a restore into it is refused by the API server, item by item, reported with the API
/// server's words, and nothing is created.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_agent_backs_up_and_its_restores_are_refused_by_the_api_server() -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let cp = ControlPlane::start("edge-ro").await?;
    let hub = HubProcess::start().await?;
    cp.apply(include_str!("../../deploy/agent-readonly.yaml")).await?;
    let kubeconfig = cp
        .service_account_kubeconfig("cairn-system", "cairn-agent")
        .await?;
    let _agent = hub.agent(&cp, Some(&kubeconfig)).await?;
    cp.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n",
    )
    .await?;
    hub.cli_line("backup create edge --cluster edge-ro --include-namespaces shop --wait")
        .await?
        .ok()?;
    let configs: kube::Api<ConfigMap> = kube::Api::namespaced(cp.client(), "shop");
    configs.delete("settings", &Default::default()).await?;

    let out = hub
        .cli_line("restore create back --from-backup edge --wait")
        .await?;
    assert_ne!(
        out.code,
        Some(0),
        "a restore through read-only RBAC succeeded: {out:?}"
    );
    let restore = hub.client().await?.restore(&"back".parse()?).await?;
    assert_ne!(restore.status.phase, cairn_proto::model::Phase::Completed);
    let refusal = restore
        .status
        .problems
        .iter()
        .find(|p| p.item.name == "settings")
        .context("the ConfigMap's refusal is not reported")?;
    assert_eq!(refusal.outcome, Outcome::Failed, "{refusal:?}");
    assert!(
        refusal.message.contains(
            "User \"system:serviceaccount:cairn-system:cairn-agent\" cannot create resource \"configmaps\""
        ),
        "{refusal:?}"
    );
    assert!(configs.get_opt("settings").await?.is_none(), "created anyway");
    Ok(())
}
