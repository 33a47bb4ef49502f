//! A directory into a snapshot. The walk (one thread) reads each changed file through FastCDC,
//! hashes the chunks and skips those the repository or this run already holds; new chunks go over
//! a bounded queue to one packer per core, which compresses, seals and packs them; finished packs
//! go, two at a time, to the uploader. Memory stays bounded by the queues whatever the volume's
//! size or file count. A file whose size, mtime and inode match the parent snapshot is not read.
//! Index files list packs only once they are uploaded; the snapshot is written last.

use cairn_proto::pb;
use futures::StreamExt;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use tokio::runtime::Handle;

use super::blob::BlobId;
use super::index::Index;
use super::pack::{Pack, PackBuilder, TARGET_BYTES};
use super::{Error, Repository, Result};

/// Chunks waiting for a packer (each up to the largest chunk, 1 MiB on average).
const CHUNK_QUEUE: usize = 4;
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

struct Chunk {
    id: BlobId,
    kind: pb::BlobKind,
    data: Vec<u8>,
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
            let mut walker = Walker {
                repo: &repo,
                index: &index,
                handle,
                chunks: chunk_tx,
                seen: HashSet::new(),
                links: HashMap::new(),
                buffer: Vec::new(),
                counters: &counters,
                summary: Summary::default(),
            };
            let parent_tree = parent_tree.map(|t| BlobId::from_slice(&t)).transpose()?;
            let root = walker.dir(&path, parent_tree)?;
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            Ok::<_, Error>((root, node("", &meta), walker.summary))
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
                repo.put(&super::repo::pack_key(&pack.id), pack.bytes).await?;
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

struct Walker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    handle: Handle,
    chunks: SyncSender<Chunk>,
    /// Blobs queued by this run.
    seen: HashSet<u128>,
    /// Hard-linked files already stored, by (device, inode): their content.
    links: HashMap<(u64, u64), Vec<Vec<u8>>>,
    /// Read buffer of the chunker, kept from file to file.
    buffer: Vec<u8>,
    counters: &'a Counters,
    summary: Summary,
}

