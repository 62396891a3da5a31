//! The client's backstop for a statement the server does not answer, without a timer
//! registration per statement.
//!
//! `tokio::time::timeout` around each statement registers a timer entry in the
//! runtime's timer wheel and removes it again, under the wheel's lock: with 16 tasks on
//! two workers that cost about 5 % of a point select's throughput (BENCHMARKS.md
//! section 9). The backstop is seconds past the statement's limit, so it needs no
//! precision, and a connection's statements come one after another: each connection
//! keeps one [`Sleep`] and re-arms it only when it fires. Between firings a statement
//! only hands the timer its task's waker (an atomic store, no lock).
//!
//! The timer armed for an earlier statement fires no later than the current one's
//! deadline (statements start later, with the same limit) and is then moved to the
//! current deadline: the backstop still fires exactly at the current statement's
//! deadline. A shorter per-statement limit moves it earlier at once.
//!
//! A timer belongs to the runtime that armed it, and a pool's connections are used from
//! any runtime (and may outlive the one they were opened on): a statement on another
//! runtime than the timer's arms a new one on its own.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;

use tokio::runtime::{Handle, Id};
use tokio::time::{Instant, Sleep};

/// One connection's backstop timer, kept across its statements.
#[derive(Debug, Default)]
pub(crate) struct Backstop {
    timer: Option<(Id, Pin<Box<Sleep>>)>,
}

impl Backstop {
    /// Runs `fut` until it finishes (`Some`) or `deadline` passes first (`None`; `fut`
    /// is then dropped, mid-exchange).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with timers enabled (as `tokio::time::timeout` does).
    pub(crate) async fn run<F: Future>(
        &mut self,
        deadline: std::time::Instant,
        fut: F,
    ) -> Option<F::Output> {
        let deadline = Instant::from_std(deadline);
        let sleep = self.armed(deadline);
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            loop {
                match sleep.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    // Armed for an earlier statement: move it to this one's deadline.
                    Poll::Ready(()) if Instant::now() < deadline => {
                        sleep.as_mut().reset(deadline);
                    }
                    Poll::Ready(()) => return Poll::Ready(None),
                }
            }
        })
        .await
    }

    /// The timer, on this runtime, firing no later than `deadline`.
    fn armed(&mut self, deadline: Instant) -> &mut Pin<Box<Sleep>> {
        let here = Handle::current().id();
        match &mut self.timer {
            Some((id, sleep)) if *id == here => {
                if sleep.deadline() > deadline {
                    sleep.as_mut().reset(deadline);
                }
            }
            timer => *timer = Some((here, Box::pin(tokio::time::sleep_until(deadline)))),
        }
        &mut self.timer.as_mut().expect("armed just now").1
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Backstop;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn a_statement_that_does_not_finish_is_cut_off_at_its_own_deadline_not_an_earlier_ones() {
        rt().block_on(async {
            let mut b = Backstop::default();
            let start = tokio::time::Instant::now();
            // A first statement arms the timer for start + 10 s and finishes at once.
            assert_eq!(
                b.run(start.into_std() + Duration::from_secs(10), async { 1 })
                    .await,
                Some(1)
            );
            // Five seconds later a statement that never finishes, deadline + 10 s.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let second = tokio::time::Instant::now();
            let r = b
                .run(
                    second.into_std() + Duration::from_secs(10),
                    std::future::pending::<()>(),
                )
                .await;
            assert_eq!(r, None);
            assert_eq!(
                tokio::time::Instant::now() - second,
                Duration::from_secs(10),
                "cut off at its own deadline, after the timer was moved once"
            );
        });
    }

    #[test]
    fn a_shorter_deadline_moves_the_timer_earlier() {
        rt().block_on(async {
            let mut b = Backstop::default();
            let now = tokio::time::Instant::now().into_std();
            assert_eq!(
                b.run(now + Duration::from_secs(60), async {}).await,
                Some(())
            );
            let started = tokio::time::Instant::now();
            let r = b
                .run(now + Duration::from_secs(1), std::future::pending::<()>())
                .await;
            assert_eq!(r, None);
            assert_eq!(
                tokio::time::Instant::now() - started,
                Duration::from_secs(1)
            );
        });
    }

    #[test]
    fn a_statement_on_another_runtime_than_the_timer_s_gets_a_timer_of_its_own() {
        let mut b = Backstop::default();
        {
            let first = rt();
            first.block_on(async {
                let now = tokio::time::Instant::now().into_std();
                b.run(now + Duration::from_secs(10), async {}).await;
            });
        } // the timer's runtime is gone
        let r = rt().block_on(async {
            let now = tokio::time::Instant::now().into_std();
            b.run(now + Duration::from_secs(2), std::future::pending::<()>())
                .await
        });
        assert_eq!(r, None, "the backstop still fires on the second runtime");
    }
}
