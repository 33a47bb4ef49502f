//! A snapshot back into a directory, read pack by pack. The trees are walked depth first;
//! files are gathered into batches, and each batch's blobs are grouped by the pack that holds
//! them: every pack is read once (one range request), its blobs opened where they lie and written
//! at their offsets into every file that needs them (an all-zero block becomes a hole, so sparse
//! files stay sparse). A file is made by the worker writing its first blob and gets its mode,
//! owner and times from the one writing its last; hard links follow (a link to a file that could
//! not be restored fails with it), and each directory's attributes come last, deepest first.
//! Owners are set when running as root. Devices, FIFOs and sockets are counted and skipped.
//! Memory holds the index, one batch's plan and the packs in flight, whatever the snapshot's size
//! or file count.

use cairn_proto::pb;
use futures::StreamExt;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use object_store::ObjectStoreExt;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio::sync::Semaphore;

use super::backup::Counters;
use super::blob::{self, BlobId};
use super::index::Index;
use super::{Error, Repository, Result};

/// Files whose blobs are read together, pack by pack.
const BATCH_FILES: usize = 32_768;
/// Blob placements in one batch (about 100 bytes each).
const BATCH_BLOBS: usize = 131_072;
/// Packs read at once (their blobs are opened and written by one worker per core).
const PACKS_IN_FLIGHT: usize = 8;

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Files written.
    pub files: u64,
    /// Directories made.
    pub dirs: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Hard links made.
    pub links: u64,
    /// Devices, FIFOs and sockets skipped.
    pub skipped: u64,
}

/// Restores snapshot `snapshot` (an id prefix) into `target`.
pub async fn run(
    repo: Arc<Repository>,
    snapshot: &str,
    target: &Path,
    counters: Arc<Counters>,
) -> Result<Summary> {
    let index = Arc::new(repo.load_index().await?);
    let (_, snap) = repo.snapshot(snapshot).await?;
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let mut restore = Restore {
        repo: repo.clone(),
        index: index.clone(),
        counters,
        batch: Batch::default(),
        failed: BTreeMap::new(),
        summary: Summary::default(),
    };
    let mut dirs = Vec::new();
    let mut links = Vec::new();
    let mut first_link: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut pending = vec![(target.to_owned(), BlobId::from_slice(&snap.tree)?)];
    while let Some((dir, tree)) = pending.pop() {
        for node in repo.tree(&index, &tree).await?.nodes {
            let path = dir.join(&node.name);
            match pb::NodeKind::try_from(node.kind).unwrap_or(pb::NodeKind::Other) {
                pb::NodeKind::Dir => {
                    std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                    pending.push((path.clone(), BlobId::from_slice(&node.subtree)?));
                    dirs.push((path, node));
                }
                pb::NodeKind::File if node.links > 1 => match first_link.get(&(node.device, node.inode)) {
                    Some(first) => links.push((first.clone(), path)),
                    None => {
                        first_link.insert((node.device, node.inode), path.clone());
                        restore.file(path, node).await?;
                    }
                },
                pb::NodeKind::File => restore.file(path, node).await?,
                pb::NodeKind::Symlink => {
                    let _ = std::fs::remove_file(&path);
                    std::os::unix::fs::symlink(&node.target, &path).map_err(|e| Error::io(&path, e))?;
                    attributes(&path, &node, true)?;
                }
                pb::NodeKind::Other => restore.summary.skipped += 1,
            }
        }
    }
    restore.flush().await?;
    let Restore {
        mut summary,
        mut failed,
        ..
    } = restore;
    summary.dirs = dirs.len() as u64;
    for (first, path) in &links {
        let _ = std::fs::remove_file(path);
        // A link to a file that could not be restored fails with it, named.
        if failed.contains_key(first) {
            let why = format!(
                "{}: a hard link to {}, which could not be restored",
                path.display(),
                first.display()
            );
            failed.insert(path.clone(), why);
            continue;
        }
        std::fs::hard_link(first, path).map_err(|e| Error::io(path, e))?;
        summary.links += 1;
    }
    // Deepest first, so setting a directory's time is not undone by writing into it.
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, node) in &dirs {
        attributes(path, node, false)?;
    }
    // The directory restored into takes the backed-up one's attributes (a database's data
    // directory must be 0700 and its owner's).
    if let Some(root) = &snap.root {
        attributes(target, root, false)?;
    }
    // A damaged blob costs its files, not the restore: the others are written, and the failures
    // are reported together at the end.
    if !failed.is_empty() {
        return Err(Error::Partial {
            failed: failed.len(),
            total: (summary.files as usize) + failed.len(),
            files: failed.into_values().take(20).collect(),
        });
    }
    Ok(summary)
}

/// One file of a batch: where it goes, its attributes, and what went wrong with it. Whichever
/// worker writes its first blob creates it; whichever writes its last sets its attributes.
struct Pending {
    path: PathBuf,
    node: pb::Node,
    /// Blobs still to write.
    left: AtomicUsize,
    /// Whether the file could be made (at its size).
    made: OnceLock<std::io::Result<()>>,
    failure: Mutex<Option<String>>,
}

