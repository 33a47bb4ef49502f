//! Backup locations the hub knows. For now the one default location from the configuration
//! (the workspaces and locations issue adds named, verified, workspace-scoped ones).

use cairn_proto::model::{Location, LocationName};

/// The name of the location every hub has.
pub const DEFAULT: &str = "default";

/// The hub's locations.
#[derive(Debug, Clone)]
pub struct Locations {
    default: Location,
}

impl Locations {
    /// With `default_url` as the `default` location.
    pub fn new(default_url: String) -> Self {
        let name = LocationName::new(DEFAULT).unwrap_or_else(|_| unreachable!("\"default\" is a valid name"));
        Self {
            default: Location {
                name,
                url: default_url,
                options: Default::default(),
            },
        }
    }

    /// The location called `name`, or the default one for `None`.
    pub fn resolve(&self, name: Option<&LocationName>) -> Option<&Location> {
        match name {
            None => Some(&self.default),
            Some(n) if *n == self.default.name => Some(&self.default),
            Some(_) => None,
        }
    }
}
