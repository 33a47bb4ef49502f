//! Checking a repository: every pack an index lists must exist; with `read_data`, every pack is
//! read, its bytes must hash to its name and every blob must open to its id. Damage is reported
//! with the files (of any snapshot) whose content it touches. Reads only: never blocks a backup.

use cairn_proto::format::ObjectKind;
use cairn_proto::pb;
use cairn_proto::seal::Key;
use futures::StreamExt;
use object_store::{ObjectStoreExt, path::Path};
use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::blob::{self, BlobId};
use super::index::Index;
use super::{Error, Repository, Result, pack};

/// Packs checked at once.
const CONCURRENCY: usize = 4;

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Packs checked.
    pub packs: u64,
    /// Blobs opened (with `read_data`).
    pub blobs: u64,
    /// Each damaged or missing pack, and why.
    pub damaged: BTreeMap<String, String>,
    /// Files whose content lies in a damaged pack, as `snapshot-id-prefix:path`.
    pub files: BTreeSet<String>,
}

/// Checks `repo`; see the module docs.
pub async fn run(repo: &Repository, read_data: bool) -> Result<Report> {
    let index = repo.load_index().await?;
    let packs: Vec<(String, usize)> = index.packs().map(|(p, n)| (p.to_owned(), n)).collect();
    let mut report = Report::default();
    let results: Vec<(String, Option<String>, u64)> = futures::stream::iter(packs)
        .map(|(id, _)| async move {
            let verdict = check_pack(repo, &id, read_data).await;
            match verdict {
                Ok(blobs) => (id, None, blobs),
                Err(e) => (id, Some(cairn_proto::error_chain(&e)), 0),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (id, damage, blobs) in results {
        report.packs += 1;
        report.blobs += blobs;
        if let Some(why) = damage {
            report.damaged.insert(id, why);
        }
    }
    if !report.damaged.is_empty() {
        report.files = affected(repo, &index, &report.damaged.keys().cloned().collect()).await?;
    }
    Ok(report)
}

/// Checks one pack; returns the blobs it opened.
async fn check_pack(repo: &Repository, id: &str, read_data: bool) -> Result<u64> {
    let key = cairn_proto::format::VolumeKeys::pack(id);
    let path = Path::from(key.as_str());
    if !read_data {
        repo.store()
            .head(&path)
            .await
            .map_err(|e| Error::store("read", &key, e))?;
        return Ok(0);
    }
    let bytes = super::repo::get(repo.store().as_ref(), ObjectKind::VolumePack, &key).await?;
    check_blobs(repo.master(), repo.id_key(), id, &bytes)
}

/// Opens every blob the header of pack `id` (whose bytes are `bytes`) lists; returns how many.
pub(super) fn check_blobs(master: &Key, id_key: &[u8; 32], id: &str, bytes: &[u8]) -> Result<u64> {
    let entries = pack::read_header(master, id, bytes)?;
    for e in &entries {
        let id = BlobId::from_slice(&e.id)?;
        let past_end = || Error::corrupt(format!("blob {id}"), "past the pack's end");
        let start = usize::try_from(e.offset).map_err(|_| past_end())?;
        let end = start.checked_add(e.length as usize).ok_or_else(past_end)?;
        let stored = bytes.get(start..end).ok_or_else(past_end)?;
        blob::open(master, id_key, &id, stored, e.compressed, e.raw_length as usize)?;
    }
    Ok(entries.len() as u64)
}

/// A snapshot id as reports show it: its first 12 characters. The id is the name of an object in
/// the bucket, so it may be shorter, or not hexadecimal.
pub(super) fn short(snapshot: &str) -> &str {
    snapshot
        .char_indices()
        .nth(12)
        .map_or(snapshot, |(end, _)| &snapshot[..end])
}

/// Files of every snapshot with a blob in one of `packs`.
async fn affected(repo: &Repository, index: &Index, packs: &HashSet<String>) -> Result<BTreeSet<String>> {
    let mut files = BTreeSet::new();
    let in_damage = |id: &[u8]| {
        BlobId::from_slice(id)
            .ok()
            .and_then(|b| index.get(&b).ok())
            .is_none_or(|e| packs.contains(e.pack.as_ref()))
    };
    for (snapshot, s) in repo.snapshots().await? {
        let mut pending = vec![(String::new(), s.tree)];
        while let Some((dir, tree)) = pending.pop() {
            let tree_id = BlobId::from_slice(&tree)?;
            if in_damage(&tree) {
                files.insert(format!("{}:{dir}/ (directory listing)", short(&snapshot)));
                continue;
            }
            let nodes = repo
                .tree(index, &tree_id)
                .await
                .map(|t| t.nodes)
                .unwrap_or_default();
            for n in nodes {
                let path = format!("{dir}/{}", n.name);
                if n.kind == pb::NodeKind::Dir as i32 {
                    pending.push((path, n.subtree));
                } else if n.content.iter().any(|c| in_damage(c)) {
                    files.insert(format!("{}:{path}", short(&snapshot)));
                }
            }
        }
    }
    Ok(files)
}
