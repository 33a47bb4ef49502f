//! Progress and results of the agent's operations, on their way to the hub through [`crate::link`].

use cairn_proto::model::{OperationId, Progress, Report};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Reports waiting for the link; progress beyond this is dropped (the next one supersedes it),
/// results wait for room.
pub const EVENT_QUEUE: usize = 64;

/// Least time between two progress events of one operation.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// One operation's reporter.
pub struct Reporter {
    tx: mpsc::Sender<Report>,
    progress: Progress,
    last: Option<Instant>,
}

impl Reporter {
    /// For operation `operation`, sending into `tx`.
    pub fn new(operation: impl Into<OperationId>, tx: mpsc::Sender<Report>) -> Self {
        Self {
            tx,
            progress: Progress::new(operation.into()),
            last: None,
        }
    }

    /// Tells the hub that the operation has begun: how it knows the agent took the instruction
    /// up. Waits for room, like a result.
    pub async fn started(&mut self) {
        "started".clone_into(&mut self.progress.current);
        self.last = Some(Instant::now());
        let _ = self.tx.send(Report::Progress(self.progress.clone())).await;
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
        let _ = self.tx.try_send(Report::Progress(self.progress.clone()));
    }

    /// Sends the final event (waits for room: a result is never dropped).
    pub async fn finish(self, report: Report) {
        let _ = self.tx.send(report).await;
    }
}
