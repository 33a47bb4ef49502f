//! `cairn-agent`: runs inside a cluster (or next to one), dials out to the hub and backs up and
//! restores that cluster on the hub's instructions.

use cairn_proto::model::ClusterName;
use clap::Parser;
use std::path::PathBuf;

/// Cairn's agent for one cluster.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The hub's URL.
    #[arg(long, env = "CAIRN_HUB")]
    hub: String,
    /// This cluster's name in the hub.
    #[arg(long, env = "CAIRN_CLUSTER")]
    cluster: ClusterName,
    /// Kubeconfig to use; default: in-cluster configuration, or $KUBECONFIG.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cairn_proto::process::init();
    Err(
        cairn_agent::run(args.hub, args.cluster, args.kubeconfig.as_deref())
            .await
            .into(),
    )
}
