//! The hub's clock: the system's, or the system's shifted forward (configured as `clock_offset`:
//! a drill or a test makes a restarted hub find itself hours later, so schedules, their catch-up
//! after a restart and retention are proven without waiting for real time).

use cairn_proto::model::Timestamp;
use std::time::Duration;

/// What time it is, and waiting for a time.
#[derive(Clone, Copy, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// The system clock, this far ahead.
    Ahead(Duration),
}

impl Clock {
    /// Now.
    pub fn now(&self) -> Timestamp {
        match self {
            Self::System => Timestamp::now(),
            Self::Ahead(by) => (std::time::SystemTime::now() + *by).into(),
        }
    }

    /// Returns once it is `at` or later.
    pub async fn sleep_until(&self, at: Timestamp) {
        tokio::time::sleep(self.now().until(at)).await;
    }
}