impl Pending {
    /// Writes `data` at offset `at`, making the file first if no blob has yet.
    fn write(&self, at: u64, data: &[u8]) -> Result<()> {
        let io = |e: &std::io::Error| Error::io(&self.path, std::io::Error::new(e.kind(), e.to_string()));
        if let Err(e) = self.made.get_or_init(|| make(&self.path, self.node.size)) {
            return Err(io(e));
        }
        write_sparse(&self.path, at, data).map_err(|e| io(&e))
    }

    /// One blob of it done (or failed): after the last, its attributes, unless it failed.
    fn blob_done(&self) {
        let last = self.left.fetch_sub(1, Ordering::AcqRel) == 1;
        let intact = last && self.failure().is_none();
        if intact && let Err(e) = attributes(&self.path, &self.node, false) {
            self.fail(&e);
        }
    }

    /// Records `e` as the file's failure, unless it has one already.
    fn fail(&self, e: &Error) {
        let mut failure = self.failure();
        if failure.is_none() {
            *failure = Some(file_failure(e, &self.path));
        }
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates (or empties) file `path` at length `size`.
fn make(path: &Path, size: u64) -> std::io::Result<()> {
    std::fs::File::create(path)?.set_len(size)
}

/// Where one blob goes: into file `file` of the batch at offset `at`.
struct Placement {
    id: BlobId,
    offset: u64,
    length: u32,
    raw_length: u32,
    compressed: bool,
    file: usize,
    at: u64,
}

#[derive(Default)]
struct Batch {
    files: Vec<Pending>,
    packs: HashMap<Arc<str>, Vec<Placement>>,
    blobs: usize,
}

struct Restore {
    repo: Arc<Repository>,
    index: Arc<Index>,
    counters: Arc<Counters>,
    batch: Batch,
    /// Files not restored, and why.
    failed: BTreeMap<PathBuf, String>,
    summary: Summary,
}

impl Restore {
    /// Plans the blobs of file `path`, which the first of them to be written creates at its
    /// size; writes the batch when it is full.
    async fn file(&mut self, path: PathBuf, mut node: pb::Node) -> Result<()> {
        let content = std::mem::take(&mut node.content);
        if content.is_empty() {
            make(&path, node.size).map_err(|e| Error::io(&path, e))?;
            attributes(&path, &node, false)?;
            self.done(node.size);
            return Ok(());
        }
        let slot = self.batch.files.len();
        let mut at = 0;
        let mut placements = Vec::with_capacity(content.len());
        for raw in &content {
            let id = BlobId::from_slice(raw)?;
            let Ok(entry) = self.index.get(&id) else {
                let why = file_failure(&Error::MissingBlob(id.hex()), &path);
                self.failed.insert(path, why);
                return Ok(());
            };
            placements.push((
                entry.pack.clone(),
                Placement {
                    id,
                    offset: entry.offset,
                    length: entry.length,
                    raw_length: entry.raw_length,
                    compressed: entry.compressed,
                    file: slot,
                    at,
                },
            ));
            at += u64::from(entry.raw_length);
        }
        self.batch.blobs += placements.len();
        self.batch.files.push(Pending {
            path,
            node,
            left: AtomicUsize::new(placements.len()),
            made: OnceLock::new(),
            failure: Mutex::new(None),
        });
        for (pack, placement) in placements {
            self.batch.packs.entry(pack).or_default().push(placement);
        }
        if self.batch.files.len() >= BATCH_FILES || self.batch.blobs >= BATCH_BLOBS {
            self.flush().await?;
        }
        Ok(())
    }

    fn done(&mut self, bytes: u64) {
        self.summary.files += 1;
        self.summary.bytes += bytes;
        self.counters.files.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads the batch's packs, writes their blobs, finishes its files.
    async fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let files = Arc::new(batch.files);
        let mut packs: Vec<_> = batch.packs.into_iter().collect();
        packs.sort_by(|a, b| a.0.cmp(&b.0));
        let workers = Arc::new(Semaphore::new(
            std::thread::available_parallelism().map_or(2, usize::from),
        ));
        let mut work = futures::stream::iter(packs)
            .map(|(pack, placements)| {
                let (repo, files, counters) = (self.repo.clone(), files.clone(), self.counters.clone());
                let workers = workers.clone();
                async move { write_pack(repo, pack, placements, files, counters, workers).await }
            })
            .buffer_unordered(PACKS_IN_FLIGHT);
        while let Some(r) = work.next().await {
            r?;
        }
        drop(work);
        let files = Arc::try_unwrap(files).map_err(|_| Error::Worker("restore"))?;
        for f in files {
            match f.failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
                Some(why) => {
                    self.failed.insert(f.path, why);
                }
                None => self.done(f.node.size),
            }
        }
        Ok(())
    }
}

/// Reads pack `pack` (the span its placed blobs cover) and writes each blob into its files.
async fn write_pack(
    repo: Arc<Repository>,
    pack: Arc<str>,
    mut placements: Vec<Placement>,
    files: Arc<Vec<Pending>>,
    counters: Arc<Counters>,
    workers: Arc<Semaphore>,
) -> Result<()> {
    placements.sort_by_key(|p| (p.offset, p.file));
    let start = placements.first().map_or(0, |p| p.offset);
    let end = placements
        .iter()
        .map(|p| p.offset + u64::from(p.length))
        .max()
        .unwrap_or(start);
    let key = cairn_proto::format::VolumeKeys::pack(&pack);
    let read = repo
        .store()
        .get_range(&object_store::path::Path::from(key.as_str()), start..end)
        .await
        .map_err(|e| Error::store("read", &key, e));
    let mut bytes: Vec<u8> = match read {
        Ok(bytes) => bytes.into(),
        Err(e) => {
            for p in &placements {
                files[p.file].fail(&e);
                files[p.file].blob_done();
            }
            return Ok(());
        }
    };
    let permit = workers
        .acquire_owned()
        .await
        .map_err(|_| Error::Worker("restore"))?;
    let worker = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut i = 0;
        while i < placements.len() {
            // One blob, maybe wanted by several files.
            let first = &placements[i];
            let same = placements[i..]
                .iter()
                .take_while(|p| p.offset == first.offset)
                .count();
            let from = usize::try_from(first.offset - start).unwrap_or(usize::MAX);
            let to = from + first.length as usize;
            let stored = bytes
                .get_mut(from..to)
                .ok_or_else(|| Error::corrupt(format!("pack {pack}"), "shorter than its index says"));
            let plain = stored.and_then(|stored| {
                blob::open_in_place(
                    repo.master(),
                    repo.id_key(),
                    &first.id,
                    stored,
                    first.compressed,
                    first.raw_length as usize,
                )
                .map_err(|e| in_pack(e, &pack))
            });
            for p in &placements[i..i + same] {
                let file = &files[p.file];
                match &plain {
                    Ok(plain) => match file.write(p.at, plain) {
                        Ok(()) => {
                            counters
                                .bytes_read
                                .fetch_add(u64::from(p.raw_length), Ordering::Relaxed);
                        }
                        Err(e) => file.fail(&e),
                    },
                    Err(e) => file.fail(e),
                }
                file.blob_done();
            }
            i += same;
        }
        drop(bytes);
        crate::release_free_memory();
    });
    worker.await.map_err(|_| Error::Worker("restore"))
}

