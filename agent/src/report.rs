//! Progress and results of the agent's operations, on their way to the hub through [`crate::link`].

use cairn_proto::model::{OperationId, Progress, Report};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Reports waiting for the link; progress beyond this is dropped (the next one supersedes it),
/// results wait for room.
pub const EVENT_QUEUE: usize = 64;

/// Least time between two progress events of one operation.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs `operation` (given a reporter for operation `name`) here, with no hub to report to:
/// progress goes to `on_progress`; returns the result it ended with (`None` if it ended without
/// one).
pub async fn run_here<F>(
    name: impl Into<OperationId>,
    operation: impl FnOnce(Reporter) -> F,
    mut on_progress: impl FnMut(&Progress),
) -> Option<Report>
where
    F: std::future::Future<Output = ()>,
{
    let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
    let running = operation(Reporter::new(name, tx));
    let result = async {
        let mut result = None;
        while let Some(report) = rx.recv().await {
            match report {
                Report::Progress(p) => on_progress(&p),
                done if done.is_result() => result = Some(done),
                _ => {}
            }
        }
        result
    };
    let ((), result) = tokio::join!(running, result);
    result
}

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
