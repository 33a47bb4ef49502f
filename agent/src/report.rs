//! Progress and results of the agent's operations, on their way to the hub through [`crate::link`].

use cairn_proto::model::{
    BackupName, BackupStatus, LocationName, Progress, Prune, RestoreName, RestoreStatus, VolumeProgress,
    VolumeResult, VolumeTask,
};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events waiting for the link; progress beyond this is dropped (the next one supersedes it),
/// results wait for room.
pub const EVENT_QUEUE: usize = 64;

/// Least time between two progress events of one operation.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What the agent tells the hub.
#[derive(Debug, Clone)]
pub enum Event {
    /// How far an operation has got.
    Progress(Progress),
    /// A backup ended.
    BackupDone(BackupName, BackupStatus),
    /// A restore ended.
    RestoreDone(RestoreName, RestoreStatus),
    /// Cluster agent: a claim's data to move, for the agent of the node named in it.
    VolumeTask(VolumeTask),
    /// Node agent: how far a task has got.
    VolumeProgress(VolumeProgress),
    /// Node agent: a task ended.
    VolumeDone(String, VolumeResult),
    /// A prune of a location's volume repository ended.
    PruneDone(LocationName, Prune),
}

impl Event {
    /// Whether the hub must get it even across a broken link: results are repeated on every new
    /// link (see [`crate::link`]); progress and requests are not.
    pub fn is_result(&self) -> bool {
        matches!(
            self,
            Event::BackupDone(..) | Event::RestoreDone(..) | Event::VolumeDone(..) | Event::PruneDone(..)
        )
    }
}

/// One operation's reporter.
pub struct Reporter {
    tx: mpsc::Sender<Event>,
    progress: Progress,
    last: Option<Instant>,
}

impl Reporter {
    /// For operation `operation`, sending into `tx`.
    pub fn new(operation: &str, tx: mpsc::Sender<Event>) -> Self {
        Self {
            tx,
            progress: Progress {
                operation: operation.to_owned(),
                ..Progress::default()
            },
            last: None,
        }
    }

    /// Updates progress; sent at most every 250 ms, and dropped if the link is behind.
    pub fn progress(&mut self, items_done: u64, items_total: u64, bytes_done: u64, current: &str) {
        self.progress.items_done = items_done;
        self.progress.items_total = items_total;
        self.progress.bytes_done = bytes_done;
        self.send(current);
    }

    /// Updates the volume data moved so far (files and bytes, all claims together).
    pub fn volumes(&mut self, files: u64, bytes: u64, current: &str) {
        self.progress.files_done = files;
        self.progress.bytes_done = bytes;
        self.send(current);
    }

    fn send(&mut self, current: &str) {
        if self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        current.clone_into(&mut self.progress.current);
        self.last = Some(Instant::now());
        let _ = self.tx.try_send(Event::Progress(self.progress.clone()));
    }

    /// Sends the final event (waits for room: a result is never dropped).
    pub async fn finish(self, event: Event) {
        let _ = self.tx.send(event).await;
    }
}
