//! Every object of a resource backup (object parts, index parts, manifest) and of a restore
//! report is sealed with AES-256-GCM under a key derived from the workspace key, and bound to its
//! own object key: whoever reads the bucket learns nothing of the cluster (Secrets included), and
//! an object copied to another key does not open.

use crate::model::RepositoryKey;
use crate::seal::{self, Key};

/// Seals and opens a workspace's backup objects.
pub struct ObjectSeal {
    key: Key,
}

impl ObjectSeal {
    /// For the workspace whose key is `workspace_key`.
    pub fn new(workspace_key: &RepositoryKey) -> seal::Result<Self> {
        let workspace = Key::from_raw(&workspace_key.0, "the workspace key")?;
        let raw = workspace.derive("cairn backup objects")?;
        Ok(Self {
            key: Key::from_raw(&raw, "the backup-object key")?,
        })
    }

    /// `plain`, sealed to be stored at `object`.
    pub fn seal(&self, object: &str, plain: &[u8]) -> seal::Result<Vec<u8>> {
        self.key.seal(&context(object), plain)
    }

    /// What was sealed to be stored at `object`.
    pub fn open(&self, object: &str, sealed: &[u8]) -> seal::Result<Vec<u8>> {
        self.key.open(&context(object), sealed)
    }
}

fn context(object: &str) -> String {
    format!("cairn object {object}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_open_only_at_their_key_and_with_their_workspace_key() {
        let seal = ObjectSeal::new(&RepositoryKey(vec![1; 32])).expect("seal");
        let sealed = seal
            .seal("backups/a/manifest.pb", b"cluster prod-eu")
            .expect("sealed");
        assert!(!sealed.windows(7).any(|w| w == b"prod-eu"));
        assert_eq!(
            seal.open("backups/a/manifest.pb", &sealed).expect("opens"),
            b"cluster prod-eu"
        );
        assert!(seal.open("backups/b/manifest.pb", &sealed).is_err(), "moved");
        let other = ObjectSeal::new(&RepositoryKey(vec![2; 32])).expect("seal");
        assert!(
            other.open("backups/a/manifest.pb", &sealed).is_err(),
            "other workspace"
        );
        assert!(
            ObjectSeal::new(&RepositoryKey(vec![1; 5])).is_err(),
            "malformed key"
        );
    }
}
