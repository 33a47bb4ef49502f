//! Pack files: blobs sealed one after another, then the sealed header listing them, then the
//! header's length (4 bytes, little-endian). A pack is named by the BLAKE3 hash of its bytes, so
//! `check` can verify it without the key, and is written once, whole, with one PUT.

use cairn_proto::pb;
use cairn_proto::seal::Key;
use prost::Message;

use super::blob::{self, BlobId};
use super::{Error, Result};

/// A pack is closed once it holds this much: big enough for few objects, small enough that a
/// retry or a restore of one file reads little, and that the packs in flight (one filling per
/// core, one queued, two uploading) keep the backup's memory near 100 MiB.
pub const TARGET_BYTES: usize = 8 << 20;

/// Room a pack may need: the target, plus one largest chunk, its seal and the header.
const CAPACITY: usize = TARGET_BYTES + (8 << 20) + (64 << 10);

/// Context pack headers are sealed to.
const HEADER_CONTEXT: &str = "cairn pack header";

/// A pack being filled.
pub struct PackBuilder {
    bytes: Vec<u8>,
    blobs: Vec<pb::BlobEntry>,
    zstd: blob::Compressor,
}

/// A finished pack, ready to upload.
pub struct Pack {
    /// Hex BLAKE3 of `bytes`.
    pub id: String,
    /// The whole pack.
    pub bytes: Vec<u8>,
    /// Its blobs.
    pub blobs: Vec<pb::BlobEntry>,
}

impl PackBuilder {
    /// An empty pack.
    pub fn new() -> Result<Self> {
        Ok(Self {
            bytes: Vec::with_capacity(CAPACITY),
            blobs: Vec::new(),
            zstd: blob::Compressor::new()?,
        })
    }

    /// Compresses (if it pays) and seals `plaintext` into the pack as blob `id`.
    pub fn add(&mut self, key: &Key, id: BlobId, kind: pb::BlobKind, plaintext: &[u8]) -> Result<()> {
        let offset = self.bytes.len();
        let compressed = blob::seal_into(key, &mut self.zstd, plaintext, &mut self.bytes)?;
        self.blobs.push(pb::BlobEntry {
            id: id.0.to_vec(),
            kind: kind as i32,
            offset: offset as u64,
            length: u32::try_from(self.bytes.len() - offset)
                .map_err(|_| Error::corrupt("a blob", "over 4 GiB"))?,
            raw_length: u32::try_from(plaintext.len()).map_err(|_| Error::corrupt("a blob", "over 4 GiB"))?,
            compressed,
        });
        Ok(())
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no blob.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Seals the header on and names the pack.
    pub fn finish(mut self, key: &Key) -> Result<Pack> {
        let header = pb::PackHeader {
            blobs: self.blobs.clone(),
        }
        .encode_to_vec();
        let start = self.bytes.len();
        key.seal_into(HEADER_CONTEXT, &header, &mut self.bytes)?;
        let header_len = u32::try_from(self.bytes.len() - start)
            .map_err(|_| Error::corrupt("a pack header", "over 4 GiB"))?;
        self.bytes.extend_from_slice(&header_len.to_le_bytes());
        let id = blake3::hash(&self.bytes).to_hex().to_string();
        Ok(Pack {
            id,
            bytes: self.bytes,
            blobs: self.blobs,
        })
    }
}

/// The blobs listed in the header of pack `id` (whose bytes are `bytes`), after checking that the
/// bytes hash to the id.
pub fn read_header(key: &Key, id: &str, bytes: &[u8]) -> Result<Vec<pb::BlobEntry>> {
    let what = || format!("pack {id}");
    if blake3::hash(bytes).to_hex().as_str() != id {
        return Err(Error::corrupt(what(), "its bytes do not hash to its name"));
    }
    let n = bytes.len();
    let len_bytes: [u8; 4] = bytes
        .get(n.saturating_sub(4)..)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::corrupt(what(), "too short"))?;
    let header_len = u32::from_le_bytes(len_bytes) as usize;
    let start = n
        .checked_sub(4 + header_len)
        .ok_or_else(|| Error::corrupt(what(), "header length past its start"))?;
    let header = key
        .open(HEADER_CONTEXT, &bytes[start..n - 4])
        .map_err(|e| Error::corrupt(what(), e))?;
    Ok(pb::PackHeader::decode(header.as_slice())
        .map_err(|e| Error::corrupt(what(), e))?
        .blobs)
}
