//! Enrolment: an agent is who its certificate says, and nothing else. A cluster agent enrols once
//! with a join token and keeps its identity; a node agent is vouched for by its cluster's agent
//! against the real API server; a certificate acts only for its own cluster (or node), is renewed
//! before it expires, and stops working the moment its cluster is revoked.

use anyhow::{Context, Result};
use cairn_proto::convert::Wire;
use cairn_proto::model::{Phase, Registration, Report};
use cairn_proto::pb::agent_channel_client::AgentChannelClient;
use std::time::Duration;
use testbed::cairn::{HubProcess, node_agent_token, run_agent};
use testbed::{ControlPlane, wait_until};
use tokio_stream::wrappers::ReceiverStream;

/// How long an agent that cannot start may take to say so.
const REFUSED_WITHIN: Duration = Duration::from_secs(30);

fn register(cluster: &str, node: Option<&str>) -> Result<cairn_proto::pb::AgentMessage> {
    Ok(Report::Register(Registration {
        cluster: cluster.parse()?,
        agent_version: "test".into(),
        kubernetes_version: "v1.20.2".into(),
        node: node.map(str::to_owned),
    })
    .to_pb())
}

/// An agent session over `endpoint` that sends `first`, then whatever comes on the returned
/// sender: the hub's answer to opening it.
async fn session(
    endpoint: tonic::transport::Endpoint,
    first: cairn_proto::pb::AgentMessage,
) -> Result<(
    tokio::sync::mpsc::Sender<cairn_proto::pb::AgentMessage>,
    Result<tonic::Streaming<cairn_proto::pb::HubMessage>, tonic::Status>,
)> {
    let mut client = AgentChannelClient::new(endpoint.connect().await?);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(first).await?;
    let answer = client
        .session(ReceiverStream::new(rx))
        .await
        .map(tonic::Response::into_inner);
    Ok((tx, answer))
}

/// A join token works once: the agent enrols with it, keeps key and certificate in a Secret of its
/// namespace (as deploy/agent.yaml runs it), and starts again from that Secret without the token;
/// the same token a second time, an expired token and a token naming another hub's CA are each
/// refused, saying so.
#[tokio::test(flavor = "multi_thread")]
async fn a_join_token_enrols_once_and_the_agent_keeps_its_identity_in_a_secret() -> Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    let cp = ControlPlane::start("joiner").await?;
    let hub = HubProcess::start().await?;
    cp.apply(include_str!("../../deploy/agent.yaml")).await?;
    let kubeconfig = cp
        .service_account_kubeconfig("cairn-system", "cairn-agent")
        .await?;
    let token = hub.join_token("joiner", &[]).await?;
    assert!(token.starts_with("cairn-join-v1."), "{token}");
    let listed = hub.json("cluster list").await?;
    assert_eq!(
        listed[0]["name"], "joiner",
        "added before its agent connects: {listed}"
    );
    assert_eq!(listed[0]["connected"], false, "{listed}");

    // An oversized request is refused, and does not use the token up (the agent enrols with it
    // below).
    let mut enrolment =
        cairn_proto::pb::enrolment_client::EnrolmentClient::new(hub.dial()?.endpoint().connect().await?);
    let oversized = enrolment
        .join(cairn_proto::pb::JoinRequest {
            secret: secrecy::ExposeSecret::expose_secret(
                &cairn_proto::join::JoinToken::parse(&token)?.secret,
            )
            .to_owned(),
            csr_pem: "x".repeat(1 << 20),
        })
        .await;
    let status = oversized.err().context("a 1 MiB certificate request was read")?;
    assert_eq!(
        status.message(),
        "certificate request of 1048576 bytes: at most 65536 bytes"
    );

    let in_secret = ["--identity-secret", "cairn-system/cairn-agent-identity"];
    let first = hub
        .agent_with(
            &cp,
            Some(&kubeconfig),
            &[&["--join", &token], &in_secret[..]].concat(),
        )
        .await?;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(cp.client(), "cairn-system");
    let kept = secrets.get("cairn-agent-identity").await?;
    let identity = kept
        .data
        .and_then(|d| d.get("identity.json").cloned())
        .context("no identity.json in the Secret")?;
    let identity: serde_json::Value = serde_json::from_slice(&identity.0)?;
    assert_eq!(identity["cluster"], "joiner");
    assert!(
        identity["key_pem"]
            .as_str()
            .is_some_and(|k| k.contains("PRIVATE KEY")),
        "the agent's own key is kept"
    );
    first.terminate(Duration::from_secs(10))?;

    // Again, without the token: from the Secret.
    let again = hub.agent_with(&cp, Some(&kubeconfig), &in_secret).await?;
    assert!(
        !again.full_log().contains("enrolled with the hub"),
        "{}",
        again.full_log()
    );
    drop(again);

    // The same token a second time (a fresh agent with nothing kept).
    let state = tempfile::tempdir()?;
    let kc = cp.kubeconfig().display().to_string();
    let state_dir = state.path().display().to_string();
    let out = run_agent(
        &["--join", &token, "--state-dir", &state_dir, "--kubeconfig", &kc],
        REFUSED_WITHIN,
    )
    .await?;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("this join token is unknown or was used already: a token enrols once"),
        "{out:?}"
    );

    // An expired token.
    let short = hub.join_token("later", &["--expires", "1s"]).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = run_agent(
        &["--join", &short, "--state-dir", &state_dir, "--kubeconfig", &kc],
        REFUSED_WITHIN,
    )
    .await?;
    assert!(
        out.stderr
            .contains("this join token for cluster later expired at"),
        "{out:?}"
    );

    // A token whose fingerprint is not the hub's CA: the agent sends nothing but a handshake.
    let mut forged = cairn_proto::join::JoinToken::parse(&hub.join_token("forged", &[]).await?)?;
    forged.ca_sha256 = "00".repeat(32);
    let out = run_agent(
        &[
            "--join",
            &forged.encode(),
            "--state-dir",
            &state_dir,
            "--kubeconfig",
            &kc,
        ],
        REFUSED_WITHIN,
    )
    .await?;
    assert!(
        out.stderr.contains(&format!(
            "does not present the CA of fingerprint {} that the join token names",
            "00".repeat(32)
        )),
        "{out:?}"
    );
    assert!(
        !state.path().join("identity.json").exists(),
        "nothing kept from refused enrolments"
    );
    Ok(())
}

