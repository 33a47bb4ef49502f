//! Stopping gracefully: SIGTERM to the hub during a backup, and to an agent, as Kubernetes and
//! systemd send it. Each exits 0 within 10 s; nothing recorded is lost.

use anyhow::Result;
use cairn_proto::model::Phase;
use std::time::Duration;
use testbed::cairn::HubProcess;
use testbed::{ControlPlane, wait_until};

/// What the issue allows a stop to take.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// SIGTERM to the hub while a backup runs: the hub exits 0 within 10 s with its inventory written
/// (no write-ahead log left to replay), opens it again on restart, and records the backup as the
/// agent reports it over its new link.
#[tokio::test(flavor = "multi_thread")]
async fn the_hub_stops_gracefully_during_a_backup() -> Result<()> {
    let cp = ControlPlane::start("source").await?;
    let mut hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.fill_config_maps("bulk", 500).await?;

    hub.cli_line("backup create through-stop --cluster source --include-namespaces bulk")
        .await?
        .ok()?;
    let (status, took) = hub.terminate(STOP_WITHIN)?;
    assert!(status.success(), "the hub exited with {status}: {}", hub.log());
    assert!(took < STOP_WITHIN, "the hub took {took:?} to stop");
    let log = hub.log();
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    assert!(log.contains("hub stopped: inventory written and closed"), "{log}");
    // Written and closed: RocksDB's write-ahead logs hold nothing left to replay.
    for entry in std::fs::read_dir(hub.data_dir().join("db"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let len = std::fs::metadata(&path)?.len();
            assert_eq!(len, 0, "{} holds {len} bytes to replay", path.display());
        }
    }

    hub.start_again(&[]).await?;
    let (backup, config_maps) = hub
        .ended_backup("through-stop", Duration::from_secs(60), "configmaps")
        .await?;
    assert_eq!(backup.status.phase, Phase::Completed, "{:?}", backup.status.error);
    assert_eq!(config_maps, Some(501), "500 ConfigMaps and kube-root-ca.crt");
    assert!(
        hub.data_dir()
            .join("backups/backups/through-stop/manifest.pb")
            .exists(),
        "the agent finished writing the backup"
    );
    // What was recorded before the stop is still there.
    let clusters = hub.json("cluster list").await?;
    assert!(clusters.to_string().contains("\"source\""), "{clusters}");
    Ok(())
}

/// SIGTERM to an agent: it closes its link (the hub shows the cluster disconnected at once, not
/// after the heartbeat timeout) and exits 0 within 10 s; a backup it was running finishes and is
/// reported first.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_stops_gracefully() -> Result<()> {
    let cp = ControlPlane::start("edge").await?;
    let hub = HubProcess::start().await?;
    let agent = hub.agent(&cp, None).await?;
    cp.fill_config_maps("bulk", 300).await?;

    hub.cli_line("backup create before-stop --cluster edge --include-namespaces bulk")
        .await?
        .ok()?;
    // The agent has the instruction once it reports progress (or has already ended).
    let client = hub.client().await?;
    wait_until("the backup to start", Duration::from_secs(30), || {
        let mut client = client.clone();
        async move {
            let running = client
                .progress(&cairn_proto::model::OperationId::Backup("before-stop".parse()?))
                .await?
                .is_some_and(|p| p.items_total > 0 || p.items_done > 0);
            let ended = client
                .backup(&"before-stop".parse()?)
                .await?
                .status
                .phase
                .is_final();
            Ok((running || ended).then_some(()))
        }
    })
    .await?;
    let (status, took) = agent.terminate(STOP_WITHIN)?;
    assert!(
        status.success(),
        "the agent exited with {status}: {}",
        agent.log()
    );
    assert!(took < STOP_WITHIN, "the agent took {took:?} to stop");
    assert!(
        agent.log().contains("agent stopped; link closed"),
        "{}",
        agent.log()
    );

    let backup = client.clone().backup(&"before-stop".parse()?).await?;
    assert_eq!(
        backup.status.phase,
        Phase::Completed,
        "the running backup finished before the agent stopped: {:?}",
        backup.status.error
    );
    let cluster = wait_until("the hub to see the link closed", Duration::from_secs(5), || {
        let mut client = client.clone();
        async move {
            let clusters = client.clusters().await?;
            Ok(clusters
                .into_iter()
                .find(|c| c.name.as_str() == "edge" && !c.connected))
        }
    })
    .await?;
    assert!(!cluster.connected);
    let log = hub.log();
    assert!(
        log.contains("agent disconnected") && log.contains("agent closed the stream"),
        "{log}"
    );
    Ok(())
}
