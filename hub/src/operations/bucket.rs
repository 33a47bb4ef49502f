//! Reading what agents wrote into a location — manifests, index parts, restore reports — opened
//! with the workspace key (`proto/FORMAT.md`).

use cairn_proto::convert::Wire;
use cairn_proto::format::{self, ObjectSeal};
use cairn_proto::model::{LocationName, StoredLocation};
use object_store::{ObjectStore, ObjectStoreExt, path::Path};
use std::sync::Arc;

use super::{Error, Hub, Result};

/// A location's objects, as the hub reads them.
pub(super) struct Bucket {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) location: LocationName,
    seal: ObjectSeal,
}

impl Bucket {
    /// The object at `key`, opened and decoded; `None` if there is none.
    pub(super) async fn read<T: Wire>(&self, key: &str) -> Result<Option<T>> {
        let bytes = match self.store.get(&Path::from(key)).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            r => r
                .map_err(|e| Error::bucket(&self.location, "read", key, e))?
                .bytes()
                .await
                .map_err(|e| Error::bucket(&self.location, "read", key, e))?,
        };
        let plain = self.seal.open(key, &bytes).map_err(|source| Error::Sealed {
            location: self.location.clone(),
            key: key.to_owned(),
            source,
        })?;
        T::decode(&plain).map(Some).map_err(|source| Error::Corrupt {
            location: self.location.clone(),
            key: key.to_owned(),
            source,
        })
    }

    /// [`Bucket::read`] of an object that must exist.
    pub(super) async fn must_read<T: Wire>(&self, key: &str) -> Result<T> {
        self.read(key).await?.ok_or_else(|| {
            let missing = object_store::Error::NotFound {
                path: key.to_owned(),
                source: "missing".into(),
            };
            Error::bucket(&self.location, "read", key, missing)
        })
    }
}

impl Hub {
    /// The objects of location `stored`.
    pub(super) fn bucket(&self, stored: &StoredLocation) -> Result<Bucket> {
        let location = self.inner.locations.resolve(stored)?;
        let key = self.inner.locations.repository_key(&stored.spec.workspace)?;
        Ok(Bucket {
            store: format::open_location(&location)?,
            location: stored.spec.name.clone(),
            seal: ObjectSeal::new(&key).map_err(crate::location::Error::RepositoryKey)?,
        })
    }
}
