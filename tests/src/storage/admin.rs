//! What `object_store` cannot do — create buckets and containers, set up moto's IAM
//! authentication — done by `tests/bed/storage_admin.py` with each provider's own client.

use anyhow::{Context, Result, bail};
use std::process::Command;

use crate::bed_script;
use crate::paths::venv_python;

/// Runs `storage_admin.py ARGS…` with the test-bed venv's Python and parses its JSON answer.
pub(crate) async fn run(args: &[&str]) -> Result<serde_json::Value> {
    let mut cmd = Command::new(venv_python()?);
    cmd.arg(bed_script("storage_admin.py")?).args(args);
    let what = format!("storage_admin.py {}", args.first().copied().unwrap_or_default());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{what} printed no JSON"))
}
