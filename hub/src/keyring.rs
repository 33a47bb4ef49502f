//! A location's keyring: every version of its two keys — the resource-backup key (cluster agents
//! only) and the volume repository's key-encryption key (node agents get only this one). Version
//! 1 is random for a new location; a location recorded before keyrings keeps, as version 1, the
//! keys it had (derived from the hub's key and its workspace's name), so its backups stay
//! readable. A rotation adds a random version: new backups are sealed with it, older versions
//! still open older backups, and the volume repository's master key is re-wrapped under it.
//!
//! Each version is sealed under a key derived from the hub's master key and stored twice, the
//! same bytes: at `keyring/<version>` in the location (the source of truth, which a hub rebuilt
//! with the same master key reads back, whatever the workspace is called now) and in the
//! inventory (so an operation needs no bucket read).

use cairn_proto::convert::Wire;
use cairn_proto::model::{
    KeyVersion, RepositoryKey, ResourceKey, ResourceKeys, SealedKeyVersion, Timestamp, WorkspaceName,
};
use cairn_proto::seal::{self, KEY_LEN, Key};

/// A keyring that cannot be made, sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key could not be made or derived.
    #[error("making a key")]
    Key(#[from] seal::Error),
    /// A version does not open with this hub's key.
    #[error(
        "keyring/{version:06} was sealed under another master key: start this hub with the master key of the hub that wrote the location's backups (secret_key_file)"
    )]
    Foreign {
        /// The version.
        version: u32,
    },
    /// A version opens but is not a keyring version.
    #[error("keyring/{version:06} is corrupt: {reason}")]
    Corrupt {
        /// The version.
        version: u32,
        /// Why.
        reason: String,
    },
}

/// Result of a keyring call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A location's keys, every version, oldest first; never empty. `Debug` shows versions only.
pub struct Keyring {
    versions: Vec<KeyVersion>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(v1..=v{})", self.newest())
    }
}

/// The key a hub seals keyring versions with, derived from its master key.
pub fn sealer(master: &Key) -> Result<Key> {
    Ok(Key::from_raw(
        &master.derive("cairn location keyring v1")?,
        "the keyring key",
    )?)
}

fn context(version: u32) -> String {
    format!(
        "cairn keyring {}",
        cairn_proto::format::keyring::version_key(version)
    )
}

fn random() -> Result<[u8; KEY_LEN]> {
    Ok(Key::random()?.1)
}

impl Keyring {
    /// A new location's: version 1, random.
    pub fn fresh() -> Result<Self> {
        Ok(Self {
            versions: vec![KeyVersion {
                version: 1,
                resource: random()?,
                repository: random()?,
                created: Timestamp::now(),
            }],
        })
    }

    /// A location recorded before keyrings, in `workspace`: version 1 holds the keys it had,
    /// derived from the hub's `master` key and the workspace's name.
    pub fn derived(master: &Key, workspace: &WorkspaceName) -> Result<Self> {
        Ok(Self {
            versions: vec![KeyVersion {
                version: 1,
                resource: master.derive(&format!("cairn workspace resource key/{workspace}"))?,
                repository: master.derive(&format!("cairn workspace repository key/{workspace}"))?,
                created: Timestamp::now(),
            }],
        })
    }

    /// This keyring and a new random version.
    pub fn rotated(mut self) -> Result<Self> {
        self.versions.push(KeyVersion {
            version: self.newest() + 1,
            resource: random()?,
            repository: random()?,
            created: Timestamp::now(),
        });
        Ok(self)
    }

    /// The newest version: new backups are sealed with it.
    pub fn newest(&self) -> u32 {
        self.versions.last().map_or(0, |v| v.version)
    }

    /// Every version of the resource-backup key; and, as version 0, version 1's repository key,
    /// which sealed backups of format 2.
    pub fn resource_keys(&self) -> ResourceKeys {
        let mut keys: Vec<_> = self
            .versions
            .iter()
            .map(|v| ResourceKey {
                version: v.version,
                bytes: v.resource.to_vec(),
            })
            .collect();
        if let Some(first) = self.versions.first().filter(|v| v.version == 1) {
            keys.push(ResourceKey {
                version: 0,
                bytes: first.repository.to_vec(),
            });
        }
        ResourceKeys::new(keys)
    }

    /// The newest repository key: the one node agents open the volume repository with.
    pub fn repository_key(&self) -> RepositoryKey {
        RepositoryKey(
            self.versions
                .last()
                .map(|v| v.repository.to_vec())
                .unwrap_or_default(),
        )
    }

    /// The newest repository key and the older ones, as keys.
    pub fn repository_keys(&self) -> Result<(Key, Vec<Key>)> {
        let mut keys = self
            .versions
            .iter()
            .map(|v| Key::from_raw(&v.repository, "a repository key"))
            .collect::<seal::Result<Vec<_>>>()?;
        let newest = keys.pop().ok_or(seal::Error::Random)?;
        Ok((newest, keys))
    }

