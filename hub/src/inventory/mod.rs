//! The hub's inventory: clusters, backups and restores, kept in a key-value [`Store`]
//! (RocksDB by default, see [`rocks`]) so a fleet that outgrows one hub can move it elsewhere
//! without touching the rest. Records are stored in their protobuf encoding.
//!
//! Keys: `cluster/<name>`, `backup/<name>`, `restore/<name>`, `workspace/<name>`,
//! `member/<cluster>` (its workspace's name, for clusters outside `default`), `join/<sha256 of a
//! join secret>` (unused join tickets; the secrets themselves are never stored), `token/<name>`
//! (users' tokens, their secrets only hashed), `audit/<ms>-<nonce>` (the audit log),
//! `snap/<backup>/<snapshot>` (volume snapshots node agents made for a backup), `location/<name>`
//! (credentials sealed, see [`crate::location`]), `schedule/<name>`, `group/<name>` (workspace
//! backups), and the backup indexes `ix/…` (see [`backups`]).

mod backups;
pub mod rocks;

use cairn_proto::convert::{self, Wire};
use cairn_proto::model::{
    AuditEntry, BackupGroup, BackupName, Cluster, ClusterName, JoinTicket, LocationName, Restore,
    RestoreName, Schedule, ScheduleName, StoredLocation, TokenName, Workspace, WorkspaceName,
};
use std::sync::Arc;

/// An inventory read or write that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error("inventory store: {operation} {key}")]
    Store {
        /// get, put, delete or scan.
        operation: &'static str,
        /// The key or prefix.
        key: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored record does not decode.
    #[error("inventory record {key} is corrupt")]
    Corrupt {
        /// Its key.
        key: String,
        /// The cause.
        #[source]
        source: convert::Error,
    },
    /// The blocking task running the store call panicked or was cancelled.
    #[error("inventory task")]
    Task(#[from] tokio::task::JoinError),
}

/// Result of an inventory call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A small, synchronous key-value store. Implementations block; [`Inventory`] calls them on the
/// blocking pool.
pub trait Store: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `key`.
    fn put(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: &str) -> Result<()>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Sets (`Some`) and removes (`None`) keys, all or none.
    fn write(&self, batch: &[(String, Option<Vec<u8>>)]) -> Result<()>;
    /// The values at `keys`, in order.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Keys in `[from, to)`, in key order.
    fn keys(&self, from: &str, to: &str) -> Result<Vec<String>>;
    /// Writes everything accepted so far to durable storage (shutdown: the next open replays nothing).
    fn flush(&self) -> Result<()>;
}

/// Typed access to the hub's records.
#[derive(Clone)]
pub struct Inventory {
    store: Arc<dyn Store>,
}

