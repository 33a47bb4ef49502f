//! Writes a backup into its location as `proto/FORMAT.md` lays it out: object parts and index
//! parts as the backup proceeds, each with one PUT, the manifest last.

use cairn_proto::format::sealed_store::Written;
use cairn_proto::format::{
    BackupKeys, INDEX_PART_ENTRIES, ObjectKind, PART_MAX_BYTES, PartWriter, SealedStore,
};
use cairn_proto::model::{IndexEntry, ItemRef, Manifest, StoredObject};

use super::Error;

/// A backup's writer.
pub struct Writer {
    store: SealedStore,
    keys: BackupKeys,
    /// Compressed bytes written so far.
    pub bytes: u64,
    index: Vec<IndexEntry>,
    index_parts: Vec<String>,
    /// Every object written, for the manifest.
    objects: Vec<StoredObject>,
}

impl Writer {
    /// For the backup whose folder is `keys` in `store`.
    pub fn new(store: SealedStore, keys: BackupKeys) -> Self {
        Self {
            store,
            keys,
            bytes: 0,
            index: Vec::new(),
            index_parts: Vec::new(),
            objects: Vec::new(),
        }
    }

    /// Counts and records object `relative` as `written`.
    fn stored(&mut self, relative: &str, written: Written) {
        self.bytes += written.size;
        self.objects.push(StoredObject {
            key: relative.to_owned(),
            size: written.size,
            sha256: written.sha256,
        });
    }

    /// Writes object part `relative` (a key relative to the backup's folder).
    async fn put_part(&mut self, relative: &str, bytes: &[u8]) -> Result<(), Error> {
        let key = self.keys.absolute(relative);
        let written = self
            .store
            .write_bytes(ObjectKind::ObjectPart, &key, bytes)
            .await?;
        self.stored(relative, written);
        Ok(())
    }

    /// Records `item` as held by `part` (relative key); writes an index part when one is full.
    pub async fn index(&mut self, item: ItemRef, part: &str) -> Result<(), Error> {
        self.index.push(IndexEntry {
            item,
            part: part.to_owned(),
        });
        if self.index.len() >= INDEX_PART_ENTRIES {
            self.flush_index().await?;
        }
        Ok(())
    }

    async fn flush_index(&mut self) -> Result<(), Error> {
        if self.index.is_empty() {
            return Ok(());
        }
        let seq = u32::try_from(self.index_parts.len()).unwrap_or(u32::MAX);
        let relative = BackupKeys::index_part(seq);
        let entries = std::mem::take(&mut self.index);
        let written = self.store.write(&self.keys.absolute(&relative), &entries).await?;
        self.stored(&relative, written);
        self.index_parts.push(relative);
        Ok(())
    }

    /// Writes the remaining index entries, then the manifest: the backup is then complete in
    /// the location. `manifest.index` and `manifest.objects` are filled in here.
    pub async fn finish(mut self, mut manifest: Manifest) -> Result<Manifest, Error> {
        self.flush_index().await?;
        manifest.index = std::mem::take(&mut self.index_parts);
        manifest.objects = std::mem::take(&mut self.objects);
        // Every object but the manifest itself: the status the hub records is the manifest's own,
        // so a catalog read back from the bucket says the same.
        manifest.backup.status.bytes = self.bytes;
        self.store.write(&self.keys.manifest(), &manifest).await?;
        Ok(manifest)
    }
}

/// The open part of one resource type.
pub struct Parts {
    group: String,
    version: String,
    resource: String,
    seq: u32,
    current: PartWriter,
    /// Keys of the parts written, relative to the backup folder.
    pub written: Vec<String>,
}

impl Parts {
    /// For a resource type.
    pub fn new(group: &str, version: &str, resource: &str) -> Result<Self, Error> {
        Ok(Self {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
            seq: 0,
            current: PartWriter::new().map_err(Error::Encode)?,
            written: Vec::new(),
        })
    }

    /// The key of the part being filled.
    pub fn current_key(&self) -> String {
        BackupKeys::part(&self.group, &self.version, &self.resource, self.seq)
    }

    /// Adds `object`; writes the part when it is full.
    pub async fn push(&mut self, writer: &mut Writer, object: &serde_json::Value) -> Result<(), Error> {
        self.current.push(object).map_err(Error::Encode)?;
        if self.current.raw_bytes() >= PART_MAX_BYTES {
            self.flush(writer).await?;
        }
        Ok(())
    }

    /// Writes the part being filled, if it holds anything.
    pub async fn flush(&mut self, writer: &mut Writer) -> Result<(), Error> {
        if self.current.objects() == 0 {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.current, PartWriter::new().map_err(Error::Encode)?);
        let key = self.current_key();
        let bytes = tokio::task::spawn_blocking(move || full.finish())
            .await
            .map_err(|e| Error::Encode(e.into()))?;
        writer.put_part(&key, &bytes.map_err(Error::Encode)?).await?;
        self.written.push(key);
        self.seq += 1;
        Ok(())
    }
}
