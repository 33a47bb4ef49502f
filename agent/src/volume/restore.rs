//! A snapshot back into a directory, read pack by pack. The trees are walked depth first;
//! files are gathered into batches, and each batch's blobs are grouped by the pack that holds
//! them: every pack is read once (one range request), its blobs opened where they lie and written
//! at their offsets into every file that needs them (an all-zero block becomes a hole, so sparse
//! files stay sparse). A file is made by the worker writing its first blob and gets its mode,
//! owner and times from the one writing its last; hard links follow (a link to a file that could
//! not be restored fails with it), then symlinks, and each directory's attributes come last,
//! deepest first. Owners are set when running as root; setuid and setgid bits are dropped unless
//! asked for. Devices, FIFOs and sockets are counted and skipped.
//!
//! The snapshot and the target are both untrusted: a snapshot's names are single path components
//! (not `.`, `..`, with no `/` or NUL, one entry per name in a directory), or the entry is
//! refused and named; every file operation goes through [`Beneath`], so no name, and no symlink
//! the tenant's pod plants in the target while the restore runs, leads outside the target.
//! Symlinks are made last, so nothing is written through one; hard links only join files this
//! restore made.
//! Memory holds the index, one batch's plan and the packs in flight, whatever the snapshot's size
//! or file count.

use cairn_proto::pb;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio::sync::Semaphore;

use super::backup::Counters;
use super::beneath::{Beneath, invalid_name};
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

/// How a restore treats what it restores.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep setuid and setgid bits (dropped by default: a restore must not hand out privilege).
    pub keep_setid: bool,
}

/// Restores snapshot `snapshot` (an id prefix) into `target` (nothing is made outside it).
pub async fn run(
    repo: Arc<Repository>,
    snapshot: &str,
    target: &Path,
    counters: Arc<Counters>,
    options: Options,
) -> Result<Summary> {
    let index = Arc::new(repo.load_index().await?);
    let (_, snap) = repo.snapshot(snapshot).await?;
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let dir = Arc::new(Beneath::open(target).map_err(|e| Error::io(target, e))?);
    let mut restore = Restore {
        repo: repo.clone(),
        index: index.clone(),
        counters,
        dir: dir.clone(),
        options,
        batch: Batch::default(),
        failed: BTreeMap::new(),
        summary: Summary::default(),
    };
    let mut dirs = Vec::new();
    let mut links = Vec::new();
    let mut symlinks = Vec::new();
    let mut first_link: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut pending = vec![(PathBuf::new(), BlobId::from_slice(&snap.tree)?)];
    while let Some((parent, tree)) = pending.pop() {
        let mut names = HashSet::new();
        for node in repo.tree(&index, &tree).await?.nodes {
            let refused = invalid_name(&node.name)
                .or_else(|| (!names.insert(node.name.clone())).then_some("a second entry of that name"));
            if let Some(why) = refused {
                let shown = dir.show(&parent);
                let failure = format!("{}: entry {:?} refused: {why}", shown.display(), node.name);
                restore
                    .failed
                    .insert(parent.join(format!("{:?}", node.name)), failure);
                continue;
            }
            let path = parent.join(&node.name);
            match pb::NodeKind::try_from(node.kind).unwrap_or(pb::NodeKind::Other) {
                pb::NodeKind::Dir => match dir.make_dir(&path) {
                    Ok(()) => {
                        pending.push((path.clone(), BlobId::from_slice(&node.subtree)?));
                        dirs.push((path, node));
                    }
                    Err(e) => restore.fail(path, &e),
                },
                pb::NodeKind::File if node.links > 1 => match first_link.get(&(node.device, node.inode)) {
                    Some(first) => links.push((first.clone(), path)),
                    None => {
                        first_link.insert((node.device, node.inode), path.clone());
                        restore.file(path, node).await?;
                    }
                },
                pb::NodeKind::File => restore.file(path, node).await?,
                pb::NodeKind::Symlink => symlinks.push((path, node)),
                pb::NodeKind::Other => restore.summary.skipped += 1,
            }
        }
    }
    restore.flush().await?;
    restore.summary.dirs = dirs.len() as u64;
    for (first, path) in links {
        // A link to a file that could not be restored fails with it, named.
        if restore.failed.contains_key(&first) {
            let why = format!(
                "{}: a hard link to {}, which could not be restored",
                dir.show(&path).display(),
                dir.show(&first).display()
            );
            restore.failed.insert(path, why);
            continue;
        }
        match dir.hard_link(&first, &path) {
            Ok(()) => restore.summary.links += 1,
            Err(e) => restore.fail(path, &e),
        }
    }
    // Last of all entries: nothing is written through a symlink this restore made.
    for (path, node) in symlinks {
        let made = dir
            .symlink(&node.target, &path)
            .map_err(|e| Error::io(&dir.show(&path), e))
            .and_then(|()| attributes(&dir, &path, &node, Kind::Symlink, options));
        if let Err(e) = made {
            restore
                .failed
                .insert(path.clone(), file_failure(&e, &dir.show(&path)));
        }
    }
    // Deepest first, so setting a directory's time is not undone by writing into it.
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, node) in &dirs {
        if let Err(e) = attributes(&dir, path, node, Kind::Dir, options) {
            restore
                .failed
                .insert(path.clone(), file_failure(&e, &dir.show(path)));
        }
    }
    // The directory restored into takes the backed-up one's attributes (a database's data
    // directory must be 0700 and its owner's).
    if let Some(root) = &snap.root {
        attributes(&dir, Path::new(""), root, Kind::Dir, options)?;
    }
    // Done means on disk: a held application starts on the data only once a crash of the node
    // can no longer take it back.
    let syncing = dir.clone();
    let synced = tokio::task::spawn_blocking(move || syncing.sync())
        .await
        .map_err(|_| Error::Worker("restore"))?;
    let Restore { summary, failed, .. } = restore;
    // A damaged blob or a refused entry costs its files, not the restore: the others are
    // written, and the failures are reported together at the end (after the sync's, if it
    // failed too: then none of it is sure to be on disk).
    match synced {
        Err(e) if failed.is_empty() => Err(Error::io(target, e)),
        _ if failed.is_empty() => Ok(summary),
        synced => {
            let unsynced: Vec<String> = synced
                .err()
                .map(|e| format!("{}: none of it is sure to be on disk: {e}", target.display()))
                .into_iter()
                .collect();
            let shown = PARTIAL_SHOWN - unsynced.len();
            Err(Error::Partial {
                failed: failed.len(),
                total: (summary.files as usize) + failed.len(),
                files: unsynced
                    .into_iter()
                    .chain(failed.into_values().take(shown))
                    .collect(),
            })
        }
    }
}

