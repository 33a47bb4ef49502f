//! Backups in the inventory, and the indexes `backup list` and retention are served from, so no
//! query scans every record. Index entries are keys with empty values, written in the same batch
//! as the record (`<t>`: creation time, 16 digits of milliseconds, so keys sort by time):
//!
//! - `ix/time/<t>/<backup>`
//! - `ix/cluster/<cluster>/<t>/<backup>`
//! - `ix/workspace/<workspace>/<t>/<backup>`
//! - `ix/schedule/<schedule>/<cluster>/<t>/<backup>`
//! - `ix/location/<location>/<t>/<backup>`
//! - `ix/expires/<expiry>/<backup>`

use cairn_proto::convert::Wire;
use cairn_proto::model::{Backup, BackupName, BackupQuery, BackupSpec, Timestamp};

use super::{Error, Inventory, Result};

/// Sorts after every character of a name: the end of an index range.
const END: &str = "~";

fn t(time: Option<Timestamp>) -> String {
    format!("{:016}", time.map_or(0, Timestamp::unix_ms).max(0))
}

fn record_key(name: &BackupName) -> String {
    format!("backup/{name}")
}

/// The index entries of a backup with `spec` (they never change after creation).
fn index_keys(spec: &BackupSpec) -> Vec<String> {
    let (name, created) = (&spec.name, t(spec.origin.created));
    let mut keys = vec![
        format!("ix/time/{created}/{name}"),
        format!("ix/cluster/{}/{created}/{name}", spec.cluster),
    ];
    if let Some(w) = &spec.origin.workspace {
        keys.push(format!("ix/workspace/{w}/{created}/{name}"));
    }
    if let Some(l) = &spec.location {
        keys.push(format!("ix/location/{l}/{created}/{name}"));
    }
    if let Some(s) = &spec.origin.schedule {
        keys.push(format!("ix/schedule/{s}/{}/{created}/{name}", spec.cluster));
    }
    if let Some(expires) = spec.expires() {
        keys.push(format!("ix/expires/{}/{name}", t(Some(expires))));
    }
    keys
}

/// The backup an index key points at: its last segment.
fn named(key: &str) -> Option<BackupName> {
    key.rsplit('/').next()?.parse().ok()
}

impl Inventory {
    /// Records `backup` with its index entries.
    pub async fn put_backup(&self, backup: &Backup) -> Result<()> {
        let mut batch: Vec<(String, Option<Vec<u8>>)> =
            vec![(record_key(&backup.spec.name), Some(backup.encode()))];
        batch.extend(
            index_keys(&backup.spec)
                .into_iter()
                .map(|k| (k, Some(Vec::new()))),
        );
        self.write(batch).await
    }

    /// Records many backups with their index entries in one write (a catalog import, a bench).
    pub async fn put_backups(&self, backups: &[Backup]) -> Result<()> {
        let mut batch: Vec<(String, Option<Vec<u8>>)> = Vec::with_capacity(backups.len() * 7);
        for backup in backups {
            batch.push((record_key(&backup.spec.name), Some(backup.encode())));
            batch.extend(
                index_keys(&backup.spec)
                    .into_iter()
                    .map(|k| (k, Some(Vec::new()))),
            );
        }
        self.write(batch).await
    }

    /// Forgets `backup` and its index entries.
    pub async fn delete_backup(&self, backup: &Backup) -> Result<()> {
        let mut batch: Vec<(String, Option<Vec<u8>>)> = vec![(record_key(&backup.spec.name), None)];
        batch.extend(index_keys(&backup.spec).into_iter().map(|k| (k, None)));
        self.write(batch).await
    }

    /// The backup named `name`.
    pub async fn backup(&self, name: &BackupName) -> Result<Option<Backup>> {
        self.get(record_key(name)).await
    }

    /// Backups matching `query`, newest first, read through the narrowest index that applies.
    pub async fn backups(&self, query: &BackupQuery) -> Result<Vec<Backup>> {
        let since = t(query.since);
        let prefix = match (&query.cluster, &query.workspace, &query.schedule, &query.location) {
            (Some(c), _, Some(s), _) => format!("ix/schedule/{s}/{c}/"),
            (Some(c), _, _, _) => format!("ix/cluster/{c}/"),
            (None, _, _, Some(l)) => format!("ix/location/{l}/"),
            (None, Some(w), _, None) => format!("ix/workspace/{w}/"),
            (None, None, _, None) => "ix/time/".to_owned(),
        };
        let keys = self
            .keys(format!("{prefix}{since}"), format!("{prefix}{END}"))
            .await?;
        let names: Vec<BackupName> = keys.iter().rev().filter_map(|k| named(k)).collect();
        let mut backups = self.backups_named(&names).await?;
        backups.retain(|b| {
            let s = &b.spec;
            query.cluster.as_ref().is_none_or(|c| s.cluster == *c)
                && query
                    .workspace
                    .as_ref()
                    .is_none_or(|w| s.origin.workspace.as_ref() == Some(w))
                && query
                    .schedule
                    .as_ref()
                    .is_none_or(|x| s.origin.schedule.as_ref() == Some(x))
                && query
                    .location
                    .as_ref()
                    .is_none_or(|l| s.location.as_ref() == Some(l))
                && query.phase.is_none_or(|p| b.status.phase == p)
                && query.namespace.as_ref().is_none_or(|n| s.namespaces.covers(n))
        });
        Ok(backups)
    }

    /// The records of `names` that exist, in that order.
    async fn backups_named(&self, names: &[BackupName]) -> Result<Vec<Backup>> {
        let keys: Vec<String> = names.iter().map(record_key).collect();
        let values = self.get_many(keys.clone()).await?;
        keys.into_iter()
            .zip(values)
            .filter_map(|(key, value)| value.map(|v| (key, v)))
            .map(|(key, bytes)| Backup::decode(&bytes).map_err(|source| Error::Corrupt { key, source }))
            .collect()
    }

    /// Backups whose TTL ran out at or before `now`, oldest expiry first.
    pub async fn expired(&self, now: Timestamp) -> Result<Vec<Backup>> {
        let keys = self
            .keys("ix/expires/".to_owned(), format!("ix/expires/{}~", t(Some(now))))
            .await?;
        let names: Vec<BackupName> = keys.iter().filter_map(|k| named(k)).collect();
        self.backups_named(&names).await
    }
}
