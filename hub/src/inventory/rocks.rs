//! The inventory's default [`Store`]: an embedded RocksDB in the hub's data directory.

use std::path::Path;

use super::{Error, Result, Store};

/// RocksDB under `<data_dir>/db`.
pub struct RocksStore {
    db: rocksdb::DB,
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, path)
            .map_err(|e| store_err("open", &path.display().to_string(), e))?;
        Ok(Self { db })
    }
}

fn store_err(operation: &'static str, key: &str, source: rocksdb::Error) -> Error {
    Error::Store {
        operation,
        key: key.to_owned(),
        source: Box::new(source),
    }
}

impl Store for RocksStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(|e| store_err("get", key, e))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.db.put(key, value).map_err(|e| store_err("put", key, e))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.db.delete(key).map_err(|e| store_err("delete", key, e))
    }

    fn write(&self, batch: &[(String, Option<Vec<u8>>)]) -> Result<()> {
        let mut b = rocksdb::WriteBatch::default();
        for (key, value) in batch {
            match value {
                Some(v) => b.put(key, v),
                None => b.delete(key),
            }
        }
        let first = batch.first().map_or("", |(k, _)| k.as_str());
        self.db.write(b).map_err(|e| store_err("write", first, e))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| store_err("flush", "", e))
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.db
            .multi_get(keys)
            .into_iter()
            .zip(keys)
            .map(|(r, key)| r.map_err(|e| store_err("get", key, e)))
            .collect()
    }

    fn keys(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mode = rocksdb::IteratorMode::From(from.as_bytes(), rocksdb::Direction::Forward);
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_upper_bound(to.as_bytes().to_vec());
        for entry in self.db.iterator_opt(mode, options) {
            let (key, _) = entry.map_err(|e| store_err("scan", from, e))?;
            out.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok(out)
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mode = rocksdb::IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward);
        for entry in self.db.iterator(mode) {
            let (key, value) = entry.map_err(|e| store_err("scan", prefix, e))?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push((String::from_utf8_lossy(&key).into_owned(), value.to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_by_prefix_in_key_order() {
        let dir = tempfile::tempdir().expect("dir");
        let store = RocksStore::open(&dir.path().join("db")).expect("open");
        for key in ["backup/b", "backup/a", "cluster/x", "restore/r"] {
            store.put(key, key.as_bytes()).expect("put");
        }
        let keys: Vec<String> = store
            .scan("backup/")
            .expect("scan")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["backup/a", "backup/b"]);
        store.delete("backup/a").expect("delete");
        assert!(store.get("backup/a").expect("get").is_none());
        assert_eq!(
            store.get("cluster/x").expect("get").as_deref(),
            Some(&b"cluster/x"[..])
        );
    }
}