/// Failed files a partial restore's error names (the first ones; it counts them all).
const PARTIAL_SHOWN: usize = 20;

/// One file of a batch: where it goes, its attributes, and what went wrong with it. Whichever
/// worker writes its first blob creates it; whichever writes its last sets its attributes.
struct Pending {
    /// Below the target.
    path: PathBuf,
    dir: Arc<Beneath>,
    options: Options,
    node: pb::Node,
    /// Blobs still to write.
    left: AtomicUsize,
    /// Whether the file could be made (at its size).
    made: OnceLock<std::io::Result<()>>,
    failure: Mutex<Option<String>>,
}

impl Pending {
    /// Writes `data` at offset `at`, making the file first if no blob has yet; returns the file
    /// opened for it.
    fn write(&self, at: u64, data: &[u8]) -> Result<std::fs::File> {
        let shown = self.dir.show(&self.path);
        let io = |e: &std::io::Error| Error::io(&shown, std::io::Error::new(e.kind(), e.to_string()));
        if let Err(e) = self
            .made
            .get_or_init(|| make(&self.dir, &self.path, self.node.size))
        {
            return Err(io(e));
        }
        let file = self.dir.write_file(&self.path).map_err(|e| io(&e))?;
        write_sparse(&file, at, data).map_err(|e| io(&e))?;
        // Starts writing these pages to disk now (the kernel skips what is still dirty when it
        // drops, so [`Pending::blob_done`] advises the whole file again once it is written): a
        // restore leaves neither gigabytes of dirty pages for the final sync nor the node's cache
        // (charged to the node agent's memory limit) full of data nobody reads yet.
        if let Some(len) = std::num::NonZeroU64::new(data.len() as u64) {
            drop_cached(&file, at, Some(len));
        }
        Ok(file)
    }

