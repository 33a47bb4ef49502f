//! A restore: which backup, into which cluster, how; and what came of it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    BackupName, ClusterName, ItemResult, NamespaceFilter, Outcome, Phase, RestoreName, Timestamp,
    VolumeResult,
};

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
    /// Also restore objects that grant power over the target (RBAC granting everything,
    /// escalation, binding or impersonation; admission webhooks; APIServices); by default they
    /// are skipped and named.
    #[serde(default)]
    pub include_sensitive: bool,
    /// How long claims whose data is restored may take to be bound and mounted by a pod placed
    /// on a node; `None`: [`RestoreSpec::DEFAULT_VOLUME_WAIT`].
    #[serde(with = "super::time::duration_text::opt", default)]
    pub volume_wait: Option<Duration>,
    /// Restore what is intact of a damaged backup (objects missing, altered or swapped),
    /// reporting the items of the damaged objects as failed; by default a damaged backup is
    /// refused before anything changes.
    #[serde(default)]
    pub partial: bool,
    /// Restored volume files keep setuid and setgid bits (dropped by default: a restore must not
    /// hand out privilege); like `include_sensitive`, a workspace admin's to ask.
    #[serde(default)]
    pub keep_setid: bool,
}

/// One `--namespace-mapping` entry, `SRC:DST`, as the CLIs take it.
pub fn parse_namespace_mapping(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((src, dst)) if !src.is_empty() && !dst.is_empty() => Ok((src.to_owned(), dst.to_owned())),
        _ => Err(format!("namespace mapping {text:?} is not src:dst")),
    }
}

impl RestoreSpec {
    /// How long restored claims wait to be bound and mounted, unless the restore says.
    pub const DEFAULT_VOLUME_WAIT: Duration = Duration::from_secs(600);

    /// How long restored claims may take to be bound and mounted.
    pub fn volume_wait(&self) -> Duration {
        self.volume_wait.unwrap_or(Self::DEFAULT_VOLUME_WAIT)
    }

    /// The namespace an object of backup namespace `ns` lands in.
    pub fn map_namespace<'a>(&'a self, ns: &'a str) -> &'a str {
        self.namespace_mapping.get(ns).map_or(ns, String::as_str)
    }
}

/// How many items of a restore ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    /// Created in the target.
    pub created: u64,
    /// Overwritten.
    pub updated: u64,
    /// Existed, left alone.
    pub skipped_exists: u64,
    /// Left to the target's controllers.
    pub left_to_controller: u64,
    /// Failed.
    pub failed: u64,
    /// Dry run: would be created.
    pub would_create: u64,
    /// Not restored: they would grant power over the target.
    #[serde(default)]
    pub skipped_sensitive: u64,
}

impl OutcomeCounts {
    /// Counts one more item ending with `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        let n = match outcome {
            Outcome::Created => &mut self.created,
            Outcome::Updated => &mut self.updated,
            Outcome::SkippedExists => &mut self.skipped_exists,
            Outcome::LeftToController => &mut self.left_to_controller,
            Outcome::Failed => &mut self.failed,
            Outcome::WouldCreate => &mut self.would_create,
            Outcome::SkippedSensitive => &mut self.skipped_sensitive,
            Outcome::BackedUp => return,
        };
        *n += 1;
    }

    /// Items counted.
    pub fn total(&self) -> u64 {
        self.created
            + self.updated
            + self.skipped_exists
            + self.left_to_controller
            + self.failed
            + self.would_create
            + self.skipped_sensitive
    }
}

/// What came of a restore. Every item's result is in the location ([`RestoreStatus::item_parts`]);
/// the status keeps counts and the items that need a user's eye.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStatus {
    /// Where it stands.
    pub phase: Phase,
    /// When the agent started it.
    pub started: Option<Timestamp>,
    /// When it ended.
    pub finished: Option<Timestamp>,
    /// Items per outcome.
    pub counts: OutcomeCounts,
    /// Failed and skipped items, with the reason (the first [`RestoreStatus::MAX_PROBLEMS`]).
    pub problems: Vec<ItemResult>,
    /// Keys of the item-result parts, from the location root, in restore order.
    pub item_parts: Vec<String>,
    /// Why the whole restore failed, if it did.
    pub error: Option<String>,
    /// Claims whose data was written back.
    #[serde(default)]
    pub volumes: Vec<VolumeResult>,
}

impl RestoreStatus {
    /// Most problems kept in the status; all are in the item parts.
    pub const MAX_PROBLEMS: usize = 1000;
}

/// A restore as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    /// What was asked.
    pub spec: RestoreSpec,
    /// What came of it.
    pub status: RestoreStatus,
}
