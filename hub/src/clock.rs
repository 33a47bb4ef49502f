//! The hub's clock: the system's, the system's shifted forward (configured as `clock_offset`: a
//! drill or a test can make a restarted hub find itself hours later), or a manual one that tests
//! move, so schedules, their catch-up after a restart and retention can be proven without waiting
//! for real time.

use cairn_proto::model::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What time it is, and waiting for a time.
#[derive(Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// The system clock, this far ahead.
    Ahead(Duration),
    /// A clock that moves only when told to.
    Manual(Arc<watch::Sender<Timestamp>>),
}

impl Clock {
    /// A manual clock showing `start`.
    pub fn manual(start: Timestamp) -> Self {
        Self::Manual(Arc::new(watch::channel(start).0))
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        match self {
            Self::System => Timestamp::now(),
            Self::Ahead(by) => (std::time::SystemTime::now() + *by).into(),
            Self::Manual(time) => *time.borrow(),
        }
    }

    /// Moves a manual clock forward by `by` (a system clock moves by itself).
    pub fn advance(&self, by: Duration) {
        if let Self::Manual(time) = self {
            time.send_modify(|t| *t = (std::time::SystemTime::from(*t) + by).into());
        }
    }

    /// Returns once it is `at` or later.
    pub async fn sleep_until(&self, at: Timestamp) {
        match self {
            Self::System | Self::Ahead(_) => tokio::time::sleep(self.now().until(at)).await,
            Self::Manual(time) => {
                let mut rx = time.subscribe();
                // The sender lives as long as the clock: the wait ends only at `at`.
                let _ = rx.wait_for(|now| *now >= at).await;
            }
        }
    }
}
