//! `cairn-cli`: the `cairn` command, kubectl-like verbs over the hub's user API, and
//! [`client`], the typed client of that API (model types in and out) the CLI and the tests use.
//! It depends on `cairn-proto` alone: the hub, and with it RocksDB, is never linked.
//!
//! ```text
//! cairn login --hub URL --ca FILE --token TOKEN
//! cairn cluster list | add NAME [--workspace W] [--expires 1h] | revoke NAME | remove NAME
//! cairn token create NAME --role admin|workspace-admin|operator|viewer [--workspace W] [--expires 30d]
//! cairn token list | revoke NAME
//! cairn audit list [--limit N]
//! cairn workspace create W | list | describe W | add-cluster W C | remove-cluster W C
//! cairn location add NAME --workspace W --provider s3|minio|gcs|azure|fs [options…] [--default]
//! cairn location list [--workspace W] | describe NAME | verify NAME | remove NAME [--force]
//! cairn backup create NAME (--cluster C | --workspace W) [filters…] [--wait]
//! cairn backup list [--workspace W] [--cluster C] [--namespace N] [--status S] [--since 24h]
//! cairn backup describe NAME [--details] | delete NAME
//! cairn schedule create NAME (--cluster C | --workspace W) --cron "0 2 * * *" [--timezone TZ] …
//! cairn schedule list | describe NAME | pause NAME | resume NAME | delete NAME | run-now NAME
//! cairn restore create NAME --from-backup B [--target-cluster C] [options…] [--dry-run] [--wait]
//! cairn restore list | describe NAME [--details]
//! ```

pub mod client;
mod credentials;
pub mod login;
mod output;
mod progress;
mod schedule;

use anyhow::Context;
use anyhow::{Result, bail};
use cairn_proto::format::provider::{self, Field};
use cairn_proto::model::{
    BackupName, BackupOrigin, BackupQuery, BackupTemplate, ClusterName, ClusterResources, Credentials,
    DEFAULT_WORKSPACE, Endpoint, ExistingPolicy, LabelSelector, LocationName, LocationSpec, NamespaceFilter,
    OperationId, Phase, Provider, RestoreName, RestoreSpec, ScheduleName, Store, WorkspaceName,
};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::client::Client;
pub use output::Format;

/// Backup and restore for fleets of Kubernetes clusters.
#[derive(Parser)]
#[command(name = "cairn", version)]
pub struct Cli {
    /// The hub's URL (the hub serves TLS only); default: the configuration's, else
    /// https://127.0.0.1:7443.
    #[arg(long, env = "CAIRN_HUB", global = true)]
    hub: Option<String>,
    /// PEM file of the hub's CA (the hub's own: `<data_dir>/pki/ca.crt`); default: the
    /// configuration's, else the system's roots.
    #[arg(long, env = "CAIRN_CA", global = true)]
    ca: Option<PathBuf>,
    /// Bearer token; default: the configuration's.
    #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// CLI configuration file (hub, CA, token); default: ~/.config/cairn/config.
    #[arg(long, env = "CAIRN_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
    #[command(subcommand)]
    command: Noun,
}

#[derive(Subcommand)]
enum Noun {
    /// Check the hub, CA and token given (--hub, --ca, --token) and save them as the CLI's
    /// configuration (--config), readable by you only.
    Login,
    /// Users' bearer tokens (hub administrators).
    Token {
        #[command(subcommand)]
        verb: TokenVerb,
    },
    /// Every change, enrolment and revocation: who, when, what, how it ended (hub administrators).
    Audit {
        #[command(subcommand)]
        verb: AuditVerb,
    },
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
    /// Workspaces: groups of clusters sharing backup locations.
    Workspace {
        #[command(subcommand)]
        verb: WorkspaceVerb,
    },
    /// Backup locations (buckets, containers, directories) of a workspace.
    Location {
        #[command(subcommand)]
        verb: LocationVerb,
    },
    /// Backups on a cron timetable.
    Schedule {
        #[command(subcommand)]
        verb: schedule::ScheduleVerb,
    },
}

