//! A backup checked whole before a restore changes anything in the cluster: every object its
//! manifest lists (object parts and index parts; manifests of format 5 on) must be in the location
//! with the size and SHA-256 its writer stored. Objects are hashed as they stream in, a few at
//! once, never held whole. A missing, altered or swapped object is named; the restore then
//! refuses the backup, or, asked for `--partial`, restores what is intact and reports the items
//! of the damaged objects as failed.

use cairn_proto::format::{BackupKeys, ObjectKind, SealedStore};
use cairn_proto::model::{IndexEntry, ItemResult, Manifest, Outcome, RestoreSpec};
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;

/// Objects checked at once.
const CHECKS_IN_FLIGHT: usize = 8;

/// The damaged objects of a backup: key relative to the backup folder → what is wrong.
pub type Damage = BTreeMap<String, &'static str>;

/// What is wrong with each object of `manifest`'s backup (`keys`) in `source`; empty if it is
/// whole (or its manifest, older than format 5, lists no objects).
pub async fn check(
    source: &SealedStore,
    keys: &BackupKeys,
    manifest: &Manifest,
) -> Result<Damage, cairn_proto::format::sealed_store::Error> {
    let checks = futures::stream::iter(manifest.objects.clone())
        .map(move |object| async move {
            let kind = if object.key.starts_with("index/") {
                ObjectKind::IndexPart
            } else {
                ObjectKind::ObjectPart
            };
            let why = match source.stored(kind, &keys.absolute(&object.key)).await {
                Ok(None) => Some("missing"),
                Ok(Some(stored)) if stored.size != object.size || stored.sha256 != object.sha256 => {
                    Some("altered or replaced (not the bytes the backup wrote)")
                }
                Ok(Some(_)) => None,
                Err(e @ cairn_proto::format::sealed_store::Error::TooLarge { .. }) => {
                    tracing::warn!(error = %e, "a backup object larger than its kind may be");
                    Some("altered or replaced (larger than such an object may be)")
                }
                Err(e) => return Err(e),
            };
            Ok(why.map(|why| (object.key, why)))
        })
        .buffer_unordered(CHECKS_IN_FLIGHT);
    checks
        .try_filter_map(|found| futures::future::ready(Ok(found)))
        .try_collect()
        .await
}

/// `damage` as a user reads it: each object and what is wrong with it.
pub fn describe(keys: &BackupKeys, damage: &Damage) -> String {
    damage
        .iter()
        .map(|(key, why)| format!("{} is {why}", keys.absolute(key)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The items a partial restore of `spec` does not restore because their object part is
/// damaged, each as a failed result naming it; read from the backup's intact index parts (the
/// items of a damaged index part cannot be named: its damage says so).
pub async fn lost_items(
    source: &SealedStore,
    keys: &BackupKeys,
    manifest: &Manifest,
    damage: &Damage,
    spec: &RestoreSpec,
) -> Result<Vec<ItemResult>, cairn_proto::format::sealed_store::Error> {
    let mut lost = Vec::new();
    for index in manifest.index.iter().filter(|i| !damage.contains_key(*i)) {
        let entries: Vec<IndexEntry> = source.must_read(&keys.absolute(index)).await?;
        for entry in entries {
            let Some(why) = damage.get(&entry.part) else {
                continue;
            };
            let mut item = entry.item;
            if !item.namespace.is_empty() && !spec.namespaces.covers(&item.namespace) {
                continue;
            }
            item.namespace = spec.map_namespace(&item.namespace).to_owned();
            lost.push(ItemResult {
                item,
                outcome: Outcome::Failed,
                message: format!(
                    "not restored: its object part {} is {why}",
                    keys.absolute(&entry.part)
                ),
            });
        }
    }
    Ok(lost)
}
