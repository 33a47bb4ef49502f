//! The `cairn` command: kubectl-like verbs over the hub's user API.
//!
//! ```text
//! cairn cluster list
//! cairn backup create NAME --cluster C [filters…] [--wait]
//! cairn backup list [--cluster C] | describe NAME [--details] | delete NAME
//! cairn restore create NAME --from-backup B [--target-cluster C] [options…] [--dry-run] [--wait]
//! cairn restore list | describe NAME [--details]
//! ```

mod output;
mod progress;

use anyhow::{Result, bail};
use cairn_proto::model::{
    BackupName, BackupSpec, ClusterName, ClusterResources, ExistingPolicy, LabelSelector, LocationName,
    NamespaceFilter, Phase, RestoreName, RestoreSpec,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;

use crate::api::client::Client;
pub use output::Format;

/// Backup and restore for fleets of Kubernetes clusters.
#[derive(Parser)]
#[command(name = "cairn", version)]
pub struct Cli {
    /// The hub's URL.
    #[arg(
        long,
        env = "CAIRN_HUB",
        default_value = "http://127.0.0.1:7443",
        global = true
    )]
    hub: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
    #[command(subcommand)]
    command: Noun,
}

#[derive(Subcommand)]
enum Noun {
    /// Clusters whose agents have registered.
    Cluster {
        #[command(subcommand)]
        verb: ClusterVerb,
    },
    /// Backups.
    Backup {
        #[command(subcommand)]
        verb: BackupVerb,
    },
    /// Restores.
    Restore {
        #[command(subcommand)]
        verb: RestoreVerb,
    },
}

#[derive(Subcommand)]
enum ClusterVerb {
    /// Name, connection, Kubernetes and agent versions, last heartbeat.
    List,
}

#[derive(Subcommand)]
enum BackupVerb {
    /// Back up a cluster.
    Create(BackupCreate),
    /// List backups.
    List {
        /// Only this cluster's.
        #[arg(long)]
        cluster: Option<ClusterName>,
    },
    /// Show one backup.
    Describe {
        /// The backup.
        name: BackupName,
        /// List every item with its result.
        #[arg(long)]
        details: bool,
    },
    /// Delete a backup from its location and the inventory.
    Delete {
        /// The backup.
        name: BackupName,
    },
}

