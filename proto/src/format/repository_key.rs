//! The volume repository's master key (`proto/FORMAT.md`, "Volume repository"): random, made
//! once, it seals every pack, index file and snapshot; `volumes/keys/<id>` holds it sealed under
//! a key-encryption key — the location's repository key, or a key file of `cairn-agent repo`.
//! Opening tries each key file ([`unwrap`]); a key rotation wraps it under the new repository key
//! and removes the files the older versions open ([`rewrap`]), so an older key opens nothing.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use prost::Message;

use super::sealed_store::{Error, Result, read_bounded};
use super::server_error::ServerError;
use super::{ObjectKind, VolumeDir, VolumeKeys};
use crate::convert;
use crate::pb;
use crate::seal::{self, Key};

const CONTEXT: &str = "cairn repository key";

/// A fresh object id: 32 hexadecimal digits.
pub fn new_object_id() -> seal::Result<String> {
    let (_, bytes) = Key::random()?;
    Ok(bytes[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// What the master key of the repository with configuration `config` is sealed to: that
/// repository alone.
pub fn context(config: &pb::RepoConfig) -> String {
    let id: String = config.id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{CONTEXT}/{id}")
}

/// The repository's configuration (`volumes/config`, in the clear); `None` if there is no
/// repository.
pub async fn config(store: &dyn ObjectStore, location: &str) -> Result<Option<pb::RepoConfig>> {
    let key = VolumeKeys::config();
    let Some(bytes) = read_bounded(store, location, ObjectKind::VolumeConfig, &key).await? else {
        return Ok(None);
    };
    pb::RepoConfig::decode(bytes)
        .map(Some)
        .map_err(|source| Error::Decode {
            location: location.to_owned(),
            key,
            source: convert::Error::Decode {
                message: "RepoConfig",
                source,
            },
        })
}

/// Every key file, with its sealed bytes.
async fn key_files(store: &dyn ObjectStore, location: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let prefix = VolumeKeys::dir(VolumeDir::Keys);
    let listed: Vec<_> = store
        .list(Some(&Path::from(prefix.as_str())))
        .try_collect()
        .await
        .map_err(|source| Error::List {
            location: location.to_owned(),
            prefix,
            source: Box::new(ServerError(source)),
        })?;
    let mut files = Vec::with_capacity(listed.len());
    for meta in listed {
        let key = meta.location.to_string();
        if let Some(sealed) = read_bounded(store, location, ObjectKind::VolumeKey, &key).await? {
            files.push((key, sealed.to_vec()));
        }
    }
    Ok(files)
}

/// The raw master key of the repository configured `config`, from the first key file `kek`
/// opens; `None` if it opens none.
pub async fn unwrap(
    store: &dyn ObjectStore,
    location: &str,
    config: &pb::RepoConfig,
    kek: &Key,
) -> Result<Option<Vec<u8>>> {
    let context = context(config);
    Ok(key_files(store, location)
        .await?
        .into_iter()
        .find_map(|(_, sealed)| kek.open(&context, &sealed).ok()))
}

/// The master key sealed under `kek` for the repository configured `config`, at a new key file;
/// returns its key.
pub async fn wrap(
    store: &dyn ObjectStore,
    location: &str,
    config: &pb::RepoConfig,
    kek: &Key,
    master: &[u8],
) -> Result<String> {
    let key = VolumeKeys::object(
        VolumeDir::Keys,
        &new_object_id().map_err(|source| seal_error(location, source))?,
    );
    let sealed = kek
        .seal(&context(config), master)
        .map_err(|source| seal_error(location, source))?;
    store
        .put(&Path::from(key.as_str()), sealed.into())
        .await
        .map_err(|source| Error::Write {
            location: location.to_owned(),
            key: key.clone(),
            source: Box::new(ServerError(source)),
        })?;
    Ok(key)
}

fn seal_error(location: &str, source: seal::Error) -> Error {
    Error::Seal {
        location: location.to_owned(),
        key: VolumeKeys::dir(VolumeDir::Keys),
        source,
    }
}

/// What [`rewrap`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewrapped {
    /// The key file written under the new key (`None`: there is no repository, or one was there).
    pub written: Option<String>,
    /// The key files older keys opened, removed.
    pub removed: Vec<String>,
}

/// Wraps the repository's master key under `new`, then removes every key file one of `older`
/// opens: afterwards the older keys open nothing, `new` opens the same repository (the data is
/// not re-encrypted; its key is re-wrapped). Key files none of them opens (a `cairn-agent repo`
/// key file) are kept. Run again after a failure, it finishes the job.
pub async fn rewrap(store: &dyn ObjectStore, location: &str, older: &[Key], new: &Key) -> Result<Rewrapped> {
    let Some(config) = config(store, location).await? else {
        return Ok(Rewrapped::default());
    };
    let context = context(&config);
    let mut master = None;
    let mut has_new = false;
    let mut stale = Vec::new();
    for (key, sealed) in key_files(store, location).await? {
        if let Ok(raw) = new.open(&context, &sealed) {
            has_new = true;
            master = Some(raw);
        } else if let Some(raw) = older.iter().find_map(|k| k.open(&context, &sealed).ok()) {
            master = master.or(Some(raw));
            stale.push(key);
        }
    }
    let Some(master) = master else {
        return Err(Error::Open {
            location: location.to_owned(),
            key: VolumeKeys::dir(VolumeDir::Keys),
            source: seal::Error::Open {
                context: "the volume repository's master key (no key file opens with the location's keys)"
                    .into(),
            },
        });
    };
    let written = if has_new {
        None
    } else {
        Some(wrap(store, location, &config, new, &master).await?)
    };
    for key in &stale {
        match store.delete(&Path::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(Error::Delete {
                    location: location.to_owned(),
                    key: key.clone(),
                    source: Box::new(ServerError(source)),
                });
            }
        }
    }
    Ok(Rewrapped {
        written,
        removed: stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    fn key(byte: u8) -> Key {
        Key::from_raw(&[byte; 32], "test").expect("key")
    }

    #[tokio::test]
    async fn a_rewrapped_master_key_opens_with_the_new_key_only() {
        let store = InMemory::new();
        assert_eq!(
            rewrap(&store, "l", &[key(1)], &key(2))
                .await
                .expect("nothing to do"),
            Rewrapped::default(),
            "no repository yet"
        );
        let config = pb::RepoConfig {
            version: 1,
            id: vec![5; 32],
            ..Default::default()
        };
        store
            .put(
                &Path::from(VolumeKeys::config()),
                PutPayload::from(config.encode_to_vec()),
            )
            .await
            .expect("config");
        let master = [9u8; 32];
        let first = wrap(&store, "l", &config, &key(1), &master)
            .await
            .expect("wrapped");
        let own = wrap(&store, "l", &config, &key(7), &master)
            .await
            .expect("a key file");
        let done = rewrap(&store, "l", &[key(1)], &key(2)).await.expect("rewrapped");
        assert_eq!(done.removed, vec![first]);
        assert!(done.written.is_some());
        assert_eq!(
            unwrap(&store, "l", &config, &key(2)).await.expect("read"),
            Some(master.to_vec())
        );
        assert_eq!(
            unwrap(&store, "l", &config, &key(1)).await.expect("read"),
            None,
            "the old key"
        );
        assert_eq!(
            unwrap(&store, "l", &config, &key(7)).await.expect("read"),
            Some(master.to_vec())
        );
        assert!(
            key_files(&store, "l")
                .await
                .expect("listed")
                .iter()
                .any(|(k, _)| *k == own)
        );
        let again = rewrap(&store, "l", &[key(1)], &key(2)).await.expect("idempotent");
        assert_eq!(again, Rewrapped::default());
        let e = rewrap(&store, "l", &[key(3)], &key(4))
            .await
            .expect_err("foreign")
            .to_string();
        assert!(e.contains("volumes/keys"), "{e}");
    }
}
