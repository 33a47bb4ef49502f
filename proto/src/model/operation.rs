//! Operation ids: what the hub and agents call a running backup, restore, prune or volume task.
//! One type, printed the same everywhere (logs, `Watch`, the CLI): `backup/<name>`,
//! `restore/<name>`, `prune/<location>`, and `<backup or restore>/<namespace>/<claim>` for the
//! volume task of one claim.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::{BackupName, LocationName, RestoreName};

/// A running operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum OperationId {
    /// A backup: `backup/<name>`. Backups and restores may share names.
    Backup(BackupName),
    /// A restore: `restore/<name>`.
    Restore(RestoreName),
    /// A prune of a location's volume repository: `prune/<location>`.
    Prune(LocationName),
    /// One claim's volume data moved by a node agent for a backup or restore.
    Volume(VolumeTaskId),
}

/// A node agent's task: one claim's data for one backup or restore,
/// `<operation>/<namespace>/<claim>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeTaskId {
    /// The backup or restore it is part of.
    pub operation: Box<OperationId>,
    /// The claim's namespace.
    pub namespace: String,
    /// The claim.
    pub claim: String,
}

/// Text that is not an operation id.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid operation id {0:?}: expected backup/<name>, restore/<name>, prune/<location> or <backup or restore>/<namespace>/<claim>"
)]
pub struct InvalidOperation(String);

impl From<BackupName> for OperationId {
    fn from(name: BackupName) -> Self {
        Self::Backup(name)
    }
}

impl From<RestoreName> for OperationId {
    fn from(name: RestoreName) -> Self {
        Self::Restore(name)
    }
}

impl From<VolumeTaskId> for OperationId {
    fn from(id: VolumeTaskId) -> Self {
        Self::Volume(id)
    }
}

impl VolumeTaskId {
    /// The task of claim `namespace/claim` for `operation` (a backup or a restore).
    pub fn new(operation: impl Into<OperationId>, namespace: &str, claim: &str) -> Self {
        Self {
            operation: Box::new(operation.into()),
            namespace: namespace.to_owned(),
            claim: claim.to_owned(),
        }
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backup(name) => write!(f, "backup/{name}"),
            Self::Restore(name) => write!(f, "restore/{name}"),
            Self::Prune(location) => write!(f, "prune/{location}"),
            Self::Volume(task) => task.fmt(f),
        }
    }
}

impl fmt::Display for VolumeTaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.operation, self.namespace, self.claim)
    }
}

impl std::str::FromStr for OperationId {
    type Err = InvalidOperation;

    fn from_str(s: &str) -> Result<Self, InvalidOperation> {
        let invalid = || InvalidOperation(s.to_owned());
        let parts: Vec<&str> = s.split('/').collect();
        let named = |kind: &str, name: &str| -> Option<Self> {
            match kind {
                "backup" => BackupName::new(name).ok().map(Self::Backup),
                "restore" => RestoreName::new(name).ok().map(Self::Restore),
                _ => None,
            }
        };
        match parts.as_slice() {
            ["prune", location] => LocationName::new(*location)
                .map(Self::Prune)
                .map_err(|_| invalid()),
            [kind, name] => named(kind, name).ok_or_else(invalid),
            [kind, name, namespace, claim] if !namespace.is_empty() && !claim.is_empty() => {
                let operation = named(kind, name).ok_or_else(invalid)?;
                Ok(Self::Volume(VolumeTaskId::new(operation, namespace, claim)))
            }
            _ => Err(invalid()),
        }
    }
}

impl std::str::FromStr for VolumeTaskId {
    type Err = InvalidOperation;

    fn from_str(s: &str) -> Result<Self, InvalidOperation> {
        match s.parse()? {
            OperationId::Volume(task) => Ok(task),
            _ => Err(InvalidOperation(s.to_owned())),
        }
    }
}

impl TryFrom<String> for OperationId {
    type Error = InvalidOperation;
    fn try_from(s: String) -> Result<Self, InvalidOperation> {
        s.parse()
    }
}

impl From<OperationId> for String {
    fn from(id: OperationId) -> String {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back() {
        let backup = OperationId::Backup(BackupName::new("nightly").expect("valid"));
        let restore = OperationId::Restore(RestoreName::new("nightly").expect("valid"));
        let prune = OperationId::Prune(LocationName::new("eu-s3").expect("valid"));
        let volume = OperationId::Volume(VolumeTaskId::new(backup.clone(), "shop", "data-db-0"));
        for (id, text) in [
            (&backup, "backup/nightly"),
            (&restore, "restore/nightly"),
            (&prune, "prune/eu-s3"),
            (&volume, "backup/nightly/shop/data-db-0"),
        ] {
            assert_eq!(id.to_string(), text);
            assert_eq!(&text.parse::<OperationId>().expect("valid"), id);
        }
        assert_ne!(
            backup, restore,
            "a backup and a restore of one name are two operations"
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        for text in [
            "",
            "nightly",
            "backup/",
            "backup/Nightly",
            "snapshot/x",
            "prune/eu/x",
            "backup/x/shop",
            "backup/x/shop/",
            "prune/x/shop/claim",
            "backup/x/shop/claim/more",
        ] {
            let e = text.parse::<OperationId>().expect_err("refused");
            assert!(e.to_string().contains(&format!("{text:?}")), "{e}");
        }
        assert!("backup/x".parse::<VolumeTaskId>().is_err());
    }
}
