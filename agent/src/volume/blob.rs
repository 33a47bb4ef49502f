//! Blobs: a chunk of file data or a tree, named by the keyed BLAKE3 hash of its plaintext (so ids
//! reveal nothing to whoever reads the bucket), stored zstd-compressed when that pays, then sealed.

use cairn_proto::seal::Key;
use std::fmt;

use super::{Error, Result};

/// A blob's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// The id of `plaintext` under the repository's id key.
    pub fn of(id_key: &[u8; 32], plaintext: &[u8]) -> Self {
        Self(*blake3::keyed_hash(id_key, plaintext).as_bytes())
    }

    /// From stored bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::corrupt("a blob id", format!("{} bytes long", bytes.len())))?;
        Ok(Self(array))
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

/// Compresses `plaintext` if that saves at least 1/32 of it, and seals it onto `out`; returns
/// whether it was compressed.
pub fn seal_into(key: &Key, plaintext: &[u8], out: &mut Vec<u8>) -> Result<bool> {
    let compressed = zstd::bulk::compress(plaintext, ZSTD_LEVEL)
        .ok()
        .filter(|c| c.len() < plaintext.len() - plaintext.len() / 32);
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
    let opened = key
        .open(CONTEXT, stored)
        .map_err(|e| Error::corrupt(format!("blob {id}"), e))?;
    let plain = if compressed {
        zstd::bulk::decompress(&opened, raw_length).map_err(|e| Error::corrupt(format!("blob {id}"), e))?
    } else {
        opened
    };
    if BlobId::of(id_key, &plain) != *id {
        return Err(Error::corrupt(
            format!("blob {id}"),
            "its content does not match its id",
        ));
    }
    Ok(plain)
}
