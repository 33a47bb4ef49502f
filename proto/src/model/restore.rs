//! A restore: which backup, into which cluster, how; and what came of it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{BackupName, ClusterName, ItemResult, NamespaceFilter, Phase, RestoreName, Timestamp};

/// What to do with an object that already exists in the target cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExistingPolicy {
    /// Leave it, and report a warning.
    #[default]
    Skip,
    /// Overwrite it with the backed-up version.
    Update,
}

/// What a restore does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSpec {
    /// The restore's name.
    pub name: RestoreName,
    /// The backup restored.
    pub backup: BackupName,
    /// The target cluster; `None`: the backup's own.
    pub target_cluster: Option<ClusterName>,
    /// Namespaces restored (by their name in the backup).
    pub namespaces: NamespaceFilter,
    /// Namespace renames, backup name → target name.
    pub namespace_mapping: BTreeMap<String, String>,
    /// What to do with objects that exist already.
    pub existing_policy: ExistingPolicy,
    /// Keep Services' node ports (otherwise the target allocates new ones).
    pub preserve_node_ports: bool,
    /// Plan only: report what would happen, change nothing.
    pub dry_run: bool,
}

impl RestoreSpec {
    /// The namespace an object of backup namespace `ns` lands in.
    pub fn map_namespace<'a>(&'a self, ns: &'a str) -> &'a str {
        self.namespace_mapping.get(ns).map_or(ns, String::as_str)
    }
}

/// What came of a restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStatus {
    /// Where it stands.
    pub phase: Phase,
    /// When the agent started it.
    pub started: Option<Timestamp>,
    /// When it ended.
    pub finished: Option<Timestamp>,
    /// Every item, in restore order, with its outcome.
    pub items: Vec<ItemResult>,
    /// Why the whole restore failed, if it did.
    pub error: Option<String>,
}

/// A restore as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    /// What was asked.
    pub spec: RestoreSpec,
    /// What came of it.
    pub status: RestoreStatus,
}
