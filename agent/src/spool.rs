//! The spool: a directory on the site (a PersistentVolumeClaim's mount in a cluster) that takes
//! the backups the agent runs on its own while their location cannot be reached, and keeps them
//! until it can.
//!
//! A spooled backup is laid out and sealed exactly as in its location
//! (`<spool>/<location>/backups/<backup>/…`, under the location's keys), so the spool is read as
//! a local location of the same name ([`Spool::stand_in`]), and shipping a backup is copying its
//! objects as they are: every object but the manifest first, the manifest last. A ship cut
//! anywhere leaves nothing in the location that passes for a backup (a backup is its manifest),
//! and a ship started again copies what is missing and ends the same way; then the backup leaves
//! the spool. The spool is capped: past the cap, the oldest spooled backups are dropped
//! (keep-last within the spool), and the agent says which.

use cairn_proto::format::{self, BackupKeys};
use cairn_proto::model::{BackupName, Location, LocationName};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, path::Path as Key};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a location has to answer before the agent spools a backup meant for it.
pub const REACH: Duration = Duration::from_secs(15);

/// A failure of the spool.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A location (the spool's stand-in or the real one) cannot be opened.
    #[error(transparent)]
    Location(#[from] format::location::Error),
    /// Reading or writing objects failed.
    #[error("shipping {key} of spooled backup {backup} to location {location}")]
    Ship {
        /// The backup.
        backup: BackupName,
        /// The location.
        location: LocationName,
        /// The object.
        key: String,
        /// The cause.
        #[source]
        source: Box<object_store::Error>,
    },
    /// The spool's directory.
    #[error("spool directory {path}")]
    Dir {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A backup in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    /// The location it is for.
    pub location: LocationName,
    /// The backup.
    pub backup: BackupName,
    /// Bytes it takes.
    pub bytes: u64,
    /// When its manifest was written.
    pub written: SystemTime,
}

/// The spool directory and its cap.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    cap: u64,
}

