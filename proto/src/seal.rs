//! Sealing secrets with a 256-bit key: AES-256-GCM (aws-lc-rs, the crypto library rustls already
//! brings), a fresh random nonce per message, and a context string bound in as associated data so
//! a sealed value cannot be moved to another record.
//!
//! Sealed form: `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`. A key's text form — in a key
//! file or an environment variable — is one line: 32 random bytes in standard base64.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::path::Path;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;

/// A key that cannot be read, made or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not 32 bytes in base64.
    #[error("{origin}: not a key (one line of {KEY_LEN} bytes in base64)")]
    Malformed {
        /// Where the text came from (a file, a variable).
        origin: String,
    },
    /// A key file could not be read or written.
    #[error("key file {path}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file others than its owner can read or write.
    #[error(
        "key file {path} can be read or written by others (mode {mode:o}): make it its owner's only (chmod 600)"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The system's random source failed.
    #[error("no randomness from the system")]
    Random,
    /// The sealed value was made with another key or context, or was altered.
    #[error("cannot open sealed {context}: wrong key, or the value was altered")]
    Open {
        /// What was sealed.
        context: String,
    },
}

/// Result of a sealing call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A sealing key. Neither `Debug` nor `Display` shows it.
pub struct Key {
    aead: LessSafeKey,
    /// HKDF pseudo-random key from the same bytes, for [`Key::derive`].
    prk: hkdf::Prk,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

fn random(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new().fill(buf).map_err(|_| Error::Random)
}

/// Bytes a sealed value adds to its plaintext: nonce and tag.
pub const OVERHEAD: usize = NONCE_LEN + 16;

impl Key {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Self {
            aead: LessSafeKey::new(key),
            prk: hkdf::Salt::new(hkdf::HKDF_SHA256, b"cairn").extract(bytes),
        })
    }

    /// A fresh random key, with its raw bytes (to be sealed under another key, never stored bare).
    pub fn random() -> Result<(Self, [u8; KEY_LEN])> {
        let mut bytes = [0u8; KEY_LEN];
        random(&mut bytes)?;
        let key = Self::from_bytes(&bytes).ok_or(Error::Random)?;
        Ok((key, bytes))
    }

    /// The key with raw bytes `bytes` (as [`Key::random`] gave them); `origin` names them in the
    /// error.
    pub fn from_raw(bytes: &[u8], origin: &str) -> Result<Self> {
        if bytes.len() != KEY_LEN {
            return Err(Error::Malformed {
                origin: origin.to_owned(),
            });
        }
        Self::from_bytes(bytes).ok_or_else(|| Error::Malformed {
            origin: origin.to_owned(),
        })
    }

    /// Seals `plaintext` onto the end of `out` (no intermediate copy): `nonce ‖ ciphertext ‖ tag`.
    pub fn seal_into(&self, context: &str, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut out[start..],
            )
            .map_err(|_| Error::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Parses a key's text form; `origin` names where it came from in the error.
    pub fn from_base64(text: &str, origin: &str) -> Result<Self> {
        let malformed = || Error::Malformed {
            origin: origin.to_owned(),
        };
        let bytes = BASE64.decode(text.trim()).map_err(|_| malformed())?;
        if bytes.len() != KEY_LEN {
            return Err(malformed());
        }
        Self::from_bytes(&bytes).ok_or_else(malformed)
    }

    /// Reads the key file at `path`; refuses it if others than its owner can read or write it.
    pub fn read_file(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let file_error = |source| Error::File {
            path: path.display().to_string(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(file_error)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Exposed {
                path: path.display().to_string(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(file_error)?;
        Self::from_base64(&text, &format!("key file {}", path.display()))
    }

    /// Makes a random key, writes it to a new file at `path` readable by its owner only, and
    /// returns it. Fails if the file exists: a key is never overwritten.
    pub fn create_file(path: &Path) -> Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut bytes = [0u8; KEY_LEN];
        random(&mut bytes)?;
        let file_error = |source| Error::File {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(file_error)?;
        writeln!(file, "{}", BASE64.encode(bytes)).map_err(file_error)?;
        file.sync_all().map_err(file_error)?;
        Self::from_bytes(&bytes).ok_or(Error::Random)
    }

    /// Raw bytes of a key derived from this one for `purpose` (HKDF-SHA256): the same key and
    /// purpose always give the same bytes; they reveal nothing of this key.
    pub fn derive(&self, purpose: &str) -> Result<[u8; KEY_LEN]> {
        let mut out = [0u8; KEY_LEN];
        self.prk
            .expand(&[purpose.as_bytes()], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .map_err(|_| Error::Random)?;
        Ok(out)
    }

    /// Seals `plaintext`; `context` must be given again to open it.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut sealed = Vec::with_capacity(OVERHEAD + plaintext.len());
        self.seal_into(context, plaintext, &mut sealed)?;
        Ok(sealed)
    }

    /// Opens what [`Key::seal`] sealed with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        let mut copy = sealed.to_vec();
        let len = self.open_in_place(context, &mut copy)?.len();
        copy.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
        copy.truncate(len);
        Ok(copy)
    }

    /// Opens `sealed` where it lies (no copy); returns the plaintext, a part of `sealed`.
    pub fn open_in_place<'a>(&self, context: &str, sealed: &'a mut [u8]) -> Result<&'a mut [u8]> {
        let fail = || Error::Open {
            context: context.to_owned(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, body) = sealed.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        self.aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), body)
            .map_err(|_| fail())
    }
}

