//! The hub's backup locations: saved only after an end-to-end check, credentials sealed at rest
//! under the hub's key ([`cairn_proto::seal`]), re-checked periodically, and resolved to an
//! `object_store` URL and options ([`cairn_proto::format::provider`]) only when an operation needs
//! them. Which cluster may use which location is the caller's rule ([`crate::operations`]).

use cairn_proto::convert::{self, Wire};
use cairn_proto::format::repository_key::{self, Rewrapped};
use cairn_proto::format::{self, location::VerifyError, provider, sealed_store};
use cairn_proto::model::{
    Credentials, DEFAULT_WORKSPACE, Health, Location, LocationName, LocationSpec, Prune, RepositoryKey,
    ResourceKeys, SealedKeyVersion, Store, StoredLocation, Timestamp,
};
use cairn_proto::seal;
use std::sync::Arc;

use crate::inventory::{self, Inventory};
use crate::keyring::{self, Keyring};

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
    /// The key the hub seals keyrings with cannot be derived from its master key.
    #[error("deriving the hub's keyring key")]
    Key(#[source] keyring::Error),
    /// The location's keyring cannot be made or opened.
    #[error("keys of location {location}")]
    Keyring {
        /// The location.
        location: LocationName,
        /// The cause.
        #[source]
        source: keyring::Error,
    },
    /// The location's keyring or volume repository keys could not be read or written.
    #[error("keys of location {location}")]
    Bucket {
        /// The location.
        location: LocationName,
        /// The cause.
        #[source]
        source: Box<sealed_store::Error>,
    },
    /// The location's objects cannot be reached with its configuration.
    #[error("location {location}")]
    Open {
        /// The location.
        location: LocationName,
        /// The cause.
        #[source]
        source: Box<format::location::Error>,
    },
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
            Self::Unverified { .. }
            | Self::Verify { .. }
            | Self::Builtin
            | Self::Keyring { .. }
            | Self::Bucket { .. }
            | Self::Open { .. } => Some(Refusal::Precondition),
            Self::Key(_) | Self::Seal { .. } | Self::Corrupt { .. } | Self::Inventory(_) => None,
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
    /// Seals keyring versions (derived from `key`).
    sealer: Arc<seal::Key>,
    /// Held while a location's record is read, changed and written back, so that a health check
    /// does not write back a keyring a rotation has just extended.
    writing: Arc<tokio::sync::Mutex<()>>,
}

/// What a key rotation of one location did.
#[derive(Debug)]
pub struct Rotated {
    /// The new version.
    pub version: u32,
    /// The volume repository's master key, re-wrapped.
    pub rewrapped: Rewrapped,
}

fn context(name: &LocationName) -> String {
    format!("location/{name}")
}

impl Locations {
    /// Locations recorded in `inventory`, credentials and keyrings sealed with `key`.
    pub fn new(inventory: Inventory, key: seal::Key) -> Result<Self> {
        Ok(Self {
            inventory,
            sealer: Arc::new(keyring::sealer(&key).map_err(Error::Key)?),
            key: Arc::new(key),
            writing: Arc::default(),
        })
    }

