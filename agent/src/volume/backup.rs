//! A directory into a snapshot. The walk (one thread) lists directories and hands each changed
//! file, ahead of itself, to the [`super::chunker`] readers, which cut it with FastCDC, hash the
//! chunks and skip those the repository or this run already holds; new chunks go over a bounded
//! queue to one packer per core, which compresses, seals and packs them; finished packs
//! go, two at a time, to the uploader. Memory stays bounded by the queues whatever the volume's
//! size or file count. A file whose size, mtime and inode match the parent snapshot is not read.
//! Index files list packs only once they are uploaded; the snapshot is written last. While it
//! runs, a checkpoint index lists what is uploaded so far (rewritten after every few packs, the
//! previous one deleted), so a backup cut off (agent killed, bucket gone) and run again finds its
//! packs in the index and uploads only what is missing; the finished backup replaces the
//! checkpoint with the index of what it added.
//!
//! The volume belongs to a tenant whose pod may change it while it is read: every directory is
//! listed and every file opened through [`Beneath`] (no symlink followed, nothing outside the
//! volume reached), and a file is read only if the inode opened is the one listed. An entry
//! replaced meanwhile (a file swapped for a symlink, a directory for a link elsewhere) or gone is
//! left out of the snapshot, counted and logged; its replacement is never read.

use cairn_proto::pb;
use futures::StreamExt;
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use tokio::runtime::Handle;

use super::beneath::Beneath;
use super::blob::BlobId;
use super::chunker::{Chunk, Pending, Readers, Sink};
use super::pack::{Pack, PackBuilder, TARGET_BYTES};
use super::{Error, Repository, Result};

/// Chunks waiting for a packer (each up to the largest chunk, 512 KiB on average).
const CHUNK_QUEUE: usize = 4;
/// Files of a directory handed to the readers ahead of the walk.
const READ_AHEAD: usize = 64;
/// Finished packs waiting for upload.
const PACK_QUEUE: usize = 1;
/// Packs uploading at once.
const UPLOADS: usize = 2;
/// Blobs listed per index file: a backup of a million small files writes twenty, and never
/// holds more than this many entries.
const INDEX_BLOBS: usize = 50_000;
/// Packs uploaded between two checkpoints, at least (32 MiB): then one sixteenth of those the
/// current index file will list, so rewriting checkpoints costs a bounded share of the index.
const CHECKPOINT_PACKS: usize = 4;

/// What a backup did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The new snapshot's id.
    pub snapshot: String,
    /// The snapshot it was incremental to.
    pub parent: Option<String>,
    /// Files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// File bytes in the snapshot.
    pub bytes: u64,
    /// Files read (changed or new).
    pub files_read: u64,
    /// Bytes read from them.
    pub bytes_read: u64,
    /// New blobs stored.
    pub blobs_added: u64,
    /// Their stored (compressed, sealed) bytes.
    pub bytes_added: u64,
    /// Entries left out: replaced or gone while the backup read them.
    pub changed: u64,
}

/// Live counters, for a progress bar.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes read so far.
    pub bytes_read: AtomicU64,
    /// Files done so far.
    pub files: AtomicU64,
}

/// Whose data a snapshot holds: its parent is the last snapshot of the same host and path.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The cluster (or machine).
    pub host: String,
    /// What is backed up, by a name that stays when the directory moves (a claim's data sits
    /// under a new pod's directory after a restart); `None`: the directory's absolute path.
    pub path: Option<String>,
    /// A label: the backup it belongs to.
    pub tag: String,
}