    /// One blob of it done (`written`: the file it was written through; none: it failed):
    /// after the last, its attributes, unless it failed.
    fn blob_done(&self, written: Option<&std::fs::File>) {
        let last = self.left.fetch_sub(1, Ordering::AcqRel) == 1;
        let intact = last && self.failure().is_none();
        if last {
            // Through the last write's handle; a failed last blob has none (the file is reopened).
            match written {
                Some(file) => drop_cached(file, 0, None),
                None => {
                    if let Ok(file) = self.dir.write_file(&self.path) {
                        drop_cached(&file, 0, None);
                    }
                }
            }
        }
        if intact && let Err(e) = attributes(&self.dir, &self.path, &self.node, Kind::File, self.options) {
            self.fail(&e);
        }
    }

    /// Records `e` as the file's failure, unless it has one already.
    fn fail(&self, e: &Error) {
        let mut failure = self.failure();
        if failure.is_none() {
            *failure = Some(file_failure(e, &self.dir.show(&self.path)));
        }
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Advises the kernel that the restore no longer needs the range `at..at + len` (to the end if
/// `None`) of `file` cached: pages are written back, and dropped once clean. Advice only: the
/// final sync is what the restore's success rests on.
fn drop_cached(file: &std::fs::File, at: u64, len: Option<std::num::NonZeroU64>) {
    let _ = rustix::fs::fadvise(file, at, len, rustix::fs::Advice::DontNeed);
}

/// Creates file `path` anew at length `size`.
fn make(dir: &Beneath, path: &Path, size: u64) -> std::io::Result<()> {
    dir.create_file(path)?.set_len(size)
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
    /// The target.
    dir: Arc<Beneath>,
    options: Options,
    batch: Batch,
    /// Entries not restored (below the target), and why.
    failed: BTreeMap<PathBuf, String>,
    summary: Summary,
}

impl Restore {
    /// Plans the blobs of file `path`, which the first of them to be written creates at its
    /// size; writes the batch when it is full.
    async fn file(&mut self, path: PathBuf, mut node: pb::Node) -> Result<()> {
        let content = std::mem::take(&mut node.content);
        if content.is_empty() {
            let made = make(&self.dir, &path, node.size)
                .map_err(|e| Error::io(&self.dir.show(&path), e))
                .and_then(|()| attributes(&self.dir, &path, &node, Kind::File, self.options));
            match made {
                Ok(()) => self.done(node.size),
                Err(e) => {
                    let why = file_failure(&e, &self.dir.show(&path));
                    self.failed.insert(path, why);
                }
            }
            return Ok(());
        }
        let slot = self.batch.files.len();
        let mut at = 0;
        let mut placements = Vec::with_capacity(content.len());
        for raw in &content {
            let id = BlobId::from_slice(raw)?;
            let Ok(entry) = self.index.get(&id) else {
                let why = file_failure(&Error::MissingBlob(id.hex()), &self.dir.show(&path));
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
            dir: self.dir.clone(),
            options: self.options,
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

    /// Records that entry `path` could not be made.
    fn fail(&mut self, path: PathBuf, e: &std::io::Error) {
        let shown = self.dir.show(&path);
        let why = format!("{}: {e}", shown.display());
        self.failed.insert(path, why);
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
                files[p.file].blob_done(None);
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
                let written = match &plain {
                    Ok(plain) => match file.write(p.at, plain) {
                        Ok(written) => {
                            counters
                                .bytes_read
                                .fetch_add(u64::from(p.raw_length), Ordering::Relaxed);
                            Some(written)
                        }
                        Err(e) => {
                            file.fail(&e);
                            None
                        }
                    },
                    Err(e) => {
                        file.fail(e);
                        None
                    }
                };
                file.blob_done(written.as_ref());
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

/// Writes `data` at offset `at` of `file` (made at its full length), leaving holes where whole
/// blocks are zero.
fn write_sparse(file: &std::fs::File, at: u64, data: &[u8]) -> std::io::Result<()> {
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

/// What an entry is, for its attributes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// Sets `path`'s owner (as root), mode (not on symlinks; setuid and setgid bits only if
/// `options` keeps them) and modification time.
fn attributes(dir: &Beneath, path: &Path, node: &pb::Node, kind: Kind, options: Options) -> Result<()> {
    let owner = nix::unistd::geteuid().is_root().then_some((node.uid, node.gid));
    let setid = if options.keep_setid { 0 } else { 0o6000 };
    let mode = (kind != Kind::Symlink).then_some(node.mode & 0o7777 & !setid);
    dir.set_attributes(path, owner, mode, node.mtime_ns)
        .map_err(|e| Error::io(&dir.show(path), e))
}
