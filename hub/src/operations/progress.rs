//! Live state of running backups and restores, for `Watch` subscribers (the CLI's `--wait`).

use cairn_proto::model::{Live, Phase, Progress};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

/// One `watch` channel per running operation, by name.
#[derive(Default)]
pub struct Board {
    channels: Mutex<HashMap<String, watch::Sender<Live>>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Live>>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new operation `name`, pending.
    pub fn open(&self, name: &str) {
        let (tx, _) = watch::channel(Live {
            progress: Progress {
                operation: name.to_owned(),
                ..Progress::default()
            },
            phase: Phase::Pending,
        });
        self.lock().insert(name.to_owned(), tx);
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

    /// Ends operation `name` with `phase`; watchers see it, then the channel closes.
    pub fn close(&self, name: &str, phase: Phase) {
        if let Some(tx) = self.lock().remove(name) {
            tx.send_modify(|live| live.phase = phase);
        }
    }

    /// A subscription to operation `name`, if it is running.
    pub fn subscribe(&self, name: &str) -> Option<watch::Receiver<Live>> {
        self.lock().get(name).map(watch::Sender::subscribe)
    }
}
