//! A volume mounted on a pod's directory, as the kubelet mounts one: the tests that play the
//! kubelet for a node agent on this machine make the directory and bind-mount the volume's own
//! directory on it (root only, as the kubelet).

use anyhow::{Context, Result};
use nix::mount::{MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// A bind mount, undone (lazily: a process still inside lets go later) on drop.
#[must_use = "the volume is unmounted when this is dropped"]
pub struct Mount {
    target: PathBuf,
}

impl Mount {
    /// Makes directory `target` if need be, then bind-mounts directory `source` on it.
    pub fn bind(source: &Path, target: &Path) -> Result<Self> {
        std::fs::create_dir_all(target).with_context(|| format!("making {}", target.display()))?;
        nix::mount::mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>).with_context(
            || {
                format!(
                    "bind-mounting {} on {} (as the kubelet does: the test must run as root)",
                    source.display(),
                    target.display()
                )
            },
        )?;
        Ok(Self {
            target: target.to_owned(),
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.target, MntFlags::MNT_DETACH) {
            tracing::warn!(target = %self.target.display(), error = %e, "cannot unmount");
        }
    }
}
