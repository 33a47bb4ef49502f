//! A directory into a snapshot. The walk (one thread) lists directories and hands each changed
//! file, ahead of itself, to the [`super::chunker`] readers, which cut it with FastCDC, hash the
//! chunks and skip those the repository or this run already holds; new chunks go over a bounded
//! queue to one packer per core, which compresses, seals and packs them; finished packs
//! go, two at a time, to the uploader. Memory stays bounded by the queues whatever the volume's
//! size or file count. A file whose size, mtime and inode match the parent snapshot is not read.
//! Index files list packs only once they are uploaded; the snapshot is written last.

use cairn_proto::pb;
use futures::StreamExt;
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use tokio::runtime::Handle;

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
    drop(pack_tx);
    let uploader = tokio::spawn(upload(repo.clone(), pack_rx));

    let walk = {
        let (repo, index, counters) = (repo.clone(), index.clone(), counters.clone());
        let parent_tree = parent.as_ref().map(|(_, s)| s.tree.clone());
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || {
            let sink = Sink::new(&repo, &index, chunk_tx, &counters);
            std::thread::scope(|scope| {
                let mut walker = Walker {
                    handle,
                    sink: &sink,
                    readers: Readers::start(scope, &sink),
                    links: HashMap::new(),
                    summary: Summary::default(),
                };
                let parent_tree = parent_tree.map(|t| BlobId::from_slice(&t)).transpose()?;
                let root = walker.dir(&path, parent_tree).inspect_err(|_| sink.stop())?;
                let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
                Ok::<_, Error>((root, node("", &meta), walker.summary))
            })
        })
    };
    let walked = walk.await.map_err(|_| Error::Worker("walk"));
    let mut added = (0, 0);
    for p in packers {
        let (blobs, bytes) = p.join().map_err(|_| Error::Worker("packer"))??;
        added = (added.0 + blobs, added.1 + bytes);
    }
    let uploaded = uploader.await.map_err(|_| Error::Worker("upload"))?;
    // An upload failure explains a walk that stopped: report it first.
    let packs = uploaded?;
    let (root, root_node, mut summary) = walked??;
    if !packs.is_empty() {
        repo.write_index(&pb::IndexFile { packs }).await?;
    }
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

/// Uploads packs as they come, writing an index file for them every [`INDEX_BLOBS`] blobs (so
/// memory does not grow with the number of new blobs); returns the packs not yet indexed.
async fn upload(
    repo: Arc<Repository>,
    packs: tokio::sync::mpsc::Receiver<Pack>,
) -> Result<Vec<pb::IndexPack>> {
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
    let (mut pending, mut blobs) = (Vec::new(), 0);
    while let Some(uploaded) = uploads.next().await {
        let uploaded = uploaded?;
        blobs += uploaded.blobs.len();
        pending.push(uploaded);
        if blobs >= INDEX_BLOBS {
            repo.write_index(&pb::IndexFile {
                packs: std::mem::take(&mut pending),
            })
            .await?;
            blobs = 0;
        }
    }
    Ok(pending)
}

/// The walk of one backup: the files it must read go to `readers`, its trees to `sink`.
struct Walker<'a> {
    handle: Handle,
    sink: &'a Sink<'a>,
    readers: Readers,
    /// Hard-linked files by (device, inode): their content once read (`None`: being read).
    links: HashMap<(u64, u64), Option<Vec<Vec<u8>>>>,
    summary: Summary,
}

/// A directory entry.
struct Entry {
    path: PathBuf,
    name: String,
    meta: std::fs::Metadata,
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
        let entries = entries(dir)?;
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
            let mut node = node(&entry.name, &entry.meta);
            let kind = entry.meta.file_type();
            if kind.is_dir() {
                let sub = before
                    .filter(|b| b.kind == pb::NodeKind::Dir as i32)
                    .map(|b| BlobId::from_slice(&b.subtree))
                    .transpose()?;
                node.subtree = self.dir(&entry.path, sub)?.0.to_vec();
                self.summary.dirs += 1;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&entry.path).map_err(|e| Error::io(&entry.path, e))?;
                node.target = target.to_string_lossy().into_owned();
            } else if kind.is_file() {
                let read = match reads.front() {
                    Some((j, _)) if *j == i => reads.pop_front().map(|(_, read)| read),
                    _ => None,
                };
                node.content = self.content(entry, before, read)?;
                self.summary.files += 1;
                self.summary.bytes += entry.meta.len();
                self.sink.counters.files.fetch_add(1, Ordering::Relaxed);
            }
            nodes.push(node);
        }
        let tree = pb::Tree { nodes }.encode_to_vec();
        let id = BlobId::of(self.sink.repo.id_key(), &tree);
        self.sink.store(id, pb::BlobKind::Tree, tree)?;
        Ok(id)
    }

    /// Whether file `meta` is the parent snapshot's `before`: same size, mtime and inode, and
    /// its blobs still in the repository.
    fn unchanged(&self, meta: &std::fs::Metadata, before: Option<&pb::Node>) -> bool {
        before.is_some_and(|b| {
            b.kind == pb::NodeKind::File as i32
                && b.size == meta.len()
                && b.mtime_ns == mtime_ns(meta)
                && b.inode == meta.ino()
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
        self.readers.read(entry.path.clone(), entry.meta.len()).map(Some)
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
            _ => link(&entry.meta)
                .and_then(|l| self.links.get(&l).cloned().flatten())
                .ok_or(Error::Worker("walk")),
        }
    }
}

/// The entries of directory `dir`, by name, with their attributes.
fn entries(dir: &Path) -> Result<Vec<Entry>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io(dir, e))?;
    names.sort_by_key(std::fs::DirEntry::file_name);
    names
        .into_iter()
        .map(|e| {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            Ok(Entry { path, name, meta })
        })
        .collect()
}

/// The (device, inode) of a file with more than one link.
fn link(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()))
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}

/// A node with `meta`'s attributes (content, subtree or target filled by the caller).
fn node(name: &str, meta: &std::fs::Metadata) -> pb::Node {
    let t = meta.file_type();
    let kind = if t.is_dir() {
        pb::NodeKind::Dir
    } else if t.is_symlink() {
        pb::NodeKind::Symlink
    } else if t.is_file() {
        pb::NodeKind::File
    } else {
        pb::NodeKind::Other
    };
    pb::Node {
        name: name.to_owned(),
        kind: kind as i32,
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: mtime_ns(meta),
        size: meta.len(),
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        content: Vec::new(),
        subtree: Vec::new(),
        target: String::new(),
    }
}