/// Backs up directory `source` for `origin`; `counters` follow along.
pub async fn run(
    repo: Arc<Repository>,
    source: &Path,
    origin: Origin,
    counters: Arc<Counters>,
) -> Result<Summary> {
    let path = std::path::absolute(source).map_err(|e| Error::io(source, e))?;
    let root = Arc::new(Beneath::open(&path).map_err(|e| Error::io(&path, e))?);
    let path_text = origin.path.unwrap_or_else(|| path.display().to_string());
    let host = origin.host;
    let index = Arc::new(repo.backup_index().await?);
    let parent = repo
        .snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|(_, s)| s.path == path_text && s.host == host);

    let (chunk_tx, chunk_rx) = sync_channel::<Chunk>(CHUNK_QUEUE);
    let chunk_rx = Arc::new(std::sync::Mutex::new(chunk_rx));
    let (pack_tx, pack_rx) = tokio::sync::mpsc::channel::<Pack>(PACK_QUEUE);
    let packers: Vec<_> = (0..std::thread::available_parallelism().map_or(2, usize::from))
        .map(|_| {
            let (repo, rx, tx) = (repo.clone(), chunk_rx.clone(), pack_tx.clone());
            std::thread::spawn(move || pack_chunks(&repo, &rx, &tx))
        })
        .collect();
    // The packers hold the only receivers: if they all stop (their uploads failed), the walk's
    // next chunk fails at once instead of waiting for ever on a full queue.
    drop(chunk_rx);
    drop(pack_tx);
    let uploader = tokio::spawn(upload(repo.clone(), pack_rx));

    let walk = {
        let (repo, index, counters) = (repo.clone(), index.clone(), counters.clone());
        let parent_tree = parent.as_ref().map(|(_, s)| s.tree.clone());
        let handle = Handle::current();
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            let sink = Sink::new(&repo, &index, chunk_tx, &counters);
            std::thread::scope(|scope| {
                let mut walker = Walker {
                    handle,
                    sink: &sink,
                    root: &root,
                    readers: Readers::start(scope, &sink, &root),
                    links: HashMap::new(),
                    summary: Summary::default(),
                };
                let parent_tree = parent_tree.map(|t| BlobId::from_slice(&t)).transpose()?;
                let tree = walker
                    .dir(Path::new(""), parent_tree)
                    .inspect_err(|_| sink.stop())?;
                let meta = root.stat(Path::new("")).map_err(|e| Error::io(&path, e))?;
                Ok::<_, Error>((tree, node("", &Meta::from(&meta)), walker.summary))
            })
        })
    };
    let walked = walk.await.map_err(|_| Error::Worker("walk"));
    // Joined off the runtime: a packer may be waiting for the uploader, and a worker blocked in
    // `join` could hold the uploader's task (in its own slot, which no other worker takes): the
    // backup would never end.
    let packed = tokio::task::spawn_blocking(move || {
        packers.into_iter().try_fold((0, 0), |(blobs, bytes), p| {
            let (b, n) = p.join().map_err(|_| Error::Worker("packer"))??;
            Ok::<_, Error>((blobs + b, bytes + n))
        })
    });
    let added = packed.await.map_err(|_| Error::Worker("packer"));
    let uploaded = uploader.await.map_err(|_| Error::Worker("upload"))?;
    // An upload failure explains a packer or a walk that stopped: report it first.
    let Uploaded { packs, checkpoint } = uploaded?;
    // What was uploaded is indexed whether the walk finished or not: a run again reuses it.
    if !packs.is_empty() {
        repo.write_index(&pb::IndexFile { packs }).await?;
    }
    if let Some(id) = checkpoint {
        let_go(&repo, &id).await;
    }
    let added = added??;
    let (root, root_node, mut summary) = walked??;
    (summary.blobs_added, summary.bytes_added) = added;
    let snapshot = pb::Snapshot {
        time_unix_ms: cairn_proto::model::Timestamp::now().unix_ms(),
        tree: root.0.to_vec(),
        host: host.to_owned(),
        path: path_text,
        parent: parent.as_ref().map(|(id, _)| id.clone()).unwrap_or_default(),
        files: summary.files,
        dirs: summary.dirs,
        bytes: summary.bytes,
        bytes_read: summary.bytes_read,
        bytes_added: summary.bytes_added,
        tag: origin.tag,
        root: Some(root_node),
    };
    summary.snapshot = repo.save_snapshot(&snapshot).await?;
    summary.parent = parent.map(|(id, _)| id);
    Ok(summary)
}

