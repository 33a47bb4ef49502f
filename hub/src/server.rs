//! The hub as a running server: state opened from the configuration, the background loops
//! (silent agents, location checks, schedules, retention) started, both gRPC services served.
//! `cairn-hub` runs it; so do benchmarks that need a hub of their own.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::operations::Hub;
use crate::{api, inventory};

/// A hub that cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration does not make sense.
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// The data directory cannot be made.
    #[error("creating data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The inventory cannot be opened.
    #[error(transparent)]
    Inventory(#[from] inventory::Error),
    /// The TLS identity cannot be loaded or made.
    #[error(transparent)]
    Tls(#[from] crate::pki::Error),
    /// The sealing key cannot be read or made.
    #[error(transparent)]
    Key(#[from] cairn_proto::seal::Error),
    /// The hub's own records cannot be set up.
    #[error(transparent)]
    Hub(#[from] crate::operations::Error),
    /// The listen address cannot be bound.
    #[error("listening on {addr}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving")]
    Serve(#[from] tonic::transport::Error),
}

/// How long a stopping hub waits for agent sessions, watches and requests in flight to end.
const SERVE_GRACE: Duration = Duration::from_secs(3);
/// How long a stopping hub waits for its background tasks to finish what they have begun.
const TASK_GRACE: Duration = Duration::from_secs(4);

/// Runs a hub configured by `config` until `shutdown` resolves, then stops it gracefully: no new
/// requests, agent sessions ended (agents keep their operations and report them to the next
/// hub), background work in progress finished, the inventory written to disk and closed; all
/// within [`SERVE_GRACE`] + [`TASK_GRACE`].
pub async fn run(
    config: &Config,
    admin: AdminToken,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let key = config.sealing_key()?;
    let tls = crate::pki::Tls::load(&config.tls()?, &key)?;
    let enrolment = crate::operations::Enrolment::new(
        crate::pki::Authority::agents(&key)?,
        &tls.ca_pem,
        config.agent_cert_lifetime,
    )?;
    let store = inventory::rocks::RocksStore::open(&config.data_dir.join("db"))?;
    let hub = Hub::start(
        inventory::Inventory::new(Arc::new(store)),
        key,
        &config.default_location_dir()?,
        config.clock(),
        enrolment,
        crate::operations::Limits {
            prune_grace: config.volume_prune_grace,
            instruction_deadline: config.instruction_deadline,
            admissions_per_second: config.agent_admissions_per_second,
            rpo_grace: config.rpo_grace,
        },
    )
    .await?;
    let made = match admin {
        AdminToken::FirstStart => hub.bootstrap_admin().await?,
        AdminToken::New => Some(hub.new_admin_token().await?),
    };
    if let Some((name, bearer)) = made {
        let path = config.data_dir.join(ADMIN_CONFIG);
        write_admin_config(&path, config, &bearer)?;
        tracing::info!(token = %name, config = %path.display(), "made an admin token; its CLI configuration is readable by this user only (CAIRN_CONFIG)");
    }
    hub.spawn(hub.clone().run_schedules());
    hub.spawn(hub.clone().run_orders());
    hub.spawn(hub.clone().run_retention());
    hub.spawn(hub.clone().run_maintenance(config.volume_prune_interval));
    let timeout = config.agent_timeout;
    every(&hub, timeout / 2, move |hub| async move {
        hub.expire_silent(timeout).await
    });
    every(&hub, config.location_check_interval, |hub| async move {
        hub.verify_locations().await;
    });

    if let Some(addr) = config.metrics_addr()? {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        tracing::info!(metrics = %format!("http://{addr}/metrics"), "metrics served");
        let (h, stopping) = (hub.clone(), hub.stopping());
        hub.spawn(async move {
            if let Err(e) = crate::metrics::serve(h, listener, stopping).await {
                tracing::error!(error = %e, "serving metrics");
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    tracing::info!(listen = %format!("https://{}", config.listen), data_dir = %config.data_dir.display(), "hub ready");
    let serving = api::serve(hub.clone(), listener, tls, hub.stopping());
    tokio::pin!(serving);
    let served = tokio::select! {
        served = &mut serving => served,
        () = shutdown => {
            tracing::info!("hub stopping: no new requests, agent sessions ending");
            hub.stop();
            tokio::time::timeout(SERVE_GRACE, &mut serving).await.unwrap_or_else(|_| {
                tracing::warn!(grace = ?SERVE_GRACE, "connections still open at shutdown: closed");
                Ok(())
            })
        }
    };
    hub.shutdown(TASK_GRACE).await?;
    drop(hub);
    tracing::info!("hub stopped: inventory written and closed");
    served?;
    Ok(())
}

/// When the hub makes an admin token for whoever runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminToken {
    /// On its first start only (no token at all yet): token `admin`.
    FirstStart,
    /// Now, whatever tokens exist (`--new-admin-token`: the administrator lost theirs).
    New,
}

/// The administrator's CLI configuration the hub writes into its data directory on first start
/// (and on `--new-admin-token`).
pub const ADMIN_CONFIG: &str = "admin.conf";

/// Writes the CLI configuration (hub address, CA file, token `bearer`) for the hub's local user to
/// `path`, readable and writable by this user only, whole or not at all.
fn write_admin_config(
    path: &std::path::Path,
    config: &Config,
    bearer: &secrecy::SecretString,
) -> Result<(), Error> {
    let failed = |source| Error::DataDir {
        path: path.display().to_string(),
        source,
    };
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let ca = match config.tls()? {
        crate::pki::Source::Own { dir, .. } => dir.join("ca.crt"),
        crate::pki::Source::Given { ca, .. } => ca,
    };
    let ca = std::fs::canonicalize(&ca).unwrap_or(ca);
    let text = serde_json::json!({
        "hub": format!("https://{addr}"),
        "ca": ca,
        "token": secrecy::ExposeSecret::expose_secret(bearer),
    });
    cairn_proto::seal::write_private(path, format!("{text:#}\n").as_bytes()).map_err(failed)
}

/// Runs `work` every `period` (the first at once) until the hub stops; a run in progress is
/// finished.
fn every<F, W>(hub: &Hub, period: Duration, work: W)
where
    W: Fn(Hub) -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let h = hub.clone();
    hub.spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => work(h.clone()).await,
                () = h.stopping() => return,
            }
        }
    });
}
