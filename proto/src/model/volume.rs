//! Volume data: what the cluster agent asks a node agent to move, and what came of it.

use serde::{Deserialize, Serialize};

use super::{ClusterName, Location, Timestamp, VolumeTaskId};

/// One PersistentVolumeClaim's data in a backup (the snapshot it went to) or a restore (the
/// snapshot written into the claim's new volume).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeResult {
    /// The claim's namespace: the backup's in a backup, the target's in a restore.
    pub namespace: String,
    /// The claim.
    pub claim: String,
    /// The PersistentVolume it was bound to.
    pub volume: String,
    /// The node whose agent moved the data.
    pub node: String,
    /// The pod whose mount was read or written.
    pub pod: String,
    /// The volume-repository snapshot.
    pub snapshot: String,
    /// Files in the snapshot.
    pub files: u64,
    /// File bytes in the snapshot.
    pub bytes: u64,
    /// Backup: bytes read (unchanged files are not read again).
    pub bytes_read: u64,
    /// Backup: stored bytes of new chunks.
    pub bytes_added: u64,
    /// Why this claim's data was not moved.
    pub error: Option<String>,
    /// When the node agent began moving the data: its volume found (mounted, for a restore).
    pub started: Option<Timestamp>,
    /// When it ended, moved or not.
    pub finished: Option<Timestamp>,
}

impl VolumeResult {
    /// `namespace/claim`.
    pub fn claim_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.claim)
    }
}

/// A workspace's volume-repository key: 32 bytes the hub derives and hands agents with their
/// instructions. Neither `Debug` nor serialisation shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RepositoryKey(pub Vec<u8>);

impl std::fmt::Debug for RepositoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepositoryKey(..)")
    }
}

/// One version of a location's resource-backup key: 32 bytes the hub hands cluster agents only,
/// with their backups and restores; every object of a resource backup is sealed under a key
/// derived from it, and names its version. Node agents never get it: theirs is the
/// [`RepositoryKey`]. Neither `Debug` nor serialisation shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ResourceKey {
    /// Its version in the location's keyring (0: format 2's objects, sealed under the volume
    /// repository's first key).
    pub version: u32,
    /// The key.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResourceKey(v{}, ..)", self.version)
    }
}

/// Every version of a location's resource-backup key: objects are sealed with the newest and
/// opened with the version they name, so a rotation leaves every older backup readable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceKeys(Vec<ResourceKey>);

impl ResourceKeys {
    /// The keyring holding `keys`, in any order.
    pub fn new(mut keys: Vec<ResourceKey>) -> Self {
        keys.sort_by_key(|k| k.version);
        keys.dedup_by_key(|k| k.version);
        Self(keys)
    }

    /// The newest version: the one new objects are sealed with.
    pub fn newest(&self) -> Option<&ResourceKey> {
        self.0.last()
    }

    /// Version `version`.
    pub fn version(&self, version: u32) -> Option<&ResourceKey> {
        self.0
            .binary_search_by_key(&version, |k| k.version)
            .ok()
            .map(|i| &self.0[i])
    }

    /// Every version, oldest first.
    pub fn all(&self) -> &[ResourceKey] {
        &self.0
    }
}

/// One version of a location's keys, as its keyring holds it. `Debug` shows the version only.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyVersion {
    /// Its number, from 1.
    pub version: u32,
    /// Seals resource-backup objects.
    pub resource: [u8; 32],
    /// Wraps the volume repository's master key.
    pub repository: [u8; 32],
    /// When it was made.
    pub created: Timestamp,
}

impl std::fmt::Debug for KeyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyVersion(v{}, ..)", self.version)
    }
}

/// Volume data of one claim to move on one node.
#[derive(Debug, Clone)]
pub struct VolumeTask {
    /// Unique while running: `<operation>/<namespace>/<claim>`.
    pub id: VolumeTaskId,
    /// The cluster.
    pub cluster: ClusterName,
    /// The node whose agent moves it.
    pub node: String,
    /// Where the repository is.
    pub location: Location,
    /// Its key.
    pub key: RepositoryKey,
    /// The pod whose volume directory holds the data.
    pub pod_uid: String,
    /// That directory's name: the PersistentVolume's name.
    pub volume: String,
    /// `<cluster>/<namespace>/<claim>`: a backup's parent is the last snapshot of it.
    pub source: String,
    /// The backup's name.
    pub tag: String,
    /// Restore this snapshot into the directory; `None`: back the directory up.
    pub snapshot: Option<String>,
    /// A restore keeps setuid and setgid bits (dropped by default).
    pub keep_setid: bool,
}

/// How far a node agent has got with a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeProgress {
    /// The task.
    pub id: VolumeTaskId,
    /// Files done.
    pub files: u64,
    /// Bytes done.
    pub bytes: u64,
}
