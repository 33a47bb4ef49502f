//! The edge: a hub that never stalls on one agent. An agent that stops reading its stream gets
//! its instructions failed with the reason within the instruction deadline and loses its
//! session, while the schedules and heartbeats of the other clusters carry on.

use anyhow::{Context, Result};
use cairn_proto::convert::Wire;
use cairn_proto::model::{
    Backup, BackupOrigin, BackupStatus, BackupTemplate, Instruction, Phase, Registration, Report,
    ScheduleSpec, ScheduleTarget, Timestamp, VolumeResult,
};
use cairn_proto::pb;
use cairn_proto::pb::agent_channel_client::AgentChannelClient;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testbed::cairn::{AgentProcess, HubProcess};
use testbed::proxy::Proxy;
use testbed::storage::{AZURE_ACCOUNT, AZURE_KEY, AzuriteServer};
use testbed::{ControlPlane, wait_until};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const MINUTE: Duration = Duration::from_secs(60);

/// Backups asked of the agent that reads nothing: more than its stream, the hub's encoder and its
/// queue hold together.
const ASKED: usize = 60;

/// A `CAIRN_CLOCK_OFFSET` that puts the hub's clock `position` into a minute now.
fn into_the_minute(position: Duration) -> String {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms);
    let (period, position) = (ms(MINUTE), ms(position));
    format!("{}ms", (position + period - now % period) % period)
}

fn field<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

fn ms(v: &Value) -> i64 {
    v.as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

/// A session of an agent enrolled as cluster `cluster` (made with `cairn cluster add`), opened by
/// the test itself: the sender of its reports (registered), and what the hub sends it. A stream
/// window of `window` bytes, if given, makes the hub's sends block once it holds that much.
async fn raw_agent(
    hub: &HubProcess,
    cluster: &str,
    window: Option<u32>,
) -> Result<(
    mpsc::Sender<pb::AgentMessage>,
    tonic::Streaming<pb::HubMessage>,
    tempfile::TempDir,
)> {
    let token = hub.join_token(cluster, &[]).await?;
    let state = tempfile::tempdir()?;
    let keep = cairn_agent::enrol::Keep::Dir(state.path().to_owned());
    let enrolled = cairn_agent::enrol::Enrolled::cluster_agent(keep, Some(&token), None, None).await?;
    let endpoint = enrolled.endpoint()?.initial_stream_window_size(window);
    let mut client = AgentChannelClient::new(endpoint.connect().await?);
    let (tx, rx) = mpsc::channel(8);
    let register = Report::Register(Registration {
        cluster: cluster.parse()?,
        agent_version: "test".into(),
        kubernetes_version: "v1.20.2".into(),
        node: None,
    });
    tx.send(register.to_pb()).await?;
    let down = client.session(ReceiverStream::new(rx)).await?.into_inner();
    Ok((tx, down, state))
}

/// An enrolled agent of cluster `cluster` that registers and beats every second but never reads
/// what the hub sends (its stream window is 1 KiB, so the hub's sends soon block). The session
/// lives as long as the returned value.
async fn agent_that_stops_reading(hub: &HubProcess, cluster: &str) -> Result<impl Drop> {
    let (tx, down, state) = raw_agent(hub, cluster, Some(1024)).await?;
    let beating = tokio::spawn(async move {
        let _never_read = down;
        let _state = state;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if tx.send(Report::Heartbeat.to_pb()).await.is_err() {
                break;
            }
        }
    });
    Ok(tokio_util::task::AbortOnDropHandle::new(beating))
}

/// Schedule `name`: a backup of namespace `namespace` of `cluster` every minute.
async fn every_minute(hub: &HubProcess, name: &str, cluster: &str, namespace: &str) -> Result<()> {
    hub.cli(&[
        "schedule",
        "create",
        name,
        "--cluster",
        cluster,
        "--cron",
        "* * * * *",
        "--include-namespaces",
        namespace,
    ])
    .await?
    .ok()?;
    Ok(())
}

