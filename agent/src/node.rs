//! Node mode (`cairn-agent node`, a DaemonSet): moves the data of the claims mounted on one node.
//! The kubelet mounts a pod's volume at `<kubelet-root>/pods/<pod-uid>/volumes/<plugin>/<name>`
//! (CSI volumes one level further, in `mount/`), `<name>` being the PersistentVolume's name; a
//! task names the pod and the volume, and the node agent backs that directory up into the
//! workspace's repository or restores a snapshot into it. One task runs at a time: memory stays
//! that of one backup however many claims the node holds.

use cairn_proto::model::{Report, VolumeProgress, VolumeResult, VolumeTask, VolumeTaskId};
use cairn_proto::seal::Key;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

use crate::volume::{self, Repository, backup::Counters};

/// How long a restore waits for the kubelet to mount the new volume.
pub const MOUNT_WAIT: Duration = Duration::from_secs(600);
/// How often a running task reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The directory of the CSI plugin's volumes: data sits in `mount/` under each.
const CSI_PLUGIN: &str = "kubernetes.io~csi";

/// This node's agent.
#[derive(Clone)]
pub struct Node {
    /// The node's name (as in the pods' `spec.nodeName`).
    pub name: String,
    /// The kubelet's root directory (`/var/lib/kubelet`).
    pub kubelet_root: PathBuf,
    slots: Arc<Semaphore>,
}

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(
        "no volume directory {} (is the pod on this node, and --kubelet-root right?)",
        pattern.display()
    )]
    NotMounted { pattern: PathBuf },
    #[error("the key handed with the task")]
    Key(#[from] cairn_proto::seal::Error),
    #[error(transparent)]
    Volume(#[from] volume::Error),
}

impl Node {
    /// The agent of node `name`, its kubelet at `kubelet_root`.
    pub fn new(name: String, kubelet_root: PathBuf) -> Self {
        Self {
            name,
            kubelet_root,
            slots: Arc::new(Semaphore::new(1)),
        }
    }

    /// Runs `task` (after those before it); its progress and result go into `events`.
    pub async fn run(self, task: VolumeTask, events: mpsc::Sender<Report>) {
        let _slot = self.slots.clone().acquire_owned().await;
        let id = task.id.clone();
        let result = self.execute(&task, &events).await;
        let _ = events.send(Report::VolumeDone(id, result)).await;
    }

    #[tracing::instrument(name = "volume", skip_all, fields(task = %task.id, pod = %task.pod_uid, volume = %task.volume))]
    async fn execute(&self, task: &VolumeTask, events: &mpsc::Sender<Report>) -> VolumeResult {
        let mut result = VolumeResult {
            node: self.name.clone(),
            volume: task.volume.clone(),
            ..VolumeResult::default()
        };
        let counters = Arc::new(Counters::default());
        let ticker = tokio::spawn(report_progress(task.id.clone(), counters.clone(), events.clone()));
        let outcome = self.move_data(task, &counters, &mut result).await;
        ticker.abort();
        if let Err(e) = outcome {
            let error = cairn_proto::error_chain(&e);
            tracing::warn!(%error, "volume task failed");
            result.error = Some(error);
        } else {
            tracing::info!(snapshot = %result.snapshot, files = result.files, bytes = result.bytes, "volume task done");
        }
        result
    }

    async fn move_data(
        &self,
        task: &VolumeTask,
        counters: &Arc<Counters>,
        result: &mut VolumeResult,
    ) -> Result<(), Error> {
        let store = cairn_proto::format::open_location(&task.location).map_err(volume::Error::from)?;
        let kek = Key::from_raw(&task.key.0, "the workspace's repository key")?;
        let label = format!("location {}", task.location.name);
        let repo =
            Arc::new(Repository::open_or_init(store, &label, &kek, "the workspace's repository key").await?);
        match &task.snapshot {
            None => {
                let dir = self.volume_dir(&task.pod_uid, &task.volume)?;
                let origin = volume::backup::Origin {
                    host: task.cluster.to_string(),
                    path: Some(task.source.clone()),
                    tag: task.tag.clone(),
                };
                let s = volume::backup::run(repo, &dir, origin, counters.clone()).await?;
                result.snapshot = s.snapshot;
                result.files = s.files;
                result.bytes = s.bytes;
                result.bytes_read = s.bytes_read;
                result.bytes_added = s.bytes_added;
            }
            Some(snapshot) => {
                let dir = self.mounted(&task.pod_uid, &task.volume).await?;
                let s = volume::restore::run(repo, snapshot, &dir, counters.clone()).await?;
                result.snapshot = snapshot.clone();
                result.files = s.files;
                result.bytes = s.bytes;
            }
        }
        Ok(())
    }

    /// The directory where the kubelet mounted volume `volume` of pod `pod_uid`.
    fn volume_dir(&self, pod_uid: &str, volume: &str) -> Result<PathBuf, Error> {
        let volumes = self.kubelet_root.join("pods").join(pod_uid).join("volumes");
        let plugins = std::fs::read_dir(&volumes).into_iter().flatten().flatten();
        for plugin in plugins {
            let dir = plugin.path().join(volume);
            if dir.is_dir() {
                let is_csi = plugin.file_name() == CSI_PLUGIN;
                return Ok(if is_csi { dir.join("mount") } else { dir });
            }
        }
        Err(Error::NotMounted {
            pattern: volumes.join("*").join(volume),
        })
    }

    /// [`Node::volume_dir`], once the kubelet has mounted it (waiting up to [`MOUNT_WAIT`]).
    async fn mounted(&self, pod_uid: &str, volume: &str) -> Result<PathBuf, Error> {
        let deadline = tokio::time::Instant::now() + MOUNT_WAIT;
        loop {
            // A CSI volume's directory appears before its `mount/`: wait for the mount itself.
            match self.volume_dir(pod_uid, volume) {
                Ok(dir) if dir.is_dir() => return Ok(dir),
                Ok(dir) if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::NotMounted { pattern: dir });
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}

async fn report_progress(id: VolumeTaskId, counters: Arc<Counters>, events: mpsc::Sender<Report>) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tick.tick().await;
        let progress = VolumeProgress {
            id: id.clone(),
            files: counters.files.load(Ordering::Relaxed),
            bytes: counters.bytes_read.load(Ordering::Relaxed),
        };
        let _ = events.try_send(Report::VolumeProgress(progress));
    }
}
