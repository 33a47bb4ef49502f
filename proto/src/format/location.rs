//! Opening and verifying a backup location: the one way hub and agent reach a bucket.
//!
//! A [`Location`] is an `object_store` URL — `file:///dir`, `s3://bucket/prefix`,
//! `gs://bucket/prefix`, `az://container/prefix` — and options: `object_store`'s own configuration
//! keys (`aws_endpoint`, `aws_region`, `azure_storage_account_name`, `google_service_account_key`,
//! `allow_http`, …) plus [`CA_PEM`], a PEM certificate to trust for a self-signed endpoint. TLS
//! verification is never turned off.

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{Certificate, ClientConfigKey, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};
use std::fmt;
use std::sync::Arc;

use super::server_error::ServerError;
use crate::model::Location;

/// Option holding a PEM CA certificate the location's endpoint is trusted through.
pub const CA_PEM: &str = "cairn_ca_pem";

/// A location that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse, or names no provider Cairn knows.
    #[error("location {location}: invalid URL {url:?}: {reason}")]
    Url {
        /// Location name.
        location: String,
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// An option is not one the provider takes, or its value is wrong.
    #[error("location {location}: option {key}: {reason}")]
    Option {
        /// Location name.
        location: String,
        /// The option.
        key: String,
        /// Why.
        reason: String,
    },
    /// A local directory that cannot be made.
    #[error("location {location}: cannot create directory {path}")]
    Directory {
        /// Location name.
        location: String,
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `object_store` refused the configuration.
    #[error("location {location}: cannot open {url}")]
    Open {
        /// Location name.
        location: String,
        /// The URL (credentials travel in options, never in the URL).
        url: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
}

/// The `file://` URL of local directory `path` (absolute), as a location names it.
pub fn directory_url(path: &std::path::Path) -> Option<String> {
    let url = url::Url::from_directory_path(path).ok()?;
    Some(url.as_str().trim_end_matches('/').to_owned())
}

/// An `object_store` client for `location`, rooted at its URL's path (bucket prefix or directory).
pub fn open(location: &Location) -> Result<Arc<dyn ObjectStore>, Error> {
    let name = location.name.to_string();
    let url = url::Url::parse(&location.url).map_err(|e| Error::Url {
        location: name.clone(),
        url: location.url.clone(),
        reason: e.to_string(),
    })?;
    if url.scheme() == "file" {
        // A local directory: create it, so a fresh hub's default location works at once.
        let dir = url.to_file_path().map_err(|()| Error::Url {
            location: name.clone(),
            url: location.url.clone(),
            reason: "not a local directory path".into(),
        })?;
        std::fs::create_dir_all(&dir).map_err(|source| Error::Directory {
            location: name.clone(),
            path: dir.display().to_string(),
            source,
        })?;
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|source| Error::Open {
                location: name,
                url: location.url.clone(),
                source,
            })?;
        return Ok(Arc::new(store));
    }

    let option = |key: &str, reason: String| Error::Option {
        location: name.clone(),
        key: key.to_owned(),
        reason,
    };
    let mut client = ClientOptions::new();
    let mut provider = Vec::new();
    for (key, value) in &location.options {
        if key == CA_PEM {
            let ca = Certificate::from_pem(value.as_bytes()).map_err(|e| option(key, e.to_string()))?;
            client = client.with_root_certificate(ca);
        } else if let Ok(k) = key.parse::<ClientConfigKey>() {
            client = client.with_config(k, value);
        } else {
            provider.push((key.as_str(), value.as_str()));
        }
    }
    let bucket_url = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    // No secret among the options: the process's own credentials (web identity, instance
    // metadata, workload identity), as the provider's SDKs find them in the environment.
    let ambient = !provider.iter().any(|(k, _)| is_secret_option(k));
    if ambient {
        // The builders' `from_env` reads the environment, but the client options set below would
        // replace the HTTP settings it found (`AWS_ALLOW_HTTP`…): carry those over, the
        // location's own options still winning.
        for (key, value) in std::env::vars() {
            let key = key.to_ascii_lowercase();
            let Some(bare) = ["aws_", "google_", "azure_"]
                .iter()
                .find_map(|p| key.strip_prefix(p))
            else {
                continue;
            };
            if let Ok(k) = bare.parse::<ClientConfigKey>()
                && !location.options.contains_key(bare)
            {
                client = client.with_config(k, value);
            }
        }
    }
    let built: Result<Box<dyn ObjectStore>, object_store::Error> = match url.scheme() {
        "s3" => {
            let mut b = if ambient {
                AmazonS3Builder::from_env()
            } else {
                AmazonS3Builder::new()
            }
            .with_url(&bucket_url)
            .with_client_options(client);
            for (k, v) in provider {
                let key: AmazonS3ConfigKey = k.parse().map_err(|_| option(k, "not an S3 option".into()))?;
                b = b.with_config(key, v);
            }
            b.build().map(|s| Box::new(s) as Box<dyn ObjectStore>)
        }
        "gs" => {
            let mut b = if ambient {
                GoogleCloudStorageBuilder::from_env()
            } else {
                GoogleCloudStorageBuilder::new()
            }
            .with_url(&bucket_url)
            .with_client_options(client);
            for (k, v) in provider {
                let key: GoogleConfigKey = k.parse().map_err(|_| option(k, "not a GCS option".into()))?;
                b = b.with_config(key, v);
            }
            b.build().map(|s| Box::new(s) as Box<dyn ObjectStore>)
        }
        "az" => {
            let mut b = if ambient {
                MicrosoftAzureBuilder::from_env()
            } else {
                MicrosoftAzureBuilder::new()
            }
            .with_url(&bucket_url)
            .with_client_options(client);
            for (k, v) in provider {
                let key: AzureConfigKey = k.parse().map_err(|_| option(k, "not an Azure option".into()))?;
                b = b.with_config(key, v);
            }
            b.build().map(|s| Box::new(s) as Box<dyn ObjectStore>)
        }
        other => {
            return Err(Error::Url {
                location: name,
                url: location.url.clone(),
                reason: format!("unknown scheme {other:?} (file, s3, gs or az)"),
            });
        }
    };
    let store = built.map_err(|source| Error::Open {
        location: name,
        url: location.url.clone(),
        source,
    })?;
    let prefix = url.path().trim_matches('/');
    if prefix.is_empty() {
        Ok(Arc::from(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, Path::from(prefix))))
    }
}

