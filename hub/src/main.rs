//! `cairn-hub`: the central server that agents dial into and users talk to.

use cairn_hub::config::Config;
use clap::Parser;
use std::path::PathBuf;

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
    cairn_hub::server::run(&config, cairn_proto::process::terminated()).await?;
    Ok(())
}
