//! Every object of a resource backup (object parts, index parts, manifest) and of a restore
//! report is sealed with AES-256-GCM under a key derived from the workspace's resource key (which
//! node agents never hold: theirs opens the volume repository only), and bound to its
//! own object key: whoever reads the bucket learns nothing of the cluster (Secrets included), and
//! an object copied to another key does not open.

use crate::model::{RepositoryKey, ResourceKey};
use crate::seal::{self, Key};

/// Seals and opens a workspace's backup objects.
pub struct ObjectSeal {
    key: Key,
    /// Format 2 sealed under the volume-repository key: still opened, never sealed with.
    legacy: Option<Key>,
}

/// The object key under workspace key `raw`.
fn object_key(raw: &[u8], what: &str) -> seal::Result<Key> {
    let workspace = Key::from_raw(raw, what)?;
    Key::from_raw(
        &workspace.derive("cairn backup objects")?,
        "the backup-object key",
    )
}

impl ObjectSeal {
    /// For the workspace whose resource key is `workspace_key`.
    pub fn new(workspace_key: &ResourceKey) -> seal::Result<Self> {
        Ok(Self {
            key: object_key(&workspace_key.0, "the workspace's resource key")?,
            legacy: None,
        })
    }

    /// Also opening objects of format 2, sealed under the workspace's volume-repository key
    /// `repository`, as every backup was before the keys were split.
    pub fn reading_format_2(mut self, repository: &RepositoryKey) -> seal::Result<Self> {
        self.legacy = Some(object_key(&repository.0, "the workspace's repository key")?);
        Ok(self)
    }

    /// `plain`, sealed to be stored at `object`.
    pub fn seal(&self, object: &str, plain: &[u8]) -> seal::Result<Vec<u8>> {
        self.key.seal(&context(object), plain)
    }

    /// What was sealed to be stored at `object`.
    pub fn open(&self, object: &str, sealed: &[u8]) -> seal::Result<Vec<u8>> {
        let opened = self.key.open(&context(object), sealed);
        match (&opened, &self.legacy) {
            (Err(_), Some(legacy)) => legacy.open(&context(object), sealed).or(opened),
            _ => opened,
        }
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
        let seal = ObjectSeal::new(&ResourceKey(vec![1; 32])).expect("seal");
        let sealed = seal
            .seal("backups/a/manifest.pb", b"cluster prod-eu")
            .expect("sealed");
        assert!(!sealed.windows(7).any(|w| w == b"prod-eu"));
        assert_eq!(
            seal.open("backups/a/manifest.pb", &sealed).expect("opens"),
            b"cluster prod-eu"
        );
        assert!(seal.open("backups/b/manifest.pb", &sealed).is_err(), "moved");
        let other = ObjectSeal::new(&ResourceKey(vec![2; 32])).expect("seal");
        assert!(
            other.open("backups/a/manifest.pb", &sealed).is_err(),
            "other workspace"
        );
        assert!(
            ObjectSeal::new(&ResourceKey(vec![1; 5])).is_err(),
            "malformed key"
        );
    }

    #[test]
    fn format_2_objects_sealed_under_the_repository_key_still_open_and_nothing_new_is() {
        let repository = RepositoryKey(vec![7; 32]);
        let before_the_split = ObjectSeal::new(&ResourceKey(repository.0.clone())).expect("seal");
        let old = before_the_split
            .seal("backups/a/manifest.pb", b"old")
            .expect("sealed");
        let now = ObjectSeal::new(&ResourceKey(vec![8; 32])).expect("seal");
        assert!(
            now.open("backups/a/manifest.pb", &old).is_err(),
            "the resource key alone"
        );
        let reading = now.reading_format_2(&repository).expect("seal");
        assert_eq!(
            reading.open("backups/a/manifest.pb", &old).expect("opens"),
            b"old"
        );
        let new = reading.seal("backups/b/manifest.pb", b"new").expect("sealed");
        assert!(
            before_the_split.open("backups/b/manifest.pb", &new).is_err(),
            "new objects are sealed under the resource key, not the repository key"
        );
    }
}
