//! The largest object of each kind Cairn reads from a location (`proto/FORMAT.md`, "Size
//! limits"), in one place. A reader checks an object's size before it reads the body, and refuses
//! a larger one unread: whoever can write into a bucket cannot make the hub or an agent hold an
//! object of any size in memory. Writers refuse to store what readers would refuse.
//!
//! Each limit is generous (several times what Cairn writes for the largest cluster it was tested
//! with) but finite; the figures are the stored (sealed, compressed) size.

use std::fmt;

/// A manifest: spec, status (resource types with their part keys, problems per item) and the
/// index-part keys. A cluster of a million objects writes a few MiB.
pub const MANIFEST_MAX: u64 = 64 << 20;

/// An item-index part: [`super::INDEX_PART_ENTRIES`] entries of at most a few hundred bytes
/// (names are at most 253 characters): about 3 MiB in the worst case.
pub const INDEX_PART_MAX: u64 = 32 << 20;

/// An object part, compressed and sealed: [`super::PART_MAX_BYTES`] of JSON and the object that
/// crossed it, compressed (JSON shrinks about 8×; incompressible data grows by a few bytes).
pub const OBJECT_PART_MAX: u64 = 64 << 20;

/// An object part once decompressed: [`super::PART_MAX_BYTES`] of JSON plus the last object (the
/// API server refuses objects over a few MiB). A part expanding further is refused as it is read.
pub const OBJECT_PART_PLAIN_MAX: u64 = 64 << 20;

/// One object of a part (one JSON line) once decompressed: the API server refuses request bodies
/// over 3 MiB and etcd objects over 1.5 MiB, so real objects are far smaller. A longer line is
/// refused as it is read, before it is parsed (a parsed JSON value takes up to 16 times its text).
pub const OBJECT_PART_LINE_MAX: u64 = 16 << 20;

/// A volume blob once decompressed: a chunk (4 MiB at most; 8 MiB in repositories made before
/// 2026-11) or a directory's tree (about 100 bytes an entry: over 600,000 entries). A compressed
/// blob whose index entry announces more is refused before a buffer is made for it.
pub const VOLUME_BLOB_PLAIN_MAX: u64 = 64 << 20;

/// A restore-items part: [`super::RESTORE_PART_ITEMS`] results, each an item and a message.
pub const RESTORE_ITEMS_MAX: u64 = 64 << 20;

/// A volume repository's `config`: a few numbers.
pub const VOLUME_CONFIG_MAX: u64 = 64 << 10;

/// A volume repository's sealed master key.
pub const VOLUME_KEY_MAX: u64 = 64 << 10;

/// One version of a location's keyring: two sealed keys and a time.
pub const KEYRING_VERSION_MAX: u64 = 64 << 10;

/// A volume pack: closed at 8 MiB, plus its last blob (4 MiB at most; 8 MiB in repositories
/// made before 2026-11) and its header.
pub const VOLUME_PACK_MAX: u64 = 64 << 20;

/// A volume index file: written every 50,000 blobs (about 3 MiB).
pub const VOLUME_INDEX_MAX: u64 = 64 << 20;

/// A volume snapshot: a root tree id, its attributes, host, path, parent and counts.
pub const VOLUME_SNAPSHOT_MAX: u64 = 1 << 20;

/// A prune plan: the ids of the packs it found unused (64 MiB is a million packs, 8 TiB).
pub const VOLUME_PRUNE_PLAN_MAX: u64 = 64 << 20;

/// The kinds of object in a location, each with its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `backups/<backup>/manifest.pb`.
    Manifest,
    /// `backups/<backup>/index/<seq>.pb`.
    IndexPart,
    /// `backups/<backup>/resources/…/<seq>.jsonl.zst`.
    ObjectPart,
    /// `restores/<restore>/items/<seq>.pb`.
    RestoreItems,
    /// `keyring/<version>`.
    KeyringVersion,
    /// `volumes/config`.
    VolumeConfig,
    /// `volumes/keys/<id>`.
    VolumeKey,
    /// `volumes/data/<xx>/<pack>`.
    VolumePack,
    /// `volumes/index/<id>`.
    VolumeIndex,
    /// `volumes/snapshots/<id>`.
    VolumeSnapshot,
    /// `volumes/prune/<id>`.
    VolumePrunePlan,
}

impl ObjectKind {
    /// The largest object of this kind a reader accepts, in bytes as stored.
    pub const fn max_bytes(self) -> u64 {
        match self {
            Self::Manifest => MANIFEST_MAX,
            Self::IndexPart => INDEX_PART_MAX,
            Self::ObjectPart => OBJECT_PART_MAX,
            Self::RestoreItems => RESTORE_ITEMS_MAX,
            Self::KeyringVersion => KEYRING_VERSION_MAX,
            Self::VolumeConfig => VOLUME_CONFIG_MAX,
            Self::VolumeKey => VOLUME_KEY_MAX,
            Self::VolumePack => VOLUME_PACK_MAX,
            Self::VolumeIndex => VOLUME_INDEX_MAX,
            Self::VolumeSnapshot => VOLUME_SNAPSHOT_MAX,
            Self::VolumePrunePlan => VOLUME_PRUNE_PLAN_MAX,
        }
    }
}

/// With an article, for messages: "a manifest".
impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Manifest => "a manifest",
            Self::IndexPart => "an index part",
            Self::ObjectPart => "an object part",
            Self::RestoreItems => "a restore-items part",
            Self::KeyringVersion => "a keyring version",
            Self::VolumeConfig => "a repository config",
            Self::VolumeKey => "a repository key file",
            Self::VolumePack => "a pack",
            Self::VolumeIndex => "an index file",
            Self::VolumeSnapshot => "a snapshot",
            Self::VolumePrunePlan => "a prune plan",
        })
    }
}