/// Names the pack a damaged blob lies in.
fn in_pack(e: Error, pack: &str) -> Error {
    match e {
        Error::Corrupt { what, reason } => Error::Corrupt {
            what: format!("{what} in pack {pack}"),
            reason,
        },
        other => other,
    }
}

/// Block size holes are made in: an all-zero block is skipped, not written.
const HOLE_BLOCK: usize = 4096;

/// Writes `data` at offset `at` of file `path` (made at its full length), leaving holes where
/// whole blocks are zero.
fn write_sparse(path: &Path, at: u64, data: &[u8]) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let zero = |b: &[u8]| b.len() == HOLE_BLOCK && b.iter().all(|x| *x == 0);
    let mut start = 0;
    while start < data.len() {
        // A run of blocks that are all zero, or all not: one seek or one write.
        let hole = zero(&data[start..(start + HOLE_BLOCK).min(data.len())]);
        let mut end = start;
        while end < data.len() && zero(&data[end..(end + HOLE_BLOCK).min(data.len())]) == hole {
            end = (end + HOLE_BLOCK).min(data.len());
        }
        if !hole {
            file.write_all_at(&data[start..end], at + start as u64)?;
        }
        start = end;
    }
    Ok(())
}

/// What a user reads about file `path` that `e` kept from being restored, naming the file.
fn file_failure(e: &Error, path: &Path) -> String {
    let path = path.display();
    match e {
        Error::Corrupt { what, reason } => format!("{what} (of file {path}) is corrupt: {reason}"),
        Error::MissingBlob(id) => {
            format!("file {path} is corrupt: its blob {id} is missing from the repository")
        }
        other => format!("{path}: {}", cairn_proto::error_chain(other)),
    }
}

/// Sets owner (as root), mode (not on symlinks) and modification time.
fn attributes(path: &Path, node: &pb::Node, symlink: bool) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(|e| Error::io(path, e))?;
    }
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))
            .map_err(|e| Error::io(path, e))?;
    }
    let mtime = TimeSpec::new(
        node.mtime_ns.div_euclid(1_000_000_000),
        node.mtime_ns.rem_euclid(1_000_000_000),
    );
    let flag = if symlink {
        UtimensatFlags::NoFollowSymlink
    } else {
        UtimensatFlags::FollowSymlink
    };
    utimensat(nix::fcntl::AT_FDCWD, path, &mtime, &mtime, flag).map_err(|e| Error::io(path, e.into()))?;
    Ok(())
}