impl Spool {
    /// The spool in `dir` (made if missing), holding at most `cap` bytes.
    pub fn open(dir: &Path, cap: u64) -> Result<Self, Error> {
        let failed = |source| Error::Dir {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(failed)?;
        let dir = dir.canonicalize().map_err(failed)?;
        Ok(Self { dir, cap })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spool's stand-in for `location`: a local location of the same name.
    pub fn stand_in(&self, location: &Location) -> Location {
        let dir = self.dir.join(location.name.as_str());
        Location {
            name: location.name.clone(),
            // The spool's directory is absolute (made so when it was opened).
            url: format::location::directory_url(&dir).unwrap_or_default(),
            options: std::collections::BTreeMap::new(),
        }
    }

    fn folder(&self, location: &LocationName, backup: &BackupName) -> PathBuf {
        self.dir
            .join(location.as_str())
            .join(BackupKeys::new(backup).dir())
    }

    /// The backups in the spool (complete ones: with a manifest), oldest first.
    pub fn backups(&self) -> Result<Vec<Spooled>, Error> {
        let mut found = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(source) => return Err(self.dir_error(source)),
        };
        for location in entries.flatten() {
            let Some(location_name) = location
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<LocationName>().ok())
            else {
                continue;
            };
            let Ok(backups) = std::fs::read_dir(location.path().join(format::BACKUPS_DIR)) else {
                continue;
            };
            for backup in backups.flatten() {
                let Some(name) = backup.file_name().to_str().and_then(|n| BackupName::new(n).ok()) else {
                    continue;
                };
                let Ok(manifest) = std::fs::metadata(backup.path().join(BackupKeys::MANIFEST)) else {
                    continue; // still being written, or cut short: not a backup
                };
                found.push(Spooled {
                    location: location_name.clone(),
                    backup: name,
                    bytes: size_of(&backup.path()),
                    written: manifest.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        found.sort_by_key(|s| s.written);
        Ok(found)
    }

    /// Bytes and backups in the spool.
    pub fn backlog(&self) -> (u64, usize) {
        let backups = self.backups().unwrap_or_default();
        (backups.iter().map(|s| s.bytes).sum(), backups.len())
    }

    /// Its cap, in bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// The oldest backups to drop for the spool to hold no more than its cap with `reserve`
    /// bytes more (room for the next backup; the newest too, if it alone is larger than the cap).
    pub fn over_cap(&self, reserve: u64) -> Result<Vec<Spooled>, Error> {
        let mut total = reserve;
        let mut backups = self.backups()?;
        // Newest first: keep what fits, drop the rest.
        backups.reverse();
        let mut over = Vec::new();
        for spooled in backups {
            total += spooled.bytes;
            if total > self.cap {
                over.push(spooled);
            }
        }
        over.reverse();
        Ok(over)
    }

    /// Removes `backup` from the spool.
    pub fn remove(&self, spooled: &Spooled) -> Result<(), Error> {
        self.remove_folder(&spooled.location, &spooled.backup)
    }

    /// Removes what the spool holds of `backup` for `location`, complete or not.
    pub fn remove_folder(&self, location: &LocationName, backup: &BackupName) -> Result<(), Error> {
        let folder = self.folder(location, backup);
        // The manifest first: whatever a crash leaves after it is not a backup.
        match std::fs::remove_file(folder.join(BackupKeys::MANIFEST)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(self.dir_error(source)),
        }
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(self.dir_error(source)),
        }
    }

    /// Copies `spooled` to `location` (the manifest last, objects already there at their size
    /// not again); returns the bytes copied. It stays in the spool until [`Spool::remove`].
    pub async fn ship(&self, spooled: &Spooled, location: &Location) -> Result<u64, Error> {
        let from = format::open_location(&self.stand_in(location))?;
        let to = format::open_location(location)?;
        let keys = BackupKeys::new(&spooled.backup);
        let failed = |key: &Key, source| Error::Ship {
            backup: spooled.backup.clone(),
            location: location.name.clone(),
            key: key.to_string(),
            source: Box::new(source),
        };
        let prefix = Key::from(keys.dir());
        let mut objects: Vec<_> = from
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| failed(&prefix, e))?;
        let manifest = Key::from(keys.manifest());
        // The manifest last: until it is there, the location holds no backup of that name.
        objects.sort_by_key(|o| o.location == manifest);
        let mut copied = 0;
        for object in objects {
            let key = &object.location;
            if *key != manifest
                && let Ok(there) = to.head(key).await
                && there.size == object.size
            {
                continue; // shipped before the last ship was cut
            }
            let bytes = from
                .get(key)
                .await
                .map_err(|e| failed(key, e))?
                .bytes()
                .await
                .map_err(|e| failed(key, e))?;
            copied += bytes.len() as u64;
            to.put(key, bytes.into()).await.map_err(|e| failed(key, e))?;
        }
        Ok(copied)
    }

    fn dir_error(&self, source: std::io::Error) -> Error {
        Error::Dir {
            path: self.dir.display().to_string(),
            source,
        }
    }
}

/// Whether `location` answers within [`REACH`]: its error, if not.
pub async fn reachable(location: &Location) -> Result<(), String> {
    let store = format::open_location(location).map_err(|e| cairn_proto::error_chain(&e))?;
    let probe = async {
        let prefix = Key::from(format::BACKUPS_DIR);
        store
            .list_with_delimiter(Some(&prefix))
            .await
            .map(|_| ())
            .map_err(|e| cairn_proto::error_chain(&e))
    };
    tokio::time::timeout(REACH, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {REACH:?}")))
}

/// Bytes of the files under `dir`.
fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_of(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spooled(
        spool: &Spool,
        location: &str,
        backup: &str,
        bytes: usize,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let folder = spool.folder(&location.parse()?, &BackupName::new(backup)?);
        std::fs::create_dir_all(folder.join("resources"))?;
        std::fs::write(folder.join("resources/part"), vec![0u8; bytes])?;
        std::fs::write(folder.join(BackupKeys::MANIFEST), b"m")?;
        // Manifests a clock tick apart: the order is the order written.
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }

    #[test]
    fn past_its_cap_the_spool_gives_up_its_oldest_backups_and_only_complete_ones_count()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::open(dir.path(), 2500)?;
        spooled(&spool, "vault", "first", 1000)?;
        spooled(&spool, "vault", "second", 1000)?;
        // Cut short: no manifest, not a backup.
        std::fs::create_dir_all(spool.folder(&"vault".parse()?, &BackupName::new("torn")?))?;
        assert_eq!(spool.backlog(), (2002, 2));
        assert!(spool.over_cap(0)?.is_empty());
        // Room for one more of the same size: the oldest goes first.
        let names = |over: Vec<Spooled>| over.iter().map(|s| s.backup.to_string()).collect::<Vec<_>>();
        assert_eq!(names(spool.over_cap(1000)?), ["first"]);
        spooled(&spool, "other", "third", 1000)?;
        let over = spool.over_cap(0)?;
        assert_eq!(names(over.clone()), ["first"]);
        spool.remove(&over[0])?;
        let left: Vec<_> = spool.backups()?.iter().map(|s| s.backup.to_string()).collect();
        assert_eq!(left, ["second", "third"]);
        Ok(())
    }
}
