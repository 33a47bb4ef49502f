//! `cairn-agent`: runs inside a cluster, dials out to the hub, and moves the cluster's resources
//! to and from backup locations.
//!
//! - [`enrol`]: the agent's client certificate: got with a join token or vouched for, kept, renewed.
//! - [`link`]: the connection to the hub (the only wire-facing code), reconnecting as needed.
//! - [`vouch`]: whether a node agent asking to enrol is one of this cluster's.
//! - [`discover`]: which resources the cluster serves, and which Cairn never takes.
//! - [`backup`]: listing, filtering and writing objects to the location.
//! - [`restore`]: reading them back, in dependency order, cleaned for the target.
//! - [`report`]: progress and results on their way to the hub.
//! - [`claims`]: which claims' data a backup or restore moves, and where each is mounted.
//! - [`relay`]: volume tasks to node agents, through the hub, and their answers.
//! - [`node`]: node mode, moving the data of the claims mounted on one node.
//! - [`volume`]: the volume-data repository.
//! - [`maintenance`]: pruning a location's repository when the hub asks.

pub mod backup;
pub mod claims;
pub mod discover;
pub mod enrol;
pub mod hold;
pub mod link;
pub mod maintenance;
pub mod node;
pub mod orders;
pub mod references;
pub mod relay;
pub mod report;
pub mod restore;
pub mod spool;
pub mod volume;
pub mod vouch;

/// Has glibc's allocator hand large buffers (packs: 4 MiB and more) back to the system when they
/// are freed. Left to itself, glibc raises its mmap threshold after the first such buffer is
/// freed and then keeps later ones in the arena of whichever thread allocated them: with a worker
/// per core and readers on the blocking pool, a restore's memory grew to 280 MiB for 64 MiB of
/// packs in flight (105 MiB with this). Chunks (512 KiB on average) stay in the arenas: mapping
/// each afresh cost a backup 10% more system time. Arenas are one per core, not eight: each of
/// a backup's reader threads would otherwise keep its own. Call once, at start-up.
#[allow(unsafe_code)] // mallopt is a C call; see the SAFETY note
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, usize::from).max(2);
        // SAFETY: mallopt only sets tuning parameters of glibc's allocator, which takes its own
        // lock; no memory is touched.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
            libc::mallopt(libc::M_ARENA_MAX, i32::try_from(cores).unwrap_or(2));
        }
    }
}

/// Hands memory freed inside glibc's arenas back to the system. A restore reads packs in spans
/// of every size (a batch of files needs part of a pack), most below the mmap threshold: freed
/// between the plan's long-lived entries, they stay in the arenas as holes, and a restore of a
/// million files held 160-190 MiB for 115 MiB of heap (144 MiB trimming after every pack, no
/// slower). Cheap next to reading a pack.
#[allow(unsafe_code)] // malloc_trim is a C call; see the SAFETY note
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's arenas to the system, under the
    // arenas' own locks; no allocation in use is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// This agent's version, as registered with the hub.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use cairn_proto::model::{
    BackupName, ClusterName, ExistingPolicy, LocationName, NamespaceFilter, Report, RestoreName, RestoreSpec,
    RestoreStatus,
};