    /// Every version sealed under `sealer`, as stored in the bucket and the inventory.
    pub fn seal(&self, sealer: &Key) -> Result<Vec<SealedKeyVersion>> {
        self.versions
            .iter()
            .map(|v| {
                Ok(SealedKeyVersion {
                    version: v.version,
                    sealed: sealer.seal(&context(v.version), &v.encode())?,
                })
            })
            .collect()
    }

    /// The keyring of versions `sealed`, opened with `sealer`; `None` if there are none.
    pub fn open(sealer: &Key, sealed: &[SealedKeyVersion]) -> Result<Option<Self>> {
        let mut versions = Vec::with_capacity(sealed.len());
        for s in sealed {
            let corrupt = |reason: String| Error::Corrupt {
                version: s.version,
                reason,
            };
            let plain = sealer
                .open(&context(s.version), &s.sealed)
                .map_err(|_| Error::Foreign { version: s.version })?;
            let v = KeyVersion::decode(&plain).map_err(|e| corrupt(cairn_proto::error_chain(&e)))?;
            if v.version != s.version {
                return Err(corrupt(format!("it says it is version {}", v.version)));
            }
            versions.push(v);
        }
        versions.sort_by_key(|v| v.version);
        versions.dedup_by_key(|v| v.version);
        Ok((!versions.is_empty()).then_some(Self { versions }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> Key {
        Key::from_raw(&[byte; 32], "test").expect("key")
    }

    #[test]
    fn a_keyring_opens_with_its_hubs_key_only_and_keeps_every_version() {
        let sealer = sealer(&master(1)).expect("sealer");
        let ring = Keyring::fresh().expect("fresh").rotated().expect("rotated");
        assert_eq!(ring.newest(), 2);
        let sealed = ring.seal(&sealer).expect("sealed");
        let back = Keyring::open(&sealer, &sealed).expect("opens").expect("some");
        assert_eq!(back.resource_keys(), ring.resource_keys());
        assert_eq!(back.repository_key(), ring.repository_key());
        assert_ne!(ring.resource_keys().version(1), ring.resource_keys().version(2));
        let stranger = super::sealer(&master(2)).expect("sealer");
        let e = Keyring::open(&stranger, &sealed)
            .expect_err("another hub's")
            .to_string();
        assert!(e.contains("keyring/000001") && e.contains("master key"), "{e}");
        let mut moved = sealed.clone();
        moved[0].version = 3;
        assert!(Keyring::open(&sealer, &moved).is_err(), "a version moved");
        assert!(Keyring::open(&sealer, &[]).expect("empty").is_none());
        assert!(!format!("{ring:?}").contains('['), "Debug shows no key");
    }

    fn sealed_version() -> impl proptest::strategy::Strategy<Value = SealedKeyVersion> {
        use proptest::prelude::*;
        let plain = (0..4_u32, any::<[u8; 32]>(), any::<[u8; 32]>(), any::<i64>()).prop_map(
            |(version, resource, repository, ms)| {
                KeyVersion {
                    version,
                    resource,
                    repository,
                    created: Timestamp::from_unix_ms(ms).unwrap_or_else(Timestamp::now),
                }
                .encode()
            },
        );
        let bytes = prop_oneof![plain, proptest::collection::vec(any::<u8>(), 0..80)];
        prop_oneof![
            // Any bytes under any version.
            (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..128))
                .prop_map(|(version, sealed)| SealedKeyVersion { version, sealed }),
            // Sealed as the hub seals, holding a version or anything, under the version it says
            // or another.
            (bytes, 0..4_u32).prop_map(|(bytes, version)| SealedKeyVersion {
                version,
                sealed: sealer(&master(1))
                    .expect("sealer")
                    .seal(&context(version), &bytes)
                    .expect("sealed"),
            }),
        ]
    }

    proptest::proptest! {
        /// Keyring versions as a bucket may hold them: opened or refused, never a panic; an opened
        /// keyring gives its keys.
        #[test]
        fn fuzz_keyring_open(sealed in proptest::collection::vec(sealed_version(), 0..4)) {
            if let Ok(Some(ring)) = Keyring::open(&sealer(&master(1)).expect("sealer"), &sealed) {
                let _ = (ring.resource_keys(), ring.repository_key(), format!("{ring:?}"));
                ring.repository_keys().expect("32-byte keys");
            }
        }
    }

    #[test]
    fn a_location_of_before_keyrings_keeps_its_derived_keys_as_version_1() {
        let workspace: WorkspaceName = "prod".parse().expect("name");
        let ring = Keyring::derived(&master(1), &workspace).expect("derived");
        let resource = master(1)
            .derive("cairn workspace resource key/prod")
            .expect("derived");
        assert_eq!(
            ring.resource_keys().version(1).map(|k| k.bytes.clone()),
            Some(resource.to_vec())
        );
        let repository = ring.repository_key();
        assert_eq!(
            ring.resource_keys().version(0).map(|k| k.bytes.clone()),
            Some(repository.0.clone())
        );
        let rotated = ring.rotated().expect("rotated");
        assert_ne!(rotated.repository_key(), repository);
        let (_, older) = rotated.repository_keys().expect("keys");
        assert_eq!(older.len(), 1);
    }
}
