//! `cargo bench --bench fleet`: the hub at fleet scale.
//!
//! For each N (`CAIRN_BENCH_AGENTS`, default 500,1000,2000,5000) a fresh hub runs as its own
//! process (this binary re-run in hub mode: the same `cairn_hub::server::run` as `cairn-hub`), and
//! N simulated agents in this process each hold their own connection and speak the real agent
//! protocol: register, heartbeat every 5 s, answer each backup instruction at once — except one
//! in twenty (5%), which registers and beats but never reads what the hub sends. Measured: the
//! hub's CPU while idle with heartbeats, its peak RSS, and — with one schedule per cluster, all
//! firing in the same minute, no jitter — the delay from the slot to a healthy agent receiving
//! its instruction (p50, p99); then the hub is restarted twice and every agent dials again at
//! once, first with the real agent's backoff (exponential, full jitter), then without jitter:
//! the time until all are registered, the hub's CPU meanwhile, and sessions refused. Every agent enrols first with its own join token and speaks over mTLS with its own
//! certificate. Then `backup list` through the user API over an inventory of 1,000,000 backups
//! (`CAIRN_BENCH_BACKUPS`): p99 of filtered queries. The last line is the 2,000 row.

use anyhow::{Context, Result, bail};
use cairn_cli::client::Client;
use cairn_hub::inventory::{Inventory, rocks::RocksStore};
use cairn_proto::convert::Wire;
use cairn_proto::model::{
    Backup, BackupName, BackupOrigin, BackupQuery, BackupSpec, BackupStatus, ClusterName, ClusterResources,
    Instruction, NamespaceFilter, Phase, Registration, Report, ScheduleSpec, ScheduleTarget, Timestamp,
};
use cairn_proto::pb::agent_channel_client::AgentChannelClient;
use futures::StreamExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_stream::wrappers::ReceiverStream;

/// Set when this binary runs as the hub.
const HUB_MODE: &str = "CAIRN_BENCH_HUB";
/// Agents connecting at once.
const CONNECT_CONCURRENCY: usize = 200;
/// One agent in this many never reads what the hub sends.
const STUCK_EVERY: usize = 20;
/// How long idle CPU is sampled.
const IDLE_SAMPLE: Duration = Duration::from_secs(10);
/// Clusters and workspaces of the million-backup inventory.
const INVENTORY_CLUSTERS: usize = 2000;
const INVENTORY_WORKSPACES: usize = 10;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    cairn_proto::process::init();
    if std::env::var_os(HUB_MODE).is_some() {
        let config = cairn_hub::config::Config::load(None)?;
        runtime.block_on(cairn_hub::server::run(
            &config,
            cairn_hub::server::AdminToken::FirstStart,
            std::future::pending(),
        ))?;
        return Ok(());
    }
    let sizes: Vec<usize> = std::env::var("CAIRN_BENCH_AGENTS")
        .unwrap_or_else(|_| "500,1000,2000,5000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let backups: usize = std::env::var("CAIRN_BENCH_BACKUPS")
        .unwrap_or_else(|_| "1000000".into())
        .parse()?;
    runtime.block_on(async {
        let mut rows = Vec::new();
        for n in sizes {
            rows.push(measure(n).await?);
        }
        let list = list_latency(backups).await?;
        println!();
        println!(
            "{:>7} {:>9} {:>9} {:>12} {:>13} {:>12} {:>14} {:>15} {:>17} {:>8}",
            "agents",
            "p50_ms",
            "p99_ms",
            "hub_rss_mib",
            "idle_cpu_pct",
            "reconnect_s",
            "reconnect_cpu_s",
            "no_jitter_s",
            "no_jitter_cpu_s",
            "refused"
        );
        for r in &rows {
            println!(
                "{:>7} {:>9.0} {:>9.0} {:>12} {:>13.1} {:>12.1} {:>14.1} {:>15.1} {:>17.1} {:>8}",
                r.agents,
                r.p50_ms,
                r.p99_ms,
                r.rss_mib,
                r.idle_cpu_pct,
                r.reconnect.0,
                r.reconnect.1,
                r.no_jitter.0,
                r.no_jitter.1,
                r.refused
            );
        }
        println!();
        println!(
            "backup list over {backups} backups: p99 {:.1} ms (cluster+since), {:.1} ms (workspace+status+since), {:.1} ms (cluster, all time)",
            list[0], list[1], list[2]
        );
        let row = rows
            .iter()
            .find(|r| r.agents == 2000)
            .or(rows.last())
            .context("no rows")?;
        println!("fleet {}", row.summary());
        anyhow::Ok(())
    })
}

