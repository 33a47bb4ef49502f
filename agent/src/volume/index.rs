//! The index: which pack holds each blob, where. Every backup writes its own index file for the
//! packs it added (no lock, no shared file to rewrite); readers merge them all.
//!
//! Blobs are looked up by the first 128 bits of their id (two distinct blobs sharing 128 bits
//! among a billion has odds of about 10^-21, and a restore checks every blob's full id against
//! its content anyway), in a sorted array of 32 bytes a blob: a million files' worth of index
//! fits in 32 MiB. A backup only asks whether a data blob exists, and reads trees: its index
//! ([`Index::compact`]) keeps of each data blob its id prefix alone, 16 bytes.

use cairn_proto::pb;
use std::collections::HashMap;
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

/// An [`Entry`] in 16 bytes: the pack by number, the compressed flag in `raw`'s top bit.
#[derive(Debug, Clone, Copy)]
struct Place {
    pack: u32,
    offset: u32,
    length: u32,
    raw: u32,
}

const COMPRESSED: u32 = 1 << 31;

/// Blob → place, for every index file read. Filled with [`Index::add_pack`], then
/// [`Index::finish`]ed before it is asked.
#[derive(Debug, Default)]
pub struct Index {
    /// By id prefix once finished; where an id is in several packs, the first added.
    blobs: Vec<(u128, Place)>,
    /// In a compact index: the data blobs' id prefixes, sorted once finished.
    data: Option<Vec<u128>>,
    /// Pack names by number, with their blob counts.
    packs: Vec<(Arc<str>, usize)>,
    numbers: HashMap<Arc<str>, u32>,
}

impl Index {
    /// An index that knows where every blob is.
    pub fn full() -> Self {
        Self::default()
    }

    /// An index for a backup: trees in full, data blobs by id prefix only (see the module docs).
    pub fn compact() -> Self {
        Self {
            data: Some(Vec::new()),
            ..Self::default()
        }
    }

    /// Adds pack `pack`'s blobs.
    pub fn add_pack(&mut self, pack: &str, blobs: &[pb::BlobEntry]) -> Result<()> {
        let number = match self.numbers.get(pack) {
            Some(n) => *n,
            None => {
                let name: Arc<str> = Arc::from(pack);
                let n = u32::try_from(self.packs.len())
                    .map_err(|_| Error::corrupt("the index", "over 2^32 packs"))?;
                self.packs.push((name.clone(), 0));
                self.numbers.insert(name, n);
                n
            }
        };
        self.packs[number as usize].1 += blobs.len();
        let too_big = || Error::corrupt(format!("the index of pack {pack}"), "a blob past 4 GiB");
        for b in blobs {
            let id = BlobId::from_slice(&b.id)?.prefix();
            if let Some(data) = &mut self.data
                && b.kind == pb::BlobKind::Data as i32
            {
                data.push(id);
                continue;
            }
            if b.raw_length >= COMPRESSED {
                return Err(too_big());
            }
            let place = Place {
                pack: number,
                offset: u32::try_from(b.offset).map_err(|_| too_big())?,
                length: b.length,
                raw: b.raw_length | if b.compressed { COMPRESSED } else { 0 },
            };
            self.blobs.push((id, place));
        }
        Ok(())
    }

    /// Sorts what was added for lookups, keeping for each blob the first place added.
    pub fn finish(mut self) -> Self {
        self.blobs.sort_by_key(|(id, _)| *id); // stable: the first added stays first
        self.blobs.dedup_by_key(|(id, _)| *id);
        self.blobs.shrink_to_fit();
        if let Some(data) = &mut self.data {
            data.sort_unstable();
            data.dedup();
            data.shrink_to_fit();
        }
        self
    }

    /// Where blob `id` is (in a compact index, trees only).
    pub fn get(&self, id: &BlobId) -> Result<Entry> {
        let prefix = id.prefix();
        let at = self
            .blobs
            .binary_search_by_key(&prefix, |(id, _)| *id)
            .map_err(|_| Error::MissingBlob(id.hex()))?;
        let place = self.blobs[at].1;
        Ok(Entry {
            pack: self.packs[place.pack as usize].0.clone(),
            offset: u64::from(place.offset),
            length: place.length,
            raw_length: place.raw & !COMPRESSED,
            compressed: place.raw & COMPRESSED != 0,
        })
    }

    /// Whether the repository holds blob `id`.
    pub fn contains(&self, id: &BlobId) -> bool {
        let prefix = id.prefix();
        self.blobs.binary_search_by_key(&prefix, |(id, _)| *id).is_ok()
            || self
                .data
                .as_ref()
                .is_some_and(|d| d.binary_search(&prefix).is_ok())
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len() + self.data.as_ref().map_or(0, Vec::len)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(id: u8, kind: pb::BlobKind, offset: u64, compressed: bool) -> pb::BlobEntry {
        pb::BlobEntry {
            id: vec![id; 32],
            kind: kind as i32,
            offset,
            length: 100 + u32::from(id),
            raw_length: 8 << 20,
            compressed,
        }
    }

    #[test]
    fn the_first_pack_listing_a_blob_is_where_it_is() {
        let mut index = Index::full();
        index
            .add_pack(
                "b",
                &[
                    blob(2, pb::BlobKind::Data, 7, true),
                    blob(1, pb::BlobKind::Tree, 0, false),
                ],
            )
            .expect("add");
        index
            .add_pack("a", &[blob(2, pb::BlobKind::Data, 9, false)])
            .expect("add");
        let index = index.finish();
        let two = index.get(&BlobId([2; 32])).expect("blob 2");
        assert_eq!(
            (
                two.pack.as_ref(),
                two.offset,
                two.length,
                two.raw_length,
                two.compressed
            ),
            ("b", 7, 102, 8 << 20, true)
        );
        assert!(!index.get(&BlobId([1; 32])).expect("blob 1").compressed);
        assert!(index.get(&BlobId([3; 32])).is_err());
        assert_eq!((index.len(), index.packs().count()), (2, 2));
    }

    #[test]
    fn a_compact_index_knows_data_blobs_by_prefix_and_trees_in_full() {
        let mut index = Index::compact();
        index
            .add_pack(
                "p",
                &[
                    blob(4, pb::BlobKind::Data, 0, true),
                    blob(5, pb::BlobKind::Tree, 200, false),
                ],
            )
            .expect("add");
        let index = index.finish();
        assert!(index.contains(&BlobId([4; 32])) && index.contains(&BlobId([5; 32])));
        assert!(index.get(&BlobId([4; 32])).is_err(), "no place for data blobs");
        assert_eq!(index.get(&BlobId([5; 32])).expect("tree").offset, 200);
        assert!(!index.contains(&BlobId([6; 32])));
    }
}
