//! What the benchmarks share: the data set, and a cold page cache before each measured step.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the shared data generator `../shared/bench/gen_volume.py` (override with
/// `CAIRN_GEN_VOLUME`) with `args`: `create DIR --size-mib N`, `mutate DIR`, `small DIR`.
pub fn generate(args: &[&str]) -> Result<()> {
    let script = std::env::var_os("CAIRN_GEN_VOLUME").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/gen_volume.py"),
        PathBuf::from,
    );
    let status = Command::new("python3").arg(script).args(args).status()?;
    if !status.success() {
        bail!("gen_volume.py {args:?} failed");
    }
    Ok(())
}

/// Drops the page cache, so every tool reads from disk alike (needs root; best effort). Dirty
/// pages are written back first, or data just generated stays cached for whichever step is next.
pub fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// Bytes under `dir` (`du -sb`).
pub fn du_bytes(dir: &Path) -> Result<u64> {
    let out = Command::new("du").arg("-sb").arg(dir).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().next().context("du")?.parse()?)
}

/// `bytes` in MiB.
#[allow(clippy::cast_precision_loss)]
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
