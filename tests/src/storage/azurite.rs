//! Azure Blob on loopback: azurite, which checks shared-key signatures.

use anyhow::Result;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::{ClientOptions, ObjectStore};
use std::process::Command;
use std::sync::Arc;

use super::{admin, wait_for_http};
use crate::{Sandbox, bin, free_port};

/// The emulator's well-known account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known account key (public, documented by Microsoft).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A well-formed account key that is not the emulator's: the server's signature check refuses it.
pub const WRONG_KEY: &str =
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

/// An azurite blob server; see the module docs.
pub struct AzuriteServer {
    endpoint: String,
    port: u16,
    sandbox: Sandbox,
}

impl AzuriteServer {
    /// Starts azurite's blob service with on-disk storage in its sandbox.
    pub async fn start() -> Result<Self> {
        crate::init();
        let port = free_port()?;
        let server = Self {
            endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            port,
            sandbox: Sandbox::new("azurite")?,
        };
        server.launch().await?;
        Ok(server)
    }

    async fn launch(&self) -> Result<()> {
        let mut cmd = Command::new(bin("azurite-blob")?);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &self.port.to_string()])
            .arg("--location")
            .arg(self.sandbox.dir().join("data"))
            .args(["--skipApiVersionCheck", "--silent"]);
        self.sandbox.spawn("azurite", cmd)?;
        wait_for_http(&self.sandbox, "azurite", &self.endpoint, &reqwest::Client::new()).await
    }

    /// Stops the server (SIGTERM as an operator stops it, SIGKILL after two seconds: azurite
    /// otherwise waits minutes for idle keep-alive connections); its data stays on disk, as of
    /// its last save (every 5 s).
    pub fn stop(&self) {
        self.sandbox.stop("azurite", std::time::Duration::from_secs(2));
    }

    /// Starts the server again on the same port and data.
    pub async fn restart(&self) -> Result<()> {
        self.launch().await
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's sandbox directory (for files that belong with it, such as a credentials file).
    pub fn dir(&self) -> &std::path::Path {
        self.sandbox.dir()
    }

    /// Creates `container`.
    pub async fn create_container(&self, container: &str) -> Result<()> {
        admin::run(&["azure-container", &self.endpoint, ACCOUNT, ACCOUNT_KEY, container])
            .await
            .map(|_| ())
    }

    /// A client for `container` with the account's real key.
    pub fn store(&self, container: &str) -> Result<Arc<dyn ObjectStore>> {
        self.store_with_key(container, ACCOUNT_KEY)
    }

    /// A client for `container` signing with `key`.
    pub fn store_with_key(&self, container: &str, key: &str) -> Result<Arc<dyn ObjectStore>> {
        let store = MicrosoftAzureBuilder::new()
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .with_account(ACCOUNT)
            .with_access_key(key)
            .with_container_name(container)
            .with_endpoint(self.endpoint.clone())
            .build()?;
        Ok(Arc::new(store))
    }
}