/// One packer: seals chunks into its own packs, hands full packs to the uploader. Trees go to
/// packs of their own, as restic does: the next backup reads its parent's trees from a few
/// packs instead of one small read per directory all over the repository. Returns the blobs
/// and stored bytes it added.
fn pack_chunks(
    repo: &Repository,
    chunks: &std::sync::Mutex<Receiver<Chunk>>,
    packs: &tokio::sync::mpsc::Sender<Pack>,
) -> Result<(u64, u64)> {
    let (mut blobs, mut bytes) = (0, 0);
    let (mut data, mut trees) = (PackBuilder::new()?, PackBuilder::new()?);
    loop {
        let next = chunks.lock().map_err(|_| Error::Worker("packer"))?.recv();
        let Ok(chunk) = next else { break };
        let pack = if chunk.kind == pb::BlobKind::Tree {
            &mut trees
        } else {
            &mut data
        };
        let before = pack.len();
        pack.add(repo.master(), chunk.id, chunk.kind, &chunk.data)?;
        blobs += 1;
        bytes += (pack.len() - before) as u64;
        if pack.len() >= TARGET_BYTES {
            let full = std::mem::replace(pack, PackBuilder::new()?).finish(repo.master())?;
            packs.blocking_send(full).map_err(|_| Error::Worker("upload"))?;
        }
    }
    for pack in [data, trees] {
        if !pack.is_empty() {
            packs
                .blocking_send(pack.finish(repo.master())?)
                .map_err(|_| Error::Worker("upload"))?;
        }
    }
    Ok((blobs, bytes))
}

/// Deletes checkpoint index `id`, which a newer index covers; one left behind only repeats what
/// that index says (a prune drops it with the rest), so a failure is logged, not fatal.
async fn let_go(repo: &Repository, id: &str) {
    if let Err(e) = repo.delete_index(id).await {
        tracing::warn!(checkpoint = id, error = %e, "an old checkpoint index was left behind");
    }
}

/// Packs uploaded and not yet in a final index file, and the checkpoint index listing them.
struct Uploaded {
    packs: Vec<pb::IndexPack>,
    checkpoint: Option<String>,
}

/// Uploads packs as they come, writing an index file for them every [`INDEX_BLOBS`] blobs (so
/// memory does not grow with the number of new blobs) and a checkpoint of the packs since then
/// every few packs ([`CHECKPOINT_PACKS`]).
async fn upload(repo: Arc<Repository>, packs: tokio::sync::mpsc::Receiver<Pack>) -> Result<Uploaded> {
    let mut uploads = tokio_stream::wrappers::ReceiverStream::new(packs)
        .map(|pack| {
            let repo = repo.clone();
            async move {
                repo.put(&cairn_proto::format::VolumeKeys::pack(&pack.id), pack.bytes)
                    .await?;
                Ok::<_, Error>(pb::IndexPack {
                    pack: pack.id,
                    blobs: pack.blobs,
                })
            }
        })
        .buffer_unordered(UPLOADS);
    let (mut pending, mut blobs, mut since) = (Vec::new(), 0, 0);
    let mut checkpoint: Option<String> = None;
    while let Some(uploaded) = uploads.next().await {
        let uploaded = uploaded?;
        blobs += uploaded.blobs.len();
        pending.push(uploaded);
        since += 1;
        let replaced = if blobs >= INDEX_BLOBS {
            repo.write_index(&pb::IndexFile {
                packs: std::mem::take(&mut pending),
            })
            .await?;
            (blobs, since) = (0, 0);
            checkpoint.take()
        } else if since >= CHECKPOINT_PACKS.max(pending.len() / 16) {
            let id = repo
                .write_checkpoint(&pb::IndexFile {
                    packs: pending.clone(),
                })
                .await?;
            since = 0;
            checkpoint.replace(id)
        } else {
            None
        };
        // The new index lists everything the old checkpoint did: only now is it let go.
        if let Some(old) = replaced {
            let_go(&repo, &old).await;
        }
    }
    Ok(Uploaded {
        packs: pending,
        checkpoint,
    })
}

