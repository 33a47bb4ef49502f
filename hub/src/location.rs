//! The hub's backup locations: saved only after an end-to-end check, credentials sealed at rest
//! under the hub's key ([`cairn_proto::seal`]), re-checked periodically, and resolved to an
//! `object_store` URL and options ([`cairn_proto::format::provider`]) only when an operation needs
//! them. Which cluster may use which location is the caller's rule ([`crate::operations`]).

use cairn_proto::convert::{self, Wire};
use cairn_proto::format::{location::VerifyError, provider};
use cairn_proto::model::{
    Credentials, DEFAULT_WORKSPACE, Health, Location, LocationName, LocationSpec, Prune, RepositoryKey,
    ResourceKey, Store, StoredLocation, Timestamp, WorkspaceName,
};
use cairn_proto::seal;
use std::sync::Arc;

use crate::inventory::{self, Inventory};

/// The location every hub has: a directory, in workspace `default`.
pub const BUILTIN: &str = "default";

/// A location request the hub refuses or cannot carry out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such location.
    #[error("unknown location {0} (see `cairn location list`)")]
    Unknown(LocationName),
    /// A location of that name exists.
    #[error("location {0} already exists")]
    Exists(LocationName),
    /// The configuration does not fit the provider.
    #[error(transparent)]
    Invalid(#[from] provider::Invalid),
    /// The end-to-end check failed; nothing was saved.
    #[error("location {location} was not saved")]
    Unverified {
        /// The location.
        location: LocationName,
        /// Which step failed and why.
        #[source]
        source: Box<VerifyError>,
    },
    /// The check failed.
    #[error("location {location}")]
    Verify {
        /// The location.
        location: LocationName,
        /// Which step failed and why.
        #[source]
        source: Box<VerifyError>,
    },
    /// The built-in location comes from the hub's configuration.
    #[error("location {BUILTIN} is the hub's built-in location; change it in the hub's configuration")]
    Builtin,
    /// A workspace's key could not be derived.
    #[error("deriving a workspace key")]
    RepositoryKey(#[source] seal::Error),
    /// Sealing or unsealing credentials failed.
    #[error("credentials of location {location}")]
    Seal {
        /// The location.
        location: LocationName,
        /// The cause.
        #[source]
        source: seal::Error,
    },
    /// Unsealed credentials do not decode.
    #[error("credentials of location {location} are corrupt")]
    Corrupt {
        /// The location.
        location: LocationName,
        /// The cause.
        #[source]
        source: convert::Error,
    },
    /// The hub's records failed.
    #[error(transparent)]
    Inventory(#[from] inventory::Error),
}

impl Error {
    /// Why the user API refuses it; `None`: not a refusal but a failure of the hub's (its key,
    /// its records).
    pub fn refusal(&self) -> Option<cairn_proto::model::Refusal> {
        use cairn_proto::model::Refusal;
        match self {
            Self::Unknown(_) => Some(Refusal::NotFound),
            Self::Exists(_) => Some(Refusal::Exists),
            Self::Invalid(_) => Some(Refusal::Invalid),
            Self::Unverified { .. } | Self::Verify { .. } | Self::Builtin => Some(Refusal::Precondition),
            Self::RepositoryKey(_) | Self::Seal { .. } | Self::Corrupt { .. } | Self::Inventory(_) => None,
        }
    }
}

/// Result of a location call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The hub's locations; cheap to clone.
#[derive(Clone)]
pub struct Locations {
    inventory: Inventory,
    key: Arc<seal::Key>,
}

fn context(name: &LocationName) -> String {
    format!("location/{name}")
}

impl Locations {
    /// Locations recorded in `inventory`, credentials sealed with `key`.
    pub fn new(inventory: Inventory, key: seal::Key) -> Self {
        Self {
            inventory,
            key: Arc::new(key),
        }
    }

    /// Records the built-in location: directory `path` (absolute), in workspace `default`.
    pub async fn ensure_builtin(&self, path: &str) -> Result<()> {
        let name = builtin_name();
        let known = self.inventory.location(&name).await?;
        let (health, last_prune) = known.map_or((None, None), |l| (l.health, l.last_prune));
        let spec = LocationSpec {
            name,
            workspace: DEFAULT_WORKSPACE
                .parse()
                .unwrap_or_else(|_| unreachable!("a valid name")),
            store: Store::Fs {
                path: path.to_owned(),
            },
            prefix: None,
        };
        provider::resolve(&spec, &Credentials::Ambient)?;
        self.inventory
            .put_location(&StoredLocation {
                spec,
                sealed_credentials: Vec::new(),
                health,
                last_prune,
            })
            .await?;
        Ok(())
    }

    /// Checks the location end to end with `credentials`, then saves it, sealed.
    #[tracing::instrument(name = "add_location", skip_all, fields(location = %spec.name, provider = %spec.store.provider()))]
    pub async fn add(&self, spec: LocationSpec, credentials: &Credentials) -> Result<StoredLocation> {
        if self.inventory.location(&spec.name).await?.is_some() {
            return Err(Error::Exists(spec.name));
        }
        let location = provider::resolve(&spec, credentials)?;
        cairn_proto::format::verify_location(&location)
            .await
            .map_err(|source| Error::Unverified {
                location: spec.name.clone(),
                source: Box::new(source),
            })?;
        let sealed_credentials = if credentials.is_ambient() {
            Vec::new()
        } else {
            self.key
                .seal(&context(&spec.name), &credentials.encode())
                .map_err(|source| Error::Seal {
                    location: spec.name.clone(),
                    source,
                })?
        };
        let stored = StoredLocation {
            spec,
            sealed_credentials,
            health: Some(Health {
                checked: Timestamp::now(),
                error: None,
            }),
            last_prune: None,
        };
        self.inventory.put_location(&stored).await?;
        tracing::info!("location verified and saved");
        Ok(stored)
    }

    /// The location called `name`.
    pub async fn get(&self, name: &LocationName) -> Result<StoredLocation> {
        self.inventory
            .location(name)
            .await?
            .ok_or_else(|| Error::Unknown(name.clone()))
    }

    /// Every location, by name.
    pub async fn list(&self) -> Result<Vec<StoredLocation>> {
        Ok(self.inventory.locations().await?)
    }

    /// What an agent needs to reach `stored`: its URL and options, credentials unsealed.
    pub fn resolve(&self, stored: &StoredLocation) -> Result<Location> {
        let name = &stored.spec.name;
        let credentials = if stored.sealed_credentials.is_empty() {
            Credentials::Ambient
        } else {
            let plain = self
                .key
                .open(&context(name), &stored.sealed_credentials)
                .map_err(|source| Error::Seal {
                    location: name.clone(),
                    source,
                })?;
            Credentials::decode(&plain).map_err(|source| Error::Corrupt {
                location: name.clone(),
                source,
            })?
        };
        Ok(provider::resolve(&stored.spec, &credentials)?)
    }

    /// The volume-repository key of `workspace`'s locations: derived from the hub's key, so a
    /// hub rebuilt from its buckets with the same key reads the volume data again.
    pub fn repository_key(&self, workspace: &WorkspaceName) -> Result<RepositoryKey> {
        let bytes = self
            .key
            .derive(&format!("cairn workspace repository key/{workspace}"))
            .map_err(Error::RepositoryKey)?;
        Ok(RepositoryKey(bytes.to_vec()))
    }

    /// The resource-backup key of `workspace`: seals its backups' objects. Only cluster agents
    /// get it; it opens nothing of the volume repository, and the repository key opens none of it.
    pub fn resource_key(&self, workspace: &WorkspaceName) -> Result<ResourceKey> {
        let bytes = self
            .key
            .derive(&format!("cairn workspace resource key/{workspace}"))
            .map_err(Error::RepositoryKey)?;
        Ok(ResourceKey(bytes.to_vec()))
    }

    /// Records the last prune of location `name`.
    pub async fn record_prune(&self, name: &LocationName, prune: Prune) -> Result<()> {
        let mut stored = self.get(name).await?;
        stored.last_prune = Some(prune);
        self.inventory.put_location(&stored).await?;
        Ok(())
    }

    /// Checks location `name` end to end and records the outcome; fails if the check fails.
    #[tracing::instrument(name = "verify_location", skip_all, fields(location = %name))]
    pub async fn verify(&self, name: &LocationName) -> Result<StoredLocation> {
        let mut stored = self.get(name).await?;
        let outcome = cairn_proto::format::verify_location(&self.resolve(&stored)?).await;
        stored.health = Some(Health {
            checked: Timestamp::now(),
            error: outcome.as_ref().err().map(|e| cairn_proto::error_chain(e)),
        });
        self.inventory.put_location(&stored).await?;
        match outcome {
            Ok(()) => Ok(stored),
            Err(e) => {
                tracing::warn!(error = %cairn_proto::error_chain(&e), "location check failed");
                Err(Error::Verify {
                    location: name.clone(),
                    source: Box::new(e),
                })
            }
        }
    }

    /// Checks every location once, recording each outcome.
    pub async fn verify_all(&self) {
        let names = match self.list().await {
            Ok(all) => all.into_iter().map(|l| l.spec.name),
            Err(e) => {
                tracing::error!(error = %cairn_proto::error_chain(&e), "listing locations to check");
                return;
            }
        };
        for name in names {
            // Failures are recorded in the location's health (and logged): nothing to return.
            let _ = self.verify(&name).await;
        }
    }

    /// Fails for a location that cannot be removed (the built-in one).
    pub fn removable(&self, name: &LocationName) -> Result<()> {
        if *name == builtin_name() {
            return Err(Error::Builtin);
        }
        Ok(())
    }

    /// Forgets location `name` (its objects stay in the store).
    pub async fn remove(&self, name: &LocationName) -> Result<()> {
        self.removable(name)?;
        self.get(name).await?;
        Ok(self.inventory.delete_location(name).await?)
    }
}

/// The built-in location's name.
pub fn builtin_name() -> LocationName {
    BUILTIN.parse().unwrap_or_else(|_| unreachable!("a valid name"))
}
