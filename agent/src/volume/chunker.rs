//! Files into chunks on a pool of reader threads, so the walk never waits on the disk: a cold
//! small file costs a disk round trip, and reading many at once hides it (a million-file volume
//! is bound by that latency), while large files are chunked on every core.
//!
//! A file is read, cut into content-defined chunks (FastCDC 2020), hashed, and each chunk the
//! repository and this run lack goes to the packers; the walk gets back the file's blob ids, in
//! the order it asked. Large files are read through a few buffers kept for the whole backup,
//! which bound the memory whatever the number of threads.

use cairn_proto::pb;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use super::backup::Counters;
use super::beneath::Beneath;
use super::blob::BlobId;
use super::index::Index;
use super::{Error, Repository, Result};

/// Reader threads: enough reads in flight to hide a cold disk's latency.
const READERS: usize = 8;

/// A chunk on its way to a packer.
pub struct Chunk {
    /// Its id.
    pub id: BlobId,
    /// Data or tree.
    pub kind: pb::BlobKind,
    /// Its plaintext.
    pub data: Vec<u8>,
}

/// Where chunks go: the packers, unless the repository or this run has them already.
pub struct Sink<'a> {
    /// The repository written to.
    pub(super) repo: &'a Repository,
    /// What it holds already.
    pub(super) index: &'a Index,
    /// Blobs queued by this run.
    seen: Mutex<HashSet<u128>>,
    chunks: SyncSender<Chunk>,
    /// Progress, for the bar.
    pub(super) counters: &'a Counters,
    /// Set when the walk gave up: queued reads are skipped.
    stopped: AtomicBool,
}

impl<'a> Sink<'a> {
    /// Chunks of `repo` (which holds `index`) to `chunks`, counted in `counters`.
    pub fn new(
        repo: &'a Repository,
        index: &'a Index,
        chunks: SyncSender<Chunk>,
        counters: &'a Counters,
    ) -> Self {
        Self {
            repo,
            index,
            seen: Mutex::new(HashSet::new()),
            chunks,
            counters,
            stopped: AtomicBool::new(false),
        }
    }

    /// Queues blob `id` unless the repository or this run has it.
    pub fn store(&self, id: BlobId, kind: pb::BlobKind, data: Vec<u8>) -> Result<()> {
        let new = !self.index.contains(&id)
            && self
                .seen
                .lock()
                .map_err(|_| Error::Worker("chunker"))?
                .insert(id.prefix());
        if new {
            self.chunks
                .send(Chunk { id, kind, data })
                .map_err(|_| Error::Worker("packer"))?;
        }
        Ok(())
    }

    /// Stores one chunk of file data; returns its id as the tree records it.
    fn chunk(&self, data: Vec<u8>) -> Result<Vec<u8>> {
        let id = BlobId::of(self.repo.id_key(), &data);
        self.counters
            .bytes_read
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.store(id, pb::BlobKind::Data, data)?;
        Ok(id.0.to_vec())
    }

    /// Tells the readers to skip what is queued: the walk failed.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// A file read: its blob ids, and the bytes read.
pub type Content = (Vec<Vec<u8>>, u64);

struct Job {
    /// Below the volume's directory.
    path: PathBuf,
    size: u64,
    /// (device, inode) as listed: the file read must be that one.
    identity: (u64, u64),
    done: SyncSender<Result<Content>>,
}

/// A file being read: [`Pending::wait`] gives its content.
pub struct Pending(Receiver<Result<Content>>);

impl Pending {
    /// The file's blob ids and bytes read, once its chunks are queued.
    pub fn wait(self) -> Result<Content> {
        self.0.recv().map_err(|_| Error::Worker("chunker"))?
    }
}

/// The reader threads of one backup.
pub struct Readers {
    jobs: Sender<Job>,
}

impl Readers {
    /// Starts the readers in `scope`, reading files below `root`, feeding `sink`.
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        sink: &'env Sink<'env>,
        root: &'env Beneath,
    ) -> Self {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        // One read buffer per core: large files are chunked on every core, no more at once.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let (give, take) = sync_channel::<Vec<u8>>(cores);
        for _ in 0..cores {
            let _ = give.send(Vec::new());
        }
        let buffers = Arc::new((give, Mutex::new(take)));
        for _ in 0..READERS {
            let (queue, buffers) = (queue.clone(), buffers.clone());
            scope.spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let content = if sink.stopped.load(Ordering::Relaxed) {
                        Err(Error::Worker("chunker"))
                    } else {
                        read(sink, root, &job, &buffers)
                    };
                    let _ = job.done.send(content);
                }
            });
        }
        Self { jobs }
    }

    /// Queues file `path` (`size` bytes long, listed as `identity`: device and inode) for
    /// reading.
    pub fn read(&self, path: PathBuf, size: u64, identity: (u64, u64)) -> Result<Pending> {
        let (done, result) = sync_channel(1);
        self.jobs
            .send(Job {
                path,
                size,
                identity,
                done,
            })
            .map_err(|_| Error::Worker("chunker"))?;
        Ok(Pending(result))
    }
}

type Buffers = (SyncSender<Vec<u8>>, Mutex<Receiver<Vec<u8>>>);

/// Opens the file of `job` below `root`: not through a symlink, and only if it is still the
/// file listed ([`Error::Changed`] otherwise).
fn open(root: &Beneath, job: &Job) -> Result<std::fs::File> {
    let shown = root.show(&job.path);
    let changed = || Error::Changed {
        path: shown.display().to_string(),
    };
    let file = root.read_file(&job.path).map_err(|e| {
        if super::backup::changed(&e) {
            changed()
        } else {
            Error::io(&shown, e)
        }
    })?;
    let stat = rustix::fs::fstat(&file).map_err(|e| Error::io(&shown, e.into()))?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    let identity = (stat.st_dev as u64, stat.st_ino as u64);
    if identity != job.identity {
        return Err(changed());
    }
    Ok(file)
}

/// Reads and chunks the file of `job`.
fn read(sink: &Sink, root: &Beneath, job: &Job, buffers: &Buffers) -> Result<Content> {
    use std::io::Read;
    let path = &root.show(&job.path);
    let (min, avg, max) = sink.repo.chunking();
    let (mut content, mut bytes) = (Vec::new(), 0);
    let mut file = open(root, job)?;
    if job.size <= u64::from(min) {
        // One chunk whatever the cut points: read it whole (no more than a chunk, however it
        // grew since it was listed).
        let mut data = Vec::with_capacity(usize::try_from(job.size).unwrap_or(0));
        (&mut file)
            .take(u64::from(min))
            .read_to_end(&mut data)
            .map_err(|e| Error::io(path, e))?;
        bytes = data.len() as u64;
        if !data.is_empty() {
            content.push(sink.chunk(data)?);
        }
        return Ok((content, bytes));
    }
    let mut buffer = buffers
        .1
        .lock()
        .map_err(|_| Error::Worker("chunker"))?
        .recv()
        .map_err(|_| Error::Worker("chunker"))?;
    let cut = cut_chunks(&mut file, path, &mut buffer, (min, avg, max), |data| {
        bytes += data.len() as u64;
        content.push(sink.chunk(data)?);
        Ok(())
    });
    let _ = buffers.0.send(buffer);
    cut.map(|()| (content, bytes))
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
