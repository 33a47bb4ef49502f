//! A local directory as a backup location: the embedded default.

use anyhow::Result;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A temporary directory, removed on drop, served through `object_store`'s local file system.
pub struct LocalDir {
    dir: tempfile::TempDir,
}

impl LocalDir {
    /// A new empty directory.
    pub fn new() -> Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("cairn-local-").tempdir()?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An `object_store` client rooted at the directory.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(LocalFileSystem::new_with_prefix(self.dir.path())?))
    }
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(files_under(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}
