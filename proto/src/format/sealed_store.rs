//! A location's sealed objects: the one way hub and agent read and write the objects of resource
//! backups and restore reports (`proto/FORMAT.md`). [`SealedStore`] layers sealing around an
//! `object_store` client, as a backend layer would: it seals every object it writes to its own key
//! with the workspace's [`ObjectSeal`], opens what it reads, and checks an object's size against
//! the limit of its kind ([`super::limits`]) before it reads the body, so an object planted in
//! the bucket cannot make a reader hold it whole.
//!
//! It neither builds keys ([`super::BackupKeys`], [`super::restore_items_part`] do) nor decides
//! what a missing object means (its callers do); [`read_bounded`] serves readers that seal
//! otherwise (the volume repository).

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use std::sync::Arc;

use super::limits::ObjectKind;
use super::sealed::ObjectSeal;
use super::server_error::ServerError;
use crate::convert::{self, Wire};
use crate::model::{IndexEntry, ItemResult, Manifest};

/// A step on a location's objects that failed. Each names the location, the key and the step;
/// the cause is only in `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage server failed a read.
    #[error("reading {key} from location {location}")]
    Read {
        /// The location.
        location: String,
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: Box<ServerError>,
    },
    /// An object that must exist is not there.
    #[error("location {location}: {key} is missing")]
    Missing {
        /// The location.
        location: String,
        /// The key.
        key: String,
    },
    /// An object larger than its kind may be: refused, its body unread.
    #[error("location {location}: {key} is {size} bytes, more than the {max} bytes {kind} may be")]
    TooLarge {
        /// The location.
        location: String,
        /// The key.
        key: String,
        /// Its size (as far as read, if the server's length was wrong).
        size: u64,
        /// The limit of its kind.
        max: u64,
        /// Its kind.
        kind: ObjectKind,
    },
    /// The object does not open with the location's keys.
    #[error(
        "location {location}: {key} does not open with the location's keys (written for another location, or altered)"
    )]
    Open {
        /// The location.
        location: String,
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: crate::seal::Error,
    },
    /// An object whose name is not one the format gives.
    #[error("location {location}: {key} is not {expected}")]
    Unexpected {
        /// The location.
        location: String,
        /// The key.
        key: String,
        /// What names there may be.
        expected: &'static str,
    },
    /// The opened object does not decode.
    #[error("location {location}: {key} is corrupt")]
    Decode {
        /// The location.
        location: String,
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: convert::Error,
    },
    /// Sealing an object to write failed.
    #[error("sealing {key} for location {location}")]
    Seal {
        /// The location.
        location: String,
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: crate::seal::Error,
    },
    /// The storage server failed a write.
    #[error("writing {key} to location {location}")]
    Write {
        /// The location.
        location: String,
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: Box<ServerError>,
    },
    /// The storage server failed a list.
    #[error("listing {prefix} in location {location}")]
    List {
        /// The location.
        location: String,
        /// The prefix listed.
        prefix: String,
        /// The cause.
        #[source]
        source: Box<ServerError>,
    },
    /// The storage server failed a delete.
    #[error("deleting {key} in location {location}")]
    Delete {
        /// The location.
        location: String,
        /// The key or prefix.
        key: String,
        /// The cause.
        #[source]
        source: Box<ServerError>,
    },
}

impl Error {
    /// Whether the object is not there (a read that found nothing, or a missing object).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Missing { .. } => true,
            Self::Read { source, .. } => matches!(source.0, object_store::Error::NotFound { .. }),
            _ => false,
        }
    }
}

/// Result of a step on a location's objects.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A domain value stored as one sealed protobuf object, and the kind (so the size limit) of that
/// object.
pub trait Stored: Wire {
    /// The object's kind.
    const KIND: ObjectKind;
}

impl Stored for Manifest {
    const KIND: ObjectKind = ObjectKind::Manifest;
}

impl Stored for Vec<IndexEntry> {
    const KIND: ObjectKind = ObjectKind::IndexPart;
}

impl Stored for Vec<ItemResult> {
    const KIND: ObjectKind = ObjectKind::RestoreItems;
}

/// What a write stored, or what is stored: the bytes' length and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes stored.
    pub size: u64,
    /// Their SHA-256.
    pub sha256: [u8; 32],
}

