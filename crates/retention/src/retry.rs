//! Retrying a whole transaction after a deadlock or lock wait timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::RetentionError;
use crate::rules::choice::splitmix64;

/// Attempts per operation (the first included).
const ATTEMPTS: u32 = 5;

/// Runs `attempt` until it succeeds, fails with a non-transient error, or has run
/// [`ATTEMPTS`] times. A transient error (deadlock 1213, lock wait timeout 1205) means
/// InnoDB rolled the transaction back, so running the whole attempt again is safe.
/// Each attempt takes its own connection, so none is held during the back-off.
pub(crate) async fn retrying<T, F, Fut>(
    what: &'static str,
    mut attempt: F,
) -> Result<T, RetentionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RetentionError>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_transient() && n < ATTEMPTS => {
                let wait = backoff(n);
                tracing::debug!(operation = what, attempt = n, ?wait, error = %e, "retrying after a transient error");
                tokio::time::sleep(wait).await;
                n += 1;
            }
            result => return result,
        }
    }
}

/// 5 ms, 10 ms, 20 ms, … with ±50 % jitter, so that the losers of a deadlock do not
/// collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    static JITTER: AtomicU64 = AtomicU64::new(0x5eed);
    let mut state = JITTER.fetch_add(1, Ordering::Relaxed);
    let base_us = 5_000u64 << (attempt - 1).min(6);
    let jitter_us = splitmix64(&mut state) % base_us;
    Duration::from_micros(base_us / 2 + jitter_us)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use db_budget::DbError;

    use super::*;

    fn db_error(code: u16) -> RetentionError {
        RetentionError::Db(DbError::query(Some(code), None, "simulated"))
    }

    async fn run(fail_first: u32, code: u16) -> (Result<u32, RetentionError>, u32) {
        let calls = AtomicU32::new(0);
        let result = retrying("test", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= fail_first {
                Err(db_error(code))
            } else {
                Ok(n)
            }
        })
        .await;
        (result, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn deadlocks_and_lock_wait_timeouts_are_retried_until_success() {
        let (result, calls) = run(2, 1213).await;
        assert_eq!((result.unwrap(), calls), (3, 3));
        let (result, calls) = run(1, 1205).await;
        assert_eq!((result.unwrap(), calls), (2, 2));
    }

    #[tokio::test]
    async fn retries_stop_after_five_attempts() {
        let (result, calls) = run(u32::MAX, 1213).await;
        assert!(result.unwrap_err().is_transient());
        assert_eq!(calls, ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let (result, calls) = run(u32::MAX, 1062).await;
        assert!(matches!(result, Err(RetentionError::Db(e)) if e.is_duplicate_key()));
        assert_eq!(calls, 1);
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retrying("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(RetentionError::PlayerNotFound { player_id: 1 })
        })
        .await;
        assert!(result.unwrap_err().is_not_found());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_grows_and_stays_within_its_jitter_band() {
        for attempt in 1..=4 {
            let base = 5_000u64 << (attempt - 1);
            for _ in 0..100 {
                let us = backoff(attempt).as_micros() as u64;
                assert!(
                    (base / 2..base * 3 / 2).contains(&us),
                    "attempt {attempt}: {us} µs"
                );
            }
        }
    }
}
