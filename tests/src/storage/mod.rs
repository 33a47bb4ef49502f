//! Real object-storage servers on loopback, each installed from its registry and started per test:
//! [`S3Server`] (moto), [`AzuriteServer`], [`GcsServer`] (fake-gcs-server behind an adapter),
//! plus [`LocalDir`]. Each guard stops its server on drop and hands out `object_store` clients
//! configured as a user would configure them.

mod admin;
mod azurite;
mod gcs;
mod gcs_adapter;
mod local;
mod s3;

pub use azurite::{
    ACCOUNT as AZURE_ACCOUNT, ACCOUNT_KEY as AZURE_KEY, AzuriteServer, WRONG_KEY as AZURE_WRONG_KEY,
};
pub use gcs::GcsServer;
pub use local::{LocalDir, files_under};
pub use s3::{S3Credentials, S3Server};

use anyhow::Result;
use std::time::Duration;

use crate::Sandbox;

/// How long a storage server may take to answer its first request (azurite's Node start-up is
/// the slowest).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until server `name` answers HTTP at `url` with any status: it is listening and parsing.
async fn wait_for_http(sandbox: &Sandbox, name: &str, url: &str, http: &reqwest::Client) -> Result<()> {
    sandbox
        .wait_ready(name, &format!("{name} at {url}"), START_TIMEOUT, || async {
            Ok(http.get(url).send().await.ok().map(|_| ()))
        })
        .await
}
