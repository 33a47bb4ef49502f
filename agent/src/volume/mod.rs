//! Volume data: a deduplicating, compressed, encrypted repository in a backup location
//! (`proto/FORMAT.md`, "Volume repository"), and what reads and writes it.
//!
//! - [`repo`]: opening (master key unwrapped by the location's repository key), config, keys,
//!   snapshots.
//! - [`blob`]: blob ids (keyed BLAKE3) and the sealed, compressed stored form of a chunk.
//! - [`pack`]: blobs grouped into pack files, each with its sealed header.
//! - [`index`]: which pack holds which blob, merged from every writer's index files.
//! - [`backup`]: a directory into a snapshot — chunk, hash, compress, seal, pack, upload.
//! - [`chunker`]: files read, cut into chunks and hashed on a pool of reader threads.
//! - [`prune`]: forgetting snapshots and collecting unused packs, lock-free, with a grace period.
//! - [`check`]: packs present, and with `read_data` intact to the last blob, damage traced to files.
//! - [`restore`]: a snapshot back into a directory, byte for byte with modes, owners, times,
//!   symlinks, hard links and holes.
//! - [`beneath`]: a directory that file operations cannot leave (tenant volumes are hostile).
//!
//! The stored forms are the `cairn.v1` messages of `proto/cairn/v1/volume.proto`, used as such
//! (like a repository file format) only inside this module.

pub mod backup;
pub mod beneath;
pub mod blob;
pub mod check;
pub mod chunker;
#[cfg(test)]
mod fuzz;
pub mod index;
pub mod pack;
pub mod prune;
pub mod repo;
pub mod restore;

pub use repo::Repository;

/// A repository operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location cannot be opened.
    #[error(transparent)]
    Location(#[from] cairn_proto::format::location::Error),
    /// Reading or writing an object failed.
    #[error("{operation} {key}")]
    Store {
        /// read, write, list or delete.
        operation: &'static str,
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// No repository at the location.
    #[error("no repository at {0} (run `cairn-agent repo init`)")]
    NotInitialised(String),
    /// A repository exists already.
    #[error("a repository exists already at {0}")]
    Exists(String),
    /// The key does not open any of the repository's keys.
    #[error("wrong key: {0} opens none of the repository's keys; nothing was written")]
    WrongKey(String),
    /// A key could not be read, made or used.
    #[error(transparent)]
    Seal(#[from] cairn_proto::seal::Error),
    /// Something stored does not decode or verify.
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        /// What (a pack, a blob, a tree…).
        what: String,
        /// Why.
        reason: String,
    },
    /// An object larger than its kind may be: refused, its body unread.
    #[error("{key} is {size} bytes, more than the {max} bytes {kind} may be")]
    TooLarge {
        /// The key.
        key: String,
        /// Its size.
        size: u64,
        /// The limit of its kind.
        max: u64,
        /// Its kind.
        kind: cairn_proto::format::ObjectKind,
    },
    /// A blob the snapshot needs is in no index.
    #[error("blob {0} is missing from the repository")]
    MissingBlob(String),
    /// A file or directory could not be read or written.
    #[error("{path}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An entry was replaced (a file by a symlink, by another file) or removed while a backup
    /// read it: it is left out, and its replacement never read.
    #[error("{path} changed while it was backed up (replaced or removed)")]
    Changed {
        /// The entry.
        path: String,
    },
    /// No such snapshot.
    #[error("no snapshot {0}")]
    UnknownSnapshot(String),
    /// Some files could not be restored (the rest were).
    #[error("{failed} of {total} files could not be restored: {}", files.join("; "))]
    Partial {
        /// How many failed.
        failed: usize,
        /// Files in the snapshot.
        total: usize,
        /// Each failed file with its cause (the first 20).
        files: Vec<String>,
    },
    /// A worker thread or task ended abnormally.
    #[error("a {0} worker stopped")]
    Worker(&'static str),
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn store(operation: &'static str, key: &str, source: object_store::Error) -> Self {
        Self::Store {
            operation,
            key: key.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Result of a repository operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
