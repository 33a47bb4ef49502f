//! `cairn-agent`: runs inside a cluster (or next to one), dials out to the hub and backs up and
//! restores that cluster on the hub's instructions. `cairn-agent repo …` works a volume-data
//! repository directly, for operators and benchmarks.

mod repo_command;

use cairn_proto::dial::Hub;
use cairn_proto::model::ClusterName;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Cairn's agent for one cluster.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    /// The hub's URL (https://).
    #[arg(long, env = "CAIRN_HUB")]
    hub: Option<String>,
    /// PEM file of the hub's CA; default: the system's roots.
    #[arg(long, env = "CAIRN_HUB_CA")]
    hub_ca: Option<PathBuf>,
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
    /// Move volume data on this node (run one per node: a DaemonSet).
    Node(NodeArgs),
}

#[derive(clap::Args)]
struct NodeArgs {
    /// The hub's URL (https://).
    #[arg(long, env = "CAIRN_HUB")]
    hub: String,
    /// PEM file of the hub's CA; default: the system's roots.
    #[arg(long, env = "CAIRN_HUB_CA")]
    hub_ca: Option<PathBuf>,
    /// This cluster's name in the hub.
    #[arg(long, env = "CAIRN_CLUSTER")]
    cluster: ClusterName,
    /// This node's name, as in pods' `spec.nodeName`.
    #[arg(long, env = "NODE_NAME")]
    node: String,
    /// The kubelet's root directory: volumes are under `<root>/pods/<uid>/volumes`.
    #[arg(long, env = "CAIRN_KUBELET_ROOT", default_value = "/var/lib/kubelet")]
    kubelet_root: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cairn_agent::tune_allocator();
    let args = Args::parse();
    cairn_proto::process::init();
    let node = match args.command {
        Some(Command::Repo(repo)) => return repo_command::run(repo).await,
        Some(Command::Node(n)) => Some(n),
        None => None,
    };
    // SIGTERM or SIGINT: stop taking instructions, let running operations finish and report
    // (bounded), close the link, exit 0.
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        cairn_proto::process::terminated().await;
        on_signal.cancel();
    });
    if let Some(n) = node {
        let hub = Hub::with_ca_file(&n.hub, n.hub_ca.as_deref())?;
        return Ok(cairn_agent::run_node(hub, n.cluster, n.node, n.kubelet_root, stop).await?);
    }
    let (Some(hub), Some(cluster)) = (args.hub, args.cluster) else {
        anyhow::bail!("--hub and --cluster are required (or a subcommand: see --help)");
    };
    let hub = Hub::with_ca_file(&hub, args.hub_ca.as_deref())?;
    Ok(cairn_agent::run(hub, cluster, args.kubeconfig.as_deref(), stop).await?)
}