/// The walk of one backup: the files it must read go to `readers`, its trees to `sink`.
struct Walker<'a> {
    handle: Handle,
    sink: &'a Sink<'a>,
    /// The volume.
    root: &'a Beneath,
    readers: Readers,
    /// Hard-linked files by (device, inode): their content once read (`None`: being read).
    links: HashMap<(u64, u64), Option<Vec<Vec<u8>>>>,
    summary: Summary,
}

/// A directory entry.
struct Entry {
    /// Below the volume's directory.
    path: PathBuf,
    name: String,
    meta: Meta,
}

/// What a backup keeps of an entry's attributes (as listed, symlinks not followed).
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    kind: rustix::fs::FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    inode: u64,
    device: u64,
    links: u64,
    mtime_ns: i64,
}

impl From<&rustix::fs::Stat> for Meta {
    fn from(s: &rustix::fs::Stat) -> Self {
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        Self {
            kind: rustix::fs::FileType::from_raw_mode(s.st_mode),
            mode: s.st_mode as u32,
            uid: s.st_uid,
            gid: s.st_gid,
            size: u64::try_from(s.st_size).unwrap_or(0),
            inode: s.st_ino as u64,
            device: s.st_dev as u64,
            links: s.st_nlink as u64,
            mtime_ns: (s.st_mtime as i64) * 1_000_000_000 + (s.st_mtime_nsec as i64),
        }
    }
}

impl Meta {
    fn is_file(&self) -> bool {
        self.kind == rustix::fs::FileType::RegularFile
    }

    /// (device, inode): which file it is.
    pub(super) fn identity(&self) -> (u64, u64) {
        (self.device, self.inode)
    }
}

/// Whether `e` says an entry was replaced or removed while the backup read it.
pub(super) fn changed(e: &std::io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(e),
        Some(
            rustix::io::Errno::LOOP
                | rustix::io::Errno::NOENT
                | rustix::io::Errno::NOTDIR
                | rustix::io::Errno::NXIO
        )
    )
}

