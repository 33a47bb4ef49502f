//! Backup locations: as a user configures them ([`LocationSpec`] and its [`Credentials`]), as the
//! hub shows and stores them, and as an agent receives them for one operation ([`Location`]: an
//! `object_store` URL and options, see [`crate::format::provider`]).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use super::{LocationName, Timestamp, WorkspaceName};

/// A resolved backup location, as handed to an agent with an instruction. Options may hold
/// credentials: `Debug` shows their keys only.
#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    /// Its name.
    pub name: LocationName,
    /// `object_store` URL (`file:///…`, `s3://bucket/prefix`, …).
    pub url: String,
    /// `object_store` options (endpoint, region, credentials…).
    pub options: BTreeMap<String, String>,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The kind of store a location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// AWS S3.
    S3,
    /// MinIO and every other S3-compatible store: an endpoint, path-style addressing.
    Minio,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
    /// A directory (the embedded default; single-machine use and tests).
    Fs,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A location's configuration, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationSpec {
    /// Unique in the hub.
    pub name: LocationName,
    /// The workspace whose clusters may use it.
    pub workspace: WorkspaceName,
    /// The store and where in it.
    #[serde(flatten)]
    pub store: Store,
    /// Folder inside the store everything is written under.
    pub prefix: Option<String>,
}

/// The store a location writes to: one variant per provider, each with what that provider needs.
/// What names and values the provider accepts is checked where it becomes a [`Location`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum Store {
    /// AWS S3, or a store that speaks its API at `endpoint`.
    S3 {
        /// The bucket.
        bucket: String,
        /// Its region; required without an endpoint.
        region: Option<String>,
        /// A private or compatible endpoint instead of AWS's own.
        endpoint: Option<Endpoint>,
        /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted.
        force_path_style: bool,
    },
    /// MinIO and every other S3-compatible store: always an endpoint, path-style addressing.
    Minio {
        /// The bucket.
        bucket: String,
        /// Where the store answers.
        endpoint: Endpoint,
        /// Region it is addressed with; default `us-east-1`.
        region: Option<String>,
    },
    /// Google Cloud Storage.
    Gcs {
        /// The bucket.
        bucket: String,
        /// An emulator or private endpoint instead of Google's own.
        endpoint: Option<Endpoint>,
    },
    /// Azure Blob Storage.
    Azure {
        /// The storage account.
        account: String,
        /// The container.
        container: String,
        /// An emulator or private endpoint instead of the account's own.
        endpoint: Option<Endpoint>,
    },
    /// A directory (the embedded default; single-machine use and tests).
    Fs {
        /// Absolute, the same for hub and agents.
        path: String,
    },
}

impl Store {
    /// The kind of store.
    pub fn provider(&self) -> Provider {
        match self {
            Self::S3 { .. } => Provider::S3,
            Self::Minio { .. } => Provider::Minio,
            Self::Gcs { .. } => Provider::Gcs,
            Self::Azure { .. } => Provider::Azure,
            Self::Fs { .. } => Provider::Fs,
        }
    }

    /// Its endpoint, if it has one.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            Self::S3 { endpoint, .. } | Self::Gcs { endpoint, .. } | Self::Azure { endpoint, .. } => {
                endpoint.as_ref()
            }
            Self::Minio { endpoint, .. } => Some(endpoint),
            Self::Fs { .. } => None,
        }
    }
}

/// Where a store answers, when not at its provider's own address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `http://` or `https://` URL; `http://` only when the user wrote it so.
    pub url: String,
    /// PEM CA certificate the endpoint's certificate is checked against.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ca_cert_pem: Option<String>,
}

impl Endpoint {
    /// `url`, its certificate checked against the system's roots.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_cert_pem: None,
        }
    }
}

/// A location's secrets. `Debug` never shows them.
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// None stored: the agent's own (web identity, instance metadata, workload identity).
    #[default]
    Ambient,
    /// An AWS access key (S3 and S3-compatible stores).
    Aws {
        /// Access key id (not secret, but kept with the rest).
        access_key_id: String,
        /// Secret access key.
        secret_access_key: SecretString,
        /// Session token of temporary credentials.
        session_token: Option<SecretString>,
    },
    /// A GCS service-account key (JSON).
    GcsServiceAccount(SecretString),
    /// An Azure storage account key.
    AzureAccountKey(SecretString),
    /// An Azure SAS token.
    AzureSasToken(SecretString),
    /// An Azure service principal.
    AzureServicePrincipal {
        /// Tenant.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// Its secret.
        client_secret: SecretString,
    },
}

impl Credentials {
    /// Whether any secret is held.
    pub fn is_ambient(&self) -> bool {
        matches!(self, Self::Ambient)
    }
}

/// The outcome of a location's last check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// When it ran.
    pub checked: Timestamp,
    /// Why it failed; `None`: healthy.
    pub error: Option<String>,
}

/// The last prune of a location's volume repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prune {
    /// When it ended.
    pub finished: Timestamp,
    /// Whose agent ran it.
    pub cluster: String,
    /// What it did.
    pub summary: String,
    /// Why it failed; `None`: it did not.
    pub error: Option<String>,
}

/// A location as the user API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationInfo {
    /// Its configuration.
    pub spec: LocationSpec,
    /// Whether credentials are stored (never what they are).
    pub has_credentials: bool,
    /// Whether it is its workspace's default location.
    pub is_default: bool,
    /// Its last check.
    pub health: Option<Health>,
    /// On `location add`: the backups found in it and recorded in the inventory.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub backups_read: u64,
    /// On `location add`: backups found in it whose manifest does not open (sealed under another
    /// hub's key, or damaged), each as `name: why`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub backups_unreadable: Vec<String>,
    /// The newest version of its keys: new backups are sealed with it.
    #[serde(default)]
    pub key_version: u32,
    /// The last prune of its volume repository.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_prune: Option<Prune>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A location as the hub stores it: credentials sealed under the hub's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLocation {
    /// Its configuration.
    pub spec: LocationSpec,
    /// Sealed [`Credentials`]; empty: ambient.
    pub sealed_credentials: Vec<u8>,
    /// Its last check.
    pub health: Option<Health>,
    /// The last prune of its volume repository.
    pub last_prune: Option<Prune>,
    /// Its keyring, every version sealed under the hub's key as in the bucket; empty for a
    /// location recorded before keyrings.
    pub keyring: Vec<SealedKeyVersion>,
}

/// One version of a location's keyring, sealed under the hub's key: the bytes stored at
/// `keyring/<version>` in the location.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKeyVersion {
    /// Its version.
    pub version: u32,
    /// Sealed.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedKeyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedKeyVersion(v{}, ..)", self.version)
    }
}
