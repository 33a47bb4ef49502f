//! Keys of the volume repository under `volumes/` (`proto/FORMAT.md`, "Volume repository"). The
//! agent's `volume` module reads and writes the objects; their names are built here alone.

/// Where the workspace's volume-data repository lives in a location.
pub const VOLUMES_DIR: &str = "volumes";

/// The folders of a repository, each holding objects named by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeDir {
    /// `keys/<id>`: the master key, sealed under a key-encryption key.
    Keys,
    /// `data/<xx>/<pack>`: packs, fanned out by the first two characters of their id.
    Data,
    /// `index/<id>`: index files.
    Index,
    /// `snapshots/<id>`: snapshots.
    Snapshots,
    /// `prune/<id>`: prune plans.
    Prune,
}

impl VolumeDir {
    /// The folder's name under `volumes/`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Keys => "keys",
            Self::Data => "data",
            Self::Index => "index",
            Self::Snapshots => "snapshots",
            Self::Prune => "prune",
        }
    }
}

/// The keys of a location's volume repository.
#[derive(Debug, Clone, Copy)]
pub struct VolumeKeys;

impl VolumeKeys {
    /// `volumes/config`, in the clear.
    pub fn config() -> String {
        format!("{VOLUMES_DIR}/config")
    }

    /// The folder `dir`: `volumes/<dir>`, the prefix its objects are listed under.
    pub fn dir(dir: VolumeDir) -> String {
        format!("{VOLUMES_DIR}/{}", dir.name())
    }

    /// Object `id` in folder `dir`: `volumes/<dir>/<id>`; a pack's key is
    /// `volumes/data/<first two characters of id>/<id>`. Ids Cairn makes are hexadecimal; an id
    /// read from the bucket may be anything.
    pub fn object(dir: VolumeDir, id: &str) -> String {
        match dir {
            VolumeDir::Data => {
                let fan = id.char_indices().nth(2).map_or(id, |(end, _)| &id[..end]);
                format!("{VOLUMES_DIR}/data/{fan}/{id}")
            }
            _ => format!("{VOLUMES_DIR}/{}/{id}", dir.name()),
        }
    }

    /// Pack `id`: `volumes/data/<xx>/<id>`.
    pub fn pack(id: &str) -> String {
        Self::object(VolumeDir::Data, id)
    }

    /// Snapshot `id`: `volumes/snapshots/<id>`. Deleting it is how a deleted backup gives up its
    /// volume data (a later prune collects the packs only it used).
    pub fn snapshot(id: &str) -> String {
        Self::object(VolumeDir::Snapshots, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_format_md() {
        assert_eq!(VolumeKeys::config(), "volumes/config");
        assert_eq!(VolumeKeys::dir(VolumeDir::Keys), "volumes/keys");
        assert_eq!(VolumeKeys::object(VolumeDir::Keys, "ab12"), "volumes/keys/ab12");
        assert_eq!(VolumeKeys::pack("ab12cd"), "volumes/data/ab/ab12cd");
        assert_eq!(VolumeKeys::pack("a"), "volumes/data/a/a");
        // Regression (fuzz): a pack name from the bucket cut inside a character panicked.
        assert_eq!(VolumeKeys::pack("aé1"), "volumes/data/aé/aé1");
        assert_eq!(VolumeKeys::object(VolumeDir::Index, "9f"), "volumes/index/9f");
        assert_eq!(VolumeKeys::snapshot("77"), "volumes/snapshots/77");
        assert_eq!(VolumeKeys::object(VolumeDir::Prune, "01"), "volumes/prune/01");
        assert_eq!(VolumeKeys::dir(VolumeDir::Data), "volumes/data");
    }
}