impl Written {
    fn of(bytes: &[u8]) -> Self {
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref());
        Self {
            size: bytes.len() as u64,
            sha256,
        }
    }
}

/// A location's objects, sealed with its keys.
pub struct SealedStore {
    store: Arc<dyn ObjectStore>,
    location: String,
    seal: ObjectSeal,
}

impl SealedStore {
    /// Over `store`, the client of location `location` (its name, for messages), sealing with
    /// `seal`.
    pub fn new(store: Arc<dyn ObjectStore>, location: impl ToString, seal: ObjectSeal) -> Self {
        Self {
            store,
            location: location.to_string(),
            seal,
        }
    }

    /// The location's name.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The value stored at `key`; `None` if there is no object.
    pub async fn read<T: Stored>(&self, key: &str) -> Result<Option<T>> {
        let Some(plain) = self.read_bytes(T::KIND, key).await? else {
            return Ok(None);
        };
        T::decode(&plain).map(Some).map_err(|source| Error::Decode {
            location: self.location.clone(),
            key: key.to_owned(),
            source,
        })
    }

    /// [`SealedStore::read`] of an object that must exist.
    pub async fn must_read<T: Stored>(&self, key: &str) -> Result<T> {
        self.read(key).await?.ok_or_else(|| self.missing(key))
    }

    /// Writes `value` at `key`, sealed; returns what was stored.
    pub async fn write<T: Stored>(&self, key: &str, value: &T) -> Result<Written> {
        self.write_bytes(T::KIND, key, &value.encode()).await
    }

    /// The opened bytes of the object of kind `kind` at `key`; `None` if there is none.
    pub async fn read_bytes(&self, kind: ObjectKind, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(sealed) = read_bounded(self.store.as_ref(), &self.location, kind, key).await? else {
            return Ok(None);
        };
        self.seal
            .open(key, &sealed)
            .map(Some)
            .map_err(|source| Error::Open {
                location: self.location.clone(),
                key: key.to_owned(),
                source,
            })
    }

    /// [`SealedStore::read_bytes`] of an object that must exist.
    pub async fn must_read_bytes(&self, kind: ObjectKind, key: &str) -> Result<Vec<u8>> {
        self.read_bytes(kind, key).await?.ok_or_else(|| self.missing(key))
    }

    /// Writes `plain`, sealed, at `key` with one PUT; returns what was stored. An object larger
    /// than its kind may be is refused unwritten: no reader would read it.
    pub async fn write_bytes(&self, kind: ObjectKind, key: &str, plain: &[u8]) -> Result<Written> {
        let sealed = self.seal.seal(key, plain).map_err(|source| Error::Seal {
            location: self.location.clone(),
            key: key.to_owned(),
            source,
        })?;
        let written = Written::of(&sealed);
        let size = written.size;
        if size > kind.max_bytes() {
            return Err(Error::TooLarge {
                location: self.location.clone(),
                key: key.to_owned(),
                size,
                max: kind.max_bytes(),
                kind,
            });
        }
        self.store
            .put(&Path::from(key), PutPayload::from(sealed))
            .await
            .map_err(|source| Error::Write {
                location: self.location.clone(),
                key: key.to_owned(),
                source: Box::new(ServerError(source)),
            })?;
        Ok(written)
    }

    /// What is stored at `key` (an object of kind `kind`): its size and SHA-256, hashed as it
    /// streams in (never held whole); `None` if there is no object. Its size is checked first,
    /// as for a read.
    pub async fn stored(&self, kind: ObjectKind, key: &str) -> Result<Option<Written>> {
        let read = |source| Error::Read {
            location: self.location.clone(),
            key: key.to_owned(),
            source: Box::new(ServerError(source)),
        };
        let got = match self.store.get(&Path::from(key)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(read(e)),
        };
        let max = kind.max_bytes();
        let too_large = |size| Error::TooLarge {
            location: self.location.clone(),
            key: key.to_owned(),
            size,
            max,
            kind,
        };
        if got.meta.size > max {
            return Err(too_large(got.meta.size));
        }
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut size = 0_u64;
        let mut chunks = got.into_stream();
        while let Some(chunk) = chunks.try_next().await.map_err(read)? {
            size += chunk.len() as u64;
            if size > max {
                return Err(too_large(size));
            }
            digest.update(&chunk);
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.finish().as_ref());
        Ok(Some(Written { size, sha256 }))
    }

