//! The bucket format: the one place that builds keys and encodes what Cairn writes into a
//! location. `proto/FORMAT.md` is the contract; a change here changes it in the same commit.
//!
//! - [`BackupKeys`], [`restore_items_part`], [`VolumeKeys`]: every key.
//! - [`limits`]: the largest object of each kind a reader accepts.
//! - [`SealedStore`]: the one way backup objects and restore reports are read (bounded, opened,
//!   decoded) and written (encoded, sealed); [`sealed_store::read_bounded`] for the volume
//!   repository, which seals with its own keys.
//! - [`PartWriter`], [`PartReader`]: object parts; [`ObjectSeal`]: the seal.
//! - [`keyring`]: a location's key versions; [`repository_key`]: the volume repository's master
//!   key, wrapped and re-wrapped.
//! - [`location`], [`provider`]: reaching a bucket.

#[cfg(test)]
mod fuzz;
pub mod keyring;
pub mod limits;
pub mod location;
mod parts;
pub mod provider;
pub mod repository_key;
mod sealed;
pub mod sealed_store;
pub mod server_error;
mod volume;

pub use limits::ObjectKind;
pub use location::{open as open_location, verify as verify_location};
pub use parts::{PartReader, PartWriter};
pub use sealed::{ObjectSeal, version_of as key_version_of};
pub use sealed_store::SealedStore;
pub use volume::{VOLUMES_DIR, VolumeDir, VolumeKeys};

use crate::model::BackupName;

/// Version written into every manifest; readers refuse newer ones.
pub const FORMAT_VERSION: u32 = 5;

/// Uncompressed bytes after which an object part is closed. Parts compress to far less, well
/// under the 64 MiB bound on any object Cairn writes, and one part is one PUT.
pub const PART_MAX_BYTES: usize = 8 << 20;

/// Entries per item-index part (about 100 bytes each).
pub const INDEX_PART_ENTRIES: usize = 10_000;

/// Top folder of all backups in a location.
pub const BACKUPS_DIR: &str = "backups";

const BACKUPS: &str = BACKUPS_DIR;
/// Top folder of restore reports in a location.
const RESTORES: &str = "restores";

/// Results per restore-items part.
pub const RESTORE_PART_ITEMS: usize = 10_000;

/// Key of part `seq` of restore `restore`'s item results: `restores/<restore>/items/<seq>.pb`.
pub fn restore_items_part(restore: &crate::model::RestoreName, seq: u32) -> String {
    format!("{RESTORES}/{restore}/items/{seq:06}.pb")
}

/// Keys of one backup's folder: `backups/<backup>/…`.
#[derive(Debug, Clone)]
pub struct BackupKeys {
    dir: String,
}

impl BackupKeys {
    /// The folder of `backup`.
    pub fn new(backup: &BackupName) -> Self {
        Self {
            dir: format!("{BACKUPS}/{backup}"),
        }
    }

    /// `backups/<backup>`.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The manifest's key relative to the folder.
    pub const MANIFEST: &str = "manifest.pb";

    /// The manifest, written last: `backups/<backup>/manifest.pb`.
    pub fn manifest(&self) -> String {
        self.absolute(Self::MANIFEST)
    }

    /// Object part `seq` of a resource type, relative to the folder:
    /// `resources/<group or "core">/<version>/<resource>/<seq>.jsonl.zst`.
    pub fn part(group: &str, version: &str, resource: &str, seq: u32) -> String {
        let group = if group.is_empty() { "core" } else { group };
        format!("resources/{group}/{version}/{resource}/{seq:06}.jsonl.zst")
    }

    /// Item-index part `seq`, relative to the folder: `index/<seq>.pb`.
    pub fn index_part(seq: u32) -> String {
        format!("index/{seq:06}.pb")
    }

    /// A key relative to the folder made absolute (relative to the location root).
    pub fn absolute(&self, relative: &str) -> String {
        format!("{}/{relative}", self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_format_md() {
        let keys = BackupKeys::new(&BackupName::new("nightly").expect("name"));
        assert_eq!(keys.manifest(), "backups/nightly/manifest.pb");
        assert_eq!(
            BackupKeys::part("", "v1", "configmaps", 3),
            "resources/core/v1/configmaps/000003.jsonl.zst"
        );
        assert_eq!(
            BackupKeys::part("apps", "v1", "deployments", 0),
            "resources/apps/v1/deployments/000000.jsonl.zst"
        );
        assert_eq!(
            keys.absolute(&BackupKeys::index_part(1)),
            "backups/nightly/index/000001.pb"
        );
    }
}