/// A cluster agent's certificate is its cluster's only: with no certificate the agent channel is
/// refused; cluster east's certificate cannot register as west, nor as a node agent, nor report
/// on west's backup; an expired certificate is refused by the handshake; `cluster revoke` ends
/// the live session at once and its certificate gets nothing afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn an_agents_certificate_acts_only_for_its_own_cluster_until_revoked() -> Result<()> {
    let (east_cp, west_cp) = tokio::try_join!(ControlPlane::start("east"), ControlPlane::start("west"))?;
    let hub = HubProcess::start().await?;
    let (east, _west) = tokio::try_join!(hub.agent(&east_cp, None), hub.agent(&west_cp, None))?;
    west_cp
        .apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n")
        .await?;
    hub.cli_line("backup create west-1 --cluster west --include-namespaces app --wait")
        .await?
        .ok()?;
    let kept = east.kept_identity()?;
    let (cert, key) = (
        kept["cert_pem"].as_str().context("cert")?.to_owned(),
        kept["key_pem"].as_str().context("key")?.to_owned(),
    );
    east.terminate(Duration::from_secs(10))?;
    let dial = hub.dial()?;
    let as_east = || dial.endpoint_as(&cert, &key);

    // No certificate.
    let (_tx, answer) = session(dial.endpoint(), register("east", None)?).await?;
    let status = answer
        .err()
        .context("a session without a certificate was opened")?;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(
        status
            .message()
            .contains("needs the client certificate the hub issued"),
        "{status:?}"
    );

    // East's certificate, claiming to be west, or a node agent of east.
    let (_tx, answer) = session(as_east()?, register("west", None)?).await?;
    let status = answer.err().context("east registered as west")?;
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.message(),
        "this certificate is the agent of cluster east's: it cannot register as the agent of cluster west"
    );
    let (_tx, answer) = session(as_east()?, register("east", Some("node-a"))?).await?;
    let status = answer
        .err()
        .context("east's cluster agent registered as a node agent")?;
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // As itself, east reports west's backup failed: refused, logged with who sent it.
    let (tx, answer) = session(as_east()?, register("east", None)?).await?;
    let mut down = answer?;
    let mut status = hub.json("backup describe west-1").await?["status"].clone();
    status["phase"] = "Failed".into();
    let forged = Report::BackupDone(
        "west-1".parse()?,
        serde_json::from_value(status).context("a backup status")?,
    );
    tx.send(forged.to_pb()).await?;
    wait_until(
        "the hub to refuse east's report",
        Duration::from_secs(10),
        || async {
            Ok(hub
                .full_log()
                .contains(
                    "the agent of cluster east reported on backup/west-1, which the hub did not ask of it",
                )
                .then_some(()))
        },
    )
    .await?;
    assert_eq!(
        hub.json("backup describe west-1").await?["status"]["phase"],
        "Completed"
    );

    // A volume task for a node of west: refused, never routed.
    let task = cairn_proto::model::VolumeTask {
        id: cairn_proto::model::VolumeTaskId::new(
            "west-1".parse::<cairn_proto::model::BackupName>()?,
            "app",
            "data",
        ),
        cluster: "west".parse()?,
        node: "node-a".into(),
        location: cairn_proto::model::Location {
            name: "default".parse()?,
            url: "file:///tmp/attacker".into(),
            options: Default::default(),
        },
        key: cairn_proto::model::RepositoryKey(vec![0; 32]),
        pod_uid: "uid".into(),
        volume: "pv".into(),
        source: "west/app/data".into(),
        tag: "west-1".into(),
        snapshot: None,
        keep_setid: false,
    };
    tx.send(Report::VolumeTask(task).to_pb()).await?;
    // A backup of east, sent to this session; its result names a snapshot no node agent made
    // for it (deleting the backup would delete that snapshot): dropped, and said so.
    hub.cli_line("backup create east-1 --cluster east --include-namespaces app")
        .await?
        .ok()?;
    // Past the standing orders a cluster agent gets first.
    let sent = loop {
        let sent = tokio::time::timeout(Duration::from_secs(10), down.message())
            .await
            .context("no instruction for east-1")??
            .context("the stream ended")?;
        match cairn_proto::model::Instruction::from_pb(sent)? {
            cairn_proto::model::Instruction::Orders(_) => {}
            instruction => break instruction,
        }
    };
    assert!(
        matches!(sent, cairn_proto::model::Instruction::Backup { .. }),
        "east's session got its backup"
    );
    let done = cairn_proto::model::BackupStatus {
        phase: Phase::Completed,
        volumes: vec![cairn_proto::model::VolumeResult {
            namespace: "app".into(),
            claim: "data".into(),
            snapshot: "0123456789abcdef".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    tx.send(Report::BackupDone("east-1".parse()?, done).to_pb())
        .await?;
    wait_until("east-1 recorded", Duration::from_secs(10), || async {
        let described = hub.json("backup describe east-1").await?;
        Ok((described["status"]["phase"] == "Completed").then_some(described))
    })
    .await
    .map(|described| {
        let volume = &described["status"]["volumes"][0];
        assert_eq!(volume["snapshot"], "", "{described}");
        assert!(
            volume["error"]
                .as_str()
                .is_some_and(|e| e.contains("snapshot 0123456789abcdef was not made for this backup")),
            "{described}"
        );
    })?;
    assert!(
        hub.full_log()
            .contains("a task goes only to a node of the asking agent's own cluster"),
        "the forged volume task was not refused"
    );

    // Revoked: the live session ends at once, saying why; the certificate opens nothing after.
    let out = hub.cli(&["cluster", "revoke", "east"]).await?.ok()?;
    assert!(out.stdout.starts_with("cluster east revoked"), "{out:?}");
    let ended = tokio::time::timeout(Duration::from_secs(5), down.message())
        .await
        .context("the revoked session is still open")?;
    let status = ended
        .err()
        .context("the revoked session ended without a reason")?;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("cluster east is revoked"), "{status:?}");
    let (_tx, answer) = session(as_east()?, register("east", None)?).await?;
    let status = answer.err().context("a revoked certificate opened a session")?;
    assert!(
        status
            .message()
            .contains("cluster east is revoked: add it again to enrol"),
        "{status:?}"
    );
    let listed = hub.cli(&["cluster", "list"]).await?.ok()?;
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("east") && l.contains("revoked")),
        "{}",
        listed.stdout
    );
    drop(tx);
    // Removed: no longer listed, and its certificate still refused.
    hub.cli(&["cluster", "remove", "east"]).await?.ok()?;
    let listed = hub.json("cluster list").await?;
    assert!(
        listed
            .as_array()
            .is_some_and(|l| l.iter().all(|c| c["name"] != "east")),
        "{listed}"
    );
    let (_tx, answer) = session(as_east()?, register("east", None)?).await?;
    assert_eq!(
        answer
            .err()
            .context("a removed cluster's certificate opened a session")?
            .code(),
        tonic::Code::Unauthenticated
    );

    // A certificate past its expiry: the TLS handshake refuses it.
    let brief = HubProcess::start_with(&[("CAIRN_AGENT_CERT_LIFETIME", "2s")]).await?;
    let token = brief.join_token("brief", &[]).await?;
    let state = tempfile::tempdir()?;
    let keep = cairn_agent::enrol::Keep::Dir(state.path().to_owned());
    let enrolled = cairn_agent::enrol::Enrolled::cluster_agent(keep, Some(&token), None, None).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expired = async {
        let (_tx, answer) = session(enrolled.endpoint()?, register("brief", None)?).await?;
        anyhow::Ok(answer?)
    }
    .await;
    assert!(expired.is_err(), "an expired certificate opened a session");
    Ok(())
}

