//! The hub's way into a location's objects — manifests, index parts, restore reports — sealed
//! with the location's resource keys (`crate::keyring`): a [`SealedStore`]
//! (`proto/src/format/sealed_store.rs`), which reads, writes, bounds and opens them.

use cairn_proto::format::{self, ObjectSeal, SealedStore};
use cairn_proto::model::StoredLocation;

use super::{Hub, Result};

impl Hub {
    /// The objects of location `stored`.
    pub(super) fn bucket(&self, stored: &StoredLocation) -> Result<SealedStore> {
        let location = self.inner.locations.resolve(stored)?;
        let seal = ObjectSeal::new(&self.inner.locations.resource_keys(stored)?).map_err(|source| {
            crate::location::Error::Keyring {
                location: stored.spec.name.clone(),
                source: source.into(),
            }
        })?;
        Ok(SealedStore::new(
            format::open_location(&location)?,
            &stored.spec.name,
            seal,
        ))
    }
}
