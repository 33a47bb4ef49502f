//! A backup: what to take from a cluster, and what came of it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{
    BackupName, ClusterName, ItemResult, LabelSelector, LocationName, Phase, ResourceSummary, ScheduleName,
    Timestamp, VolumeResult, WorkspaceName,
};

/// Which namespaces an operation covers: all, minus `exclude`, or only `include` minus `exclude`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceFilter {
    /// Only these (empty: all).
    pub include: Vec<String>,
    /// Never these.
    pub exclude: Vec<String>,
}

impl NamespaceFilter {
    /// Whether objects of `namespace` are covered.
    pub fn covers(&self, namespace: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|n| n == namespace))
            && !self.exclude.iter().any(|n| n == namespace)
    }
}

/// Which cluster-scoped objects a backup takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClusterResources {
    /// Those the selected namespaced objects need: their namespaces, PVs, the CRDs of their
    /// custom resources, the ClusterRoles their RoleBindings bind.
    #[default]
    Auto,
    /// All of them.
    Always,
    /// None.
    Never,
}

/// What a backup takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSpec {
    /// The backup's name.
    pub name: BackupName,
    /// The source cluster.
    pub cluster: ClusterName,
    /// The location; `None` means the default one.
    pub location: Option<LocationName>,
    /// Namespaces covered.
    pub namespaces: NamespaceFilter,
    /// Resources taken (`plural[.group]` or `plural.version[.group]`; empty: all).
    pub include_resources: Vec<String>,
    /// Resources never taken.
    pub exclude_resources: Vec<String>,
    /// Only objects with matching labels.
    pub selector: Option<LabelSelector>,
    /// Cluster-scoped objects taken.
    pub cluster_resources: ClusterResources,
    /// How long the backup is kept; `None`: forever.
    #[serde(with = "super::time::duration_text::opt")]
    pub ttl: Option<Duration>,
    /// Also the data of selected PersistentVolumeClaims.
    #[serde(default)]
    pub volumes: bool,
    /// Where it came from; set by the hub.
    #[serde(flatten)]
    pub origin: BackupOrigin,
}

impl BackupSpec {
    /// When it expires, if it has a TTL and a creation time.
    pub fn expires(&self) -> Option<Timestamp> {
        let created = std::time::SystemTime::from(self.origin.created?);
        Some((created + self.ttl?).into())
    }
}

/// What the hub records about a backup's making, beyond the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOrigin {
    /// When the hub accepted it.
    pub created: Option<Timestamp>,
    /// The workspace of its location.
    pub workspace: Option<WorkspaceName>,
    /// The schedule that made it.
    pub schedule: Option<ScheduleName>,
    /// The workspace backup it is part of.
    pub group: Option<BackupName>,
    /// Run by its cluster's agent on its own, from its standing orders: the hub did not start
    /// the slot (it was down, or the link was).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
}

/// What came of a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStatus {
    /// Where it stands.
    pub phase: Phase,
    /// When the agent started it.
    pub started: Option<Timestamp>,
    /// When it ended.
    pub finished: Option<Timestamp>,
    /// Objects written.
    pub items: u64,
    /// Bytes written to the location (compressed).
    pub bytes: u64,
    /// Per resource type: counts and parts.
    pub resources: Vec<ResourceSummary>,
    /// Items that failed or carry a warning, with the cause.
    pub problems: Vec<ItemResult>,
    /// Why the whole backup failed, if it did.
    pub error: Option<String>,
    /// The agent that wrote it.
    pub agent_version: String,
    /// The source cluster's Kubernetes version.
    pub kubernetes_version: String,
    /// With `volumes`: one per selected claim.
    #[serde(default)]
    pub volumes: Vec<VolumeResult>,
    /// Run by its agent on its own into the site's spool: not in its location yet (the agent
    /// ships it there when it can reach it).
    #[serde(default)]
    pub spooled: bool,
}

/// A backup as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// What was asked.
    pub spec: BackupSpec,
    /// What came of it.
    pub status: BackupStatus,
}

/// The manifest a finished backup leaves in its folder: the backup plus the keys of its item
/// index parts. Written last; see `proto/FORMAT.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The backup.
    pub backup: Backup,
    /// Keys of its index parts, relative to the backup folder.
    pub index: Vec<String>,
    /// Every object part and index part as stored (empty in manifests before format 5).
    pub objects: Vec<StoredObject>,
}

/// One object of a backup as its writer stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key, relative to the backup folder.
    pub key: String,
    /// Bytes stored (sealed).
    pub size: u64,
    /// SHA-256 of the bytes stored.
    pub sha256: [u8; 32],
}

/// Which backups to list; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupQuery {
    /// Of this cluster.
    pub cluster: Option<ClusterName>,
    /// In this workspace.
    pub workspace: Option<WorkspaceName>,
    /// Whose namespace filter covers this namespace.
    pub namespace: Option<String>,
    /// In this phase.
    pub phase: Option<Phase>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Made by this schedule.
    pub schedule: Option<ScheduleName>,
    /// Written to this location.
    pub location: Option<LocationName>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_filter_includes_then_excludes() {
        let all = NamespaceFilter::default();
        assert!(all.covers("anything"));
        let f = NamespaceFilter {
            include: vec!["a".into(), "b".into()],
            exclude: vec!["b".into()],
        };
        assert!(f.covers("a"));
        assert!(!f.covers("b"));
        assert!(!f.covers("c"));
    }
}