/// A node agent enrols only as the node its pod runs on, vouched for by its cluster's agent
/// against the real API server: a token of a pod on node-a claiming node-b, and a token of another
/// service account, are refused with the cluster agent's reason; a node agent's certificate
/// cannot register as its cluster's agent.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_agent_is_enrolled_only_for_the_node_its_pod_runs_on() -> Result<()> {
    use secrecy::SecretString;
    let cp = ControlPlane::start("vouched").await?;
    let hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    let cluster: cairn_proto::model::ClusterName = "vouched".parse()?;

    let on_a = node_agent_token(&cp, "node-a").await?;
    let _on_b = node_agent_token(&cp, "node-b").await?;
    let refused = cairn_agent::enrol::Enrolled::node_agent(
        hub.dial()?,
        cluster.clone(),
        "node-b",
        SecretString::from(on_a.clone()),
    )
    .await
    .err()
    .context("a node agent of node-a enrolled as node-b")?;
    let text = cairn_proto::error_chain(&refused);
    assert!(
        text.contains("the agent of cluster vouched does not vouch for a node agent on node-b")
            && text.contains("runs on node \"node-a\", not node-b"),
        "{text}"
    );

    // Another service account's token (the cluster's default one, bound to no pod).
    cp.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: intruder, namespace: default}\n")
        .await?;
    let intruder =
        kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(cp.client(), "default")
            .create_token_request(
                "intruder",
                &Default::default(),
                &k8s_openapi::api::authentication::v1::TokenRequest {
                    spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
                        audiences: vec!["cairn".into()],
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?
            .status
            .context("no token")?
            .token;
    let refused = cairn_agent::enrol::Enrolled::node_agent(
        hub.dial()?,
        cluster.clone(),
        "node-a",
        SecretString::from(intruder),
    )
    .await
    .err()
    .context("another service account's token enrolled a node agent")?;
    assert!(
        cairn_proto::error_chain(&refused)
            .contains("its token is system:serviceaccount:default:intruder's, not the node agents'"),
        "{refused:?}"
    );

    // Vouched for, it is node-a's agent: and only that.
    let node_a =
        cairn_agent::enrol::Enrolled::node_agent(hub.dial()?, cluster, "node-a", SecretString::from(on_a))
            .await?;
    let (_tx, answer) = session(node_a.endpoint()?, register("vouched", None)?).await?;
    let status = answer
        .err()
        .context("a node agent registered as its cluster's agent")?;
    assert_eq!(
        status.message(),
        "this certificate is the agent of node node-a of cluster vouched's: it cannot register as the agent of cluster vouched"
    );
    let (_tx, answer) = session(node_a.endpoint()?, register("vouched", Some("node-b"))?).await?;
    assert_eq!(
        answer.err().context("node-a registered as node-b")?.code(),
        tonic::Code::PermissionDenied
    );
    let (_tx, answer) = session(node_a.endpoint()?, register("vouched", Some("node-a"))?).await?;
    answer.context("node-a's agent registering as itself")?;
    Ok(())
}

/// With certificates valid a minute, an agent renews its own before each expires, without a
/// restart, across three lifetimes: after them a restarted hub (every connection made anew, so
/// only a valid certificate gets in) has it back, and a backup completes.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_renews_its_certificate_across_three_lifetimes() -> Result<()> {
    let cp = ControlPlane::start("renewer").await?;
    let hub = HubProcess::start_with(&[("CAIRN_AGENT_CERT_LIFETIME", "1m")]).await?;
    let agent = hub.agent(&cp, None).await?;
    let first = agent.kept_identity()?["cert_pem"].clone();
    wait_until("three renewals", Duration::from_secs(200), || async {
        Ok((agent.full_log().matches("certificate renewed").count() >= 3).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(60)).await; // past the third lifetime
    assert_ne!(
        agent.kept_identity()?["cert_pem"],
        first,
        "the kept certificate is the renewed one"
    );
    hub.crash_and_restart().await?;
    wait_until("the agent back", Duration::from_secs(60), || async {
        let clusters = hub.json("cluster list").await?;
        Ok((clusters[0]["connected"] == true).then_some(()))
    })
    .await?;
    cp.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n")
        .await?;
    hub.cli_line("backup create late --cluster renewer --include-namespaces app --wait")
        .await?
        .ok()?;
    assert_eq!(
        hub.json("backup describe late").await?["status"]["phase"],
        serde_json::to_value(Phase::Completed)?
    );
    assert!(
        !agent.full_log().contains("certificate expired"),
        "{}",
        agent.full_log()
    );
    Ok(())
}
