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
    /// Make a new hub-wide admin token at start-up and write it, with the hub's address and CA,
    /// to <data_dir>/admin.conf, readable by this user only: for an administrator who lost theirs
    /// (whoever may start the hub on its data directory may). Audited; other tokens stay valid.
    #[arg(long, env = "CAIRN_NEW_ADMIN_TOKEN")]
    new_admin_token: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cairn_proto::process::init();
    let config = Config::load(args.config.as_deref())?;
    let admin = if args.new_admin_token {
        cairn_hub::server::AdminToken::New
    } else {
        cairn_hub::server::AdminToken::FirstStart
    };
    cairn_hub::server::run(&config, admin, cairn_proto::process::terminated()).await?;
    Ok(())
}
