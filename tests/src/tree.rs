//! Directory trees for volume tests: files with given modes and times, and a picture of a tree
//! to compare after a restore.

use anyhow::{Context, Result};
use rand::RngCore;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// Writes `bytes` at `path` (parents made) with `mode` and `mtime`.
pub fn write(path: &Path, bytes: &[u8], mode: u32, mtime: SystemTime) -> Result<()> {
    std::fs::create_dir_all(path.parent().context("parent")?)?;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(mtime)?;
    Ok(())
}

/// Every entry under `root` by relative path: mode, size, mtime, link target, content hash —
/// what a user compares after a restore.
pub fn picture(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let rel = path.strip_prefix(root)?.display().to_string();
            let detail = if meta.is_dir() {
                pending.push(path.clone());
                String::new()
            } else if meta.file_type().is_symlink() {
                std::fs::read_link(&path)?.display().to_string()
            } else {
                blake3::hash(&std::fs::read(&path)?).to_hex().to_string()
            };
            let mtime = if meta.file_type().is_symlink() {
                0
            } else {
                meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
            };
            out.insert(
                rel,
                format!(
                    "mode={:o} size={} mtime={mtime} {detail}",
                    meta.mode(),
                    meta.len()
                ),
            );
        }
    }
    Ok(out)
}