/// A Kubernetes error as a user reads it: the API server's own words and reason for a refusal,
/// the cause chain otherwise.
pub fn kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
        other => cairn_proto::error_chain(other),
    }
}
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The kubeconfig does not load.
    #[error("reading kubeconfig {path}")]
    Kubeconfig {
        /// Its path.
        path: String,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No cluster configuration (neither in-cluster nor `KUBECONFIG`).
    #[error("finding the cluster (in-cluster configuration or KUBECONFIG)")]
    Infer(#[source] kube::config::InferConfigError),
    /// The cluster does not answer.
    #[error("asking the cluster for its version")]
    Cluster(#[source] kube::Error),
    /// The link cannot be kept up.
    #[error("linking to the hub")]
    Link(#[source] link::Error),
    /// The agent has no certificate.
    #[error("enrolling with the hub")]
    Enrol(#[from] enrol::Error),
}

/// How a cluster agent knows who it is.
pub struct Identity {
    /// Where its identity is kept; `None`: in Secret `secret`.
    pub state_dir: Option<std::path::PathBuf>,
    /// The Secret (when not in a state directory): `NAME` in the agent's own namespace (its
    /// pod's, or its kubeconfig's), or `NAMESPACE/NAME`.
    pub secret: String,
    /// A join token, for the first start.
    pub token: Option<String>,
    /// A hub address replacing the kept one.
    pub hub: Option<String>,
    /// The cluster it must be, if given.
    pub cluster: Option<ClusterName>,
    /// The service account node agents run as.
    pub node_agents: vouch::NodeAgents,
    /// The site's spool, if it has one.
    pub spool: Option<spool::Spool>,
}

/// Runs the agent of a cluster: connects to the cluster (through `kubeconfig`, or in-cluster
/// configuration / `$KUBECONFIG`), enrols with the hub unless `identity` is already kept, then
/// keeps a link to the hub until `stop` is cancelled.
pub async fn run(
    identity: Identity,
    kubeconfig: Option<&Path>,
    stop: CancellationToken,
) -> Result<(), StartError> {
    let client = cluster_client(kubeconfig).await?;
    let version = client
        .apiserver_version()
        .await
        .map_err(StartError::Cluster)?
        .git_version;
    let keep = keep_in(identity.state_dir, &identity.secret, &client);
    let enrolled = enrol::Enrolled::cluster_agent(
        keep,
        identity.token.as_deref(),
        identity.hub.as_deref(),
        identity.cluster.as_ref(),
    )
    .await?;
    tracing::info!(cluster = %enrolled.cluster, kubernetes.version = %version, "agent starting");
    // No restore runs yet: pods a restore of an earlier run left held wait for nothing.
    // Nothing to report to: a pod left held is logged by `settle`.
    let _ = hold::settle(&client, None, &[]).await;
    let enrolled = std::sync::Arc::new(enrolled);
    let standing = std::sync::Arc::new(orders::Standing::load(enrolled.clone()).await);
    link::Link {
        enrolled,
        role: link::Role::Cluster {
            client,
            kubernetes_version: version,
            node_agents: identity.node_agents,
            standing,
            spool: identity.spool,
        },
    }
    .run(stop)
    .await
    .map_err(StartError::Link)
}

/// A client of the cluster, through `kubeconfig`, or in-cluster configuration / `$KUBECONFIG`.
async fn cluster_client(kubeconfig: Option<&Path>) -> Result<kube::Client, StartError> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig_error = |source| StartError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let loaded = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
            kube::Config::from_custom_kubeconfig(loaded, &KubeConfigOptions::default())
                .await
                .map_err(kubeconfig_error)?
        }
        None => kube::Config::infer().await.map_err(StartError::Infer)?,
    };
    kube::Client::try_from(config).map_err(StartError::Cluster)
}

/// Where a cluster agent keeps its identity: directory `state_dir`, else Secret `secret`.
fn keep_in(state_dir: Option<std::path::PathBuf>, secret: &str, client: &kube::Client) -> enrol::Keep {
    match state_dir {
        Some(dir) => enrol::Keep::Dir(dir),
        None => match secret.split_once('/') {
            Some((namespace, name)) => enrol::Keep::Secret {
                api: Box::new(kube::Api::namespaced(client.clone(), namespace)),
                name: name.to_owned(),
            },
            None => enrol::Keep::Secret {
                api: Box::new(kube::Api::default_namespaced(client.clone())),
                name: secret.to_owned(),
            },
        },
    }
}

/// A failure of a restore from the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolRestoreError {
    /// The agent cannot start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The spool cannot be read.
    #[error(transparent)]
    Spool(#[from] spool::Error),
    /// No such backup in the spool.
    #[error("backup {backup} is not in the spool {spool} (complete, with its manifest); spooled: {spooled}")]
    NotSpooled {
        /// The backup asked for.
        backup: BackupName,
        /// The spool's directory.
        spool: String,
        /// What is spooled.
        spooled: String,
    },
    /// The restore ended without a result (it panicked: see the log).
    #[error("restore {0} ended without a result")]
    NoResult(RestoreName),
    /// The standing orders name no location of the backup's: its keys are not here.
    #[error(
        "backup {backup} is spooled for location {location}, which no standing order of this agent names any more: its keys are not here"
    )]
    NoKeys {
        /// The backup.
        backup: BackupName,
        /// Its location.
        location: LocationName,
    },
}