impl Walker<'_> {
    /// Backs up directory `dir` (its parent-snapshot tree: `parent`); returns its tree's id. The
    /// files it has to read are handed to the readers [`READ_AHEAD`] ahead of the walk.
    fn dir(&mut self, dir: &Path, parent: Option<BlobId>) -> Result<BlobId> {
        let parent: HashMap<String, pb::Node> = match parent {
            Some(id) if self.sink.index.contains(&id) => self
                .handle
                .block_on(self.sink.repo.tree(self.sink.index, &id))?
                .nodes
                .into_iter()
                .map(|n| (n.name.clone(), n))
                .collect(),
            _ => HashMap::new(),
        };
        let entries = self.entries(dir)?;
        let (mut reads, mut ahead) = (VecDeque::new(), 0);
        let mut nodes = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            while ahead < entries.len() && reads.len() < READ_AHEAD {
                let next = &entries[ahead];
                if let Some(read) = self.start_read(next, parent.get(&next.name))? {
                    reads.push_back((ahead, read));
                }
                ahead += 1;
            }
            let before = parent.get(&entry.name);
            let read = match reads.front() {
                Some((j, _)) if *j == i => reads.pop_front().map(|(_, read)| read),
                _ => None,
            };
            match self.entry(entry, before, read) {
                Ok(node) => nodes.push(node),
                Err(Error::Changed { path }) => {
                    tracing::warn!(%path, "replaced or removed while being backed up: left out of the snapshot");
                    self.summary.changed += 1;
                }
                Err(e) => return Err(e),
            }
        }
        let tree = pb::Tree { nodes }.encode_to_vec();
        let id = BlobId::of(self.sink.repo.id_key(), &tree);
        self.sink.store(id, pb::BlobKind::Tree, tree)?;
        Ok(id)
    }

    /// The node of `entry` (`before`: in the parent snapshot; `read`: its content being read).
    fn entry(&mut self, entry: &Entry, before: Option<&pb::Node>, read: Option<Pending>) -> Result<pb::Node> {
        let mut node = node(&entry.name, &entry.meta);
        let kind = entry.meta.kind;
        if kind == rustix::fs::FileType::Directory {
            let sub = before
                .filter(|b| b.kind == pb::NodeKind::Dir as i32)
                .map(|b| BlobId::from_slice(&b.subtree))
                .transpose()?;
            node.subtree = self.dir(&entry.path, sub)?.0.to_vec();
            self.summary.dirs += 1;
        } else if kind == rustix::fs::FileType::Symlink {
            // EINVAL: no longer a symlink.
            node.target = self
                .root
                .read_link(&entry.path)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::EINVAL) => Error::Changed {
                        path: self.root.show(&entry.path).display().to_string(),
                    },
                    _ => self.io(&entry.path, e),
                })?;
        } else if entry.meta.is_file() {
            node.content = self.content(entry, before, read)?;
            self.summary.files += 1;
            self.summary.bytes += entry.meta.size;
            self.sink.counters.files.fetch_add(1, Ordering::Relaxed);
        }
        Ok(node)
    }

    /// The entries of directory `dir` (below the volume's), by name.
    fn entries(&self, dir: &Path) -> Result<Vec<Entry>> {
        let listed = self.root.entries(dir).map_err(|e| self.io(dir, e))?;
        Ok(listed
            .into_iter()
            .map(|(name, stat)| Entry {
                path: dir.join(&name),
                name,
                meta: Meta::from(&stat),
            })
            .collect())
    }

    /// `e` on `path`: [`Error::Changed`] if the entry was replaced or removed meanwhile.
    fn io(&self, path: &Path, e: std::io::Error) -> Error {
        let shown = self.root.show(path);
        if changed(&e) {
            Error::Changed {
                path: shown.display().to_string(),
            }
        } else {
            Error::io(&shown, e)
        }
    }

    /// Whether file `meta` is the parent snapshot's `before`: same size, mtime and inode, and
    /// its blobs still in the repository.
    fn unchanged(&self, meta: &Meta, before: Option<&pb::Node>) -> bool {
        before.is_some_and(|b| {
            b.kind == pb::NodeKind::File as i32
                && b.size == meta.size
                && b.mtime_ns == meta.mtime_ns
                && b.inode == meta.inode
                && b.content
                    .iter()
                    .all(|c| BlobId::from_slice(c).is_ok_and(|id| self.sink.index.contains(&id)))
        })
    }

    /// Starts reading `entry` unless it is no file, unchanged since `before`, or a hard link to
    /// a file read already.
    fn start_read(&mut self, entry: &Entry, before: Option<&pb::Node>) -> Result<Option<Pending>> {
        if !entry.meta.is_file() || self.unchanged(&entry.meta, before) {
            return Ok(None);
        }
        if let Some(link) = link(&entry.meta) {
            if self.links.contains_key(&link) {
                return Ok(None);
            }
            self.links.insert(link, None);
        }
        self.readers
            .read(entry.path.clone(), entry.meta.size, entry.meta.identity())
            .map(Some)
    }

    /// The content (blob ids) of file `entry`: `read` if it was read, else the parent
    /// snapshot's (`before`) or, for a hard link, that of the link read before it.
    fn content(
        &mut self,
        entry: &Entry,
        before: Option<&pb::Node>,
        read: Option<Pending>,
    ) -> Result<Vec<Vec<u8>>> {
        if let Some(read) = read {
            let (content, bytes) = read.wait()?;
            self.summary.files_read += 1;
            self.summary.bytes_read += bytes;
            if let Some(link) = link(&entry.meta) {
                self.links.insert(link, Some(content.clone()));
            }
            return Ok(content);
        }
        match before {
            Some(b) if self.unchanged(&entry.meta, before) => Ok(b.content.clone()),
            // A hard link to a file read before it; if that one changed meanwhile, so did this.
            _ => link(&entry.meta)
                .and_then(|l| self.links.get(&l).cloned().flatten())
                .ok_or_else(|| Error::Changed {
                    path: self.root.show(&entry.path).display().to_string(),
                }),
        }
    }
}

