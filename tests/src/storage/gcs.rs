//! GCS on loopback: fake-gcs-server (from its PyPI wheel), reached through the test-only
//! [`gcs_adapter`](super::gcs_adapter) that supplies the XML-API object `PUT` it lacks.
//! The emulator has no authentication to test against.

use anyhow::Result;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{ClientOptions, ObjectStore};
use std::process::Command;
use std::sync::Arc;
use tokio::task::JoinHandle;

use super::{admin, gcs_adapter, wait_for_http};
use crate::{Sandbox, bin, free_port};

/// A fake-gcs-server behind the adapter; see the module docs.
pub struct GcsServer {
    endpoint: String,
    emulator: String,
    adapter: JoinHandle<()>,
    _sandbox: Sandbox,
}

impl GcsServer {
    /// Starts the emulator (in-memory backend) and the adapter in front of it.
    pub async fn start() -> Result<Self> {
        crate::init();
        let sandbox = Sandbox::new("gcs")?;
        let port = free_port()?;
        let mut cmd = Command::new(bin("fake-gcs-server")?);
        cmd.args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
        ])
        .args(["-backend", "memory", "-public-host", &format!("127.0.0.1:{port}")]);
        sandbox.spawn("fake-gcs-server", cmd)?;
        let emulator = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for_http(
            &sandbox,
            "fake-gcs-server",
            &format!("{emulator}/storage/v1/b"),
            &http,
        )
        .await?;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let adapter = gcs_adapter::serve(listener, emulator.clone());
        Ok(Self {
            endpoint,
            emulator,
            adapter,
            _sandbox: sandbox,
        })
    }

    /// The adapter's URL, `http://127.0.0.1:PORT`: the GCS base URL clients use.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates `bucket` (in the emulator; the JSON API needs no adapter).
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        admin::run(&["gcs-bucket", &self.emulator, bucket])
            .await
            .map(|_| ())
    }

    /// A client for `bucket`. The service-account JSON carries the base URL and turns OAuth off;
    /// without it `object_store` would ask the cloud metadata address for a token.
    pub fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let key = serde_json::json!({
            "gcs_base_url": self.endpoint,
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        let store = GoogleCloudStorageBuilder::new()
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .with_service_account_key(key.to_string())
            .with_bucket_name(bucket)
            .build()?;
        Ok(Arc::new(store))
    }
}

impl Drop for GcsServer {
    fn drop(&mut self) {
        self.adapter.abort();
    }
}
