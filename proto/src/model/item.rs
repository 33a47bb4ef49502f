//! Items: the Kubernetes objects a backup or restore handles, and what happened to each.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::{GroupKind, OperationId};

/// One Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemRef {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource (plural).
    pub resource: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ItemRef {
    /// `Kind.group namespace/name`, or `Kind name` for core cluster-scoped objects.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if self.namespace.is_empty() {
            write!(f, " {}", self.name)
        } else {
            write!(f, " {}/{}", self.namespace, self.name)
        }
    }
}

impl ItemRef {
    /// The object's group and kind.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group.clone(), self.kind.clone())
    }
}

/// What happened to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Written to the location.
    BackedUp,
    /// Created in the target.
    Created,
    /// Existed; overwritten.
    Updated,
    /// Existed; left alone (a warning).
    SkippedExists,
    /// Not restored: a controller recreates it.
    LeftToController,
    /// Failed; see the message.
    Failed,
    /// Dry run: would be created.
    WouldCreate,
    /// Not restored: it would grant power over the target; restored only when the restore asks
    /// for sensitive objects.
    SkippedSensitive,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BackedUp => "backed up",
            Self::Created => "created",
            Self::Updated => "updated",
            Self::SkippedExists => "skipped (exists)",
            Self::LeftToController => "left to controller",
            Self::Failed => "failed",
            Self::WouldCreate => "would create",
            Self::SkippedSensitive => "skipped (sensitive)",
        })
    }
}

/// An item and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The object.
    pub item: ItemRef,
    /// What happened.
    pub outcome: Outcome,
    /// The warning or error, for the user; empty when there is nothing to say.
    pub message: String,
}

/// The objects of one resource type in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSummary {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource (plural).
    pub resource: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Objects backed up.
    pub count: u64,
    /// Keys of the object parts, relative to the backup folder.
    pub parts: Vec<String>,
    /// Kinds that its objects reference: restore creates those first.
    pub depends_on: Vec<GroupKind>,
}

impl ResourceSummary {
    /// The type's group and kind.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group.clone(), self.kind.clone())
    }
}

/// One entry of a backup's item index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The object.
    pub item: ItemRef,
    /// The part that holds it, relative to the backup folder.
    pub part: String,
}

/// How far an operation has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The operation.
    pub operation: OperationId,
    /// Items done.
    pub items_done: u64,
    /// Items in all, `0` while unknown.
    pub items_total: u64,
    /// Bytes done.
    pub bytes_done: u64,
    /// What is being worked on.
    pub current: String,
    /// Volume data: files moved so far.
    pub files_done: u64,
}

impl Progress {
    /// Nothing done yet of `operation`.
    pub fn new(operation: OperationId) -> Self {
        Self {
            operation,
            items_done: 0,
            items_total: 0,
            bytes_done: 0,
            current: String::new(),
            files_done: 0,
        }
    }
}

/// What a watcher of a running operation sees: its latest progress and its phase (a final phase
/// ends the watch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// Latest progress.
    pub progress: Progress,
    /// Current phase.
    pub phase: super::Phase,
}
