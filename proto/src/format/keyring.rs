//! A location's keyring in the bucket (`proto/FORMAT.md`, "Keyring"): one object per key version,
//! `keyring/<version>`, each sealed by the hub under a key derived from its master key. The bucket
//! is the source of truth: a hub rebuilt with the same master key reads a location's keyring and
//! with it every backup, whatever the workspace is called now. Objects are written once and never
//! changed; the newest version seals new backups.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use super::ObjectKind;
use super::sealed_store::{Error, Result, read_bounded};
use super::server_error::ServerError;

/// The folder of a location's keyring.
pub const KEYRING_DIR: &str = "keyring";

/// The key of version `version`: `keyring/<six digits>`.
pub fn version_key(version: u32) -> String {
    format!("{KEYRING_DIR}/{version:06}")
}

/// Every version in `store`'s keyring, as stored (sealed), oldest first; empty if it has none.
/// An object under `keyring/` whose name is not a version is refused, naming it.
pub async fn read(store: &dyn ObjectStore, location: &str) -> Result<Vec<(u32, Vec<u8>)>> {
    let prefix = Path::from(KEYRING_DIR);
    let listed: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| Error::List {
            location: location.to_owned(),
            prefix: KEYRING_DIR.to_owned(),
            source: Box::new(ServerError(source)),
        })?;
    let mut versions = Vec::with_capacity(listed.len());
    for meta in listed {
        let key = meta.location.to_string();
        let version = meta
            .location
            .filename()
            .filter(|name| name.len() == 6)
            .and_then(|name| name.parse::<u32>().ok())
            .filter(|&v| v >= 1 && version_key(v) == key)
            .ok_or_else(|| Error::Unexpected {
                location: location.to_owned(),
                key: key.clone(),
                expected: "keyring/<six-digit version from 000001>",
            })?;
        if let Some(sealed) = read_bounded(store, location, ObjectKind::KeyringVersion, &key).await? {
            versions.push((version, sealed.to_vec()));
        }
    }
    versions.sort_by_key(|(v, _)| *v);
    Ok(versions)
}

/// Writes version `version`, `sealed`, unless it exists: a key version is never overwritten
/// (stores without conditional writes: a plain write). Returns whether it was written.
pub async fn write(store: &dyn ObjectStore, location: &str, version: u32, sealed: Vec<u8>) -> Result<bool> {
    let key = version_key(version);
    let path = Path::from(key.as_str());
    let written = match store
        .put_opts(&path, PutPayload::from(sealed.clone()), PutMode::Create.into())
        .await
    {
        Err(object_store::Error::NotImplemented { .. }) => match store.head(&path).await {
            Ok(_) => return Ok(false),
            Err(object_store::Error::NotFound { .. }) => store.put(&path, PutPayload::from(sealed)).await,
            Err(e) => Err(e),
        },
        other => other,
    };
    match written {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
            Ok(false)
        }
        Err(source) => Err(Error::Write {
            location: location.to_owned(),
            key,
            source: Box::new(ServerError(source)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn versions_are_read_in_order_and_never_overwritten() {
        let store = InMemory::new();
        assert!(read(&store, "l").await.expect("read").is_empty());
        assert!(write(&store, "l", 2, b"two".to_vec()).await.expect("written"));
        assert!(write(&store, "l", 1, b"one".to_vec()).await.expect("written"));
        assert!(!write(&store, "l", 1, b"other".to_vec()).await.expect("kept"));
        assert_eq!(
            read(&store, "l").await.expect("read"),
            vec![(1, b"one".to_vec()), (2, b"two".to_vec())]
        );
        assert_eq!(version_key(12), "keyring/000012");
    }

    #[tokio::test]
    async fn a_stranger_in_the_keyring_is_named() {
        let store = InMemory::new();
        store
            .put(&Path::from("keyring/latest"), PutPayload::from_static(b"x"))
            .await
            .expect("put");
        let e = read(&store, "l").await.expect_err("refused").to_string();
        assert!(e.contains("keyring/latest") && e.contains("location l"), "{e}");
    }
}