struct Row {
    agents: usize,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: u64,
    idle_cpu_pct: f64,
    /// From a hub restart until every agent is registered again (seconds), and the restarted
    /// hub's CPU seconds over that time: agents backing off with full jitter.
    reconnect: (f64, f64),
    /// The same with agents backing off without jitter.
    no_jitter: (f64, f64),
    /// Sessions the hub refused meanwhile (authentication or permission).
    refused: usize,
}

impl Row {
    /// Its figures, `name=value` each.
    fn summary(&self) -> String {
        format!(
            "agents={} stuck={} p50_ms={:.0} p99_ms={:.0} hub_rss_mib={} idle_cpu_pct={:.1} reconnect_s={:.1} reconnect_cpu_s={:.1} no_jitter_s={:.1} no_jitter_cpu_s={:.1} refused={}",
            self.agents,
            self.agents / STUCK_EVERY,
            self.p50_ms,
            self.p99_ms,
            self.rss_mib,
            self.idle_cpu_pct,
            self.reconnect.0,
            self.reconnect.1,
            self.no_jitter.0,
            self.no_jitter.1,
            self.refused
        )
    }
}

struct HubChild(Child);

impl Drop for HubChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A hub process on `port` over data directory `data`.
fn spawn_hub(data: &std::path::Path, port: u16) -> Result<HubChild> {
    Ok(HubChild(
        Command::new(std::env::current_exe()?)
            .env(HUB_MODE, "1")
            .env("CAIRN_DATA_DIR", data)
            .env("CAIRN_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAIRN_AGENT_TIMEOUT", "30s")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()?,
    ))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// When each simulated agent received its instruction.
type Received = Arc<Mutex<Vec<SystemTime>>>;

/// How the simulated agents fared: sessions refused by the hub (an authentication or
/// permission refusal, not a hub that is down).
type Refused = Arc<std::sync::atomic::AtomicUsize>;

/// How the simulated agents behave.
#[derive(Clone)]
struct Behaviour {
    /// Never reads what the hub sends.
    stuck: bool,
    /// Whether agents back off with full jitter (as the real agent does) or without.
    jitter: Arc<std::sync::atomic::AtomicBool>,
}

/// One simulated agent: enrols as `cluster` with a join token from `users` (its certificate kept
/// under `state`), then, as the real agent does, keeps a session up (dialling again with
/// backoff when it breaks): registers, beats, answers every backup at once (unless stuck).
async fn agent(
    users: Client,
    url: String,
    state: std::path::PathBuf,
    cluster: String,
    seen: (Received, Refused),
    connecting: Arc<tokio::sync::Semaphore>,
    behaviour: Behaviour,
) -> Result<()> {
    let permit = connecting.acquire_owned().await?;
    let token = testbed::cairn::join_token(&mut users.clone(), &url, &cluster).await?;
    let keep = cairn_agent::enrol::Keep::Dir(state.join(&cluster));
    let enrolled = cairn_agent::enrol::Enrolled::cluster_agent(keep, Some(&token), None, None).await?;
    drop(permit);
    let (first, longest) = cairn_agent::link::BACKOFF;
    let mut delay = first;
    loop {
        let started = Instant::now();
        if let Err(e) = session(&enrolled, &cluster, &seen.0, behaviour.stuck).await
            && let Some(status) = e.downcast_ref::<tonic::Status>()
            && matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            )
        {
            seen.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if started.elapsed() > longest {
            delay = first;
        }
        let wait = if behaviour.jitter.load(std::sync::atomic::Ordering::Relaxed) {
            cairn_agent::link::jittered(delay)
        } else {
            delay
        };
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(longest);
    }
}

/// One session of a simulated agent, until the hub ends it (a stuck one never reads it).
async fn session(
    enrolled: &cairn_agent::enrol::Enrolled,
    cluster: &str,
    received: &Received,
    stuck: bool,
) -> Result<()> {
    let mut client = AgentChannelClient::new(enrolled.endpoint()?.connect().await?);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let register = Report::Register(Registration {
        cluster: cluster.parse()?,
        agent_version: "bench".into(),
        kubernetes_version: "v1.20.2".into(),
        node: None,
    });
    tx.send(register.to_pb()).await?;
    let mut down = client.session(ReceiverStream::new(rx)).await?.into_inner();
    let beat = tx.clone();
    let beating = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if beat.send(Report::Heartbeat.to_pb()).await.is_err() {
                break;
            }
        }
    });
    if stuck {
        let _ = beating.await;
        return Ok(());
    }
    let ended = async {
        while let Some(msg) = down.message().await? {
            if let Instruction::Backup { spec, .. } = Instruction::from_pb(msg)? {
                received
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(SystemTime::now());
                let status = BackupStatus {
                    phase: Phase::Completed,
                    ..BackupStatus::default()
                };
                tx.send(Report::BackupDone(spec.name, status).to_pb()).await?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    beating.abort();
    ended
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Stops `hub` and starts it again: the seconds until all `n` agents are registered again, and
/// the new hub's CPU seconds meanwhile.
async fn restart(
    hub: HubChild,
    data: &std::path::Path,
    port: u16,
    client: &Client,
    n: usize,
) -> Result<((f64, f64), HubChild)> {
    drop(hub);
    let restarted = Instant::now();
    let hub = spawn_hub(data, port)?;
    let pid = hub.0.id();
    testbed::wait_until("every agent back", Duration::from_secs(300), || {
        let mut client = client.clone();
        async move {
            let Ok(clusters) = client.clusters().await else {
                return Ok(None);
            };
            Ok((clusters.iter().filter(|c| c.connected).count() == n).then_some(()))
        }
    })
    .await?;
    let figures = (
        restarted.elapsed().as_secs_f64(),
        testbed::proc_stats::cpu_seconds(pid),
    );
    Ok((figures, hub))
}

async fn measure(n: usize) -> Result<Row> {
    eprintln!("== {n} agents");
    let data = tempfile::tempdir()?;
    let port = free_port()?;
    let url = format!("https://127.0.0.1:{port}");
    let ca = data.path().join("pki").join("ca.crt");
    let hub = spawn_hub(data.path(), port)?;
    let pid = hub.0.id();
    // Its CA and its administrator's configuration are written on first start.
    let dial = testbed::wait_until("the hub's CA and admin.conf", Duration::from_secs(30), || async {
        let Ok(text) = std::fs::read_to_string(data.path().join("admin.conf")) else {
            return Ok(None);
        };
        let token = serde_json::from_str::<serde_json::Value>(&text)?["token"]
            .as_str()
            .map(|t| secrecy::SecretString::from(t.to_owned()));
        Ok(cairn_proto::dial::Hub::with_ca_file(&url, Some(&ca))
            .ok()
            .zip(token)
            .map(|(hub, token)| hub.with_token(token)))
    })
    .await?;
    let client = testbed::wait_until("the hub", Duration::from_secs(30), || async {
        Ok(Client::connect(&dial).await.ok())
    })
    .await?;

    let received: Received = Arc::default();
    let refused: Refused = Arc::default();
    let started = Instant::now();
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let jitter = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let agents: Vec<_> = (0..n)
        .map(|i| {
            let name = format!("sim-{i:05}");
            let behaviour = Behaviour {
                stuck: i % STUCK_EVERY == STUCK_EVERY - 1,
                jitter: jitter.clone(),
            };
            tokio::spawn(agent(
                client.clone(),
                url.clone(),
                data.path().join("agents"),
                name,
                (received.clone(), refused.clone()),
                connecting.clone(),
                behaviour,
            ))
        })
        .collect();
    let healthy = n - n / STUCK_EVERY;
    testbed::wait_until("every agent registered", Duration::from_secs(300), || {
        let mut client = client.clone();
        async move {
            let up = client.clusters().await?.iter().filter(|c| c.connected).count();
            Ok((up == n).then_some(()))
        }
    })
    .await?;
    eprintln!(
        "   {n} agents connected in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let cpu0 = testbed::proc_stats::cpu_seconds(pid);
    tokio::time::sleep(IDLE_SAMPLE).await;
    let idle_cpu_pct = (testbed::proc_stats::cpu_seconds(pid) - cpu0) / IDLE_SAMPLE.as_secs_f64() * 100.0;

    // One schedule per cluster, all at the same minute (at least 20 s away once they exist).
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let setup_s = 20 + u64::try_from(n / 200).unwrap_or(0);
    let slot_s = (now_s + setup_s).div_ceil(60) * 60;
    let minute = (slot_s / 60) % 60;
    let hour = (slot_s / 3600) % 24;
    let cron = format!("{minute} {hour} * * *");
    let creates: Vec<_> = (0..n)
        .map(|i| {
            let (mut client, cron) = (client.clone(), cron.clone());
            async move {
                let schedule = ScheduleSpec::new(
                    format!("s-{i:05}").parse()?,
                    ScheduleTarget::Cluster(format!("sim-{i:05}").parse()?),
                    cron,
                );
                client.create_schedule(&schedule).await?;
                anyhow::Ok(())
            }
        })
        .collect();
    let made: Vec<Result<()>> = futures::stream::iter(creates)
        .buffer_unordered(32)
        .collect()
        .await;
    made.into_iter().collect::<Result<Vec<()>>>()?;
    let slot = UNIX_EPOCH + Duration::from_secs(slot_s);
    if SystemTime::now() >= slot {
        bail!("setting up {n} schedules took past their slot; raise the set-up margin");
    }
    eprintln!(
        "   {n} schedules fire at {}",
        humantime::format_rfc3339_seconds(slot)
    );
    testbed::wait_until(
        "every healthy agent instructed",
        Duration::from_secs(180),
        || async {
            let got = received.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.len();
            Ok((got >= healthy).then_some(()))
        },
    )
    .await?;
    let mut delays: Vec<f64> = received
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .map(|t| t.duration_since(slot).map_or(0.0, |d| d.as_secs_f64() * 1000.0))
        .collect();
    delays.sort_by(f64::total_cmp);
    tokio::time::sleep(Duration::from_secs(2)).await; // the agents' reports land
    let rss_mib = testbed::proc_stats::peak_rss_mib(pid);
    let row = Row {
        agents: n,
        p50_ms: percentile(&delays, 0.50),
        p99_ms: percentile(&delays, 0.99),
        rss_mib,
        idle_cpu_pct,
        reconnect: (0.0, 0.0),
        no_jitter: (0.0, 0.0),
        refused: 0,
    };

    // The hub restarts: every agent dials again at once, with the real agent's backoff (full
    // jitter), then again without jitter.
    let refused_before = refused.load(std::sync::atomic::Ordering::Relaxed);
    let (reconnect, hub) = restart(hub, data.path(), port, &client, n).await?;
    jitter.store(false, std::sync::atomic::Ordering::Relaxed);
    let (no_jitter, hub) = restart(hub, data.path(), port, &client, n).await?;
    let row = Row {
        reconnect,
        no_jitter,
        refused: refused.load(std::sync::atomic::Ordering::Relaxed) - refused_before,
        ..row
    };
    eprintln!("   {}", row.summary());
    drop(hub);
    for a in agents {
        a.abort();
    }
    drop(client);
    Ok(row)
}

/// p99 in ms of three filtered `backup list` queries over an inventory of `count` backups.
async fn list_latency(count: usize) -> Result<[f64; 3]> {
    eprintln!("== backup list over {count} backups");
    let data = tempfile::tempdir()?;
    let inventory = Inventory::new(Arc::new(RocksStore::open(&data.path().join("db"))?));
    let now = Timestamp::now();
    let month_ms = 30 * 24 * 3600 * 1000_i64;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..count {
        let cluster = i % INVENTORY_CLUSTERS;
        let created = now.unix_ms() - (i64::try_from(i).unwrap_or(0) * 7919) % month_ms;
        batch.push(Backup {
            spec: BackupSpec {
                name: BackupName::new(format!("b-{i:07}"))?,
                cluster: ClusterName::new(format!("c-{cluster:04}"))?,
                location: Some("default".parse()?),
                namespaces: NamespaceFilter::default(),
                include_resources: vec![],
                exclude_resources: vec![],
                selector: None,
                cluster_resources: ClusterResources::Auto,
                ttl: Some(Duration::from_secs(90 * 24 * 3600)),
                volumes: false,
                origin: BackupOrigin {
                    created: Timestamp::from_unix_ms(created),
                    workspace: Some(format!("w-{}", cluster % INVENTORY_WORKSPACES).parse()?),
                    schedule: Some(format!("s-{cluster:04}").parse()?),
                    group: None,
                    offline: false,
                },
            },
            status: BackupStatus {
                phase: if i % 20 == 0 {
                    Phase::Failed
                } else {
                    Phase::Completed
                },
                items: 1000,
                bytes: 1 << 20,
                ..BackupStatus::default()
            },
        });
        if batch.len() == batch.capacity() {
            inventory.put_backups(&batch).await?;
            batch.clear();
        }
    }
    inventory.put_backups(&batch).await?;
    eprintln!("   inventory written in {:.1} s", started.elapsed().as_secs_f64());

    let (_hub, _url, dial) = testbed::cairn::in_process_hub(data.path(), inventory).await?;
    let mut client = Client::connect(&dial).await?;

    let day_ago = Timestamp::from(SystemTime::now() - Duration::from_secs(24 * 3600));
    let queries: [Box<dyn Fn(usize) -> Result<BackupQuery>>; 3] = [
        Box::new(|i| {
            Ok(BackupQuery {
                cluster: Some(format!("c-{:04}", (i * 37) % INVENTORY_CLUSTERS).parse()?),
                since: Some(day_ago),
                ..BackupQuery::default()
            })
        }),
        Box::new(|i| {
            Ok(BackupQuery {
                workspace: Some(format!("w-{}", i % INVENTORY_WORKSPACES).parse()?),
                phase: Some(Phase::Failed),
                since: Some(day_ago),
                ..BackupQuery::default()
            })
        }),
        Box::new(|i| {
            Ok(BackupQuery {
                cluster: Some(format!("c-{:04}", (i * 53) % INVENTORY_CLUSTERS).parse()?),
                ..BackupQuery::default()
            })
        }),
    ];
    let mut out = [0.0; 3];
    for (q, query) in queries.iter().enumerate() {
        let mut times = Vec::new();
        let mut found = 0;
        for i in 0..200 {
            let query = query(i)?;
            let t = Instant::now();
            found += client.backups(&query).await?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        out[q] = percentile(&times, 0.99);
        eprintln!(
            "   query {q}: p50 {:.1} ms, p99 {:.1} ms, {found} backups over 200 queries",
            percentile(&times, 0.5),
            out[q]
        );
    }
    Ok(out)
}
