//! A snapshot back into a directory: directories first, files' content blob by blob (several
//! files at once; an all-zero chunk becomes a hole, so sparse files stay sparse), then hard links,
//! then each directory's mode, owner and times once its content is in place. Owners are set when
//! running as root. Devices, FIFOs and sockets are counted and skipped.

use cairn_proto::pb;
use futures::StreamExt;
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::backup::Counters;
use super::blob::BlobId;
use super::index::Index;
use super::{Error, Repository, Result};

/// Files restored at once.
const FILES_IN_FLIGHT: usize = 8;
/// Blobs of one file fetched ahead of the one being written.
const BLOBS_AHEAD: usize = 4;

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

struct Work {
    dirs: Vec<(PathBuf, pb::Node)>,
    files: Vec<(PathBuf, pb::Node)>,
    links: Vec<(PathBuf, PathBuf)>,
    symlinks: Vec<(PathBuf, pb::Node)>,
    skipped: u64,
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
    let mut work = Work {
        dirs: Vec::new(),
        files: Vec::new(),
        links: Vec::new(),
        symlinks: Vec::new(),
        skipped: 0,
    };
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let mut pending = vec![(target.to_owned(), BlobId::from_slice(&snap.tree)?)];
    let mut first_link: HashMap<(u64, u64), PathBuf> = HashMap::new();
    while let Some((dir, tree)) = pending.pop() {
        for node in repo.tree(&index, &tree).await?.nodes {
            let path = dir.join(&node.name);
            match pb::NodeKind::try_from(node.kind).unwrap_or(pb::NodeKind::Other) {
                pb::NodeKind::Dir => {
                    std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                    pending.push((path.clone(), BlobId::from_slice(&node.subtree)?));
                    work.dirs.push((path, node));
                }
                pb::NodeKind::File if node.links > 1 => match first_link.get(&(node.device, node.inode)) {
                    Some(first) => work.links.push((first.clone(), path)),
                    None => {
                        first_link.insert((node.device, node.inode), path.clone());
                        work.files.push((path, node));
                    }
                },
                pb::NodeKind::File => work.files.push((path, node)),
                pb::NodeKind::Symlink => work.symlinks.push((path, node)),
                pb::NodeKind::Other => work.skipped += 1,
            }
        }
    }

    let mut summary = Summary {
        dirs: work.dirs.len() as u64,
        skipped: work.skipped,
        ..Summary::default()
    };
    let total = work.files.len();
    let results: Vec<Result<u64>> = futures::stream::iter(work.files)
        .map(|(path, node)| {
            let (repo, index, counters) = (repo.clone(), index.clone(), counters.clone());
            async move { restore_file(&repo, &index, &path, &node, &counters).await }
        })
        .buffer_unordered(FILES_IN_FLIGHT)
        .collect()
        .await;
    // A damaged blob costs its file, not the restore: the others are written, and the failures
    // are reported together at the end.
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(bytes) => {
                summary.files += 1;
                summary.bytes += bytes;
            }
            Err(e) => failed.push(cairn_proto::error_chain(&e)),
        }
    }
    for (first, path) in &work.links {
        let _ = std::fs::remove_file(path);
        std::fs::hard_link(first, path).map_err(|e| Error::io(path, e))?;
        summary.links += 1;
    }
    for (path, node) in &work.symlinks {
        let _ = std::fs::remove_file(path);
        std::os::unix::fs::symlink(&node.target, path).map_err(|e| Error::io(path, e))?;
        attributes(path, node, true)?;
    }
    // Deepest first, so setting a directory's time is not undone by writing into it.
    work.dirs
        .sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, node) in &work.dirs {
        attributes(path, node, false)?;
    }
    if !failed.is_empty() {
        failed.sort();
        return Err(Error::Partial {
            failed: failed.len(),
            total,
            files: failed.into_iter().take(20).collect(),
        });
    }
    Ok(summary)
}

/// Writes one file's content and attributes; returns its size.
async fn restore_file(
    repo: &Repository,
    index: &Index,
    path: &Path,
    node: &pb::Node,
    counters: &Counters,
) -> Result<u64> {
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    // The next blobs are fetched and opened while one is written.
    let mut blobs = futures::stream::iter(node.content.clone())
        .map(|id| async move {
            let id = BlobId::from_slice(&id)?;
            repo.read_blob(index, &id).await.map_err(|e| in_file(e, path))
        })
        .buffered(BLOBS_AHEAD);
    while let Some(data) = blobs.next().await {
        let data = data?;
        write_sparse(&mut file, &data).map_err(|e| Error::io(path, e))?;
        counters
            .bytes_read
            .fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    file.set_len(node.size).map_err(|e| Error::io(path, e))?;
    drop(file);
    attributes(path, node, false)?;
    counters.files.fetch_add(1, Ordering::Relaxed);
    Ok(node.size)
}

/// Block size holes are made in: an all-zero block is skipped, not written.
const HOLE_BLOCK: usize = 4096;

/// Writes `data`, leaving holes where whole blocks are zero (the file's length is set after).
fn write_sparse(file: &mut std::fs::File, data: &[u8]) -> std::io::Result<()> {
    let zero = |b: &[u8]| b.len() == HOLE_BLOCK && b.iter().all(|x| *x == 0);
    let mut start = 0;
    while start < data.len() {
        // A run of blocks that are all zero, or all not: one seek or one write.
        let hole = zero(&data[start..(start + HOLE_BLOCK).min(data.len())]);
        let mut end = start;
        while end < data.len() && zero(&data[end..(end + HOLE_BLOCK).min(data.len())]) == hole {
            end = (end + HOLE_BLOCK).min(data.len());
        }
        if hole {
            file.seek(SeekFrom::Current(i64::try_from(end - start).unwrap_or(i64::MAX)))?;
        } else {
            file.write_all(&data[start..end])?;
        }
        start = end;
    }
    Ok(())
}

/// Names the file a damaged or missing blob belongs to.
fn in_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Corrupt { what, reason } => Error::Corrupt {
            what: format!("{what} (of file {})", path.display()),
            reason,
        },
        Error::MissingBlob(id) => Error::Corrupt {
            what: format!("file {}", path.display()),
            reason: format!("its blob {id} is missing from the repository"),
        },
        other => other,
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
