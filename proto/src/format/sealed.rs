//! Every object of a resource backup (object parts, index parts, manifest) and of a restore
//! report is sealed with AES-256-GCM under a key derived from the workspace's resource key (which
//! node agents never hold: theirs opens the volume repository only), and bound to its
//! own object key: whoever reads the bucket learns nothing of the cluster (Secrets included), and
//! an object copied to another key does not open.

use crate::model::ResourceKeys;
use crate::seal::{self, Key};

/// What an object sealed since format 4 starts with, before its key's version (4 bytes,
/// big-endian) and the sealed bytes.
const MAGIC: &[u8; 2] = b"ck";
/// Magic and version.
const HEADER: usize = MAGIC.len() + 4;

/// Seals and opens a location's backup objects.
pub struct ObjectSeal {
    /// Every version of the location's resource key, oldest first: `(version, object key)`.
    keys: Vec<(u32, Key)>,
}

/// The object key under resource key `raw`.
fn object_key(raw: &[u8], what: &str) -> seal::Result<Key> {
    let workspace = Key::from_raw(raw, what)?;
    Key::from_raw(
        &workspace.derive("cairn backup objects")?,
        "the backup-object key",
    )
}

/// The key version a sealed object names; `None` for objects of formats 2 and 3, which name none.
pub fn version_of(sealed: &[u8]) -> Option<u32> {
    let header = sealed.get(..HEADER)?;
    let version = header.strip_prefix(MAGIC)?;
    Some(u32::from_be_bytes(version.try_into().ok()?))
}

impl ObjectSeal {
    /// For the location whose resource keys are `keys`: seals with the newest version, opens with
    /// any. Objects of formats 2 and 3 name no version: they open with version 1 (format 3, the
    /// key a location had before keyrings) or 0 (format 2, sealed under the repository key).
    pub fn new(keys: &ResourceKeys) -> seal::Result<Self> {
        let keys = keys
            .all()
            .iter()
            .map(|k| {
                let what = format!("the location's resource key, version {}", k.version);
                object_key(&k.bytes, &what).map(|key| (k.version, key))
            })
            .collect::<seal::Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(seal::Error::Malformed {
                origin: "the location's resource keys (none given)".into(),
            });
        }
        Ok(Self { keys })
    }

    fn key(&self, version: u32) -> Option<&Key> {
        self.keys.iter().find(|(v, _)| *v == version).map(|(_, k)| k)
    }

    /// The version new objects are sealed with.
    pub fn version(&self) -> u32 {
        self.keys.last().map_or(0, |(v, _)| *v)
    }

    /// `plain`, sealed to be stored at `object`, naming the newest key version.
    pub fn seal(&self, object: &str, plain: &[u8]) -> seal::Result<Vec<u8>> {
        let Some((version, key)) = self.keys.last() else {
            unreachable!("ObjectSeal::new refuses an empty keyring")
        };
        let mut out = Vec::with_capacity(HEADER + seal::OVERHEAD + plain.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&version.to_be_bytes());
        key.seal_into(&context(object), plain, &mut out)?;
        Ok(out)
    }

    /// What was sealed to be stored at `object`.
    pub fn open(&self, object: &str, sealed: &[u8]) -> seal::Result<Vec<u8>> {
        let context = context(object);
        if let Some(version) = version_of(sealed) {
            match self.key(version) {
                Some(key) => {
                    if let Ok(plain) = key.open(&context, &sealed[HEADER..]) {
                        return Ok(plain);
                    }
                }
                None => {
                    return Err(seal::Error::Open {
                        context: format!(
                            "{context} (sealed under key version {version}, which this location's keyring does not hold)"
                        ),
                    });
                }
            }
        }
        // Formats 2 and 3 (or a format 3 nonce that happens to start like a header).
        let mut opened = Err(seal::Error::Open {
            context: context.clone(),
        });
        for version in [1, 0] {
            if let Some(key) = self.key(version) {
                opened = key.open(&context, sealed);
                if opened.is_ok() {
                    break;
                }
            }
        }
        opened
    }
}

fn context(object: &str) -> String {
    format!("cairn object {object}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceKey;

    fn ring(keys: &[(u32, u8)]) -> ResourceKeys {
        ResourceKeys::new(
            keys.iter()
                .map(|&(version, byte)| ResourceKey {
                    version,
                    bytes: vec![byte; 32],
                })
                .collect(),
        )
    }

    #[test]
    fn objects_open_only_at_their_key_and_with_their_location_keys() {
        let seal = ObjectSeal::new(&ring(&[(1, 1)])).expect("seal");
        let sealed = seal
            .seal("backups/a/manifest.pb", b"cluster prod-eu")
            .expect("sealed");
        assert!(!sealed.windows(7).any(|w| w == b"prod-eu"));
        assert_eq!(
            seal.open("backups/a/manifest.pb", &sealed).expect("opens"),
            b"cluster prod-eu"
        );
        assert!(seal.open("backups/b/manifest.pb", &sealed).is_err(), "moved");
        let other = ObjectSeal::new(&ring(&[(1, 2)])).expect("seal");
        assert!(
            other.open("backups/a/manifest.pb", &sealed).is_err(),
            "other location"
        );
        assert!(
            ObjectSeal::new(&ResourceKeys::new(vec![ResourceKey {
                version: 1,
                bytes: vec![1; 5]
            }]))
            .is_err(),
            "malformed key"
        );
        assert!(ObjectSeal::new(&ResourceKeys::default()).is_err(), "no key");
    }

    #[test]
    fn after_a_rotation_new_objects_name_the_new_version_and_old_ones_still_open() {
        let before = ObjectSeal::new(&ring(&[(1, 1)])).expect("seal");
        let old = before.seal("backups/a/manifest.pb", b"old").expect("sealed");
        assert_eq!(version_of(&old), Some(1));
        let after = ObjectSeal::new(&ring(&[(2, 9), (1, 1)])).expect("seal");
        assert_eq!(after.version(), 2);
        let new = after.seal("backups/b/manifest.pb", b"new").expect("sealed");
        assert_eq!(version_of(&new), Some(2));
        assert_eq!(after.open("backups/a/manifest.pb", &old).expect("opens"), b"old");
        assert_eq!(after.open("backups/b/manifest.pb", &new).expect("opens"), b"new");
        let e = before
            .open("backups/b/manifest.pb", &new)
            .expect_err("version 2 unknown")
            .to_string();
        assert!(e.contains("key version 2"), "{e}");
        let mut forged = new.clone();
        forged[2..6].copy_from_slice(&1u32.to_be_bytes());
        assert!(
            after.open("backups/b/manifest.pb", &forged).is_err(),
            "relabelled"
        );
    }

    #[test]
    fn objects_of_formats_2_and_3_name_no_version_and_open_with_versions_1_and_0() {
        let headerless = |byte: u8, plain: &[u8]| {
            let key = object_key(&[byte; 32], "test").expect("key");
            key.seal(&context("backups/a/manifest.pb"), plain)
                .expect("sealed")
        };
        let format_3 = headerless(1, b"three");
        let format_2 = headerless(7, b"two");
        let reading = ObjectSeal::new(&ring(&[(0, 7), (1, 1), (2, 9)])).expect("seal");
        assert_eq!(
            reading.open("backups/a/manifest.pb", &format_3).expect("opens"),
            b"three"
        );
        assert_eq!(
            reading.open("backups/a/manifest.pb", &format_2).expect("opens"),
            b"two"
        );
        let without_legacy = ObjectSeal::new(&ring(&[(2, 9)])).expect("seal");
        assert!(without_legacy.open("backups/a/manifest.pb", &format_3).is_err());
    }
}