#[derive(Subcommand)]
enum WorkspaceVerb {
    /// Create an empty workspace.
    Create {
        /// Its name.
        name: WorkspaceName,
    },
    /// Workspaces, their clusters and default locations.
    List,
    /// Show one workspace: clusters and locations.
    Describe {
        /// The workspace.
        name: WorkspaceName,
    },
    /// Move a cluster (from workspace default) into the workspace.
    AddCluster {
        /// The workspace.
        workspace: WorkspaceName,
        /// The cluster.
        cluster: ClusterName,
    },
    /// Move a cluster out of the workspace, back to workspace default.
    RemoveCluster {
        /// The workspace.
        workspace: WorkspaceName,
        /// The cluster.
        cluster: ClusterName,
    },
    /// Give each of the workspace's locations a new key version: new backups are sealed with it,
    /// older backups still restore, the volume repository's key is re-wrapped.
    RotateKey {
        /// The workspace.
        name: WorkspaceName,
    },
}

#[derive(Subcommand)]
enum LocationVerb {
    /// Check a new location end to end (write, read, list, delete a probe object), then save it.
    Add(Box<LocationAdd>),
    /// Locations with their last check.
    List {
        /// Only this workspace's.
        #[arg(long)]
        workspace: Option<WorkspaceName>,
    },
    /// Show one location (never its credentials).
    Describe {
        /// The location.
        name: LocationName,
    },
    /// Check a location again, end to end.
    Verify {
        /// The location.
        name: LocationName,
    },
    /// Have an agent of the location's workspace prune its volume data now: chunks no snapshot
    /// uses are planned, and those planned longer than the grace period deleted.
    Prune {
        /// The location.
        name: LocationName,
        /// How long unused chunks stay planned: longer than your longest backup. Default: the
        /// hub's volume_prune_grace, which is also the least it accepts.
        #[arg(long)]
        grace: Option<humantime::Duration>,
    },
    /// Forget a location; its objects stay in the store.
    Remove {
        /// The location.
        name: LocationName,
        /// Also forget the hub's records of the backups in it.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
struct LocationAdd {
    /// The location's name.
    name: LocationName,
    /// The workspace whose clusters may use it.
    #[arg(long, default_value = DEFAULT_WORKSPACE)]
    workspace: WorkspaceName,
    /// The kind of store: s3 (AWS S3), minio (MinIO or any S3-compatible store; needs
    /// --endpoint), gcs (Google Cloud Storage), azure (Azure Blob Storage; needs --account), fs (a
    /// local directory; needs --path).
    #[arg(long, value_parser = keyword::<Provider>(Provider::KEYWORDS))]
    provider: Provider,
    /// Bucket (Azure: container).
    #[arg(long)]
    bucket: Option<String>,
    /// Folder inside the bucket.
    #[arg(long)]
    prefix: Option<String>,
    /// Region (S3; S3-compatible stores default to us-east-1).
    #[arg(long)]
    region: Option<String>,
    /// Endpoint URL (S3-compatible stores, emulators, private endpoints); http:// only if written so.
    #[arg(long)]
    endpoint: Option<String>,
    /// Path-style addressing (endpoint/bucket/key) for S3.
    #[arg(long)]
    force_path_style: bool,
    /// PEM file of the CA that signed the endpoint's certificate.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Storage account (Azure).
    #[arg(long)]
    account: Option<String>,
    /// Directory, absolute (fs).
    #[arg(long)]
    path: Option<String>,
    /// Credentials: AWS shared-credentials INI, GCS service-account JSON, or Azure env-style file.
    /// Without it, agents use their own (web identity, instance metadata, workload identity).
    #[arg(long)]
    credentials_file: Option<PathBuf>,
    /// Section of an AWS credentials file.
    #[arg(long, default_value = "default")]
    profile: String,
    /// Make it the workspace's default location (the first one added is).
    #[arg(long)]
    default: bool,
}

#[derive(Subcommand)]
enum ClusterVerb {
    /// Name, connection, Kubernetes and agent versions, last heartbeat.
    List,
    /// Enrol a cluster: prints a one-time join token for its agent (cairn-agent --join TOKEN).
    Add {
        /// The cluster's name.
        name: ClusterName,
        /// Its workspace (default: where it is; default for a new cluster).
        #[arg(long)]
        workspace: Option<WorkspaceName>,
        /// How long the token works.
        #[arg(long, default_value = "1h")]
        expires: humantime::Duration,
        /// The hub's address as the agent reaches it; default: the address this command uses.
        #[arg(long)]
        hub_url: Option<String>,
    },
    /// Refuse a cluster's certificates (its node agents' too) from now on and end their sessions.
    /// `cluster add` enrols it again.
    Revoke {
        /// The cluster's name.
        name: ClusterName,
    },
    /// Revoke a cluster and stop listing it; its backups stay. `cluster add` enrols it again.
    Remove {
        /// The cluster's name.
        name: ClusterName,
    },
}

#[derive(Subcommand)]
enum TokenVerb {
    /// Make a token; its secret is printed this once.
    Create {
        /// Its name.
        name: cairn_proto::model::TokenName,
        /// What it may do.
        #[arg(long, value_parser = keyword::<cairn_proto::model::Role>(cairn_proto::model::Role::KEYWORDS))]
        role: cairn_proto::model::Role,
        /// The workspace it is limited to (every role but admin and viewer needs one).
        #[arg(long)]
        workspace: Option<WorkspaceName>,
        /// How long it works; default: until revoked.
        #[arg(long)]
        expires: Option<humantime::Duration>,
    },
    /// Name, role, workspace, expiry (never a secret).
    List,
    /// Refuse it from the next call on.
    Revoke {
        /// Its name.
        name: cairn_proto::model::TokenName,
    },
}

#[derive(Subcommand)]
enum AuditVerb {
    /// The newest entries first.
    List {
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

#[derive(Subcommand)]
enum BackupVerb {
    /// Back up a cluster.
    Create(BackupCreate),
    /// List backups, newest first.
    List {
        /// Only this cluster's.
        #[arg(long)]
        cluster: Option<ClusterName>,
        /// Only this workspace's.
        #[arg(long)]
        workspace: Option<WorkspaceName>,
        /// Only those covering this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only those in this phase.
        #[arg(long, value_parser = keyword::<Phase>(Phase::KEYWORDS))]
        status: Option<Phase>,
        /// Only those made within this long (`24h`).
        #[arg(long)]
        since: Option<humantime::Duration>,
        /// Only those this schedule made.
        #[arg(long)]
        schedule: Option<ScheduleName>,
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

#[derive(Args)]
struct BackupCreate {
    /// The backup's name (a workspace backup's members are named `<name>-<cluster>`).
    name: BackupName,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    template: TemplateArgs,
    /// Wait until it ends, showing progress; exit non-zero unless it completed.
    #[arg(long)]
    wait: bool,
}

/// What to back up: one cluster, or every cluster of a workspace.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct Target {
    /// The cluster to back up.
    #[arg(long)]
    cluster: Option<ClusterName>,
    /// Back up every cluster of this workspace, one backup each.
    #[arg(long)]
    workspace: Option<WorkspaceName>,
}

/// What every backup takes (shared by `backup create` and `schedule create`).
#[derive(Args)]
struct TemplateArgs {
    /// Backup location (default: the cluster's workspace's default location).
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
    #[arg(long, default_value = "auto", value_parser = keyword::<ClusterResources>(ClusterResources::KEYWORDS))]
    cluster_resources: ClusterResources,
    /// Keep each backup this long (`720h`); default: forever.
    #[arg(long)]
    ttl: Option<humantime::Duration>,
    /// Also back up the data of the selected PersistentVolumeClaims (needs `cairn-agent node`
    /// on the nodes where their pods run).
    #[arg(long)]
    volumes: bool,
}

impl TemplateArgs {
    fn template(self) -> BackupTemplate {
        BackupTemplate {
            location: self.location,
            namespaces: NamespaceFilter {
                include: self.include_namespaces,
                exclude: self.exclude_namespaces,
            },
            include_resources: self.include_resources,
            exclude_resources: self.exclude_resources,
            selector: self.selector,
            cluster_resources: self.cluster_resources,
            ttl: self.ttl.map(Into::into),
            volumes: self.volumes,
        }
    }
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
    #[arg(long, value_delimiter = ',', value_parser = cairn_proto::model::parse_namespace_mapping)]
    namespace_mapping: Vec<(String, String)>,
    /// Objects that exist already: leave them (skip) or overwrite them (update).
    #[arg(long, default_value = "skip", value_parser = keyword::<ExistingPolicy>(ExistingPolicy::KEYWORDS))]
    existing_policy: ExistingPolicy,
    /// Keep Services' node ports.
    #[arg(long)]
    preserve_node_ports: bool,
    /// Print the ordered plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also restore objects that grant power over the target cluster (RBAC granting everything,
    /// escalate, bind or impersonate, and bindings to it; admission webhooks; APIServices; the
    /// cluster's own system: objects). Without it they are skipped and named.
    #[arg(long)]
    include_sensitive: bool,
    /// Of a damaged backup (objects missing, altered or replaced in its location), restore what
    /// is intact and report the rest; without it such a backup is refused, nothing changed.
    #[arg(long)]
    partial: bool,
    /// Restored volume files keep setuid and setgid bits (dropped by default). Needs a workspace
    /// admin, and the node agent's FSETID capability.
    #[arg(long)]
    keep_setid: bool,
    /// How long claims whose data is restored may take to be bound and used by a pod placed on a
    /// node before their data is given up (default 10m); that node's agent then waits up to 10m
    /// more for the kubelet to mount the volume.
    #[arg(long)]
    volume_wait: Option<humantime::Duration>,
    /// Wait until it ends, showing progress; exit non-zero unless it completed.
    #[arg(long)]
    wait: bool,
}

/// Parses a model enum by its keywords (`Provider::KEYWORDS`…): accepts exactly those, which
/// `--help` lists.
fn keyword<T>(words: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    PossibleValuesParser::new(words.iter().copied()).try_map(|word| word.parse::<T>())
}

/// How an error reads on the command line, on one line with its causes: `refused: …` when the
/// hub refused the request (the user asked for something invalid, unknown, existing, not allowed
/// or not possible now), `failed: …` when the hub could not be reached or failed it, `error: …`
/// when the command failed before asking the hub.
pub fn headline(e: &anyhow::Error) -> String {
    let text = e.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ");
    let hub = e.chain().find_map(|c| c.downcast_ref::<client::Error>());
    let kind = match hub {
        Some(client::Error::Refused { .. }) => "refused",
        Some(client::Error::Dial(_)) | None => "error",
        Some(_) => "failed",
    };
    format!("{kind}: {text}")
}

/// Runs the command line `cli`.
pub async fn run(cli: Cli) -> Result<()> {
    let config = login::path(cli.config.as_deref());
    // A configuration asked for must exist, but for `login`, which writes it.
    let required = cli.config.is_some() && !matches!(cli.command, Noun::Login);
    let saved = login::Login::load(config.as_deref(), required)?;
    let url = cli
        .hub
        .or(saved.hub)
        .unwrap_or_else(|| login::DEFAULT_HUB.to_owned());
    let ca = cli.ca.or(saved.ca);
    let token = cli.token.map(secrecy::SecretString::from).or(saved.token);
    let mut hub = cairn_proto::dial::Hub::with_ca_file(&url, ca.as_deref()).map_err(client::Error::from)?;
    if let Some(token) = token.clone() {
        hub = hub.with_token(token);
    }
    let mut client = Client::connect(&hub).await?;
    let out = cli.output;
    match cli.command {
        Noun::Login => {
            client.clusters().await?; // the hub answers, the CA holds, the token works
            let path = config.context("no --config and no HOME: where would the configuration go?")?;
            let ca = ca.map(|c| std::fs::canonicalize(&c).unwrap_or(c));
            login::Login {
                hub: Some(url.clone()),
                ca,
                token,
            }
            .save(&path)?;
            output::outln!(
                "logged in to {url}; saved in {} (readable by you only)",
                path.display()
            );
            Ok(())
        }
        Noun::Token { verb } => tokens(&mut client, out, verb).await,
        Noun::Audit {
            verb: AuditVerb::List { limit },
        } => output::audit(out, &client.audit(limit).await?),
        Noun::Cluster { verb } => cluster(&mut client, out, &url, verb).await,
        Noun::Workspace { verb } => workspace(&mut client, out, verb).await,
        Noun::Location { verb } => location(&mut client, out, verb).await,
        Noun::Schedule { verb } => schedule::run(&mut client, out, verb).await,
        Noun::Backup { verb } => match verb {
            BackupVerb::Create(args) => {
                let wait = args.wait;
                let name = args.name;
                let template = args.template.template();
                let cluster = match (args.target.cluster, args.target.workspace) {
                    (Some(cluster), _) => cluster,
                    (None, Some(workspace)) => {
                        return workspace_backup(&mut client, out, &name, &workspace, &template, wait).await;
                    }
                    (None, None) => bail!("--cluster or --workspace is required"),
                };
                let spec = template.spec(name, cluster, BackupOrigin::default());
                let backup = client.create_backup(&spec).await?;
                if !wait {
                    output::outln!(
                        "backup {} started on cluster {}",
                        backup.spec.name,
                        backup.spec.cluster
                    );
                    return Ok(());
                }
                progress::follow(&mut client, &OperationId::Backup(spec.name.clone())).await?;
                let backup = client.backup(&spec.name).await?;
                output::backup(out, &backup, None, None)?;
                ensure_completed(
                    "backup",
                    spec.name.as_str(),
                    backup.status.phase,
                    backup.status.error.as_deref(),
                )
            }
            BackupVerb::List {
                cluster,
                workspace,
                namespace,
                status,
                since,
                schedule,
            } => {
                let query = BackupQuery {
                    cluster,
                    workspace,
                    namespace,
                    phase: status,
                    since: since.map(|d| (std::time::SystemTime::now() - d.into()).into()),
                    schedule,
                    location: None,
                };
                output::backups(out, &client.backups(&query).await?)
            }
            BackupVerb::Describe { name, details } => {
                let backup = match client.backup(&name).await {
                    Err(e) if e.is_not_found() => {
                        // Perhaps a workspace backup.
                        if let Ok(w) = client.workspace_backup(&name).await {
                            output::workspace_backup(out, &w)?;
                            return Ok(());
                        }
                        return Err(e.into());
                    }
                    r => r?,
                };
                let items = if details {
                    Some(client.backup_items(&name).await?)
                } else {
                    None
                };
                let live = if backup.status.phase.is_final() {
                    None
                } else {
                    client.progress(&OperationId::Backup(name.clone())).await?
                };
                output::backup(out, &backup, items.as_deref(), live.as_ref())
            }
            BackupVerb::Delete { name } => {
                client.delete_backup(&name).await?;
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
                progress::follow(&mut client, &OperationId::Restore(spec.name.clone())).await?;
                let restore = client.restore(&spec.name).await?;
                // A dry run's point is its plan: print every item in order.
                let items = if spec.dry_run {
                    Some(client.restore_items(&spec.name).await?)
                } else {
                    None
                };
                output::restore(out, &restore, items.as_deref(), None)?;
                ensure_completed(
                    "restore",
                    spec.name.as_str(),
                    restore.status.phase,
                    restore.status.error.as_deref(),
                )
            }
            RestoreVerb::List => output::restores(out, &client.restores().await?),
            RestoreVerb::Describe { name, details } => {
                let restore = client.restore(&name).await?;
                let items = if details {
                    Some(client.restore_items(&name).await?)
                } else {
                    None
                };
                let live = if restore.status.phase.is_final() {
                    None
                } else {
                    client.progress(&OperationId::Restore(name.clone())).await?
                };
                output::restore(out, &restore, items.as_deref(), live.as_ref())
            }
        },
    }
}

async fn workspace(client: &mut Client, out: Format, verb: WorkspaceVerb) -> Result<()> {
    match verb {
        WorkspaceVerb::Create { name } => {
            client.create_workspace(&name).await?;
            output::outln!("workspace {name} created");
            Ok(())
        }
        WorkspaceVerb::List => output::workspaces(out, &client.workspaces().await?),
        WorkspaceVerb::Describe { name } => {
            let workspace = client.workspace(&name).await?;
            let locations = client.locations(Some(&name)).await?;
            output::workspace(out, &workspace, &locations)
        }
        WorkspaceVerb::AddCluster { workspace, cluster } => {
            client.membership(&workspace, &cluster, true).await?;
            output::outln!("cluster {cluster} is in workspace {workspace}");
            Ok(())
        }
        WorkspaceVerb::RemoveCluster { workspace, cluster } => {
            client.membership(&workspace, &cluster, false).await?;
            output::outln!(
                "cluster {cluster} left workspace {workspace} (it is in workspace {DEFAULT_WORKSPACE})"
            );
            Ok(())
        }
        WorkspaceVerb::RotateKey { name } => {
            let rotated = client.rotate_workspace_key(&name).await?;
            if rotated.is_empty() {
                output::outln!("workspace {name} has no location: nothing to rotate");
            }
            for l in rotated {
                output::outln!(
                    "location {}: new backups are sealed with key version {}; older backups keep theirs",
                    l.spec.name,
                    l.key_version
                );
            }
            Ok(())
        }
    }
}

async fn location(client: &mut Client, out: Format, verb: LocationVerb) -> Result<()> {
    match verb {
        LocationVerb::Add(args) => {
            let make_default = args.default;
            let (spec, credentials) = location_spec(*args)?;
            let info = client.add_location(&spec, &credentials, make_default).await?;
            output::outln!(
                "location {} verified and added to workspace {}{}",
                info.spec.name,
                info.spec.workspace,
                if info.is_default { " (its default)" } else { "" }
            );
            if info.backups_read > 0 {
                output::outln!(
                    "{} backups found in it and added to the inventory",
                    info.backups_read
                );
            }
            if !info.backups_unreadable.is_empty() {
                output::outln!(
                    "{} backups found in it could not be read (damaged, or sealed with keys this location's keyring does not hold):",
                    info.backups_unreadable.len()
                );
                for why in &info.backups_unreadable {
                    output::outln!("  {why}");
                }
            }
            Ok(())
        }
        LocationVerb::List { workspace } => {
            output::locations(out, &client.locations(workspace.as_ref()).await?)
        }
        LocationVerb::Describe { name } => output::location(out, &client.location(&name).await?),
        LocationVerb::Verify { name } => {
            let info = client.verify_location(&name).await?;
            output::outln!(
                "location {} is healthy (write, read, list, delete)",
                info.spec.name
            );
            Ok(())
        }
        LocationVerb::Prune { name, grace } => {
            let cluster = client.prune_location(&name, grace.map(Into::into)).await?;
            output::outln!(
                "prune of location {name} started by the agent of cluster {cluster}; see `cairn location describe {name}`"
            );
            Ok(())
        }
        LocationVerb::Remove { name, force } => {
            client.remove_location(&name, force).await?;
            output::outln!("location {name} removed");
            Ok(())
        }
    }
}

async fn tokens(client: &mut Client, out: Format, verb: TokenVerb) -> Result<()> {
    match verb {
        TokenVerb::Create {
            name,
            role,
            workspace,
            expires,
        } => {
            let (made, bearer) = client
                .create_token(&name, role, workspace.as_ref(), expires.map(Into::into))
                .await?;
            eprintln!(
                "token {} ({}{}) made; it is shown this once:",
                made.name,
                made.role,
                made.workspace
                    .map(|w| format!(" of workspace {w}"))
                    .unwrap_or_default()
            );
            output::outln!("{}", secrecy::ExposeSecret::expose_secret(&bearer));
            Ok(())
        }
        TokenVerb::List => output::tokens(out, &client.tokens().await?),
        TokenVerb::Revoke { name } => {
            client.revoke_token(&name).await?;
            output::outln!("token {name} revoked");
            Ok(())
        }
    }
}

async fn cluster(client: &mut Client, out: Format, hub: &str, verb: ClusterVerb) -> Result<()> {
    match verb {
        ClusterVerb::List => output::clusters(out, &client.clusters().await?),
        ClusterVerb::Add {
            name,
            workspace,
            expires,
            hub_url,
        } => {
            let grant = client
                .create_join_token(&name, workspace.as_ref(), expires.into())
                .await?;
            let token = cairn_proto::join::JoinToken {
                hub: hub_url.unwrap_or_else(|| hub.to_owned()),
                ca_sha256: grant.ca_sha256,
                secret: grant.secret,
                expires: grant.expires,
            };
            eprintln!(
                "cluster {name} added; its agent enrols once with this token, until {}: cairn-agent --join TOKEN",
                grant.expires
            );
            output::outln!("{}", token.encode());
            Ok(())
        }
        ClusterVerb::Remove { name } => {
            client.forget_cluster(&name).await?;
            output::outln!("cluster {name} removed: its certificates are refused; its backups stay");
            Ok(())
        }
        ClusterVerb::Revoke { name } => {
            let cluster = client.revoke_cluster(&name).await?;
            output::outln!(
                "cluster {} revoked: its certificates are refused and its agents disconnected; `cairn cluster add {}` enrols it again",
                cluster.name,
                cluster.name
            );
            Ok(())
        }
    }
}

/// The location `location add` asks for, checked as the hub will check it (so a mistake is named
/// by its flag) before anything is sent.
fn location_spec(a: LocationAdd) -> Result<(LocationSpec, Credentials)> {
    let provider = a.provider;
    let ca_cert_pem = a
        .ca_cert
        .map(|f| std::fs::read_to_string(&f).with_context(|| format!("reading --ca-cert {}", f.display())))
        .transpose()?;
    let credentials = match &a.credentials_file {
        Some(file) => credentials::read(provider, file, &a.profile)?,
        None => Credentials::Ambient,
    };
    let required = |flag: &str, value: Option<String>| {
        value.with_context(|| format!("--{flag} is required for provider {provider}"))
    };
    let unused = |flag: &str, given: bool| {
        if given {
            bail!("--{flag} is not used by provider {provider}");
        }
        Ok(())
    };
    unused("account", a.account.is_some() && provider != Provider::Azure)?;
    unused("path", a.path.is_some() && provider != Provider::Fs)?;
    unused("force-path-style", a.force_path_style && provider != Provider::S3)?;
    let regional = matches!(provider, Provider::S3 | Provider::Minio);
    unused("region", a.region.is_some() && !regional)?;
    if ca_cert_pem.is_some() && a.endpoint.is_none() {
        bail!("--ca-cert is for the certificate of --endpoint: give both");
    }
    let endpoint = a.endpoint.map(|url| Endpoint { url, ca_cert_pem });
    let store = match provider {
        Provider::S3 => Store::S3 {
            bucket: required("bucket", a.bucket)?,
            region: a.region,
            endpoint,
            force_path_style: a.force_path_style,
        },
        Provider::Minio => Store::Minio {
            bucket: required("bucket", a.bucket)?,
            endpoint: endpoint.context("--endpoint is required for provider minio")?,
            region: a.region,
        },
        Provider::Gcs => Store::Gcs {
            bucket: required("bucket", a.bucket)?,
            endpoint,
        },
        Provider::Azure => Store::Azure {
            account: required("account", a.account)?,
            container: required("bucket", a.bucket)?,
            endpoint,
        },
        Provider::Fs => {
            unused("bucket", a.bucket.is_some())?;
            unused("endpoint", endpoint.is_some())?;
            Store::Fs {
                path: required("path", a.path)?,
            }
        }
    };
    let spec = LocationSpec {
        name: a.name,
        workspace: a.workspace,
        store,
        prefix: a.prefix,
    };
    if let Err(invalid) = provider::resolve(&spec, &credentials) {
        bail!(invalid.naming(|field| flag(field).to_owned()));
    }
    Ok((spec, credentials))
}

/// The `location add` flag that sets `field`.
fn flag(field: Field) -> &'static str {
    match field {
        Field::Bucket => "--bucket",
        Field::Container => "--bucket (the container)",
        Field::Account => "--account",
        Field::Region => "--region",
        Field::Endpoint => "--endpoint",
        Field::Prefix => "--prefix",
        Field::Path => "--path",
    }
}

fn ensure_completed(kind: &str, name: &str, phase: Phase, error: Option<&str>) -> Result<()> {
    match (phase, error) {
        (Phase::Completed, _) => Ok(()),
        (phase, Some(error)) => bail!("{kind} {name} {phase}: {error}"),
        (phase, None) => bail!("{kind} {name} {phase}"),
    }
}

/// `backup create --workspace`: starts the workspace backup, and with `wait`, follows every
/// member and fails unless all completed.
async fn workspace_backup(
    client: &mut Client,
    out: Format,
    name: &BackupName,
    workspace: &WorkspaceName,
    template: &BackupTemplate,
    wait: bool,
) -> Result<()> {
    let group = client
        .create_workspace_backup(name, workspace, template)
        .await?
        .group;
    if !wait {
        output::outln!(
            "workspace backup {} started: {} of {} clusters",
            group.name,
            group.members.iter().filter(|m| m.backup.is_some()).count(),
            group.members.len()
        );
        return Ok(());
    }
    for member in group.members.iter().filter_map(|m| m.backup.as_ref()) {
        progress::follow(client, &OperationId::Backup(member.clone())).await?;
    }
    let made = client.workspace_backup(name).await?;
    output::workspace_backup(out, &made)?;
    ensure_completed("workspace backup", name.as_str(), made.phase(), None)
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
        existing_policy: a.existing_policy,
        preserve_node_ports: a.preserve_node_ports,
        include_sensitive: a.include_sensitive,
        partial: a.partial,
        keep_setid: a.keep_setid,
        volume_wait: a.volume_wait.map(Into::into),
        dry_run: a.dry_run,
    }
}

#[cfg(test)]
mod headline_tests {
    use super::*;

    #[test]
    fn refusals_failures_and_local_errors_read_apart() {
        let refused = anyhow::Error::new(client::Error::Refused {
            refusal: cairn_proto::model::Refusal::NotFound,
            message: "unknown backup nightly".into(),
        })
        .context("describing backup nightly");
        assert_eq!(
            headline(&refused),
            "refused: describing backup nightly: unknown backup nightly"
        );
        let failed = anyhow::Error::new(client::Error::Failed {
            message: "inventory store: put backups/nightly".into(),
        });
        assert_eq!(headline(&failed), "failed: inventory store: put backups/nightly");
        let away = anyhow::Error::new(client::Error::Unavailable {
            url: "https://127.0.0.1:7443".into(),
            message: "cluster east is not connected".into(),
        });
        assert_eq!(headline(&away), "failed: cluster east is not connected");
        let local = anyhow::anyhow!("reading credentials file /nope");
        assert_eq!(headline(&local), "error: reading credentials file /nope");
        let plaintext = cairn_proto::dial::Hub::new("http://127.0.0.1:7443", None)
            .map_err(client::Error::from)
            .map(|_| ())
            .map_err(anyhow::Error::new)
            .expect_err("refused before dialling");
        assert_eq!(
            headline(&plaintext),
            "error: hub URL \"http://127.0.0.1:7443\" is not https://…: the hub serves TLS only"
        );
    }
}