    /// The names of the folders directly under `prefix` (one list call, no objects read).
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&Path::from(prefix)))
            .await
            .map_err(|source| Error::List {
                location: self.location.clone(),
                prefix: prefix.to_owned(),
                source: Box::new(ServerError(source)),
            })?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// Deletes the object at `key`; one already gone is fine.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(Error::Delete {
                location: self.location.clone(),
                key: key.to_owned(),
                source: Box::new(ServerError(source)),
            }),
        }
    }

    /// Deletes every object under `prefix`, as they are listed.
    pub async fn delete_under(&self, prefix: &str) -> Result<()> {
        let listed = self
            .store
            .list(Some(&Path::from(prefix)))
            .map_ok(|m| m.location)
            .boxed();
        self.store
            .delete_stream(listed)
            .try_for_each(|_| futures::future::ready(Ok(())))
            .await
            .map_err(|source| Error::Delete {
                location: self.location.clone(),
                key: prefix.to_owned(),
                source: Box::new(ServerError(source)),
            })
    }

    fn missing(&self, key: &str) -> Error {
        Error::Missing {
            location: self.location.clone(),
            key: key.to_owned(),
        }
    }
}

/// The bytes of the object of kind `kind` at `key` in `store` (location `location`, for
/// messages), as stored; `None` if there is none. Its size is checked before its body is read:
/// a larger object than its kind may be is refused unread, and a body longer than the server
/// announced is refused as soon as it passes the limit.
pub async fn read_bounded(
    store: &dyn ObjectStore,
    location: &str,
    kind: ObjectKind,
    key: &str,
) -> Result<Option<Bytes>> {
    let read = |source| Error::Read {
        location: location.to_owned(),
        key: key.to_owned(),
        source: Box::new(ServerError(source)),
    };
    let too_large = |size| Error::TooLarge {
        location: location.to_owned(),
        key: key.to_owned(),
        size,
        max: kind.max_bytes(),
        kind,
    };
    let got = match store.get(&Path::from(key)).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(read(e)),
    };
    let max = kind.max_bytes();
    if got.meta.size > max {
        // Dropping the result closes the body unread.
        return Err(too_large(got.meta.size));
    }
    // At most `max` (checked above), so the capacity is bounded too.
    let mut body = Vec::with_capacity(usize::try_from(got.meta.size).unwrap_or(0));
    let mut chunks = got.into_stream();
    while let Some(chunk) = chunks.try_next().await.map_err(read)? {
        let size = (body.len() + chunk.len()) as u64;
        if size > max {
            return Err(too_large(size));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(Bytes::from(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{BackupKeys, limits};
    use crate::model::{BackupName, ResourceKey, ResourceKeys};
    use object_store::memory::InMemory;
    use object_store::{
        GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutResult,
    };
    use std::sync::atomic::{AtomicBool, Ordering};

    fn seal(byte: u8) -> ObjectSeal {
        ObjectSeal::new(&ResourceKeys::new(vec![ResourceKey {
            version: 1,
            bytes: vec![byte; 32],
        }]))
        .expect("seal")
    }

    fn store_over(inner: Arc<dyn ObjectStore>) -> SealedStore {
        SealedStore::new(inner, "vault", seal(1))
    }

    fn items() -> Vec<IndexEntry> {
        vec![IndexEntry {
            item: crate::model::ItemRef {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                resource: "deployments".into(),
                namespace: "shop".into(),
                name: "web".into(),
            },
            part: BackupKeys::part("apps", "v1", "deployments", 0),
        }]
    }

    #[tokio::test]
    async fn values_round_trip_sealed_and_a_missing_object_is_none() {
        let memory = Arc::new(InMemory::new());
        let store = store_over(memory.clone());
        let keys = BackupKeys::new(&BackupName::new("nightly").expect("name"));
        let key = keys.absolute(&BackupKeys::index_part(0));
        let written = store.write(&key, &items()).await.expect("written");
        let stored = memory.get(&Path::from(key.as_str())).await.expect("stored");
        assert_eq!(stored.meta.size, written.size);
        assert_eq!(
            store.stored(ObjectKind::IndexPart, &key).await.expect("stored"),
            Some(written)
        );
        assert_eq!(
            store
                .stored(ObjectKind::IndexPart, "backups/none")
                .await
                .expect("none"),
            None
        );
        let raw = stored.bytes().await.expect("bytes");
        assert!(!raw.windows(4).any(|w| w == b"shop"), "sealed");

        let back: Vec<IndexEntry> = store.must_read(&key).await.expect("read");
        assert_eq!(back, items());
        let plain = store
            .must_read_bytes(ObjectKind::IndexPart, &key)
            .await
            .expect("bytes");
        assert_eq!(plain, items().encode());

        assert!(
            store
                .read::<Manifest>(&keys.manifest())
                .await
                .expect("read")
                .is_none()
        );
        let missing = store
            .must_read::<Manifest>(&keys.manifest())
            .await
            .expect_err("missing");
        assert!(missing.is_not_found());
        assert_eq!(
            missing.to_string(),
            "location vault: backups/nightly/manifest.pb is missing"
        );
        assert_eq!(store.folders("backups").await.expect("listed"), ["nightly"]);
        store.delete_under(keys.dir()).await.expect("deleted");
        assert!(store.read::<Vec<IndexEntry>>(&key).await.expect("read").is_none());
        store.delete(&key).await.expect("gone already is fine");
    }

    #[tokio::test]
    async fn an_object_moved_to_another_key_or_from_another_workspace_does_not_open() {
        let memory = Arc::new(InMemory::new());
        let store = store_over(memory.clone());
        store
            .write("backups/a/index/000000.pb", &items())
            .await
            .expect("written");
        let sealed = memory
            .get(&Path::from("backups/a/index/000000.pb"))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        memory
            .put(&Path::from("backups/b/index/000000.pb"), PutPayload::from(sealed))
            .await
            .expect("copied");
        let moved = store
            .read::<Vec<IndexEntry>>("backups/b/index/000000.pb")
            .await
            .expect_err("moved");
        assert_eq!(
            moved.to_string(),
            "location vault: backups/b/index/000000.pb does not open with the location's keys \
             (written for another location, or altered)"
        );
        let stranger = SealedStore::new(memory, "vault", seal(2));
        assert!(matches!(
            stranger
                .read::<Vec<IndexEntry>>("backups/a/index/000000.pb")
                .await,
            Err(Error::Open { .. })
        ));
    }

    /// An `InMemory` store that records whether an object's body was read.
    #[derive(Debug)]
    struct Watched {
        inner: InMemory,
        body_read: Arc<AtomicBool>,
    }

    impl std::fmt::Display for Watched {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Watched")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Watched {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
            let mut got = self.inner.get_opts(location, options).await?;
            let read = self.body_read.clone();
            let empty = GetResultPayload::Stream(futures::stream::empty().boxed());
            got.payload = match std::mem::replace(&mut got.payload, empty) {
                GetResultPayload::Stream(body) => GetResultPayload::Stream(
                    body.inspect(move |_| read.store(true, Ordering::SeqCst)).boxed(),
                ),
                other => other,
            };
            Ok(got)
        }

        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn an_oversized_object_is_refused_without_its_body_being_read() {
        let body_read = Arc::new(AtomicBool::new(false));
        let watched = Arc::new(Watched {
            inner: InMemory::new(),
            body_read: body_read.clone(),
        });
        let key = "backups/big/manifest.pb";
        let size = limits::MANIFEST_MAX + (1 << 20);
        let planted = vec![0_u8; usize::try_from(size).expect("fits")];
        watched
            .put(&Path::from(key), PutPayload::from(planted))
            .await
            .expect("planted");
        let store = store_over(watched);
        let refused = store.read::<Manifest>(key).await.expect_err("refused");
        assert!(!body_read.load(Ordering::SeqCst), "the body was read");
        assert_eq!(
            refused.to_string(),
            format!(
                "location vault: backups/big/manifest.pb is {size} bytes, more than the {} bytes a \
                 manifest may be",
                limits::MANIFEST_MAX
            )
        );

        // The same size is fine for nothing smaller: an index part over its own limit is refused
        // when written, before any PUT.
        let huge = vec![0_u8; usize::try_from(limits::INDEX_PART_MAX).expect("fits")];
        let refused = store
            .write_bytes(ObjectKind::IndexPart, "backups/big/index/000000.pb", &huge)
            .await
            .expect_err("refused");
        assert!(matches!(
            refused,
            Error::TooLarge {
                kind: ObjectKind::IndexPart,
                ..
            }
        ));
    }
}
