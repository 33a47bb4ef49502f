//! `cairn-agent`: runs inside a cluster (or next to one), dials out to the hub and backs up and
//! restores that cluster on the hub's instructions.

use anyhow::Context;
use cairn_agent::link::Link;
use cairn_proto::model::ClusterName;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("finding the cluster (in-cluster config or KUBECONFIG)")?,
    };
    let client = kube::Client::try_from(config)?;
    let version = client
        .apiserver_version()
        .await
        .context("asking the cluster for its version")?;
    tracing::info!(cluster = %args.cluster, kubernetes.version = %version.git_version, "agent starting");
    let link = Link {
        hub: args.hub,
        cluster: args.cluster,
        client,
        kubernetes_version: version.git_version,
    };
    Err(link.run().await.into())
}
