//! The hub's way into a location's objects — manifests, index parts, restore reports — sealed
//! with the workspace's resource key (format 2's, under its repository key, still read): a [`SealedStore`] (`proto/src/format/sealed_store.rs`), which reads,
//! writes, bounds and opens them.

use cairn_proto::format::{self, ObjectSeal, SealedStore};
use cairn_proto::model::StoredLocation;

use super::{Hub, Result};

impl Hub {
    /// The objects of location `stored`.
    pub(super) fn bucket(&self, stored: &StoredLocation) -> Result<SealedStore> {
        let location = self.inner.locations.resolve(stored)?;
        let workspace = &stored.spec.workspace;
        let (resources, repository) = (
            self.inner.locations.resource_key(workspace)?,
            self.inner.locations.repository_key(workspace)?,
        );
        let seal = ObjectSeal::new(&resources)
            .and_then(|seal| seal.reading_format_2(&repository))
            .map_err(crate::location::Error::RepositoryKey)?;
        Ok(SealedStore::new(
            format::open_location(&location)?,
            &stored.spec.name,
            seal,
        ))
    }
}