/// Restores spooled backup `backup` into this agent's cluster, without the hub: the keys come
/// from its standing orders, kept where `identity` says. Progress is logged; returns how it
/// ended.
pub async fn restore_from_spool(
    identity: Identity,
    kubeconfig: Option<&Path>,
    backup: BackupName,
    namespace_mapping: std::collections::BTreeMap<String, String>,
) -> Result<RestoreStatus, SpoolRestoreError> {
    let site = identity.spool.ok_or_else(|| SpoolRestoreError::NotSpooled {
        backup: backup.clone(),
        spool: "(none: give --spool)".into(),
        spooled: "nothing".into(),
    })?;
    let spooled = site.backups()?;
    let Some(found) = spooled.iter().find(|s| s.backup == backup) else {
        let names: Vec<String> = spooled.iter().map(|s| s.backup.to_string()).collect();
        return Err(SpoolRestoreError::NotSpooled {
            backup,
            spool: site.dir().display().to_string(),
            spooled: if names.is_empty() {
                "nothing".into()
            } else {
                names.join(", ")
            },
        });
    };
    let client = cluster_client(kubeconfig).await?;
    let keep = keep_in(identity.state_dir, &identity.secret, &client);
    let enrolled = enrol::Enrolled::cluster_agent(keep, None, None, identity.cluster.as_ref())
        .await
        .map_err(StartError::from)?;
    let cluster = enrolled.cluster.clone();
    let standing = orders::Standing::load(std::sync::Arc::new(enrolled)).await;
    let Some(order) = standing.order_for(&found.location).await else {
        return Err(SpoolRestoreError::NoKeys {
            backup,
            location: found.location.clone(),
        });
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let spec = RestoreSpec {
        name: RestoreName::new(format!("{backup}-from-spool-{now}"))
            .unwrap_or_else(|_| RestoreName::new(format!("from-spool-{now}")).expect("a valid name")),
        backup: backup.clone(),
        target_cluster: Some(cluster.clone()),
        namespaces: NamespaceFilter::default(),
        namespace_mapping,
        existing_policy: ExistingPolicy::Skip,
        preserve_node_ports: false,
        dry_run: false,
        include_sensitive: false,
        volume_wait: None,
        partial: false,
        keep_setid: false,
    };
    tracing::info!(backup.id = %backup, spool = %site.dir().display(), "restoring from the spool, without the hub");
    let volumes = relay::Volumes {
        relay: relay::Relay::unlinked(),
        key: order.key.clone(),
        cluster,
    };
    let ended = report::run_here(
        spec.name.clone(),
        |reporter| {
            restore::run(
                client,
                spec.clone(),
                (site.stand_in(&order.location), order.resources.clone()),
                reporter,
                volumes,
            )
        },
        |p| tracing::info!(items = p.items_done, of = p.items_total, current = %p.current, "restoring"),
    )
    .await;
    match ended {
        Some(Report::RestoreDone(_, status)) => Ok(status),
        _ => Err(SpoolRestoreError::NoResult(spec.name)),
    }
}

/// Runs the node agent of `node` in `cluster`, the kubelet's files under `kubelet_root`: enrols
/// with `hub` with its pod's service-account `token`, then keeps a link until `stop` is
/// cancelled.
pub async fn run_node(
    hub: cairn_proto::dial::Hub,
    cluster: ClusterName,
    node: String,
    token: secrecy::SecretString,
    kubelet_root: std::path::PathBuf,
    stop: CancellationToken,
) -> Result<(), StartError> {
    tracing::info!(%cluster, %node, kubelet_root = %kubelet_root.display(), "node agent starting");
    let enrolled = enrol::Enrolled::node_agent(hub, cluster, &node, token).await?;
    link::Link {
        enrolled: std::sync::Arc::new(enrolled),
        role: link::Role::Node(node::Node::new(node, kubelet_root)),
    }
    .run(stop)
    .await
    .map_err(StartError::Link)
}
