//! The hub's way into a location's objects — manifests, index parts, restore reports — sealed
//! with the workspace key: a [`SealedStore`] (`proto/src/format/sealed_store.rs`), which reads,
//! writes, bounds and opens them.

use cairn_proto::format::{self, ObjectSeal, SealedStore};
use cairn_proto::model::StoredLocation;

use super::{Hub, Result};

impl Hub {
    /// The objects of location `stored`.
    pub(super) fn bucket(&self, stored: &StoredLocation) -> Result<SealedStore> {
        let location = self.inner.locations.resolve(stored)?;
        let key = self.inner.locations.repository_key(&stored.spec.workspace)?;
        Ok(SealedStore::new(
            format::open_location(&location)?,
            &stored.spec.name,
            ObjectSeal::new(&key).map_err(crate::location::Error::RepositoryKey)?,
        ))
    }
}
