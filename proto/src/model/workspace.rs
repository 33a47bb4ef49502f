//! Workspaces: groups of clusters that share backup locations.

use serde::{Deserialize, Serialize};

use super::{ClusterName, LocationName, Timestamp, WorkspaceName};

/// The workspace every hub has; it holds every cluster not placed in another.
pub const DEFAULT_WORKSPACE: &str = "default";

/// A group of clusters sharing locations. A cluster is in exactly one workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Its name.
    pub name: WorkspaceName,
    /// Where backups go when a request names no location.
    pub default_location: Option<LocationName>,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// Its clusters (filled by the hub when it answers; not stored in the record).
    pub clusters: Vec<ClusterName>,
}