impl Walker<'_> {
    /// Queues blob `id` unless the repository or this run has it.
    fn store(&mut self, id: BlobId, kind: pb::BlobKind, data: Vec<u8>) -> Result<()> {
        if !self.index.contains(&id) && self.seen.insert(id.prefix()) {
            self.chunks
                .send(Chunk { id, kind, data })
                .map_err(|_| Error::Worker("packer"))?;
        }
        Ok(())
    }

    /// Stores one chunk of file data read; returns its id as the tree records it.
    fn chunk(&mut self, data: Vec<u8>) -> Result<Vec<u8>> {
        let id = BlobId::of(self.repo.id_key(), &data);
        self.summary.bytes_read += data.len() as u64;
        self.counters
            .bytes_read
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.store(id, pb::BlobKind::Data, data)?;
        Ok(id.0.to_vec())
    }

    /// Backs up directory `dir` (its parent-snapshot tree: `parent`); returns its tree's id.
    fn dir(&mut self, dir: &Path, parent: Option<BlobId>) -> Result<BlobId> {
        let parent: HashMap<String, pb::Node> = match parent {
            Some(id) if self.index.contains(&id) => self
                .handle
                .block_on(self.repo.tree(self.index, &id))?
                .nodes
                .into_iter()
                .map(|n| (n.name.clone(), n))
                .collect(),
            _ => HashMap::new(),
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| Error::io(dir, e))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        let mut nodes = Vec::with_capacity(entries.len());
        for entry in entries {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let before = parent.get(&name);
            let mut node = node(&name, &meta);
            let kind = meta.file_type();
            if kind.is_dir() {
                let sub = before
                    .filter(|b| b.kind == pb::NodeKind::Dir as i32)
                    .map(|b| BlobId::from_slice(&b.subtree))
                    .transpose()?;
                node.subtree = self.dir(&path, sub)?.0.to_vec();
                self.summary.dirs += 1;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
                node.target = target.to_string_lossy().into_owned();
            } else if kind.is_file() {
                node.content = self.file(&path, &meta, before)?;
                self.summary.files += 1;
                self.summary.bytes += meta.len();
                self.counters.files.fetch_add(1, Ordering::Relaxed);
            }
            nodes.push(node);
        }
        let tree = pb::Tree { nodes }.encode_to_vec();
        let id = BlobId::of(self.repo.id_key(), &tree);
        self.store(id, pb::BlobKind::Tree, tree)?;
        Ok(id)
    }

    /// The content (blob ids) of file `path`: the parent snapshot's if size, mtime and inode are
    /// unchanged, a hard link's already read, or read and chunked now.
    fn file(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        before: Option<&pb::Node>,
    ) -> Result<Vec<Vec<u8>>> {
        let unchanged = before.is_some_and(|b| {
            b.kind == pb::NodeKind::File as i32
                && b.size == meta.len()
                && b.mtime_ns == mtime_ns(meta)
                && b.inode == meta.ino()
                && b.content
                    .iter()
                    .all(|c| BlobId::from_slice(c).is_ok_and(|id| self.index.contains(&id)))
        });
        if let (true, Some(b)) = (unchanged, before) {
            return Ok(b.content.clone());
        }
        let link = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        if let Some(content) = link.and_then(|l| self.links.get(&l)) {
            return Ok(content.clone());
        }
        let (min, avg, max) = self.repo.chunking();
        let mut content = Vec::new();
        if meta.len() <= u64::from(min) {
            // One chunk whatever the cut points: read it whole, without a chunker's 8 MiB buffer
            // (a volume of a million small files would otherwise allocate one per file).
            let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            if !data.is_empty() {
                content.push(self.chunk(data)?);
            }
        } else {
            let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let mut buffer = std::mem::take(&mut self.buffer);
            let cut = cut_chunks(&mut file, path, &mut buffer, (min, avg, max), |data| {
                content.push(self.chunk(data)?);
                Ok(())
            });
            self.buffer = buffer;
            cut?;
        }
        self.summary.files_read += 1;
        if let Some(l) = link {
            self.links.insert(l, content.clone());
        }
        Ok(content)
    }
}

/// Cuts `file` (at `path`) into content-defined chunks (FastCDC 2020, bounds `min`, `avg`, `max`:
/// the cut points of `fastcdc`'s `StreamCDC`) read through `buffer`, which is kept from file to
/// file (`StreamCDC` allocates its own `max`-sized buffer per file); hands each chunk to `emit`.
fn cut_chunks(
    file: &mut std::fs::File,
    path: &Path,
    buffer: &mut Vec<u8>,
    (min, avg, max): (u32, u32, u32),
    mut emit: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<()> {
    use std::io::Read;
    let max_len = max as usize;
    buffer.resize(2 * max_len, 0);
    let (mut start, mut end, mut eof) = (0, 0, false);
    loop {
        // Keep at least one largest chunk's worth ahead, so every cut but the last is final.
        if end - start < max_len && !eof {
            buffer.copy_within(start..end, 0);
            (end, start) = (end - start, 0);
            while end < buffer.len() {
                let n = file.read(&mut buffer[end..]).map_err(|e| Error::io(path, e))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                end += n;
            }
        }
        if start == end {
            return Ok(());
        }
        let data = &buffer[start..end];
        let mut taken = 0;
        for chunk in fastcdc::v2020::FastCDC::new(data, min, avg, max) {
            let last = chunk.offset + chunk.length;
            // A cut at the end of what was read is final only at the end of the file or at `max`.
            if last == data.len() && !eof && chunk.length < max_len {
                break;
            }
            emit(data[chunk.offset..last].to_vec())?;
            taken = last;
            if end - (start + taken) < max_len && !eof {
                break; // read more before the next cut
            }
        }
        start += taken;
    }
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