/// Whether option `key` holds a secret (so the location does not use ambient credentials).
pub fn is_secret_option(key: &str) -> bool {
    matches!(
        key,
        "aws_secret_access_key"
            | "aws_session_token"
            | "google_service_account_key"
            | "azure_storage_account_key"
            | "azure_storage_sas_key"
            | "azure_storage_client_secret"
    )
}

/// Why a location failed its check, as a user acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server refused the credentials.
    Credentials,
    /// The bucket or container does not exist.
    NoBucket,
    /// The endpoint does not answer.
    Unreachable,
    /// The endpoint's certificate is not trusted.
    UntrustedCertificate,
    /// Anything else; the cause says what.
    Other,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Credentials => "the credentials were refused",
            Self::NoBucket => "the bucket or container does not exist",
            Self::Unreachable => "the endpoint cannot be reached",
            Self::UntrustedCertificate => {
                "the endpoint's TLS certificate is not trusted (give its CA with --ca-cert)"
            }
            Self::Other => "the storage server failed the request",
        })
    }
}

/// A location that failed its check: which step, why, and the server's own error.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The location could not even be opened.
    #[error(transparent)]
    Open(#[from] Error),
    /// A step of the probe failed.
    #[error("{step} failed: {failure}: {server}")]
    Step {
        /// Location name.
        location: String,
        /// write, read, list or delete of the probe object.
        step: &'static str,
        /// What it means.
        failure: Failure,
        /// What the server said, in one line.
        server: ServerError,
    },
    /// The probe read back other bytes than were written.
    #[error("the probe object read back differs from what was written")]
    Mismatch {
        /// Location name.
        location: String,
    },
}

impl VerifyError {
    /// What the failure means, for a user.
    pub fn failure(&self) -> Failure {
        match self {
            Self::Step { failure, .. } => *failure,
            Self::Open(_) | Self::Mismatch { .. } => Failure::Other,
        }
    }
}

/// Classifies a storage error by what a user must fix.
pub fn classify(e: &object_store::Error) -> Failure {
    if matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) {
        return Failure::Credentials;
    }
    let text = crate::error_chain(e);
    let has = |needle: &str| text.contains(needle);
    if has("NoSuchBucket")
        || has("ContainerNotFound")
        || has("bucket does not exist")
        || has("The specified container")
    {
        Failure::NoBucket
    } else if has("certificate") || has("UnknownIssuer") {
        Failure::UntrustedCertificate
    } else if has("onnection refused")
        || has("error trying to connect")
        || has("dns error")
        || has("timed out")
    {
        Failure::Unreachable
    } else if has("SignatureDoesNotMatch")
        || has("InvalidAccessKeyId")
        || has("AuthenticationFailed")
        || has("403")
    {
        Failure::Credentials
    } else if has("404") && has("bucket") {
        Failure::NoBucket
    } else {
        Failure::Other
    }
}

/// Directory of probe objects under the location's root.
const PROBE_DIR: &str = ".cairn-probe";

/// Checks `location` end to end: writes a probe object under its prefix, reads it back, lists it
/// and deletes it. The first step that fails is reported with its meaning.
pub async fn verify(location: &Location) -> Result<(), VerifyError> {
    let store = open(location)?;
    let name = location.name.to_string();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let key = Path::from(format!("{PROBE_DIR}/{nonce}"));
    let body = format!("cairn location probe {nonce}");
    let step = |step: &'static str| {
        let name = name.clone();
        move |source: object_store::Error| VerifyError::Step {
            location: name,
            step,
            failure: classify(&source),
            server: ServerError(source),
        }
    };
    store
        .put(&key, PutPayload::from(body.clone().into_bytes()))
        .await
        .map_err(step("writing a probe object"))?;
    let read = store.get(&key).await.map_err(step("reading the probe object"))?;
    let read = read.bytes().await.map_err(step("reading the probe object"))?;
    if read.as_ref() != body.as_bytes() {
        return Err(VerifyError::Mismatch { location: name });
    }
    let prefix = Path::from(PROBE_DIR);
    let listed = list_keys(&store, &prefix)
        .await
        .map_err(step("listing the probe object"))?;
    if !listed.contains(&key) {
        return Err(VerifyError::Step {
            location: name,
            step: "listing the probe object",
            failure: Failure::Other,
            server: ServerError(object_store::Error::NotFound {
                path: key.to_string(),
                source: "not listed".into(),
            }),
        });
    }
    store
        .delete(&key)
        .await
        .map_err(step("deleting the probe object"))?;
    Ok(())
}

async fn list_keys(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Result<Vec<Path>, object_store::Error> {
    use futures::TryStreamExt;
    store
        .list(Some(prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
}