impl Inventory {
    /// Over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn get<T: Wire + Send + 'static>(&self, key: String) -> Result<Option<T>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store
                .get(&key)?
                .map(|bytes| T::decode(&bytes).map_err(|source| Error::Corrupt { key, source }))
                .transpose()
        })
        .await?
    }

    /// Writes everything recorded so far to durable storage: the hub calls it as it stops.
    pub async fn flush(&self) -> Result<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush()).await?
    }

    async fn put<T: Wire>(&self, key: String, value: &T) -> Result<()> {
        let (store, bytes) = (self.store.clone(), value.encode());
        tokio::task::spawn_blocking(move || store.put(&key, &bytes)).await?
    }

    async fn scan<T: Wire + Send + 'static>(&self, prefix: &'static str) -> Result<Vec<T>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store
                .scan(prefix)?
                .into_iter()
                .map(|(key, bytes)| T::decode(&bytes).map_err(|source| Error::Corrupt { key, source }))
                .collect()
        })
        .await?
    }

    async fn write(&self, batch: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(&batch)).await?
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.get_many(&keys)).await?
    }

    async fn keys(&self, from: String, to: String) -> Result<Vec<String>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.keys(&from, &to)).await?
    }

    async fn delete(&self, key: String) -> Result<()> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.delete(&key)).await?
    }

    /// Records `cluster`.
    pub async fn put_cluster(&self, cluster: &Cluster) -> Result<()> {
        self.put(format!("cluster/{}", cluster.name), cluster).await
    }

    /// The cluster named `name`.
    pub async fn cluster(&self, name: &ClusterName) -> Result<Option<Cluster>> {
        self.get(format!("cluster/{name}")).await
    }

    /// Every cluster, by name.
    pub async fn clusters(&self) -> Result<Vec<Cluster>> {
        self.scan("cluster/").await
    }

    /// Records join ticket `ticket` under `hash`, its secret's SHA-256.
    pub async fn put_ticket(&self, hash: &str, ticket: &JoinTicket) -> Result<()> {
        self.put(format!("join/{hash}"), ticket).await
    }

    /// The join ticket of secret hash `hash`, removed: a secret works once.
    pub async fn take_ticket(&self, hash: &str) -> Result<Option<JoinTicket>> {
        let key = format!("join/{hash}");
        let ticket = self.get(key.clone()).await?;
        if ticket.is_some() {
            self.delete(key).await?;
        }
        Ok(ticket)
    }

    /// Records `restore`.
    pub async fn put_restore(&self, restore: &Restore) -> Result<()> {
        self.put(format!("restore/{}", restore.spec.name), restore).await
    }

    /// The restore named `name`.
    pub async fn restore(&self, name: &RestoreName) -> Result<Option<Restore>> {
        self.get(format!("restore/{name}")).await
    }

    /// Every restore, by name.
    pub async fn restores(&self) -> Result<Vec<Restore>> {
        self.scan("restore/").await
    }

    /// Records `workspace` (its cluster list is not stored: see [`Inventory::members`]).
    pub async fn put_workspace(&self, workspace: &Workspace) -> Result<()> {
        let record = Workspace {
            clusters: Vec::new(),
            ..workspace.clone()
        };
        self.put(format!("workspace/{}", workspace.name), &record).await
    }

    /// The workspace named `name`.
    pub async fn workspace(&self, name: &WorkspaceName) -> Result<Option<Workspace>> {
        self.get(format!("workspace/{name}")).await
    }

    /// Every workspace, by name.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        self.scan("workspace/").await
    }

    /// Places `cluster` in `workspace`, or (`None`) back in `default`.
    pub async fn set_member(&self, cluster: &ClusterName, workspace: Option<&WorkspaceName>) -> Result<()> {
        let key = format!("member/{cluster}");
        match workspace {
            Some(w) => {
                let (store, value) = (self.store.clone(), w.to_string());
                tokio::task::spawn_blocking(move || store.put(&key, value.as_bytes())).await?
            }
            None => self.delete(key).await,
        }
    }

    /// Every cluster placed outside `default`, with its workspace, by cluster name.
    pub async fn members(&self) -> Result<Vec<(ClusterName, WorkspaceName)>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store
                .scan("member/")?
                .into_iter()
                .map(|(key, value)| {
                    let cluster = parse_name(&key, key.trim_start_matches("member/").as_bytes())?;
                    Ok((cluster, parse_name(&key, &value)?))
                })
                .collect()
        })
        .await?
    }

    /// The workspace `cluster` was placed in; `None`: `default`.
    pub async fn member(&self, cluster: &ClusterName) -> Result<Option<WorkspaceName>> {
        let store = self.store.clone();
        let key = format!("member/{cluster}");
        tokio::task::spawn_blocking(move || store.get(&key)?.map(|v| parse_name(&key, &v)).transpose())
            .await?
    }

    /// Records `location`.
    pub async fn put_location(&self, location: &StoredLocation) -> Result<()> {
        self.put(format!("location/{}", location.spec.name), location)
            .await
    }

    /// The location named `name`.
    pub async fn location(&self, name: &LocationName) -> Result<Option<StoredLocation>> {
        self.get(format!("location/{name}")).await
    }

    /// Every location, by name.
    pub async fn locations(&self) -> Result<Vec<StoredLocation>> {
        self.scan("location/").await
    }

    /// Forgets location `name`.
    pub async fn delete_location(&self, name: &LocationName) -> Result<()> {
        self.delete(format!("location/{name}")).await
    }

    /// Records `schedule`.
    pub async fn put_schedule(&self, schedule: &Schedule) -> Result<()> {
        self.put(format!("schedule/{}", schedule.spec.name), schedule)
            .await
    }

    /// The schedule named `name`.
    pub async fn schedule(&self, name: &ScheduleName) -> Result<Option<Schedule>> {
        self.get(format!("schedule/{name}")).await
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        self.scan("schedule/").await
    }

    /// Forgets schedule `name`.
    pub async fn delete_schedule(&self, name: &ScheduleName) -> Result<()> {
        self.delete(format!("schedule/{name}")).await
    }

    /// Records that a node agent made volume snapshot `snapshot` for backup `backup`.
    pub async fn put_snapshot(&self, backup: &BackupName, snapshot: &str) -> Result<()> {
        let (store, key) = (self.store.clone(), format!("snap/{backup}/{snapshot}"));
        tokio::task::spawn_blocking(move || store.put(&key, &[])).await?
    }

    /// The volume snapshots node agents made for backup `backup`.
    pub async fn snapshots(&self, backup: &BackupName) -> Result<std::collections::HashSet<String>> {
        let prefix = format!("snap/{backup}/");
        let keys = self.keys(prefix.clone(), format!("snap/{backup}0")).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    /// Forgets which snapshots were made for backup `backup`.
    pub async fn forget_snapshots(&self, backup: &BackupName) -> Result<()> {
        let prefix = format!("snap/{backup}/");
        let keys = self.keys(prefix, format!("snap/{backup}0")).await?;
        self.write(keys.into_iter().map(|k| (k, None)).collect()).await
    }

    /// Records user token `stored`.
    pub async fn put_token(&self, stored: &crate::operations::StoredToken) -> Result<()> {
        self.put(format!("token/{}", stored.token.name), stored).await
    }

    /// The token named `name`.
    pub async fn token(&self, name: &TokenName) -> Result<Option<crate::operations::StoredToken>> {
        self.get(format!("token/{name}")).await
    }

    /// Every token, by name.
    pub async fn tokens(&self) -> Result<Vec<crate::operations::StoredToken>> {
        self.scan("token/").await
    }

    /// Forgets token `name`.
    pub async fn delete_token(&self, name: &TokenName) -> Result<()> {
        self.delete(format!("token/{name}")).await
    }

    /// Appends `entry` to the audit log, keeping the newest `kept` entries (the oldest are dropped
    /// now and then, not at every entry).
    pub async fn put_audit(&self, entry: &AuditEntry, kept: usize) -> Result<()> {
        let mut nonce = [0u8; 4];
        let _ = aws_lc_rs::rand::fill(&mut nonce);
        let nonce = u32::from_be_bytes(nonce);
        self.put(format!("audit/{:016}-{nonce:08x}", entry.time.unix_ms()), entry)
            .await?;
        if nonce % 1024 == 0 {
            let keys = self.keys("audit/".into(), "audit0".into()).await?;
            let excess = keys.len().saturating_sub(kept);
            let batch = keys.into_iter().take(excess).map(|k| (k, None)).collect();
            self.write(batch).await?;
        }
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let keys = self.keys("audit/".into(), "audit0".into()).await?;
        let newest: Vec<String> = keys.into_iter().rev().take(limit).collect();
        let values = self.get_many(newest.clone()).await?;
        newest
            .into_iter()
            .zip(values)
            .filter_map(|(key, value)| value.map(|v| (key, v)))
            .map(|(key, bytes)| AuditEntry::decode(&bytes).map_err(|source| Error::Corrupt { key, source }))
            .collect()
    }

    /// Records workspace backup `group`.
    pub async fn put_group(&self, group: &BackupGroup) -> Result<()> {
        self.put(format!("group/{}", group.name), group).await
    }

    /// The workspace backup named `name`.
    pub async fn group(&self, name: &BackupName) -> Result<Option<BackupGroup>> {
        self.get(format!("group/{name}")).await
    }
}

/// A name stored as text under `key`.
fn parse_name<T: std::str::FromStr>(key: &str, text: &[u8]) -> Result<T>
where
    T::Err: ToString,
{
    let corrupt = |reason: String| Error::Corrupt {
        key: key.to_owned(),
        source: convert::Error::field("name", reason),
    };
    std::str::from_utf8(text)
        .map_err(|e| corrupt(e.to_string()))?
        .parse()
        .map_err(|e: T::Err| corrupt(e.to_string()))
}