/// The (device, inode) of a file with more than one link.
fn link(meta: &Meta) -> Option<(u64, u64)> {
    (meta.links > 1).then(|| meta.identity())
}

/// A node with `meta`'s attributes (content, subtree or target filled by the caller).
fn node(name: &str, meta: &Meta) -> pb::Node {
    use rustix::fs::FileType;
    let kind = match meta.kind {
        FileType::Directory => pb::NodeKind::Dir,
        FileType::Symlink => pb::NodeKind::Symlink,
        FileType::RegularFile => pb::NodeKind::File,
        _ => pb::NodeKind::Other,
    };
    pb::Node {
        name: name.to_owned(),
        kind: kind as i32,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        mtime_ns: meta.mtime_ns,
        size: meta.size,
        inode: meta.inode,
        device: meta.device,
        links: meta.links,
        content: Vec::new(),
        subtree: Vec::new(),
        target: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::format::{VolumeDir, VolumeKeys};
    use cairn_proto::seal::Key;
    use object_store::memory::InMemory;
    use object_store::path::Path as ObjectPath;
    use object_store::{
        GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
        PutOptions, PutPayload, PutResult,
    };
    use std::sync::atomic::AtomicUsize;

    /// A bucket that takes `packs` packs, then refuses every other: gone mid-backup.
    #[derive(Debug)]
    struct Failing {
        inner: InMemory,
        packs: AtomicUsize,
    }

    impl std::fmt::Display for Failing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Failing")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Failing {
        async fn put_opts(
            &self,
            location: &ObjectPath,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            let is_pack = location.as_ref().starts_with(&VolumeKeys::dir(VolumeDir::Data));
            if is_pack
                && self
                    .packs
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_err()
            {
                return Err(object_store::Error::Generic {
                    store: "Failing",
                    source: "the bucket is gone".into(),
                });
            }
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &ObjectPath,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &ObjectPath,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &ObjectPath,
            to: &ObjectPath,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// The bucket goes away after one pack of a backup of many: the backup ends, saying why,
    /// instead of its walk waiting for ever on packers that have stopped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bucket_gone_mid_backup_ends_it_with_the_uploads_error() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("tempdir"), e))?;
        // 64 MiB that does not compress: eight packs or so.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for file in 0..8 {
            let data: Vec<u8> = (0..(8 << 20) / 8)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .collect();
            let path = dir.path().join(format!("f{file}"));
            std::fs::write(&path, data).map_err(|e| Error::io(&path, e))?;
        }
        let store = Arc::new(Failing {
            inner: InMemory::new(),
            packs: AtomicUsize::new(1),
        });
        let kek = Key::from_raw(&[3; 32], "kek")?;
        let repo = Arc::new(Repository::init(store, "vault", &kek).await?);
        let origin = Origin {
            host: "h".into(),
            path: None,
            tag: "t".into(),
        };
        let ran = run(repo, dir.path(), origin, Arc::new(Counters::default()));
        let ended = tokio::time::timeout(std::time::Duration::from_secs(60), ran)
            .await
            .expect("the backup ended");
        let e = ended.expect_err("the backup failed");
        let chain = cairn_proto::error_chain(&e);
        assert!(chain.contains("the bucket is gone"), "{chain}");
        Ok(())
    }
}
