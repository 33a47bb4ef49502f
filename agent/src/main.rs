//! `cairn-agent`: runs inside a cluster (or next to one), dials out to the hub and backs up and
//! restores that cluster on the hub's instructions. `cairn-agent repo …` works a volume-data
//! repository directly, for operators and benchmarks.

mod repo_command;

use cairn_proto::model::ClusterName;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Cairn's agent for one cluster.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    /// The hub's URL.
    #[arg(long, env = "CAIRN_HUB")]
    hub: Option<String>,
    /// This cluster's name in the hub.
    #[arg(long, env = "CAIRN_CLUSTER")]
    cluster: Option<ClusterName>,
    /// Kubeconfig to use; default: in-cluster configuration, or $KUBECONFIG.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Work a volume-data repository directly.
    Repo(repo_command::RepoArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cairn_proto::process::init();
    if let Some(Command::Repo(repo)) = args.command {
        return repo_command::run(repo).await;
    }
    let (Some(hub), Some(cluster)) = (args.hub, args.cluster) else {
        anyhow::bail!("--hub and --cluster are required (or a subcommand: see --help)");
    };
    Err(cairn_agent::run(hub, cluster, args.kubeconfig.as_deref())
        .await
        .into())
}
