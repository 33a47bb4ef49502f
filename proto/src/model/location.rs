//! A backup location as handed to an agent: an `object_store` URL and its options.

use std::collections::BTreeMap;
use std::fmt;

use super::LocationName;

/// A backup location. Options may hold credentials: `Debug` shows their keys only.
#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    /// Its name.
    pub name: LocationName,
    /// `object_store` URL (`file:///…`, `s3://bucket/prefix`, …).
    pub url: String,
    /// `object_store` options (endpoint, region, credentials…).
    pub options: BTreeMap<String, String>,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}
