//! Cairn's test bed: real servers on loopback for the e2e tests, the quickstart and development.
//!
//! - [`ControlPlane`]: etcd, kube-apiserver and kube-controller-manager v1.20.2, with a kubeconfig
//!   and a [`kube::Client`] (static-token admin, RBAC on); with kube-scheduler and real [`Node`]s
//!   (kubelet v1.20.2, containerd) where a test needs pods to run.
//! - [`storage`]: S3 (moto, plain, TLS with our own CA, and with real IAM authentication), Azure
//!   Blob (azurite), GCS (fake-gcs-server behind a small adapter), and local directories.
//!
//! - [`in_cluster`]: Cairn's agents deployed into a cluster with real nodes from `deploy/`.
//! - [`proxy`]: a TCP proxy a test cuts and mends, an edge site's uplink.
//! - [`proc_stats`]: a process's peak memory and CPU time, for benchmarks.
//! - [`tree`]: directory trees for volume tests, and pictures of them to compare.
//! - [`repository`]: a volume repository in a directory, through the agent's code, to forge in.
//! - [`mount`]: a volume bind-mounted on a pod's directory, for tests that play the kubelet.
//!
//! Every server runs in a [`Sandbox`]: a directory holding its data, logs and pid files. A sandbox
//! stops its processes and removes itself on drop; sandboxes left by a killed test process are
//! reaped by the next one. The binaries come from `tests/bed/setup.sh`, which links them under
//! `$CAIRN_CACHE/bin` (default `~/.cache/cairn/bin`).

pub mod bench;
pub mod cairn;
mod control_plane;
pub mod in_cluster;
pub mod manifest;
pub mod mount;
mod node;
mod paths;
mod pki;
pub mod proc_stats;
pub mod prometheus;
pub mod proxy;
pub mod repository;
mod sandbox;
pub mod snapshot;
pub mod storage;
pub mod tree;
mod wait;

pub use control_plane::{ControlPlane, client_for};
pub use node::{BUSYBOX_IMAGE, Node, PAUSE_IMAGE};
pub use paths::{bed_script, bin};
pub use pki::Ca;
pub use sandbox::{Sandbox, is_running, reap_stale};
pub use wait::wait_until;

use std::sync::Once;

/// Process-wide set-up every test-bed user needs first: the TLS crypto provider and logging.
///
/// Safe to call many times. Tests call it through every constructor here, so they need not.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // object_store, reqwest and kube all use aws-lc-rs here; installing it explicitly keeps
        // a binary that pulls in a second provider from panicking at its first TLS connection.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,kube=warn,object_store=warn".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// A free TCP port on 127.0.0.1, as the OS hands it out.
///
/// The port is free when this returns; a server started right after gets it unless another
/// process races for it, which the start-up retries in [`ControlPlane::start`] absorb.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