/// The backup called `name`, once it has ended.
async fn ended(hub: &HubProcess, name: &str, within: Duration) -> Result<Value> {
    wait_until(&format!("backup {name} ended"), within, || async {
        let b = hub.json(&format!("backup describe {name}")).await?;
        let phase = field(&b, "/status/phase").as_str().unwrap_or_default().to_owned();
        Ok(matches!(phase.as_str(), "Completed" | "PartiallyFailed" | "Failed").then_some(b))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_stops_reading_stalls_no_other_cluster_and_its_instructions_fail_with_the_reason()
-> Result<()> {
    let cp = ControlPlane::start("edge-live").await?;
    // The hub's clock 40 s into a minute: the next slot comes 20 s after start, past the
    // scheduler's start-up grace.
    let hub = HubProcess::start_with(&[
        ("CAIRN_INSTRUCTION_DEADLINE", "3s"),
        ("CAIRN_CLOCK_OFFSET", &into_the_minute(Duration::from_secs(40))),
    ])
    .await?;
    let _live = hub.agent(&cp, None).await?;
    let _stuck = agent_that_stops_reading(&hub, "stuck").await?;
    for (schedule, cluster) in [("live", "edge-live"), ("stuck-every", "stuck")] {
        every_minute(&hub, schedule, cluster, "default").await?;
    }

    // Up to sixty backups asked of the stuck agent (more than its stream and queue hold), until
    // the hub ends its session: each request returns at once, and each backup fails with the
    // reason within the deadline.
    let started = std::time::Instant::now();
    let mut asked = Vec::new();
    for i in 0..ASKED {
        let out = hub
            .cli_line(&format!(
                "backup create stuck-{i} --cluster stuck --include-namespaces default"
            ))
            .await?;
        if out.code != Some(0) {
            assert!(
                out.stderr.contains("failed: cluster stuck is not connected"),
                "{out:?}"
            );
            break;
        }
        asked.push(format!("stuck-{i}"));
    }
    let asking = started.elapsed();
    eprintln!("{} backups asked in {asking:?}", asked.len());
    assert!(
        asking < Duration::from_secs(60),
        "{ASKED} requests took {asking:?}: the hub waited on the agent"
    );
    assert!(!asked.is_empty());
    for name in &asked {
        let b = ended(&hub, name, Duration::from_secs(30)).await?;
        assert_eq!(field(&b, "/status/phase"), "Failed", "{b}");
        let error = field(&b, "/status/error").as_str().unwrap_or_default();
        let reasons = [
            "the agent of cluster stuck did not take up the instruction within 3s: it is connected but not reading what the hub sends",
            "the agent of cluster stuck disconnected (it read nothing the hub sent for 3s)",
            "the agent of cluster stuck has 16 instructions it has not read: it is connected but not reading",
        ];
        assert!(reasons.contains(&error), "{name}: {error}");
        let took = ms(field(&b, "/status/finished")) - ms(field(&b, "/spec/created"));
        assert!(
            took < 3000 + 5000,
            "{name} failed {took} ms after it was asked for"
        );
    }
    assert!(
        hub.full_log().contains("it read nothing the hub sent for 3s"),
        "the session of the agent that read nothing was not ended"
    );

    // Meanwhile the live cluster beats and its schedule fires on time.
    let clusters = hub.json("cluster list").await?;
    let live = clusters
        .as_array()
        .context("a list")?
        .iter()
        .find(|c| field(c, "/name") == "edge-live")
        .context("edge-live listed")?
        .clone();
    assert_eq!(field(&live, "/connected"), true, "{live}");
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let silent = now - ms(field(&live, "/last_heartbeat"));
    assert!(silent < 10_000, "edge-live last heard of {silent} ms ago: {live}");

    let fired = wait_until("the live schedule fired", Duration::from_secs(90), || async {
        let s = hub.json("schedule describe live").await?;
        Ok((field(&s, "/status/runs").as_u64() >= Some(1)).then_some(s))
    })
    .await?;
    let slot = ms(field(&fired, "/status/last_fire"));
    let list = hub.json("backup list --schedule live").await?;
    let first = list
        .as_array()
        .and_then(|l| l.first())
        .context("a live backup")?
        .clone();
    let name = field(&first, "/spec/name").as_str().context("named")?.to_owned();
    let late = ms(field(&first, "/spec/created")) - slot;
    assert!(
        (0..3000).contains(&late),
        "live backup started {late} ms after its slot: {first}"
    );
    let done = ended(&hub, &name, Duration::from_secs(60)).await?;
    assert_eq!(field(&done, "/status/phase"), "Completed", "{done}");

    // The stuck cluster's slot fired too, and failed with why instead of holding the scheduler.
    let stuck = hub.json("schedule describe stuck-every").await?;
    assert_eq!(field(&stuck, "/status/runs"), 1, "{stuck}");
    Ok(())
}

const SHOP: &str = include_str!("../fixtures/shop.yaml");

/// Backup folders in the local location `bucket` that hold a manifest.
fn finished_folders(bucket: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(bucket.join("backups"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().join("manifest.pb").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_hub_down_the_agent_runs_each_slot_itself_even_restarted_and_the_hub_adopts_each_once()
-> Result<()> {
    let cp = ControlPlane::start("edge-alone").await?;
    cp.apply(SHOP).await?;
    let mut hub = HubProcess::start().await?;
    let agent = hub.agent(&cp, None).await?;
    every_minute(&hub, "minutely", "edge-alone", "shop").await?;
    holds_orders(&agent).await?;

    // The hub goes down for three slots; the agent runs each on its own, straight to the bucket.
    let bucket = hub.data_dir().join("backups");
    hub.stop();
    let before = finished_folders(&bucket);
    let offline = |count: usize| {
        let (bucket, before) = (bucket.clone(), before.clone());
        async move {
            wait_until(
                &format!("{count} backups run by the agent on its own"),
                Duration::from_secs(150),
                || async {
                    let new: Vec<String> = finished_folders(&bucket)
                        .into_iter()
                        .filter(|n| !before.contains(n))
                        .collect();
                    Ok((new.len() >= count).then_some(new))
                },
            )
            .await
        }
    };
    let first = offline(1).await?;
    // Restarted while cut off, it still has its orders and runs the next slots.
    agent.crash_and_restart()?;
    let ran = offline(3).await?;
    assert_eq!(ran.len(), 3, "{ran:?}");
    assert!(ran.contains(&first[0]), "{ran:?}");
    assert!(ran.iter().all(|n| n.starts_with("minutely-")), "{ran:?}");

    // The hub returns: it adopts the three, and its own catch-up run for the last missed slot
    // finds that slot's backup there instead of running it again.
    hub.start_again(&[]).await?;
    let adopted = wait_until("the three adopted", Duration::from_secs(90), || async {
        let list = hub.json("backup list --schedule minutely").await?;
        let list = list.as_array().cloned().unwrap_or_default();
        let found: Vec<Value> = list
            .into_iter()
            .filter(|b| ran.iter().any(|n| field(b, "/spec/name") == n.as_str()))
            .collect();
        Ok((found.len() == 3).then_some(found))
    })
    .await?;
    for b in &adopted {
        assert_eq!(field(b, "/status/phase"), "Completed", "{b}");
        assert_eq!(field(b, "/spec/offline"), true, "taken while offline: {b}");
        assert!(field(b, "/status/items").as_u64() >= Some(5), "{b}");
    }
    tokio::time::sleep(Duration::from_secs(15)).await; // past the hub's catch-up run
    let list = hub.json("backup list --schedule minutely").await?;
    let slots: Vec<i64> = list
        .as_array()
        .context("a list")?
        .iter()
        .map(|b| ms(field(b, "/spec/created")))
        .collect();
    let mut distinct = slots.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), slots.len(), "a slot was backed up twice: {list}");
    let folders: Vec<String> = finished_folders(&bucket)
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert!(
        ran.iter()
            .all(|n| folders.iter().filter(|f| *f == n).count() == 1),
        "{folders:?}"
    );
    assert_eq!(
        agent.full_log().matches("running it on our own").count(),
        3,
        "the agent ran a slot twice, or one the hub ran"
    );
    Ok(())
}

/// The alert rules README gives (the YAML block that starts `# cairn alert rules`).
fn readme_alert_rules() -> Result<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))?;
    let start = readme
        .find("# cairn alert rules")
        .context("README has alert rules")?;
    let end = readme[start..].find("```").context("the block ends")?;
    Ok(readme[start..start + end].to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_sees_an_offline_clusters_last_success_and_rpo_at_risk_and_the_readme_alert_fires()
-> Result<()> {
    let cp = ControlPlane::start("edge-watched").await?;
    cp.apply(SHOP).await?;
    // The next slot 20 s after start; the RPO at risk 10 s past a missed minute.
    let hub = HubProcess::start_with(&[
        ("CAIRN_RPO_GRACE", "10s"),
        ("CAIRN_CLOCK_OFFSET", &into_the_minute(Duration::from_secs(40))),
    ])
    .await?;
    let agent = hub.agent(&cp, None).await?;
    every_minute(&hub, "minutely", "edge-watched", "shop").await?;
    let prometheus =
        testbed::prometheus::Prometheus::start(&[hub.metrics_addr()], &readme_alert_rules()?).await?;

    // One scheduled backup succeeds; then the agent is gone.
    let first = wait_until("the first scheduled backup", Duration::from_secs(90), || async {
        let list = hub.json("backup list --schedule minutely").await?;
        Ok(list.as_array().and_then(|l| l.first()).cloned())
    })
    .await?;
    let name = field(&first, "/spec/name").as_str().context("named")?.to_owned();
    let done = ended(&hub, &name, Duration::from_secs(60)).await?;
    assert_eq!(field(&done, "/status/phase"), "Completed", "{done}");
    let taken = ms(field(&done, "/status/started"));
    agent.terminate(Duration::from_secs(30))?;

    let value = |samples: &[Value]| -> Option<f64> {
        samples
            .iter()
            .find(|s| field(s, "/metric/cluster") == "edge-watched")
            .and_then(|s| field(s, "/value/1").as_str()?.parse().ok())
    };
    // Prometheus sees the cluster offline, its last success, and then its RPO at risk; the
    // README's rule fires for it.
    let firing = wait_until(
        "the README's CairnRPOAtRisk alert firing",
        Duration::from_secs(150),
        || async {
            let alerts = prometheus.alerts().await?;
            Ok(alerts.into_iter().find(|a| {
                field(a, "/labels/alertname") == "CairnRPOAtRisk"
                    && field(a, "/labels/cluster") == "edge-watched"
                    && field(a, "/state") == "firing"
            }))
        },
    )
    .await?;
    assert_eq!(field(&firing, "/labels/severity"), "critical", "{firing}");
    let last = value(
        &prometheus
            .query("cairn_cluster_last_success_timestamp_seconds")
            .await?,
    )
    .context("a last-success series for edge-watched")?;
    assert_eq!(
        (last * 1000.0).round() as i64,
        taken,
        "last success: the first backup's start"
    );
    assert_eq!(
        value(&prometheus.query("cairn_cluster_rpo_at_risk").await?),
        Some(1.0)
    );
    assert_eq!(
        value(&prometheus.query("cairn_cluster_connected").await?),
        Some(0.0)
    );
    let completed = prometheus
        .query(r#"cairn_backups_total{outcome="Completed"}"#)
        .await?
        .first()
        .and_then(|s| field(s, "/value/1").as_str()?.parse::<f64>().ok());
    assert_eq!(completed, Some(1.0), "{}", prometheus.log());

    // The CLI says the same.
    let list = hub.cli_line("cluster list").await?.ok()?.stdout;
    let row = list
        .lines()
        .find(|l| l.starts_with("edge-watched"))
        .context("listed")?;
    assert!(row.contains("offline since") && row.contains("AT RISK"), "{list}");
    Ok(())
}

/// A backup of `cluster` an agent says it ran on its own for `slot` of `schedule`, named `name`,
/// `Completed`, naming volume snapshot `snapshot` if given.
fn ran_offline(
    name: &str,
    cluster: &str,
    schedule: &str,
    slot: Timestamp,
    snapshot: Option<&str>,
) -> Result<Backup> {
    let origin = BackupOrigin {
        created: Some(slot),
        schedule: Some(schedule.parse()?),
        offline: true,
        ..BackupOrigin::default()
    };
    Ok(Backup {
        spec: BackupTemplate::default().spec(name.parse()?, cluster.parse()?, origin),
        status: BackupStatus {
            phase: Phase::Completed,
            started: Some(slot),
            finished: Some(slot),
            items: 3,
            volumes: snapshot
                .map(|s| {
                    vec![VolumeResult {
                        namespace: "shop".into(),
                        claim: "data".into(),
                        snapshot: s.into(),
                        ..VolumeResult::default()
                    }]
                })
                .unwrap_or_default(),
            ..BackupStatus::default()
        },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_gets_adopted_only_its_own_clusters_backups_of_slots_it_was_owed() -> Result<()> {
    let hub = HubProcess::start().await?;
    let (tx, mut down, _state) = raw_agent(&hub, "east", None).await?;
    hub.cli_line("cluster add west").await?.ok()?;
    every_minute(&hub, "minutely", "east", "shop").await?;
    every_minute(&hub, "west-minutely", "west", "shop").await?;
    let schedule = hub.json("schedule describe minutely").await?;
    let began = Timestamp::from_unix_ms(ms(field(&schedule, "/status/created"))).context("created")?;
    let spec = ScheduleSpec::new(
        "minutely".parse()?,
        ScheduleTarget::Cluster("east".parse()?),
        "* * * * *".into(),
    );
    let timetable = cairn_proto::schedule::Timetable::parse("* * * * *", None)?;
    let slot = timetable.next_after(began).context("a slot")?;
    let minute = Duration::from_secs(60);
    let later = |n: u32| Timestamp::from(SystemTime::from(slot) + minute * n);
    let name = |at: Timestamp| {
        cairn_proto::schedule::backup_for(&spec, at, &"east".parse().expect("name")).to_string()
    };
    let west_name = cairn_proto::schedule::slot_backup(&"west-minutely".parse()?, slot).to_string();
    let before_it = Timestamp::from(SystemTime::from(slot) - 2 * minute);

    let forged = [
        // Another cluster's backup, for its schedule.
        (
            ran_offline(&west_name, "west", "west-minutely", slot, None)?,
            "did not ask of it",
        ),
        // Its own cluster, another cluster's schedule.
        (
            ran_offline(&west_name, "east", "west-minutely", slot, None)?,
            "does not back up this cluster",
        ),
        // A name that is not the slot's.
        (
            ran_offline("minutely-20200101000000", "east", "minutely", slot, None)?,
            "the backup of that slot is",
        ),
        // A slot an hour ahead, and one before the schedule began.
        (
            ran_offline(&name(later(60)), "east", "minutely", later(60), None)?,
            "is not a slot of schedule minutely owed so far",
        ),
        (
            ran_offline(&name(before_it), "east", "minutely", before_it, None)?,
            "is not a slot of schedule minutely owed so far",
        ),
    ];
    for (backup, _) in &forged {
        tx.send(Report::OfflineBackup(backup.clone()).to_pb()).await?;
    }
    // The real one, naming a snapshot it cannot have made.
    let own = ran_offline(&name(slot), "east", "minutely", slot, Some("0123456789abcdef"))?;
    tx.send(Report::OfflineBackup(own).to_pb()).await?;

    // Only the real one is adopted, and the agent is told so.
    let adopted = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let message = down.message().await?.context("the session ended")?;
            if let Instruction::Adopted { backup: b, .. } = Instruction::from_pb(message)? {
                return anyhow::Ok(b.to_string());
            }
        }
    })
    .await
    .context("nothing adopted")??;
    assert_eq!(adopted, name(slot));
    let got = hub.json(&format!("backup describe {}", name(slot))).await?;
    assert_eq!(field(&got, "/spec/offline"), true, "{got}");
    assert_eq!(field(&got, "/status/phase"), "Completed", "{got}");
    assert_eq!(
        field(&got, "/status/volumes/0/snapshot"),
        "",
        "a snapshot it did not make was kept: {got}"
    );
    let list = hub.json("backup list").await?;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "only the real one: {list}"
    );
    let log = hub.full_log();
    for (backup, why) in &forged {
        assert!(
            log.lines()
                .any(|l| l.contains(backup.spec.name.as_str()) && l.contains(why)),
            "{} refused, saying {why:?}: {log}",
            backup.spec.name
        );
    }
    Ok(())
}

/// Once `agent` holds the standing orders the hub gave it.
async fn holds_orders(agent: &AgentProcess) -> Result<()> {
    wait_until(
        "the agent holds its standing orders",
        Duration::from_secs(30),
        || async {
            Ok(agent
                .full_log()
                .contains("standing orders received")
                .then_some(()))
        },
    )
    .await
}

/// An edge site for the link tests: cluster `cp`, its hub, and its bucket (azurite; location
/// `vault`, the default), the agent reaching the hub through proxy `uplink` and the bucket
/// through proxy `bucket` (the hub reaches the bucket through it too), both for the test to cut.
struct Site {
    cp: ControlPlane,
    hub: HubProcess,
    uplink: Proxy,
    bucket: Proxy,
    agent: AgentProcess,
    azure: AzuriteServer,
    files: tempfile::TempDir,
}

impl Site {
    /// The site of cluster `cluster`; with `spool`, its agent has one (see [`Site::spool`]).
    async fn start(cluster: &str, spool: bool) -> Result<Self> {
        let (cp, azure) = tokio::try_join!(ControlPlane::start(cluster), AzuriteServer::start())?;
        azure.create_container("vault").await?;
        let hub = HubProcess::start().await?;
        let (uplink, bucket) = tokio::try_join!(
            Proxy::to(hub.url()),
            Proxy::to(azure.endpoint().trim_end_matches(&format!("/{AZURE_ACCOUNT}")))
        )?;
        let files = tempfile::tempdir()?;
        let env = files.path().join("azure.env");
        std::fs::write(&env, format!("AZURE_STORAGE_ACCOUNT_KEY={AZURE_KEY}\n"))?;
        hub.cli_line(&format!(
            "location add vault --provider azure --account {AZURE_ACCOUNT} --bucket vault \
             --endpoint http://{}/{AZURE_ACCOUNT} --credentials-file {} --default",
            bucket.addr(),
            env.display()
        ))
        .await?
        .ok()?;
        let token = hub.join_token(cluster, &[]).await?;
        let via = format!("https://{}", uplink.addr());
        let spool_dir = files.path().join("spool").display().to_string();
        let mut args = vec!["--join", &token, "--hub", &via];
        if spool {
            args.extend(["--spool", &spool_dir]);
        }
        let agent = hub.agent_with(&cp, None, &args).await?;
        Ok(Self {
            cp,
            hub,
            uplink,
            bucket,
            agent,
            azure,
            files,
        })
    }

    /// The agent's spool directory.
    fn spool(&self) -> std::path::PathBuf {
        self.files.path().join("spool")
    }
}

/// Each blob's data in `namespace`, by name.
async fn blobs(cp: &ControlPlane, namespace: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(cp.client(), namespace);
    Ok(api
        .list(&Default::default())
        .await?
        .into_iter()
        .filter_map(|cm| {
            let name = cm.metadata.name?;
            let blob = cm.data?.remove("blob")?;
            Some((name, blob))
        })
        .collect())
}

/// `restore describe NAME` (JSON) once its phase is `phase`.
async fn restore_in(hub: &HubProcess, name: &str, phase: &str, within: Duration) -> Result<Value> {
    wait_until(&format!("restore {name} {phase}"), within, || async {
        let described = hub.json(&format!("restore describe {name}")).await?;
        Ok((described["status"]["phase"] == phase).then_some(described))
    })
    .await
}

/// An edge site's uplink cut during a restore. The hub link: the hub fails the restore when the
/// agent goes, naming why; the agent carries on, and reports when the link is back: `Completed`,
/// with every object. The bucket link: the restore ends `Failed`, naming the object it could not
/// read, never `Completed` with objects missing; once the link is back, the same restore again
/// brings everything.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_whose_link_is_cut_completes_with_everything_or_fails_saying_why() -> Result<()> {
    let site = Site::start("cut-off", false).await?;
    let (cp, hub, uplink, bucket) = (&site.cp, &site.hub, &site.uplink, &site.bucket);
    cp.fill_incompressible("bulk", 120).await?;
    let before = blobs(cp, "bulk").await?;
    hub.cli_line("backup create full --cluster cut-off --include-namespaces bulk --wait")
        .await?
        .ok()?;

    // The hub link, cut once the first objects are back.
    hub.cli_line(
        "restore create across --from-backup full --target-cluster cut-off --namespace-mapping bulk:bulk-a",
    )
    .await?
    .ok()?;
    wait_until("the restore's first objects", Duration::from_secs(60), || async {
        Ok((!blobs(cp, "bulk-a").await?.is_empty()).then_some(()))
    })
    .await?;
    uplink.cut();
    let failed = restore_in(hub, "across", "Failed", Duration::from_secs(30)).await?;
    let error = failed["status"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the agent of cluster cut-off disconnected"),
        "{failed}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    uplink.mend();
    let done = restore_in(hub, "across", "Completed", Duration::from_secs(90)).await?;
    assert_eq!(done["status"]["counts"]["failed"], 0, "{done}");
    assert_eq!(
        blobs(cp, "bulk-a").await?,
        before,
        "the restored namespace differs"
    );

    // The bucket link, cut half-way through the backup's 48 MB and left cut.
    bucket.cut_after(20 << 20);
    hub.cli_line(
        "restore create torn --from-backup full --target-cluster cut-off --namespace-mapping bulk:bulk-b",
    )
    .await?
    .ok()?;
    let torn = restore_in(hub, "torn", "Failed", Duration::from_secs(240)).await?;
    assert!(
        !bucket.is_up(),
        "the restore ended before the link was cut: {torn}"
    );
    let error = torn["status"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("from location vault") && error.contains("backups/full/"),
        "{torn}"
    );
    let restored = blobs(cp, "bulk-b").await?.len();
    assert!(
        restored < before.len(),
        "{restored} objects restored, all of them: {torn}"
    );
    bucket.mend();
    hub.cli_line("restore create again --from-backup full --target-cluster cut-off --namespace-mapping bulk:bulk-b --wait")
        .await?
        .ok()?;
    assert_eq!(
        blobs(cp, "bulk-b").await?,
        before,
        "the restored namespace differs"
    );
    Ok(())
}

/// Backups in `store` (a bucket) whose manifest is there: what passes for a backup.
async fn manifests(store: &std::sync::Arc<dyn object_store::ObjectStore>) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&object_store::path::Path::from("backups")))
        .try_collect()
        .await?;
    let mut names: Vec<String> = listed
        .iter()
        .filter_map(|o| {
            let key = o.location.as_ref();
            key.strip_suffix("/manifest.pb")?
                .strip_prefix("backups/")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Each backup of schedule `schedule` the hub lists: (name, phase, spooled, offline), by name.
async fn listed(hub: &HubProcess, schedule: &str) -> Result<Vec<(String, String, bool, bool)>> {
    let list = hub.json(&format!("backup list --schedule {schedule}")).await?;
    let mut rows: Vec<_> = list
        .as_array()
        .context("a list")?
        .iter()
        .map(|b| {
            (
                field(b, "/spec/name").as_str().unwrap_or_default().to_owned(),
                field(b, "/status/phase").as_str().unwrap_or_default().to_owned(),
                field(b, "/status/spooled").as_bool().unwrap_or_default(),
                field(b, "/spec/offline").as_bool().unwrap_or_default(),
            )
        })
        .collect();
    rows.sort();
    Ok(rows)
}

/// Acceptance 2: the uplink cut (hub and bucket both out of reach) for three slots. The agent
/// spools each slot's backup; one restores on the site from the spool with no hub; with the hub
/// link back the hub lists them as spooled at the site (and refuses to restore one from a bucket
/// that lacks it, saying where it is), with the backlog in `cluster list`; the bucket link back
/// but cut again half-way through shipping leaves no half backup passing for one; back for good,
/// every backup is shipped, once, the spool is empty and each restores from the bucket.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_uplink_cut_backups_go_to_the_spool_restore_on_site_and_are_shipped_whole_when_it_returns()
-> Result<()> {
    let site = Site::start("edge-spool", true).await?;
    let (cp, hub, uplink, bucket, agent) = (&site.cp, &site.hub, &site.uplink, &site.bucket, &site.agent);
    let spool = site.spool();
    cp.fill_incompressible("bulk", 10).await?;
    let before = blobs(cp, "bulk").await?;
    every_minute(hub, "minutely", "edge-spool", "bulk").await?;
    holds_orders(agent).await?;

    // The uplink goes: the next three slots' backups go to the spool.
    uplink.cut();
    bucket.cut();
    let spooled_dir = spool.join("vault");
    let spooled = wait_until("three backups in the spool", 5 * MINUTE, || async {
        let done = finished_folders(&spooled_dir);
        Ok((done.len() >= 3).then_some(done))
    })
    .await?;
    assert_eq!(spooled.len(), 3, "{spooled:?}");

    // On the site, with no hub: a spooled backup restores.
    let out = tokio::process::Command::new(testbed::cairn::workspace_bin("cairn-agent")?)
        .args([
            "restore",
            "--from-spool",
            &spooled[0],
            "--namespace-mapping",
            "bulk:bulk-site",
        ])
        .arg("--spool")
        .arg(&spool)
        .arg("--state-dir")
        .arg(agent.state_dir())
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("from the spool: Completed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(blobs(cp, "bulk-site").await?, before, "restored from the spool");

    // The hub link back, the bucket still cut: the hub knows where the backups are.
    uplink.mend();
    let clusters = wait_until("the spool's backlog at the hub", 2 * MINUTE, || async {
        let clusters = hub.json("cluster list").await?;
        let backlog = clusters
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "edge-spool"))
            .map(|c| c["spool_backups"].as_u64().unwrap_or_default());
        Ok((backlog == Some(3)).then_some(clusters))
    })
    .await?;
    assert!(clusters.to_string().contains("\"spool_bytes\""), "{clusters}");
    let metrics = reqwest::get(format!("http://{}/metrics", hub.metrics_addr()))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains(r#"cairn_cluster_spool_backups{cluster="edge-spool",workspace="default"} 3"#),
        "{metrics}"
    );
    let rows = listed(hub, "minutely").await?;
    for name in &spooled {
        assert!(
            rows.iter().any(|(n, phase, spooled, offline)| n == name
                && phase == "Completed"
                && *spooled
                && *offline),
            "{name} not listed as spooled: {rows:?}"
        );
    }
    let table = hub.cli_line("backup list --schedule minutely").await?.ok()?;
    assert!(
        table.stdout.contains("spooled at edge-spool (for vault)"),
        "{}",
        table.stdout
    );
    let refused = hub
        .cli_line(&format!("restore create early --from-backup {}", spooled[1]))
        .await?;
    assert!(
        refused.code != Some(0)
            && refused
                .stderr
                .contains("is in the spool of cluster edge-spool's site, not in location vault yet"),
        "{refused:?}"
    );

    // The bucket link back, and cut again part-way through shipping (each backup is 4 MB): what
    // was shipped whole is in the bucket, with its manifest; nothing else passes for a backup.
    bucket.cut_after(6 << 20);
    bucket.mend();
    let store = site.azure.store("vault")?;
    wait_until("the ship to be cut", 2 * MINUTE, || async {
        Ok((!bucket.is_up()).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let shipped = manifests(&store).await?;
    assert!(shipped.len() < 3, "the ship was not cut: {shipped:?}");
    let rows = listed(hub, "minutely").await?;
    for name in &spooled {
        let in_bucket = shipped.contains(name);
        let still_spooled = rows.iter().any(|(n, _, s, _)| n == name && *s);
        assert!(
            in_bucket || (still_spooled && finished_folders(&spooled_dir).contains(name)),
            "{name} is neither in the bucket whole nor in the spool: {rows:?}"
        );
    }

    // Back for good: everything shipped, once; the spool empty; each restores from the bucket.
    bucket.mend();
    wait_until("the spool shipped", 2 * MINUTE, || async {
        let rows = listed(hub, "minutely").await?;
        let all = spooled
            .iter()
            .all(|name| rows.iter().any(|(n, _, s, _)| n == name && !*s));
        Ok((all && finished_folders(&spooled_dir).is_empty()).then_some(()))
    })
    .await?;
    let shipped = manifests(&store).await?;
    let log = agent.full_log();
    for name in &spooled {
        assert!(shipped.contains(name), "{name} not in the bucket: {shipped:?}");
        let ships = log
            .lines()
            .filter(|l| l.contains("spooled backup shipped to its location") && l.contains(name.as_str()))
            .count();
        assert_eq!(ships, 1, "{name} shipped {ships} times");
    }
    let clusters = hub.json("cluster list").await?;
    let row = clusters
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "edge-spool"))
        .context("edge-spool listed")?;
    assert_eq!(row["spool_backups"], 0, "{clusters}");
    hub.cli_line(&format!(
        "restore create home --from-backup {} --namespace-mapping bulk:bulk-home --wait",
        spooled[2]
    ))
    .await?
    .ok()?;
    assert_eq!(blobs(cp, "bulk-home").await?, before, "restored from the bucket");
    Ok(())
}
