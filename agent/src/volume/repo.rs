//! A repository in a location, under `volumes/`: its clear `config`, master keys sealed by
//! key-encryption keys in `keys/`, packs in `data/`, index files in `index/`, snapshots in
//! `snapshots/`. Every object is written once and never changed, so writers need no lock.

use bytes::Bytes;
use cairn_proto::format::{ObjectKind, VolumeDir, VolumeKeys, repository_key, sealed_store};
use cairn_proto::pb;
use cairn_proto::seal::{KEY_LEN, Key};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, path::Path};
use prost::Message;
use std::collections::HashSet;
use std::sync::Arc;

use super::blob::{self, BlobId};
use super::index::Index;
use super::{Error, Result};

/// Version of the repository format this code writes (and the newest it reads). Version 2: the
/// key file seals the configuration with the master key (so `volumes/config` is authenticated),
/// and index files, snapshots and prune plans are sealed to their own key and the repository's
/// id (so none can be replayed under another name or into another repository). Version 1
/// repositories are read as they are.
pub const VERSION: u32 = 2;
/// Chunk bounds (FastCDC) of new repositories (each keeps those it was made with): half
/// restic's. FastCDC cuts more evenly than restic's Rabin chunker, so a change costs a whole
/// chunk around it more often; at restic's 1 MiB average the bench volume's repository ended
/// 1 % larger than restic's after its incremental, at 512 KiB 3.5 % smaller (same speed, less
/// memory: every chunk buffer halves).
pub const CHUNK_MIN: u32 = 256 << 10;
/// Average chunk.
pub const CHUNK_AVG: u32 = 512 << 10;
/// Largest chunk.
pub const CHUNK_MAX: u32 = 4 << 20;
/// Objects read at once (index files, snapshots).
const READ_CONCURRENCY: usize = 16;

const INDEX_CONTEXT: &str = "cairn index";
const SNAPSHOT_CONTEXT: &str = "cairn snapshot";
const PLAN_CONTEXT: &str = "cairn prune plan";
/// Times a read of every object under a directory starts over when one vanished meanwhile (a
/// prune replaced it).
const READ_ATTEMPTS: usize = 3;
/// How a checkpoint index's id begins.
const CHECKPOINT: &str = "checkpoint-";

/// Whether `key` is a checkpoint index's: gone, it is skipped rather than read again.
fn checkpoint(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with(CHECKPOINT))
}

/// `read` of the object at `key`, `None` if it is a checkpoint gone since it was listed.
async fn unless_replaced<T>(key: &str, read: impl Future<Output = Result<T>>) -> Result<Option<T>> {
    match read.await {
        Err(Error::Store {
            source: object_store::Error::NotFound { .. },
            ..
        }) if checkpoint(key) => Ok(None),
        other => other.map(Some),
    }
}

fn random_id() -> Result<String> {
    Ok(repository_key::new_object_id()?)
}

/// An open repository.
pub struct Repository {
    store: Arc<dyn ObjectStore>,
    master: Key,
    id_key: [u8; 32],
    config: pb::RepoConfig,
}

