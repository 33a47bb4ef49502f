//! The fleet on real control planes: workspace schedules firing on time, pause and resume,
//! keep-last and TTL retention, one catch-up run after the hub was down, workspace backups that
//! skip a down cluster, the catalog rebuilt from the bucket, and restores whose source cluster is
//! gone. Time jumps use the hub's `CAIRN_CLOCK_OFFSET` across a restart, never sleeps of minutes.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testbed::cairn::{CliOutput, HubProcess, catalog};
use testbed::storage::{LocalDir, files_under};
use testbed::{ControlPlane, snapshot, wait_until};

const SHOP: &str = include_str!("../fixtures/shop.yaml");

/// A `CAIRN_CLOCK_OFFSET` that puts the hub's clock at least `ahead` of now, at `position` into
/// a `period` (a minute, an hour).
fn offset(ahead: Duration, period: Duration, position: Duration) -> String {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms);
    let (period, position) = (ms(period), ms(position));
    let align = (position + period - now % period) % period;
    format!("{}ms", ms(ahead) + align)
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Names of the backups `backup list ARGS` shows, newest first.
async fn listed(hub: &HubProcess, args: &str) -> Result<Vec<String>> {
    let list = hub.json(&format!("backup list {args}")).await?;
    Ok(list
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|b| b.pointer("/spec/name").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

fn field<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// Waits until every backup `backup list ARGS` shows has ended; returns them.
async fn all_ended(hub: &HubProcess, args: &str, count: usize) -> Result<Vec<Value>> {
    wait_until(
        &format!("{count} finished backups ({args})"),
        Duration::from_secs(120),
        || async {
            let list = hub.json(&format!("backup list {args}")).await?;
            let list = list.as_array().cloned().unwrap_or_default();
            let ended = list.len() == count
                && list.iter().all(|b| {
                    matches!(
                        field(b, "/status/phase").as_str(),
                        Some("Completed" | "PartiallyFailed" | "Failed")
                    )
                });
            Ok(ended.then_some(list))
        },
    )
    .await
}

/// Waits until the hub shows every one of `clusters` connected.
async fn connected(hub: &HubProcess, clusters: &[&str]) -> Result<()> {
    wait_until("agents connected", Duration::from_secs(60), || async {
        let list = hub.json("cluster list").await?;
        let up = list.as_array().cloned().unwrap_or_default();
        Ok(clusters
            .iter()
            .all(|c| {
                up.iter()
                    .any(|x| field(x, "/name") == *c && field(x, "/connected") == true)
            })
            .then_some(()))
    })
    .await
}

/// Fails unless the command failed with `needle` in its output.
fn refused(out: &CliOutput, needle: &str) -> Result<()> {
    if out.code == Some(0) || !(out.stderr.contains(needle) || out.stdout.contains(needle)) {
        bail!("expected a failure saying {needle:?}, got {out:?}");
    }
    Ok(())
}

fn path(dir: &Path, sub: &str) -> Result<String> {
    let p = dir.join(sub);
    std::fs::create_dir_all(&p)?;
    p.to_str().map(str::to_owned).context("UTF-8 path")
}

/// Backup folders under `backups/` of a local location that hold any file.
fn folders(location: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(Path::new(location).join("backups"))? {
        let entry = entry?;
        if !files_under(&entry.path())?.is_empty() {
            names.extend(entry.file_name().into_string().ok());
        }
    }
    names.sort();
    Ok(names)
}

fn ms(v: &Value) -> i64 {
    v.as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_schedule_fires_on_time_for_every_cluster_and_pauses() -> Result<()> {
    let (a, b, c) = tokio::try_join!(
        ControlPlane::start("fleet-a"),
        ControlPlane::start("fleet-b"),
        ControlPlane::start("fleet-c")
    )?;
    let mut hub = HubProcess::start_with(&[(
        "CAIRN_CLOCK_OFFSET",
        &offset(Duration::ZERO, MINUTE, Duration::from_secs(20)),
    )])
    .await?;
    let _agents = tokio::try_join!(hub.agent(&a, None), hub.agent(&b, None), hub.agent(&c, None))?;
    tokio::try_join!(a.apply(SHOP), b.apply(SHOP), c.apply(SHOP))?;
    let dir = LocalDir::new()?;
    let store = path(dir.path(), "fleet")?;
    hub.cli_line("workspace create fleet").await?.ok()?;
    for cluster in ["fleet-a", "fleet-b", "fleet-c"] {
        hub.cli_line(&format!("workspace add-cluster fleet {cluster}"))
            .await?
            .ok()?;
    }
    hub.cli_line(&format!(
        "location add fleet-store --workspace fleet --provider fs --path {store}"
    ))
    .await?
    .ok()?;
    let create = |name: &'static str, cron: &'static str| {
        let hub = &hub;
        async move {
            hub.cli(&[
                "schedule",
                "create",
                name,
                "--workspace",
                "fleet",
                "--cron",
                cron,
                "--include-namespaces",
                "shop",
            ])
            .await
        }
    };
    refused(
        &create("bad", "0 2 * *").await?,
        "invalid cron expression \"0 2 * *\"",
    )?;
    create("minutely", "* * * * *").await?.ok()?;

    // The first slot: one backup per cluster, started at the slot.
    let first = all_ended(&hub, "--schedule minutely", 3).await?;
    let schedule = hub.json("schedule describe minutely").await?;
    let slot = ms(field(&schedule, "/status/last_fire"));
    for b in &first {
        assert_eq!(field(b, "/status/phase"), "Completed", "{b}");
        let late = ms(field(b, "/spec/created")) - slot;
        assert!((0..3000).contains(&late), "started {late} ms after its slot: {b}");
    }
    let mut clusters: Vec<&str> = first
        .iter()
        .filter_map(|b| field(b, "/spec/cluster").as_str())
        .collect();
    clusters.sort_unstable();
    assert_eq!(clusters, ["fleet-a", "fleet-b", "fleet-c"]);

    // Paused, five minutes pass (the hub restarted five minutes later): nothing runs.
    hub.cli_line("schedule pause minutely").await?.ok()?;
    hub.stop();
    let later = offset(5 * MINUTE, MINUTE, Duration::from_secs(20));
    hub.start_again(&[("CAIRN_CLOCK_OFFSET", &later)]).await?;
    connected(&hub, &["fleet-a", "fleet-b", "fleet-c"]).await?;
    tokio::time::sleep(Duration::from_secs(12)).await; // past the scheduler's start-up grace
    assert_eq!(
        listed(&hub, "--schedule minutely").await?.len(),
        3,
        "a paused schedule ran"
    );
    let paused = hub.json("schedule describe minutely").await?;
    assert_eq!(field(&paused, "/status/runs"), 1);
    assert_eq!(
        field(&paused, "/status/catch_ups"),
        0,
        "slots passed while paused are not caught up"
    );

    // Resumed: the next slot runs again.
    hub.cli_line("schedule resume minutely").await?.ok()?;
    let all = all_ended(&hub, "--schedule minutely", 6).await?;
    assert!(
        all.iter().all(|b| field(b, "/status/phase") == "Completed"),
        "{all:?}"
    );
    let resumed = hub.json("schedule describe minutely").await?;
    assert_eq!(field(&resumed, "/status/runs"), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_last_and_ttl_retire_backups_from_location_and_inventory() -> Result<()> {
    let cp = ControlPlane::start("keeper").await?;
    let mut hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.apply(SHOP).await?;
    let dir = LocalDir::new()?;
    let store = path(dir.path(), "vault")?;
    hub.cli_line(&format!(
        "location add vault --provider fs --path {store} --default"
    ))
    .await?
    .ok()?;
    hub.cli_line(
        "schedule create keep --cluster keeper --cron @daily --keep-last 2 --include-namespaces shop",
    )
    .await?
    .ok()?;
    for run in 1..=4 {
        hub.cli_line("schedule run-now keep").await?.ok()?;
        all_ended(&hub, "--schedule keep", run.min(2)).await?;
        tokio::time::sleep(Duration::from_millis(1100)).await; // a new second: a new backup name
    }
    let mut kept = listed(&hub, "--schedule keep").await?;
    kept.sort();
    assert_eq!(
        folders(&store)?,
        kept,
        "the location holds other backups than the inventory"
    );
    let described = hub.json("schedule describe keep").await?;
    assert_eq!(field(&described, "/status/runs"), 4);

    // A backup past its TTL is deleted once the hub's clock passes its expiry.
    hub.cli_line("schedule delete keep").await?.ok()?;
    hub.cli_line("backup create short --cluster keeper --include-namespaces shop --ttl 1h --wait")
        .await?
        .ok()?;
    hub.cli_line("backup create long --cluster keeper --include-namespaces shop --ttl 720h --wait")
        .await?
        .ok()?;
    assert!(folders(&store)?.contains(&"short".to_owned()));
    hub.stop();
    hub.start_again(&[("CAIRN_CLOCK_OFFSET", "2h")]).await?;
    wait_until("the expired backup deleted", Duration::from_secs(30), || async {
        let names = listed(&hub, "").await?;
        Ok((!names.contains(&"short".to_owned())).then_some(()))
    })
    .await?;
    let left = folders(&store)?;
    assert!(!left.contains(&"short".to_owned()), "{left:?}");
    assert!(left.contains(&"long".to_owned()), "{left:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_down_over_many_slots_makes_exactly_one_catch_up_run() -> Result<()> {
    let cp = ControlPlane::start("sleeper").await?;
    let mut hub = HubProcess::start().await?;
    let _agent = hub.agent(&cp, None).await?;
    cp.apply(SHOP).await?;
    hub.cli(&[
        "schedule",
        "create",
        "hourly",
        "--cluster",
        "sleeper",
        "--cron",
        "0 * * * *",
        "--include-namespaces",
        "shop",
    ])
    .await?
    .ok()?;
    hub.stop();
    // Three hours later (half past an hour): three hourly slots were missed.
    let later = offset(3 * HOUR, HOUR, HOUR / 2);
    hub.start_again(&[("CAIRN_CLOCK_OFFSET", &later)]).await?;
    let ran = all_ended(&hub, "--schedule hourly", 1).await?;
    assert_eq!(field(&ran[0], "/status/phase"), "Completed");
    let s = hub.json("schedule describe hourly").await?;
    assert_eq!(field(&s, "/status/runs"), 1, "{s}");
    assert_eq!(field(&s, "/status/catch_ups"), 1, "{s}");
    let described = hub.cli_line("schedule describe hourly").await?.ok()?.stdout;
    assert!(described.contains("Catch-up runs:      1 (last "), "{described}");

    // Started again at the same hour: nothing more is owed.
    hub.stop();
    hub.start_again(&[]).await?;
    tokio::time::sleep(Duration::from_secs(12)).await; // past the scheduler's start-up grace
    assert_eq!(listed(&hub, "--schedule hourly").await?.len(), 1);
    assert_eq!(
        field(&hub.json("schedule describe hourly").await?, "/status/catch_ups"),
        1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_backup_skips_a_down_cluster_and_says_so() -> Result<()> {
    let (up, down) = tokio::try_join!(ControlPlane::start("ws-up"), ControlPlane::start("ws-down"))?;
    let hub = HubProcess::start().await?;
    let _up_agent = hub.agent(&up, None).await?;
    let down_agent = hub.agent(&down, None).await?;
    up.apply(SHOP).await?;
    let dir = LocalDir::new()?;
    let store = path(dir.path(), "ws")?;
    hub.cli_line("workspace create pair").await?.ok()?;
    hub.cli_line("workspace add-cluster pair ws-up").await?.ok()?;
    hub.cli_line("workspace add-cluster pair ws-down").await?.ok()?;
    hub.cli_line(&format!(
        "location add pair-store --workspace pair --provider fs --path {store}"
    ))
    .await?
    .ok()?;
    drop(down_agent);
    wait_until("ws-down disconnected", Duration::from_secs(30), || async {
        let list = hub.json("cluster list").await?;
        let gone = list.as_array().is_some_and(|l| {
            l.iter()
                .any(|c| field(c, "/name") == "ws-down" && field(c, "/connected") == false)
        });
        Ok(gone.then_some(()))
    })
    .await?;

    let out = hub
        .cli_line("backup create nightly --workspace pair --include-namespaces shop --wait")
        .await?;
    refused(&out, "workspace backup nightly PartiallyFailed")?;
    let row = |cluster: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(cluster))
            .map(str::to_owned)
    };
    let down_row = row("ws-down").context("ws-down listed")?;
    assert!(
        down_row.contains("Skipped") && down_row.contains("cluster ws-down is not connected"),
        "{down_row}"
    );
    assert!(
        row("ws-up").context("ws-up listed")?.contains("Completed"),
        "{}",
        out.stdout
    );
    let described = hub.json("backup describe nightly").await?;
    assert_eq!(field(&described, "/phase"), "PartiallyFailed");
    assert_eq!(listed(&hub, "--workspace pair").await?, ["nightly-ws-up"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_is_rebuilt_from_the_bucket_and_its_backups_restore_where_the_source_is_gone()
-> Result<()> {
    let (source, target) = tokio::try_join!(ControlPlane::start("gone"), ControlPlane::start("heir"))?;
    // The hub's key lives outside its data directory (a secret store), as README advises: the
    // location's keyring is sealed under it.
    let key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let mut hub = HubProcess::start_with(&[("CAIRN_SECRET_KEY", key)]).await?;
    let source_agent = hub.agent(&source, None).await?;
    let _target_agent = hub.agent(&target, None).await?;
    source.apply(SHOP).await?;
    let original = snapshot::namespace(&source.client(), "shop").await?;
    let dir = LocalDir::new()?;
    let store = path(dir.path(), "vault")?;
    let add = format!("location add vault --provider fs --path {store} --default");
    hub.cli_line(&add).await?.ok()?;
    hub.cli_line("backup create all --cluster gone --ttl 720h --wait")
        .await?
        .ok()?;
    hub.cli_line("backup create shop --cluster gone --include-namespaces shop --wait")
        .await?
        .ok()?;
    let before = hub.json("backup list").await?;
    assert_eq!(before.as_array().map(Vec::len), Some(2));

    // The source cluster is destroyed, and the hub loses all its state. Started again with its key
    // (recovery.rs: with another key, or into a workspace of another name), it reads them all.
    drop(source_agent);
    drop(source);
    hub.stop();
    std::fs::remove_dir_all(hub.data_dir())?;
    hub.start_again(&[("CAIRN_SECRET_KEY", key)]).await?;
    assert_eq!(listed(&hub, "").await?.len(), 0, "a wiped hub knows no backup");
    let out = hub.cli_line(&add).await?.ok()?.stdout;
    assert!(out.contains("2 backups found in it and added"), "{out}");

    let after = hub.json("backup list").await?;
    assert_eq!(catalog(&before), catalog(&after), "the rebuilt catalog differs");

    // Restored into another cluster although its source is gone.
    connected(&hub, &["heir"]).await?;
    hub.cli_line("restore create back --from-backup shop --target-cluster heir --wait")
        .await?
        .ok()?;
    let restored = snapshot::namespace(&target.client(), "shop").await?;
    assert_eq!(original, restored, "the restored namespace differs");
    Ok(())
}
