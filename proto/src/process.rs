//! What every Cairn binary does first: one TLS crypto provider and `tracing` logs.

/// Installs the aws-lc-rs TLS provider for the process (kube, object_store and tonic all use
/// rustls; a second provider in one binary panics at the first TLS connection) and logs to stderr,
/// filtered by `RUST_LOG` (default `info`). Call once at the top of `main`.
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// Resolves when the process is asked to stop: SIGTERM (Kubernetes, systemd) or SIGINT (Ctrl-C).
/// Binaries stop gracefully then, within a bounded time.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