impl Repository {
    /// Creates a repository in `store` (described as `label` in errors), its master key sealed
    /// under `kek`.
    ///
    /// Two writers may race to create one: the key file goes first, then the config is created
    /// only if absent. The loser deletes its key file and fails with [`Error::Exists`]; its key
    /// could not have opened the winner's repository anyway (keys are sealed to the repository
    /// id).
    pub async fn init(store: Arc<dyn ObjectStore>, label: &str, kek: &Key) -> Result<Self> {
        let config_key = VolumeKeys::config();
        if get_opt(store.as_ref(), ObjectKind::VolumeConfig, &config_key)
            .await?
            .is_some()
        {
            return Err(Error::Exists(label.to_owned()));
        }
        let (master, raw) = Key::random()?;
        let (_, repo_id) = Key::random()?;
        let config = pb::RepoConfig {
            version: VERSION,
            id: repo_id.to_vec(),
            chunk_min: CHUNK_MIN,
            chunk_avg: CHUNK_AVG,
            chunk_max: CHUNK_MAX,
        };
        let repo = Self {
            store: store.clone(),
            master,
            id_key: derive_id_key(&raw),
            config,
        };
        // The key file seals the configuration too: `volumes/config` is checked against it.
        let sealed_key = pb::RepoKey {
            master: raw.to_vec(),
            config: Some(repo.config.clone()),
        }
        .encode_to_vec();
        let key_file = repository_key::wrap(store.as_ref(), "", &repo.config, kek, &sealed_key)
            .await
            .map_err(store_error)?;
        let created = store
            .put_opts(
                &Path::from(config_key.as_str()),
                PutPayload::from(repo.config.encode_to_vec()),
                PutMode::Create.into(),
            )
            .await;
        match created {
            Ok(_) => Ok(repo),
            // Stores without conditional writes: a plain write (the race is then theirs).
            Err(object_store::Error::NotImplemented { .. }) => {
                repo.put(&config_key, repo.config.encode_to_vec()).await?;
                Ok(repo)
            }
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                let _ = store.delete(&Path::from(key_file.as_str())).await;
                Err(Error::Exists(label.to_owned()))
            }
            Err(e) => Err(Error::store("write", &config_key, e)),
        }
    }

    /// Opens the repository in `store`, creating it first if there is none (see
    /// [`Repository::init`] and [`Repository::open`]).
    pub async fn open_or_init(
        store: Arc<dyn ObjectStore>,
        label: &str,
        kek: &Key,
        kek_origin: &str,
    ) -> Result<Self> {
        match Self::open(store.clone(), label, kek, kek_origin).await {
            Err(Error::NotInitialised(_)) => match Self::init(store.clone(), label, kek).await {
                Err(Error::Exists(_)) => Self::open(store, label, kek, kek_origin).await,
                other => other,
            },
            other => other,
        }
    }

    /// Opens the repository in `store` with key-encryption key `kek` (`kek_origin` names it in
    /// errors). Reads only.
    pub async fn open(store: Arc<dyn ObjectStore>, label: &str, kek: &Key, kek_origin: &str) -> Result<Self> {
        let config = repository_key::config(store.as_ref(), "")
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::NotInitialised(label.to_owned()))?;
        let sealed = repository_key::unwrap(store.as_ref(), "", &config, kek)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::WrongKey(kek_origin.to_owned()))?;
        let raw = authentic(&config, &sealed)?;
        // Authentic or of version 1: its bounds are checked all the same.
        check_config(&config)?;
        let master = Key::from_raw(&raw, "the repository's master key")?;
        Ok(Self {
            store,
            master,
            id_key: derive_id_key(&raw[..KEY_LEN]),
            config,
        })
    }

    /// Its chunking bounds: min, average, max.
    pub fn chunking(&self) -> (u32, u32, u32) {
        (
            self.config.chunk_min,
            self.config.chunk_avg,
            self.config.chunk_max,
        )
    }

    /// The master key blobs, packs, index files and snapshots are sealed with.
    pub fn master(&self) -> &Key {
        &self.master
    }

    /// The key blob ids are hashed with.
    pub fn id_key(&self) -> &[u8; 32] {
        &self.id_key
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Writes `bytes` at `key` (one PUT).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map_err(|e| Error::store("write", key, e))?;
        Ok(())
    }

    /// Every index file, merged.
    pub async fn load_index(&self) -> Result<Index> {
        self.load_index_into(Index::full, &HashSet::new()).await
    }

    /// The index a backup deduplicates against ([`Index::compact`]): without the packs a prune
    /// plans to delete (a backup never relies on them, so the prune may delete them once its
    /// grace period is over).
    pub async fn backup_index(&self) -> Result<Index> {
        self.load_index_into(Index::compact, &self.planned_packs().await?)
            .await
    }

    /// The full index without the packs a prune plans to delete.
    pub async fn unplanned_index(&self) -> Result<Index> {
        self.load_index_into(Index::full, &self.planned_packs().await?)
            .await
    }

    async fn planned_packs(&self) -> Result<HashSet<String>> {
        Ok(self
            .prune_plans()
            .await?
            .into_iter()
            .flat_map(|(_, plan, _)| plan.packs)
            .collect())
    }

    /// Reads the index files in key order (where a blob is in several packs, every reader takes
    /// the same one: the first), a few at a time, each added and dropped as it comes: memory
    /// holds the index, not the files. Starts over if a prune replaced a file meanwhile.
    async fn load_index_into(&self, new: fn() -> Index, skip: &HashSet<String>) -> Result<Index> {
        retrying(|| async {
            let mut index = new();
            let mut keys = self.keys_under(VolumeDir::Index).await?;
            keys.sort();
            let mut files = futures::stream::iter(keys)
                .map(|key| async move {
                    let Some(plain) = unless_replaced(&key, self.read_sealed(VolumeDir::Index, &key)).await?
                    else {
                        return Ok(pb::IndexFile::default());
                    };
                    pb::IndexFile::decode(plain.as_slice()).map_err(|e| Error::corrupt(&key, e))
                })
                .buffered(READ_CONCURRENCY);
            while let Some(file) = files.next().await {
                for p in file?.packs.iter().filter(|p| !skip.contains(&p.pack)) {
                    index.add_pack(&p.pack, &p.blobs)?;
                }
            }
            Ok(index.finish())
        })
        .await
    }

    /// Every index file with its key, in key order.
    pub async fn index_files(&self) -> Result<Vec<(String, pb::IndexFile)>> {
        let mut files = Vec::new();
        for (key, plain) in self.read_all(VolumeDir::Index).await? {
            let file = pb::IndexFile::decode(plain.as_slice()).map_err(|e| Error::corrupt(&key, e))?;
            files.push((key, file));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Every prune plan with its key and the time it counts from: when it was made or stored,
    /// whichever is later.
    pub async fn prune_plans(&self) -> Result<Vec<(String, pb::PrunePlan, chrono::DateTime<chrono::Utc>)>> {
        let prefix = Path::from(VolumeKeys::dir(VolumeDir::Prune));
        let uploaded: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| (m.location.to_string(), m.last_modified))
            .try_collect()
            .await
            .map_err(|e| Error::store("list", prefix.as_ref(), e))?;
        let now = chrono::Utc::now();
        let mut plans = Vec::new();
        for (key, plain) in self.read_all(VolumeDir::Prune).await? {
            let plan = pb::PrunePlan::decode(plain.as_slice()).map_err(|e| Error::corrupt(&key, e))?;
            // A plan counts from when it was made or stored, whichever is later (an old plan
            // uploaded again waits its grace period anew), and never from the future.
            let made = chrono::DateTime::from_timestamp_millis(plan.time_unix_ms).unwrap_or(now);
            let stored = uploaded.get(&key).copied().unwrap_or(now);
            plans.push((key, plan, made.max(stored).min(now)));
        }
        Ok(plans)
    }

    /// Writes a new prune plan.
    pub async fn write_prune_plan(&self, plan: &pb::PrunePlan) -> Result<()> {
        self.write_sealed(VolumeDir::Prune, &random_id()?, &plan.encode_to_vec())
            .await
    }

    /// Every pack stored (listed or not in an index): id, size, last written.
    pub async fn stored_packs(&self) -> Result<Vec<(String, u64, chrono::DateTime<chrono::Utc>)>> {
        let prefix = Path::from(VolumeKeys::dir(VolumeDir::Data));
        self.store
            .list(Some(&prefix))
            .map_ok(|m| {
                let id = m.location.filename().unwrap_or_default().to_owned();
                (id, m.size, m.last_modified)
            })
            .try_collect()
            .await
            .map_err(|e| Error::store("list", prefix.as_ref(), e))
    }

    /// Deletes `key` (gone already is fine).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", key, e)),
        }
    }

    /// Deletes snapshot `id`.
    pub async fn forget(&self, id: &str) -> Result<()> {
        self.delete(&VolumeKeys::snapshot(id)).await
    }

    /// Writes a new index file for the packs in `file`.
    pub async fn write_index(&self, file: &pb::IndexFile) -> Result<()> {
        self.write_sealed(VolumeDir::Index, &random_id()?, &file.encode_to_vec())
            .await
    }

    /// Writes a checkpoint index (a running backup's packs so far, replaced as it goes); returns
    /// its id. Readers skip a checkpoint gone by the time they read it: a newer one, or the
    /// backup's final index, lists its packs, and packs that young are no prune's to delete.
    pub async fn write_checkpoint(&self, file: &pb::IndexFile) -> Result<String> {
        let id = format!("{CHECKPOINT}{}", random_id()?);
        self.write_sealed(VolumeDir::Index, &id, &file.encode_to_vec())
            .await?;
        Ok(id)
    }

    /// Deletes index file `id` (another lists its packs).
    pub async fn delete_index(&self, id: &str) -> Result<()> {
        self.delete(&VolumeKeys::object(VolumeDir::Index, id)).await
    }

    /// Seals `plain` and writes it as object `id` of `dir` (index files, snapshots, prune plans).
    async fn write_sealed(&self, dir: VolumeDir, id: &str, plain: &[u8]) -> Result<()> {
        let key = VolumeKeys::object(dir, id);
        let sealed = self.master.seal(&self.context(dir, &key), plain)?;
        self.put(&key, sealed).await
    }

    /// What object `key` of `dir` is sealed to: in version 2, its key and the repository's id,
    /// so that it opens nowhere else; in version 1, its kind only.
    fn context(&self, dir: VolumeDir, key: &str) -> String {
        let base = match dir {
            VolumeDir::Snapshots => SNAPSHOT_CONTEXT,
            VolumeDir::Prune => PLAN_CONTEXT,
            VolumeDir::Index | VolumeDir::Keys | VolumeDir::Data => INDEX_CONTEXT,
        };
        if self.config.version <= 1 {
            return base.to_owned();
        }
        let id: String = self.config.id.iter().map(|b| format!("{b:02x}")).collect();
        format!("{base}/{id}/{key}")
    }

    /// Every snapshot with its id, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<(String, pb::Snapshot)>> {
        let mut all = Vec::new();
        for (key, plain) in self.read_all(VolumeDir::Snapshots).await? {
            let snapshot = pb::Snapshot::decode(plain.as_slice()).map_err(|e| Error::corrupt(&key, e))?;
            let id = key.rsplit('/').next().unwrap_or_default().to_owned();
            all.push((id, snapshot));
        }
        all.sort_by_key(|(id, s)| (s.time_unix_ms, id.clone()));
        Ok(all)
    }

    /// The snapshot whose id starts with `prefix` (unique).
    pub async fn snapshot(&self, prefix: &str) -> Result<(String, pb::Snapshot)> {
        let mut found = self
            .snapshots()
            .await?
            .into_iter()
            .filter(|(id, _)| id.starts_with(prefix));
        match (found.next(), found.next()) {
            (Some(s), None) if !prefix.is_empty() => Ok(s),
            _ => Err(Error::UnknownSnapshot(prefix.to_owned())),
        }
    }

    /// Writes `snapshot`; returns its id.
    pub async fn save_snapshot(&self, snapshot: &pb::Snapshot) -> Result<String> {
        let id = format!("{}{}", random_id()?, random_id()?);
        self.write_sealed(VolumeDir::Snapshots, &id, &snapshot.encode_to_vec())
            .await?;
        Ok(id)
    }

    /// The plaintext of blob `id`.
    pub async fn read_blob(&self, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
        let entry = index.get(id)?;
        let key = VolumeKeys::pack(&entry.pack);
        let range = entry.offset..entry.offset + u64::from(entry.length);
        let stored = self
            .store
            .get_range(&Path::from(key.as_str()), range)
            .await
            .map_err(|e| Error::store("read", &key, e))?;
        blob::open(
            &self.master,
            &self.id_key,
            id,
            &stored,
            entry.compressed,
            entry.raw_length as usize,
        )
        .map_err(|e| match e {
            Error::Corrupt { what, reason } => Error::Corrupt {
                what: format!("{what} in pack {}", entry.pack),
                reason,
            },
            other => other,
        })
    }

    /// Tree blob `id`.
    pub async fn tree(&self, index: &Index, id: &BlobId) -> Result<pb::Tree> {
        let bytes = self.read_blob(index, id).await?;
        pb::Tree::decode(bytes.as_slice()).map_err(|e| Error::corrupt(format!("tree {id}"), e))
    }

    /// Every object under `dir`, opened, as (key, plaintext).
    async fn read_all(&self, dir: VolumeDir) -> Result<Vec<(String, Vec<u8>)>> {
        retrying(|| async {
            let read: Vec<Option<(String, Vec<u8>)>> = futures::stream::iter(self.keys_under(dir).await?)
                .map(|key| async move {
                    let plain = unless_replaced(&key, self.read_sealed(dir, &key)).await?;
                    Ok::<_, Error>(plain.map(|p| (key, p)))
                })
                .buffer_unordered(READ_CONCURRENCY)
                .try_collect()
                .await?;
            Ok(read.into_iter().flatten().collect())
        })
        .await
    }

    /// The keys of every object under `dir`.
    async fn keys_under(&self, dir: VolumeDir) -> Result<Vec<String>> {
        let prefix = Path::from(VolumeKeys::dir(dir));
        self.store
            .list(Some(&prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .map_err(|e| Error::store("list", prefix.as_ref(), e))
    }

    /// The object at `key` in `dir` (index files, snapshots, prune plans), opened.
    async fn read_sealed(&self, dir: VolumeDir, key: &str) -> Result<Vec<u8>> {
        let kind = match dir {
            VolumeDir::Snapshots => ObjectKind::VolumeSnapshot,
            VolumeDir::Prune => ObjectKind::VolumePrunePlan,
            // Keys and packs are read otherwise (`open`, `read_blob`).
            VolumeDir::Index | VolumeDir::Keys | VolumeDir::Data => ObjectKind::VolumeIndex,
        };
        let sealed = get(self.store.as_ref(), kind, key).await?;
        self.master
            .open(&self.context(dir, key), &sealed)
            .map_err(|e| Error::corrupt(key, format!("{e} (written for another name or repository?)")))
    }
}

/// Runs `read` again (up to [`READ_ATTEMPTS`] times) when an object it listed was gone by the
/// time it read it: a prune replaced it.
async fn retrying<T, F, Fut>(mut read: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match read().await {
            Err(Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) if attempt < READ_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// Largest chunk any repository may have: that of repositories made before 2026-11. The chunker
/// sizes its buffers from the bound (twice it per reader).
pub const CHUNK_MAX_EVER: u32 = 8 << 20;

/// Checks what `volumes/config` (in the clear, so anyone's to write) says before anything is
/// sized from it: a format version this agent reads, and chunk bounds that FastCDC accepts,
/// ordered, with a maximum of at most [`CHUNK_MAX_EVER`].
pub fn check_config(config: &pb::RepoConfig) -> Result<()> {
    use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
    if config.version > VERSION {
        return Err(Error::corrupt(
            VolumeKeys::config(),
            format!(
                "format version {} is newer than this agent's {VERSION}",
                config.version
            ),
        ));
    }
    let (min, avg, max) = (config.chunk_min, config.chunk_avg, config.chunk_max);
    let within = (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
        && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
        && (MAXIMUM_MIN..=CHUNK_MAX_EVER).contains(&max)
        && min <= avg
        && avg <= max;
    if !within {
        return Err(Error::corrupt(
            VolumeKeys::config(),
            format!(
                "chunk bounds {min}, {avg}, {max} are not ordered minimum, average, maximum within \
                 {MINIMUM_MIN}..={MINIMUM_MAX}, {AVERAGE_MIN}..={AVERAGE_MAX}, {MAXIMUM_MIN}..={CHUNK_MAX_EVER}"
            ),
        ));
    }
    Ok(())
}

/// The master key in what a key file sealed (`sealed`), once `config` (read in the clear) is
/// known to be the repository's: a version 2 key file seals the configuration, which must be
/// `config` byte for byte; a version 1 key file seals the master key alone, and only a version 1
/// configuration goes with it (a rewritten `volumes/config` cannot downgrade a repository).
fn authentic(config: &pb::RepoConfig, sealed: &[u8]) -> Result<Vec<u8>> {
    let not_authentic = |why: &str| {
        Error::corrupt(
            VolumeKeys::config(),
            format!("not authentic: {why} (it was rewritten in the bucket)"),
        )
    };
    if sealed.len() == KEY_LEN {
        return if config.version <= 1 {
            Ok(sealed.to_vec())
        } else {
            Err(not_authentic(
                "it says version 2, but the repository's key file is of version 1",
            ))
        };
    }
    let key = pb::RepoKey::decode(sealed).map_err(|e| Error::corrupt("the repository's key file", e))?;
    if key.config.as_ref() != Some(config) {
        return Err(not_authentic(
            "it differs from the configuration sealed with the repository's key",
        ));
    }
    if key.master.len() != KEY_LEN {
        return Err(Error::corrupt(
            "the repository's key file",
            "a master key is 32 bytes",
        ));
    }
    Ok(key.master)
}

fn derive_id_key(master: &[u8]) -> [u8; 32] {
    blake3::derive_key("cairn volume repository 2026-11 blob ids", master)
}

/// The object of kind `kind` at `key`, which must exist; read only if its size is within its
/// kind's limit (`cairn_proto::format::limits`).
pub(super) async fn get(store: &dyn ObjectStore, kind: ObjectKind, key: &str) -> Result<Bytes> {
    get_opt(store, kind, key).await?.ok_or_else(|| {
        Error::store(
            "read",
            key,
            object_store::Error::NotFound {
                path: key.to_owned(),
                source: "missing".into(),
            },
        )
    })
}

async fn get_opt(store: &dyn ObjectStore, kind: ObjectKind, key: &str) -> Result<Option<Bytes>> {
    // The repository's errors name no location (its callers' label does).
    sealed_store::read_bounded(store, "", kind, key)
        .await
        .map_err(store_error)
}

/// A failed step on the repository's objects, as the repository reports it.
fn store_error(e: sealed_store::Error) -> Error {
    match e {
        sealed_store::Error::Read { key, source, .. } => Error::store("read", &key, source.0),
        sealed_store::Error::Write { key, source, .. } => Error::store("write", &key, source.0),
        sealed_store::Error::Delete { key, source, .. } => Error::store("delete", &key, source.0),
        sealed_store::Error::List { prefix, source, .. } => Error::store("list", &prefix, source.0),
        sealed_store::Error::TooLarge {
            key, size, max, kind, ..
        } => Error::TooLarge { key, size, max, kind },
        other => Error::corrupt("the repository", cairn_proto::error_chain(&other)),
    }
}
