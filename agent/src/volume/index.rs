//! The index: which pack holds each blob, where. Every backup writes its own index file for the
//! packs it added (no lock, no shared file to rewrite); readers merge them all.
//!
//! A backup only asks whether a data blob exists, and reads trees: its index ([`Index::compact`])
//! keeps trees in full and of each data blob only the first 128 bits of its id — 16 bytes
//! instead of about 70, so a million files' worth fits in some 36 MiB. (Two distinct blobs
//! sharing 128 bits among a billion has odds of about 10^-21.)

use cairn_proto::pb;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::blob::BlobId;
use super::{Error, Result};

/// Where a blob is.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its pack's id.
    pub pack: Arc<str>,
    /// Offset in the pack.
    pub offset: u64,
    /// Stored length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
    /// Whether it was compressed.
    pub compressed: bool,
}

/// Blob → place, for every index file read.
#[derive(Debug, Default)]
pub struct Index {
    blobs: HashMap<BlobId, Entry>,
    packs: HashMap<Arc<str>, usize>,
    /// In a compact index: the data blobs, by id prefix.
    data: Option<HashSet<u128>>,
}

impl Index {
    /// An index that knows where every blob is.
    pub fn full() -> Self {
        Self::default()
    }

    /// An index for a backup: trees in full, data blobs by id prefix (see the module docs).
    pub fn compact() -> Self {
        Self {
            data: Some(HashSet::new()),
            ..Self::default()
        }
    }

    /// Adds pack `pack`'s blobs.
    pub fn add_pack(&mut self, pack: &str, blobs: &[pb::BlobEntry]) -> Result<()> {
        let pack: Arc<str> = Arc::from(pack);
        for b in blobs {
            let id = BlobId::from_slice(&b.id)?;
            if let Some(data) = &mut self.data
                && b.kind == pb::BlobKind::Data as i32
            {
                data.insert(id.prefix());
                continue;
            }
            self.blobs.entry(id).or_insert_with(|| Entry {
                pack: pack.clone(),
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
                compressed: b.compressed,
            });
        }
        *self.packs.entry(pack).or_default() += blobs.len();
        Ok(())
    }

    /// Adds every pack of an index file.
    pub fn add_file(&mut self, file: &pb::IndexFile) -> Result<()> {
        for p in &file.packs {
            self.add_pack(&p.pack, &p.blobs)?;
        }
        Ok(())
    }

    /// Where blob `id` is (in a compact index, trees only).
    pub fn get(&self, id: &BlobId) -> Result<&Entry> {
        self.blobs.get(id).ok_or_else(|| Error::MissingBlob(id.hex()))
    }

    /// Whether the repository holds blob `id`.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id) || self.data.as_ref().is_some_and(|d| d.contains(&id.prefix()))
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len() + self.data.as_ref().map_or(0, HashSet::len)
    }

    /// Whether it knows no blob.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pack it knows, with its blob count.
    pub fn packs(&self) -> impl Iterator<Item = (&str, usize)> {
        self.packs.iter().map(|(p, n)| (p.as_ref(), *n))
    }
}
