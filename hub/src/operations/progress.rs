//! Live state of running backups and restores, for `Watch` subscribers (the CLI's `--wait`).

use cairn_proto::model::{Live, OperationId, Phase, Progress};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

/// One `watch` channel per running operation.
#[derive(Default)]
pub struct Board {
    channels: Mutex<HashMap<OperationId, watch::Sender<Live>>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OperationId, watch::Sender<Live>>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new operation, pending.
    pub fn open(&self, operation: &OperationId) {
        let (tx, _) = watch::channel(Live {
            progress: Progress::new(operation.clone()),
            phase: Phase::Pending,
        });
        self.lock().insert(operation.clone(), tx);
    }

    /// Records progress; the operation is in progress from now on.
    pub fn progress(&self, progress: Progress) {
        if let Some(tx) = self.lock().get(&progress.operation) {
            tx.send_replace(Live {
                progress,
                phase: Phase::InProgress,
            });
        }
    }

    /// Ends `operation` with `phase`; watchers see it, then the channel closes.
    pub fn close(&self, operation: &OperationId, phase: Phase) {
        if let Some(tx) = self.lock().remove(operation) {
            tx.send_modify(|live| live.phase = phase);
        }
    }

    /// A subscription to `operation`, if it is running.
    pub fn subscribe(&self, operation: &OperationId) -> Option<watch::Receiver<Live>> {
        self.lock().get(operation).map(watch::Sender::subscribe)
    }
}
