//! The hub as a running server: state opened from the configuration, the background loops
//! (silent agents, location checks, schedules, retention) started, both gRPC services served.
//! `cairn-hub` runs it; so do benchmarks that need a hub of their own.

use std::sync::Arc;

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

/// Runs a hub configured by `config` until `shutdown` resolves.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let store = inventory::rocks::RocksStore::open(&config.data_dir.join("db"))?;
    let hub = Hub::start(
        inventory::Inventory::new(Arc::new(store)),
        config.sealing_key()?,
        &config.default_location_dir()?,
        config.clock(),
    )
    .await?;
    tokio::spawn(hub.clone().run_schedules());
    tokio::spawn(hub.clone().run_retention());
    tokio::spawn(
        hub.clone()
            .run_maintenance(config.volume_prune_interval, config.volume_prune_grace),
    );
    let expiry = hub.clone();
    let timeout = config.agent_timeout;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(timeout / 2);
        loop {
            tick.tick().await;
            expiry.expire_silent(timeout).await;
        }
    });
    let checks = hub.clone();
    let every = config.location_check_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            checks.verify_locations().await;
        }
    });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    tracing::info!(listen = %format!("http://{}", config.listen), data_dir = %config.data_dir.display(), "hub ready");
    api::serve(hub, listener, shutdown).await?;
    Ok(())
}