#[derive(Subcommand)]
enum RestoreVerb {
    /// Restore a backup.
    Create(RestoreCreate),
    /// List restores.
    List,
    /// Show one restore.
    Describe {
        /// The restore.
        name: RestoreName,
        /// List every item with its result.
        #[arg(long)]
        details: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ClusterResourcesArg {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExistingPolicyArg {
    Skip,
    Update,
}

#[derive(Args)]
struct BackupCreate {
    /// The backup's name.
    name: BackupName,
    /// The cluster to back up.
    #[arg(long)]
    cluster: ClusterName,
    /// Backup location (default: the hub's default location).
    #[arg(long)]
    location: Option<LocationName>,
    /// Only these namespaces.
    #[arg(long, value_delimiter = ',')]
    include_namespaces: Vec<String>,
    /// Never these namespaces.
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Only these resources (`deployments`, `deployments.apps`, `configmaps.v1`).
    #[arg(long, value_delimiter = ',')]
    include_resources: Vec<String>,
    /// Never these resources.
    #[arg(long, value_delimiter = ',')]
    exclude_resources: Vec<String>,
    /// Only objects whose labels match (`app=web,tier!=db`).
    #[arg(long, short = 'l')]
    selector: Option<LabelSelector>,
    /// Cluster-scoped objects: those the namespaced ones need (auto), all, or none.
    #[arg(long, value_enum, default_value = "auto")]
    cluster_resources: ClusterResourcesArg,
    /// Keep the backup this long (`720h`); default: forever.
    #[arg(long)]
    ttl: Option<humantime::Duration>,
    /// Wait until it ends, showing progress; exit non-zero unless it completed.
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
struct RestoreCreate {
    /// The restore's name.
    name: RestoreName,
    /// The backup to restore.
    #[arg(long)]
    from_backup: BackupName,
    /// Restore into this cluster (default: the backup's own).
    #[arg(long)]
    target_cluster: Option<ClusterName>,
    /// Only these namespaces (as named in the backup).
    #[arg(long, value_delimiter = ',')]
    include_namespaces: Vec<String>,
    /// Never these namespaces.
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Rename namespaces: `src:dst,…`.
    #[arg(long, value_delimiter = ',', value_parser = parse_mapping)]
    namespace_mapping: Vec<(String, String)>,
    /// Objects that exist already: leave them (skip) or overwrite them (update).
    #[arg(long, value_enum, default_value = "skip")]
    existing_policy: ExistingPolicyArg,
    /// Keep Services' node ports.
    #[arg(long)]
    preserve_node_ports: bool,
    /// Print the ordered plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait until it ends, showing progress; exit non-zero unless it completed.
    #[arg(long)]
    wait: bool,
}

fn parse_mapping(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((src, dst)) if !src.is_empty() && !dst.is_empty() => Ok((src.to_owned(), dst.to_owned())),
        _ => Err(format!("namespace mapping {text:?} is not src:dst")),
    }
}

/// Runs the command line `cli`.
pub async fn run(cli: Cli) -> Result<()> {
    let mut client = Client::connect(&cli.hub).await?;
    let out = cli.output;
    match cli.command {
        Noun::Cluster {
            verb: ClusterVerb::List,
        } => output::clusters(out, &client.clusters().await?),
        Noun::Backup { verb } => match verb {
            BackupVerb::Create(args) => {
                let wait = args.wait;
                let spec = backup_spec(args);
                let backup = client.create_backup(&spec).await?;
                if !wait {
                    output::outln!(
                        "backup {} started on cluster {}",
                        backup.spec.name,
                        backup.spec.cluster
                    );
                    return Ok(());
                }
                progress::follow(&mut client, &spec.name.operation()).await?;
                let backup = client.backup(spec.name.as_str()).await?;
                output::backup(out, &backup, None)?;
                ensure_completed(
                    "backup",
                    spec.name.as_str(),
                    backup.status.phase,
                    backup.status.error.as_deref(),
                )
            }
            BackupVerb::List { cluster } => output::backups(
                out,
                &client.backups(cluster.as_ref().map(ClusterName::as_str)).await?,
            ),
            BackupVerb::Describe { name, details } => {
                let backup = client.backup(name.as_str()).await?;
                let items = if details {
                    Some(client.backup_items(name.as_str()).await?)
                } else {
                    None
                };
                output::backup(out, &backup, items.as_deref())
            }
            BackupVerb::Delete { name } => {
                client.delete_backup(name.as_str()).await?;
                output::outln!("backup {name} deleted");
                Ok(())
            }
        },
        Noun::Restore { verb } => match verb {
            RestoreVerb::Create(args) => {
                let wait = args.wait || args.dry_run;
                let spec = restore_spec(args);
                let restore = client.create_restore(&spec).await?;
                if !wait {
                    output::outln!(
                        "restore {} of backup {} started",
                        restore.spec.name,
                        restore.spec.backup
                    );
                    return Ok(());
                }
                progress::follow(&mut client, &spec.name.operation()).await?;
                let restore = client.restore(spec.name.as_str()).await?;
                // A dry run's point is its plan: print every item in order.
                let items = if spec.dry_run {
                    Some(client.restore_items(spec.name.as_str()).await?)
                } else {
                    None
                };
                output::restore(out, &restore, items.as_deref())?;
                ensure_completed(
                    "restore",
                    spec.name.as_str(),
                    restore.status.phase,
                    restore.status.error.as_deref(),
                )
            }
            RestoreVerb::List => output::restores(out, &client.restores().await?),
            RestoreVerb::Describe { name, details } => {
                let restore = client.restore(name.as_str()).await?;
                let items = if details {
                    Some(client.restore_items(name.as_str()).await?)
                } else {
                    None
                };
                output::restore(out, &restore, items.as_deref())
            }
        },
    }
}

fn ensure_completed(kind: &str, name: &str, phase: Phase, error: Option<&str>) -> Result<()> {
    match (phase, error) {
        (Phase::Completed, _) => Ok(()),
        (phase, Some(error)) => bail!("{kind} {name} {phase}: {error}"),
        (phase, None) => bail!("{kind} {name} {phase}"),
    }
}

fn backup_spec(a: BackupCreate) -> BackupSpec {
    BackupSpec {
        name: a.name,
        cluster: a.cluster,
        location: a.location,
        namespaces: NamespaceFilter {
            include: a.include_namespaces,
            exclude: a.exclude_namespaces,
        },
        include_resources: a.include_resources,
        exclude_resources: a.exclude_resources,
        selector: a.selector,
        cluster_resources: match a.cluster_resources {
            ClusterResourcesArg::Auto => ClusterResources::Auto,
            ClusterResourcesArg::Always => ClusterResources::Always,
            ClusterResourcesArg::Never => ClusterResources::Never,
        },
        ttl: a.ttl.map(Into::into),
    }
}

fn restore_spec(a: RestoreCreate) -> RestoreSpec {
    RestoreSpec {
        name: a.name,
        backup: a.from_backup,
        target_cluster: a.target_cluster,
        namespaces: NamespaceFilter {
            include: a.include_namespaces,
            exclude: a.exclude_namespaces,
        },
        namespace_mapping: a.namespace_mapping.into_iter().collect::<BTreeMap<_, _>>(),
        existing_policy: match a.existing_policy {
            ExistingPolicyArg::Skip => ExistingPolicy::Skip,
            ExistingPolicyArg::Update => ExistingPolicy::Update,
        },
        preserve_node_ports: a.preserve_node_ports,
        dry_run: a.dry_run,
    }
}
