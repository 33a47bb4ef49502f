//! Blobs: a chunk of file data or a tree, named by the keyed BLAKE3 hash of its plaintext (so ids
//! reveal nothing to whoever reads the bucket), stored zstd-compressed when that pays, then sealed.

use cairn_proto::format::limits::VOLUME_BLOB_PLAIN_MAX;
use cairn_proto::seal::Key;
use std::fmt;

use super::{Error, Result};

/// Plaintexts at least this long are hashed on every core.
const PARALLEL_HASH: usize = 256 << 10;

/// A blob's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// The id of `plaintext` under the repository's id key.
    pub fn of(id_key: &[u8; 32], plaintext: &[u8]) -> Self {
        // Chunks of a MiB and more are hashed on every core (BLAKE3's tree mode is made for it).
        let mut hasher = blake3::Hasher::new_keyed(id_key);
        if plaintext.len() >= PARALLEL_HASH {
            hasher.update_rayon(plaintext);
        } else {
            hasher.update(plaintext);
        }
        Self(*hasher.finalize().as_bytes())
    }

    /// From stored bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::corrupt("a blob id", format!("{} bytes long", bytes.len())))?;
        Ok(Self(array))
    }

    /// Its first 128 bits: what the index looks blobs up by (see [`super::index`]).
    pub fn prefix(&self) -> u128 {
        let mut first = [0u8; 16];
        first.copy_from_slice(&self.0[..16]);
        u128::from_le_bytes(first)
    }

    /// Hex text.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex()[..16])
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

/// Context sealed blobs are bound to.
const CONTEXT: &str = "cairn volume blob";
/// zstd level: fast, and most of the gain.
const ZSTD_LEVEL: i32 = 3;

/// How much of a chunk is compressed first to judge whether compressing it pays: media and
/// encrypted data are then stored as they are without spending a full compression on them.
const SAMPLE: usize = 64 << 10;

/// A zstd context kept across blobs (one per packer): no allocation per chunk.
pub struct Compressor(zstd::bulk::Compressor<'static>);

impl Compressor {
    /// At the repository's level.
    pub fn new() -> Result<Self> {
        zstd::bulk::Compressor::new(ZSTD_LEVEL)
            .map(Self)
            .map_err(|e| Error::corrupt("the zstd context", e))
    }
}

/// Whether compressing `data` saves at least 1/128 of it.
fn pays(data: &[u8], compressed: usize) -> bool {
    compressed < data.len() - data.len() / 128
}

/// Compresses `plaintext` if that saves at least 1/128 of it (judged on a sample first), and seals
/// it onto `out`; returns whether it was compressed.
pub fn seal_into(key: &Key, zstd: &mut Compressor, plaintext: &[u8], out: &mut Vec<u8>) -> Result<bool> {
    let sample = &plaintext[..plaintext.len().min(SAMPLE)];
    let promising = plaintext.len() > SAMPLE && zstd.0.compress(sample).is_ok_and(|c| pays(sample, c.len()));
    let compressed = (plaintext.len() <= SAMPLE || promising)
        .then(|| zstd.0.compress(plaintext).ok())
        .flatten()
        .filter(|c| pays(plaintext, c.len()));
    match &compressed {
        Some(c) => key.seal_into(CONTEXT, c, out)?,
        None => key.seal_into(CONTEXT, plaintext, out)?,
    }
    Ok(compressed.is_some())
}

/// Opens a stored blob back into its plaintext and checks its id.
pub fn open(
    key: &Key,
    id_key: &[u8; 32],
    id: &BlobId,
    stored: &[u8],
    compressed: bool,
    raw_length: usize,
) -> Result<Vec<u8>> {
    let mut copy = stored.to_vec();
    Ok(open_in_place(key, id_key, id, &mut copy, compressed, raw_length)?.into_owned())
}

/// [`open`] where the stored blob lies (in a pack read whole): no copy unless it was compressed.
/// A compressed blob is decompressed into a buffer of `raw_length` bytes (its index entry's), so a
/// `raw_length` over [`VOLUME_BLOB_PLAIN_MAX`] is refused first.
pub fn open_in_place<'a>(
    key: &Key,
    id_key: &[u8; 32],
    id: &BlobId,
    stored: &'a mut [u8],
    compressed: bool,
    raw_length: usize,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    if compressed && raw_length as u64 > VOLUME_BLOB_PLAIN_MAX {
        // The decompression buffer is sized from `raw_length`, which the index gives.
        return Err(Error::corrupt(
            format!("blob {id}"),
            format!(
                "it says it decompresses to {raw_length} bytes, more than the {VOLUME_BLOB_PLAIN_MAX} bytes a blob may hold"
            ),
        ));
    }
    let opened = key
        .open_in_place(CONTEXT, stored)
        .map_err(|e| Error::corrupt(format!("blob {id}"), e))?;
    let plain = if compressed {
        std::borrow::Cow::Owned(
            decompress(opened, raw_length).map_err(|e| Error::corrupt(format!("blob {id}"), e))?,
        )
    } else {
        std::borrow::Cow::Borrowed(&*opened)
    };
    if BlobId::of(id_key, &plain) != *id {
        return Err(Error::corrupt(
            format!("blob {id}"),
            "its content does not match its id",
        ));
    }
    Ok(plain)
}

/// zstd decompression with one context per thread (making a context costs as much as a small
/// chunk's decompression).
fn decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with_borrow_mut(|context| {
        let decompressor = match context {
            Some(d) => d,
            None => context.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(data, capacity)
    })
}