/// Writes `bytes` to `path` whole or not at all, readable and writable by its owner only: the
/// one way a secret (a key, a certificate's key, a token) is written to a file.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.key");
        let made = Key::create_file(&path).expect("made");
        let read = Key::read_file(&path).expect("its owner's only");
        assert_eq!(
            read.derive("x").expect("derive"),
            made.derive("x").expect("derive")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Key::read_file(&path).expect_err("readable by others");
        assert_eq!(
            err.to_string(),
            format!(
                "key file {} can be read or written by others (mode 644): make it its owner's only (chmod 600)",
                path.display()
            )
        );
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        let key = Key::create_file(&path).expect("created");
        assert_eq!(key.seal("x", b"abc").expect("sealed").len(), 3 + OVERHEAD);
        assert!(Key::create_file(&path).is_err(), "never overwritten");
        let again = Key::read_file(&path).expect("read back");

        let sealed = key.seal("location/a", b"secret-access-key").expect("sealed");
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "ciphertext hides the text"
        );
        assert_eq!(
            again.open("location/a", &sealed).expect("opens"),
            b"secret-access-key"
        );
        let err = again.open("location/b", &sealed).expect_err("other context");
        assert_eq!(
            err.to_string(),
            "cannot open sealed location/b: wrong key, or the value was altered"
        );
        let other = Key::from_base64(&BASE64.encode([7u8; KEY_LEN]), "test").expect("key");
        assert!(other.open("location/a", &sealed).is_err(), "other key");
        let mut altered = sealed.clone();
        altered[NONCE_LEN] ^= 1;
        assert!(key.open("location/a", &altered).is_err(), "altered");
        assert!(Key::from_base64("c2hvcnQ=", "env CAIRN_SECRET_KEY").is_err());
    }

    #[test]
    fn derived_keys_are_stable_per_purpose_and_differ_between_purposes() {
        let bytes = BASE64.encode([3u8; KEY_LEN]);
        let (a, b) = (
            Key::from_base64(&bytes, "a").expect("key"),
            Key::from_base64(&bytes, "b").expect("key"),
        );
        let one = a.derive("workspace/one").expect("derived");
        assert_eq!(
            one,
            b.derive("workspace/one").expect("derived"),
            "same key, same purpose"
        );
        assert_ne!(one, a.derive("workspace/two").expect("derived"));
        assert_ne!(one, [3u8; KEY_LEN], "not the key itself");
        let other = Key::from_base64(&BASE64.encode([4u8; KEY_LEN]), "c").expect("key");
        assert_ne!(one, other.derive("workspace/one").expect("derived"));
    }

    #[test]
    fn a_private_file_is_its_owners_only_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("nested/identity.json");
        write_private(&path, b"first").expect("written");
        write_private(&path, b"second").expect("replaced");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!path.with_extension("partial").exists());
    }
}
