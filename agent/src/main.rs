//! `cairn-agent`: runs inside a cluster (or next to one), dials out to the hub and backs up and
//! restores that cluster on the hub's instructions. `cairn-agent repo …` works a volume-data
//! repository directly, for operators and benchmarks.

mod repo_command;

use anyhow::Context;
use cairn_proto::dial::Hub;
use cairn_proto::model::ClusterName;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Cairn's agent for one cluster. On its first start it enrols with a join token (`cairn cluster
/// add NAME` prints one) and keeps its certificate, the hub's address and CA; later starts need
/// nothing but where it is kept.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    /// Join token, for the first start (ignored once enrolled).
    #[arg(long, env = "CAIRN_JOIN_TOKEN", hide_env_values = true)]
    join: Option<String>,
    /// The service account node agents run as (NAMESPACE/NAME): the agent vouches only for them.
    #[arg(long, env = "CAIRN_NODE_AGENTS", default_value_t)]
    node_agents: cairn_agent::vouch::NodeAgents,
    /// The hub's URL, replacing the one the join token gave (the hub moved).
    #[arg(long, env = "CAIRN_HUB")]
    hub: Option<String>,
    #[command(flatten)]
    kept: Kept,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Where a cluster agent keeps what it is (its identity, its standing orders) and what it holds
/// (its spool), and the cluster it serves.
#[derive(clap::Args)]
struct Kept {
    /// Keep the agent's identity in this directory (outside a cluster).
    #[arg(long, env = "CAIRN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Keep the agent's identity in this Secret (in a cluster): NAME in the agent's namespace, or
    /// NAMESPACE/NAME.
    #[arg(long, env = "CAIRN_IDENTITY_SECRET", default_value = "cairn-agent-identity")]
    identity_secret: String,
    /// This cluster's name: checked against the agent's certificate.
    #[arg(long, env = "CAIRN_CLUSTER")]
    cluster: Option<ClusterName>,
    /// Kubeconfig to use; default: in-cluster configuration, or $KUBECONFIG.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A spool directory (a PersistentVolumeClaim's mount in a cluster): backups the agent runs
    /// on its own while their location cannot be reached go there, and are shipped when it can.
    #[arg(long, env = "CAIRN_SPOOL")]
    spool: Option<PathBuf>,
    /// The most the spool holds (past it, its oldest backups are dropped): 10GiB, 500MB…
    #[arg(long, env = "CAIRN_SPOOL_SIZE", default_value = "10GiB")]
    spool_size: bytesize::ByteSize,
}

impl Kept {
    fn identity(
        self,
        join: Option<String>,
        hub: Option<String>,
        node_agents: cairn_agent::vouch::NodeAgents,
    ) -> anyhow::Result<(cairn_agent::Identity, Option<PathBuf>)> {
        let spool = match &self.spool {
            Some(dir) => Some(cairn_agent::spool::Spool::open(dir, self.spool_size.as_u64())?),
            None => None,
        };
        let identity = cairn_agent::Identity {
            state_dir: self.state_dir,
            secret: self.identity_secret,
            token: join,
            hub,
            cluster: self.cluster,
            node_agents,
            spool,
        };
        Ok((identity, self.kubeconfig))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Restore a backup from the spool into this cluster, without the hub (the uplink is down):
    /// `cairn-agent restore --from-spool BACKUP`.
    Restore(RestoreArgs),
    /// Work a volume-data repository directly.
    Repo(repo_command::RepoArgs),
    /// Move volume data on this node (run one per node: a DaemonSet).
    Node(NodeArgs),
    /// Hold a restored pod until its data is in: the init container a restore injects.
    Hold(HoldArgs),
}

#[derive(clap::Args)]
struct HoldArgs {
    /// The pod's hold annotation, through a downward-API volume.
    #[arg(long)]
    file: PathBuf,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The spooled backup.
    #[arg(long)]
    from_spool: cairn_proto::model::BackupName,
    /// Restore namespace SRC as DST (repeatable, or comma-separated).
    #[arg(long, value_name = "SRC:DST", value_delimiter = ',', value_parser = cairn_proto::model::parse_namespace_mapping)]
    namespace_mapping: Vec<(String, String)>,
    #[command(flatten)]
    kept: Kept,
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
    /// The pod's service-account token for audience `cairn` (a projected volume): the proof,
    /// checked by the cluster's agent, that this is a node agent on this node.
    #[arg(
        long,
        env = "CAIRN_TOKEN_FILE",
        default_value = "/var/run/secrets/cairn/token"
    )]
    token_file: PathBuf,
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
        Some(Command::Restore(r)) => return restore_from_spool(r).await,
        Some(Command::Hold(h)) => return cairn_agent::hold::wait(&h.file).await,
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
        let token = std::fs::read_to_string(&n.token_file)
            .with_context(|| format!("reading the node agent's token {}", n.token_file.display()))?;
        let token = secrecy::SecretString::from(token.trim().to_owned());
        return Ok(cairn_agent::run_node(hub, n.cluster, n.node, token, n.kubelet_root, stop).await?);
    }
    let (identity, kubeconfig) = args.kept.identity(args.join, args.hub, args.node_agents)?;
    Ok(cairn_agent::run(identity, kubeconfig.as_deref(), stop).await?)
}

/// `cairn-agent restore --from-spool BACKUP`: exits 0 if the restore completed.
async fn restore_from_spool(r: RestoreArgs) -> anyhow::Result<()> {
    let (identity, kubeconfig) = r
        .kept
        .identity(None, None, cairn_agent::vouch::NodeAgents::default())?;
    let backup = r.from_spool.clone();
    let status = cairn_agent::restore_from_spool(
        identity,
        kubeconfig.as_deref(),
        r.from_spool,
        r.namespace_mapping.into_iter().collect(),
    )
    .await?;
    let c = &status.counts;
    println!(
        "Restore of {backup} from the spool: {}\nItems: {} created, {} skipped (exist), {} left to controllers, {} failed",
        status.phase, c.created, c.skipped_exists, c.left_to_controller, c.failed
    );
    if let Some(error) = &status.error {
        println!("Error: {error}");
    }
    for problem in status
        .problems
        .iter()
        .filter(|p| p.outcome == cairn_proto::model::Outcome::Failed)
    {
        println!(
            "  {}/{} {}: {}",
            problem.item.namespace, problem.item.name, problem.item.kind, problem.message
        );
    }
    if status.phase != cairn_proto::model::Phase::Completed {
        anyhow::bail!("the restore did not complete: {}", status.phase);
    }
    Ok(())
}
