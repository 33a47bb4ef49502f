//! `cairn-hub`: the central server that agents dial into and users talk to.

use anyhow::Context;
use cairn_hub::{api, config::Config, inventory, operations::Hub};
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;

/// Cairn's hub. Runs with no configuration: state in ./cairn-data, listening on 127.0.0.1:7443.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML), layered over the embedded defaults.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cairn_proto::process::init();

    let config = Config::load(args.config.as_deref())?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let store = inventory::rocks::RocksStore::open(&config.data_dir.join("db"))?;
    let hub = Hub::start(
        inventory::Inventory::new(Arc::new(store)),
        config.sealing_key()?,
        &config.default_location_dir()?,
        config.clock(),
    )
    .await?;
    tokio::spawn(hub.clone().run_schedules());
    tokio::spawn(hub.clone().run_retention());

    let expiry = hub.clone();
    let timeout = config.agent_timeout;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(timeout / 2);
        loop {
            tick.tick().await;
            expiry.expire_silent(timeout).await;
        }
    });
    let checks = hub.clone();
    let every = config.location_check_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            checks.verify_locations().await;
        }
    });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(listen = %format!("http://{addr}"), data_dir = %config.data_dir.display(), "hub ready");
    api::serve(hub, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
