//! Where the test bed finds the server binaries and its own scripts.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// The cache of expensive, reproducible outputs: `$CAIRN_CACHE`, default `~/.cache/cairn`.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAIRN_CACHE") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/cairn")
}

/// The path of a test-bed binary (`kube-apiserver`, `etcd`, `moto_server`, `azurite-blob`, …)
/// as linked by `tests/bed/setup.sh`.
pub fn bin(name: &str) -> Result<PathBuf> {
    let path = cache_dir().join("bin").join(name);
    if !path.exists() {
        bail!(
            "test-bed binary {name} not found at {}: run tests/bed/setup.sh first",
            path.display()
        );
    }
    Ok(path)
}

/// The test-bed venv's Python (run by its own path: through a symlink it would not find its venv).
pub(crate) fn venv_python() -> Result<PathBuf> {
    let path = cache_dir().join("venv/bin/python");
    if !path.exists() {
        bail!(
            "test-bed venv not found at {}: run tests/bed/setup.sh first",
            path.display()
        );
    }
    Ok(path)
}

/// The path of a script in `tests/bed/`.
pub fn bed_script(name: &str) -> Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bed").join(name);
    path.canonicalize()
        .with_context(|| format!("test-bed script {}", path.display()))
}
