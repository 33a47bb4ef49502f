//! Forgetting snapshots and collecting the packs no snapshot needs — with no lock, while backups
//! run. A lock left by a killed prune cannot block anything, because there is none; safety comes
//! from a grace period instead, in two steps:
//!
//! 1. A prune marks the packs no remaining snapshot uses in a *prune plan*. Backups that start
//!    after the plan never deduplicate against those packs (they store such a chunk anew).
//! 2. A prune run once the plan is older than the grace period deletes the planned packs that
//!    are still unused: a backup that started before the plan and used one has finished by then
//!    (the grace period is longer than any backup) and its snapshot keeps the pack.
//!
//! Where several packs hold one blob (two clusters backed up the same data at once), the first
//! in index order is the one kept; the others are collected like unused packs. Packs no index
//! lists (a backup killed after its last checkpoint index) are deleted once older than the grace
//! period; those a killed backup's checkpoint lists are unused by any snapshot and go through a
//! plan like any other. Index files are rewritten without the deleted packs before the packs go.

use chrono::Utc;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::pb;

use super::blob::BlobId;
use super::{Repository, Result};

/// What to keep and how long to wait.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep the last this many snapshots of each host and path; `None`: forget none.
    pub keep_last: Option<usize>,
    /// How long a pack stays planned before it is deleted: longer than any backup runs.
    pub grace: Duration,
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct Report {
    /// Snapshots forgotten.
    pub forgotten: usize,
    /// Snapshots kept.
    pub kept: usize,
    /// Packs newly planned for deletion.
    pub planned: usize,
    /// Packs deleted (planned earlier and still unused, or listed in no index).
    pub deleted: usize,
    /// Their bytes.
    pub deleted_bytes: u64,
}

/// Prunes `repo`; see the module docs.
pub async fn run(repo: &Repository, options: &Options) -> Result<Report> {
    let now = Utc::now();
    let mut report = Report::default();

    let mut groups: HashMap<(String, String), Vec<(String, pb::Snapshot)>> = HashMap::new();
    for (id, s) in repo.snapshots().await? {
        groups
            .entry((s.host.clone(), s.path.clone()))
            .or_default()
            .push((id, s));
    }
    let mut roots = Vec::new();
    for (_, mut snapshots) in groups {
        let keep = options.keep_last.unwrap_or(usize::MAX).min(snapshots.len());
        for (id, _) in snapshots.drain(..snapshots.len() - keep) {
            repo.forget(&id).await?;
            report.forgotten += 1;
        }
        report.kept += snapshots.len();
        roots.extend(snapshots.into_iter().map(|(_, s)| s.tree));
    }

    let index = repo.load_index().await?;
    let fresh = repo.unplanned_index().await?;
    let used = used_blobs(repo, &index, roots).await?;
    // The pack kept for each used blob: the first holding it outside any plan, else the first.
    let mut keep: HashSet<Arc<str>> = HashSet::new();
    for id in &used {
        let entry = fresh.get(id).or_else(|_| index.get(id))?;
        keep.insert(entry.pack.clone());
    }
    let unused: HashSet<String> = index
        .packs()
        .map(|(p, _)| p)
        .filter(|p| !keep.contains(*p))
        .map(str::to_owned)
        .collect();

    let grace = chrono::Duration::from_std(options.grace).unwrap_or(chrono::Duration::MAX);
    let mut planned = HashSet::new();
    let mut due_plans = Vec::new();
    let mut due = HashSet::new();
    for (key, plan, written) in repo.prune_plans().await? {
        if now - written >= grace {
            due.extend(plan.packs.iter().filter(|p| unused.contains(*p)).cloned());
            due_plans.push(key);
        } else {
            planned.extend(plan.packs);
        }
    }

    let fresh_plan: Vec<String> = unused
        .iter()
        .filter(|p| !planned.contains(*p) && !due.contains(*p))
        .cloned()
        .collect();
    if !fresh_plan.is_empty() {
        report.planned = fresh_plan.len();
        repo.write_prune_plan(&pb::PrunePlan {
            time_unix_ms: now.timestamp_millis(),
            packs: fresh_plan,
        })
        .await?;
    }

    // Index files first (so no reader finds a deleted pack in them), then the packs.
    let mut indexed = HashSet::new();
    for (key, file) in repo.index_files().await? {
        indexed.extend(file.packs.iter().map(|p| p.pack.clone()));
        if file.packs.iter().any(|p| due.contains(&p.pack)) {
            let packs: Vec<_> = file
                .packs
                .into_iter()
                .filter(|p| !due.contains(&p.pack))
                .collect();
            if !packs.is_empty() {
                repo.write_index(&pb::IndexFile { packs }).await?;
            }
            repo.delete(&key).await?;
        }
    }
    for (id, size, written) in repo.stored_packs().await? {
        let orphan = !indexed.contains(&id) && now - written >= grace;
        if due.contains(&id) || orphan {
            repo.delete(&cairn_proto::format::VolumeKeys::pack(&id)).await?;
            report.deleted += 1;
            report.deleted_bytes += size;
        }
    }
    for key in due_plans {
        repo.delete(&key).await?;
    }
    Ok(report)
}

/// Every blob (trees and data) the snapshots with root trees `roots` reach.
async fn used_blobs(
    repo: &Repository,
    index: &super::index::Index,
    roots: Vec<Vec<u8>>,
) -> Result<HashSet<BlobId>> {
    let mut used = HashSet::new();
    let mut pending: Vec<BlobId> = roots
        .iter()
        .map(|r| BlobId::from_slice(r))
        .collect::<Result<_>>()?;
    while let Some(tree_id) = pending.pop() {
        if !used.insert(tree_id) {
            continue;
        }
        for node in repo.tree(index, &tree_id).await?.nodes {
            for blob in &node.content {
                used.insert(BlobId::from_slice(blob)?);
            }
            if !node.subtree.is_empty() {
                pending.push(BlobId::from_slice(&node.subtree)?);
            }
        }
    }
    Ok(used)
}
