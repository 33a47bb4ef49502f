//! The cluster agent's side of volume tasks: each task goes up to the hub, which routes it to
//! the agent of the task's node; that agent's progress and result come back down here and are
//! matched to the task by its id.

use cairn_proto::model::{
    ClusterName, Report, RepositoryKey, VolumeProgress, VolumeResult, VolumeTask, VolumeTaskId,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot, watch};

/// What a cluster agent's backup or restore needs to have volume data moved: the way to the
/// node agents and the workspace's repository key.
#[derive(Clone)]
pub struct Volumes {
    /// Tasks to node agents.
    pub relay: Relay,
    /// The workspace's volume-repository key.
    pub key: RepositoryKey,
    /// This agent's cluster.
    pub cluster: ClusterName,
}

/// Tasks sent and not yet answered.
#[derive(Clone)]
pub struct Relay {
    up: mpsc::Sender<Report>,
    pending: Arc<Mutex<HashMap<VolumeTaskId, Pending>>>,
}

struct Pending {
    done: oneshot::Sender<VolumeResult>,
    progress: watch::Sender<(u64, u64)>,
}

/// A task on its way: its live (files, bytes) and its result.
pub struct Asked {
    /// Files and bytes moved so far.
    pub progress: watch::Receiver<(u64, u64)>,
    /// The node agent's result (or the hub's, when no node agent could take it).
    pub done: oneshot::Receiver<VolumeResult>,
}

impl Relay {
    /// Sending tasks into `up`, the link's queue.
    pub fn new(up: mpsc::Sender<Report>) -> Self {
        Self {
            up,
            pending: Arc::default(),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<VolumeTaskId, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A relay that reaches no node agent: a backup run on the agent's own, without the hub.
    pub fn unlinked() -> Self {
        let (up, _) = mpsc::channel(1);
        Self::new(up)
    }

    /// Sends `task`; its answer arrives through the returned [`Asked`] (at once, a failure, if
    /// the task cannot be sent).
    pub async fn ask(&self, task: VolumeTask) -> Asked {
        let (done, done_rx) = oneshot::channel();
        let (progress, progress_rx) = watch::channel((0, 0));
        let id = task.id.clone();
        self.pending().insert(id.clone(), Pending { done, progress });
        if self.up.send(Report::VolumeTask(task)).await.is_err() {
            let unsent = VolumeResult {
                error: Some(
                    "volume data is moved by node agents, reached through the hub, which did not start this backup: not taken"
                        .into(),
                ),
                ..VolumeResult::default()
            };
            self.done(&id, unsent);
        }
        Asked {
            progress: progress_rx,
            done: done_rx,
        }
    }

    /// A node agent's result for task `id`.
    pub fn done(&self, id: &VolumeTaskId, result: VolumeResult) {
        if let Some(p) = self.pending().remove(id) {
            let _ = p.done.send(result);
        }
    }

    /// A node agent's progress.
    pub fn progress(&self, p: &VolumeProgress) {
        if let Some(pending) = self.pending().get(&p.id) {
            pending.progress.send_replace((p.files, p.bytes));
        }
    }
}
