//! Polling until a condition holds, with a deadline: the one wait helper of the test bed.

use anyhow::{Result, bail};
use std::future::Future;
use std::time::{Duration, Instant};

/// Poll interval: short enough that a warm start takes seconds, long enough not to load the
/// API server while it starts.
const POLL: Duration = Duration::from_millis(200);

/// Calls `probe` until it returns `Ok(Some(value))`, then returns the value.
///
/// `Ok(None)` means "not yet"; an error ends the wait at once (a process that died, say), so a
/// probe that expects transient errors turns them into `Ok(None)` itself. After `timeout` the
/// error names `what` was awaited.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_ready() {
        let mut calls = 0;
        let got = wait_until("three calls", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { Ok((n >= 3).then_some(n)) }
        })
        .await
        .expect("ready within the deadline");
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn names_what_it_waited_for_on_timeout() {
        let err = wait_until("the impossible", Duration::from_millis(300), || async {
            Ok(None::<()>)
        })
        .await
        .expect_err("never ready");
        assert!(err.to_string().contains("waiting for the impossible"), "{err}");
    }
}