    /// Records the built-in location: directory `path` (absolute), in workspace `default`.
    pub async fn ensure_builtin(&self, path: &str) -> Result<()> {
        let name = builtin_name();
        let _writing = self.writing.lock().await;
        let known = self.inventory.location(&name).await?;
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
        let location = provider::resolve(&spec, &Credentials::Ambient)?;
        let (health, last_prune, keyring) = match known {
            Some(l) => (l.health, l.last_prune, l.keyring),
            None => (None, None, self.adopt_keyring(&spec.name, &location).await?),
        };
        self.inventory
            .put_location(&StoredLocation {
                spec,
                sealed_credentials: Vec::new(),
                health,
                last_prune,
                keyring,
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
        let keyring = self.adopt_keyring(&spec.name, &location).await?;
        let stored = StoredLocation {
            spec,
            sealed_credentials,
            health: Some(Health {
                checked: Timestamp::now(),
                error: None,
            }),
            last_prune: None,
            keyring,
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

    /// The keyring of a location being added: the one in its bucket, which must open with this
    /// hub's key (a hub rebuilt with its predecessor's master key reads every backup back); or,
    /// for a location without one, a new keyring, written to the bucket.
    async fn adopt_keyring(&self, name: &LocationName, location: &Location) -> Result<Vec<SealedKeyVersion>> {
        let store = self.store(name, location)?;
        let in_bucket = self.bucket_keyring(name, store.as_ref()).await?;
        if self.open_keyring(name, &in_bucket)?.is_some() {
            tracing::info!(
                versions = in_bucket.len(),
                "the location's keyring read from its bucket"
            );
            return Ok(in_bucket);
        }
        let sealed = self.fresh_keyring(name)?;
        self.write_keyring(name, store.as_ref(), &sealed).await?;
        Ok(sealed)
    }

    fn store(&self, name: &LocationName, location: &Location) -> Result<Arc<dyn object_store::ObjectStore>> {
        format::open_location(location).map_err(|source| Error::Open {
            location: name.clone(),
            source: Box::new(source),
        })
    }

    async fn bucket_keyring(
        &self,
        name: &LocationName,
        store: &dyn object_store::ObjectStore,
    ) -> Result<Vec<SealedKeyVersion>> {
        let versions = format::keyring::read(store, name.as_str())
            .await
            .map_err(|e| bucket_error(name, e))?;
        Ok(versions
            .into_iter()
            .map(|(version, sealed)| SealedKeyVersion { version, sealed })
            .collect())
    }

    async fn write_keyring(
        &self,
        name: &LocationName,
        store: &dyn object_store::ObjectStore,
        versions: &[SealedKeyVersion],
    ) -> Result<()> {
        for v in versions {
            format::keyring::write(store, name.as_str(), v.version, v.sealed.clone())
                .await
                .map_err(|e| bucket_error(name, e))?;
        }
        Ok(())
    }

    /// A new keyring for location `name`, sealed.
    fn fresh_keyring(&self, name: &LocationName) -> Result<Vec<SealedKeyVersion>> {
        Keyring::fresh()
            .and_then(|k| k.seal(&self.sealer))
            .map_err(keyring_error(name))
    }

    fn open_keyring(&self, name: &LocationName, sealed: &[SealedKeyVersion]) -> Result<Option<Keyring>> {
        Keyring::open(&self.sealer, sealed).map_err(keyring_error(name))
    }

    /// The keyring of `stored`; a location recorded before keyrings has the keys it had then.
    fn keyring(&self, stored: &StoredLocation) -> Result<Keyring> {
        match self.open_keyring(&stored.spec.name, &stored.keyring)? {
            Some(keyring) => Ok(keyring),
            None => {
                Keyring::derived(&self.key, &stored.spec.workspace).map_err(keyring_error(&stored.spec.name))
            }
        }
    }

    /// The key node agents open `stored`'s volume repository with: its newest version.
    pub fn repository_key(&self, stored: &StoredLocation) -> Result<RepositoryKey> {
        Ok(self.keyring(stored)?.repository_key())
    }

    /// Every version of `stored`'s resource-backup key: backups are sealed with the newest, and
    /// opened with the version they name. Only cluster agents get them; they open nothing of the
    /// volume repository, and the repository key opens none of the backups sealed with them.
    pub fn resource_keys(&self, stored: &StoredLocation) -> Result<ResourceKeys> {
        Ok(self.keyring(stored)?.resource_keys())
    }

    /// The version new backups of `stored` are sealed with.
    pub fn key_version(stored: &StoredLocation) -> u32 {
        stored.keyring.last().map_or(1, |v| v.version)
    }

    /// Changes the record of location `name` with `change` (under the write lock).
    async fn update(
        &self,
        name: &LocationName,
        change: impl FnOnce(&mut StoredLocation),
    ) -> Result<StoredLocation> {
        let _writing = self.writing.lock().await;
        let mut stored = self.get(name).await?;
        change(&mut stored);
        self.inventory.put_location(&stored).await?;
        Ok(stored)
    }

    /// Makes the bucket and the inventory hold the same keyring of location `name`: a location
    /// recorded before keyrings gets its own (the keys it had, as version 1); versions only the
    /// bucket has (and this hub's key opens) are adopted; versions only the inventory has are
    /// written; a rotation's re-wrap of the volume repository that did not finish is finished.
    /// Returns the location as recorded now.
    #[tracing::instrument(name = "publish_keyring", skip_all, fields(location = %name))]
    pub async fn publish_keyring(&self, name: &LocationName) -> Result<StoredLocation> {
        let stored = self.get(name).await?;
        let store = self.store(name, &self.resolve(&stored)?)?;
        let in_bucket = self.bucket_keyring(name, store.as_ref()).await?;
        let mut mine = stored.keyring.clone();
        if mine.is_empty() {
            mine = self
                .keyring(&stored)?
                .seal(&self.sealer)
                .map_err(keyring_error(name))?;
        }
        let missing: Vec<_> = mine
            .iter()
            .filter(|v| !in_bucket.iter().any(|b| b.version == v.version))
            .cloned()
            .collect();
        self.write_keyring(name, store.as_ref(), &missing).await?;
        for theirs in &in_bucket {
            if mine
                .iter()
                .any(|v| v.version == theirs.version && v.sealed != theirs.sealed)
            {
                tracing::warn!(
                    version = theirs.version,
                    "the bucket's keyring holds another key of this version than the hub's records: backups sealed with one of them may not open"
                );
            }
        }
        let adopted: Vec<_> = in_bucket
            .into_iter()
            .filter(|b| !mine.iter().any(|v| v.version == b.version))
            .filter(|b| Keyring::open(&self.sealer, std::slice::from_ref(b)).is_ok())
            .collect();
        let stored = if stored.keyring.is_empty() || !adopted.is_empty() {
            tracing::info!(adopted = adopted.len(), "keyring recorded");
            self.update(name, |s| {
                for v in mine.into_iter().chain(adopted) {
                    if !s.keyring.iter().any(|k| k.version == v.version) {
                        s.keyring.push(v);
                    }
                }
                s.keyring.sort_by_key(|v| v.version);
            })
            .await?
        } else {
            stored
        };
        let keyring = self.keyring(&stored)?;
        if keyring.newest() > 1 {
            self.rewrap(name, store.as_ref(), &keyring).await?;
        }
        Ok(stored)
    }

    async fn rewrap(
        &self,
        name: &LocationName,
        store: &dyn object_store::ObjectStore,
        keyring: &Keyring,
    ) -> Result<Rewrapped> {
        let (newest, older) = keyring.repository_keys().map_err(keyring_error(name))?;
        let rewrapped = repository_key::rewrap(store, name.as_str(), &older, &newest)
            .await
            .map_err(|e| bucket_error(name, e))?;
        if rewrapped.written.is_some() || !rewrapped.removed.is_empty() {
            tracing::info!(
                version = keyring.newest(),
                removed = rewrapped.removed.len(),
                "volume repository key re-wrapped"
            );
        }
        Ok(rewrapped)
    }

    /// Adds a random version to location `name`'s keyring: written to the bucket first, then
    /// recorded; the volume repository's master key is re-wrapped under the new repository key
    /// and the key files older versions open are removed. New backups are sealed with the new
    /// version; older backups still open with theirs.
    #[tracing::instrument(name = "rotate_key", skip_all, fields(location = %name))]
    pub async fn rotate(&self, name: &LocationName) -> Result<Rotated> {
        let stored = self.publish_keyring(name).await?;
        let store = self.store(name, &self.resolve(&stored)?)?;
        let keyring_error = keyring_error(name);
        let keyring = self.keyring(&stored)?.rotated().map_err(&keyring_error)?;
        let version = keyring.newest();
        let newest = keyring
            .seal(&self.sealer)
            .map_err(&keyring_error)?
            .pop()
            .filter(|v| v.version == version)
            .ok_or_else(|| {
                keyring_error(keyring::Error::Corrupt {
                    version,
                    reason: "not sealed".into(),
                })
            })?;
        let written = format::keyring::write(store.as_ref(), name.as_str(), version, newest.sealed.clone())
            .await
            .map_err(|e| bucket_error(name, e))?;
        if !written {
            return Err(keyring_error(keyring::Error::Corrupt {
                version,
                reason: "already in the bucket (another rotation ran at the same time): try again".into(),
            }));
        }
        self.update(name, |s| s.keyring.push(newest)).await?;
        tracing::info!(version, "key rotated");
        let rewrapped = self.rewrap(name, store.as_ref(), &keyring).await?;
        Ok(Rotated { version, rewrapped })
    }

    /// Records the last prune of location `name`.
    pub async fn record_prune(&self, name: &LocationName, prune: Prune) -> Result<()> {
        self.update(name, |s| s.last_prune = Some(prune)).await?;
        Ok(())
    }

    /// Checks location `name` end to end and records the outcome; fails if the check fails.
    #[tracing::instrument(name = "verify_location", skip_all, fields(location = %name))]
    pub async fn verify(&self, name: &LocationName) -> Result<StoredLocation> {
        let stored = self.get(name).await?;
        let outcome = cairn_proto::format::verify_location(&self.resolve(&stored)?).await;
        let health = Health {
            checked: Timestamp::now(),
            error: outcome.as_ref().err().map(|e| cairn_proto::error_chain(e)),
        };
        let stored = self.update(name, |s| s.health = Some(health)).await?;
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

fn keyring_error(name: &LocationName) -> impl Fn(keyring::Error) -> Error {
    move |source| Error::Keyring {
        location: name.clone(),
        source,
    }
}

fn bucket_error(name: &LocationName, e: sealed_store::Error) -> Error {
    Error::Bucket {
        location: name.clone(),
        source: Box::new(e),
    }
}

/// The built-in location's name.
pub fn builtin_name() -> LocationName {
    BUILTIN.parse().unwrap_or_else(|_| unreachable!("a valid name"))
}
