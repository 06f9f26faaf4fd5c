//! hyper's timer for one connection's header-read timeout: one tokio sleep per connection, its
//! deadline moved for every request head.
//!
//! hyper asks its timer for a new sleep each time it starts waiting for a request head (on a
//! kept-alive connection, right after each answer) and drops it when the head has arrived. With
//! hyper-util's `TokioTimer`, each of those is a tokio sleep of its own: an allocation, an entry
//! inserted into tokio's timer wheel when hyper first polls it and removed when the head arrives,
//! each under the wheel's lock, for every request. This timer gives each connection one tokio
//! sleep and moves its deadline instead. tokio moves a registered deadline later with one atomic
//! update and no lock (the wheel keeps the entry under the old deadline, and re-files it when that
//! comes up), so a kept-alive connection touches the wheel about once per timeout period; hyper's
//! sleeps are small handles onto it.
//!
//! hyper waits for one head at a time on a connection, so it holds at most one of these sleeps
//! at once; should it ever hold two, each still completes only at its own deadline (a poll moves
//! the shared sleep to the deadline of the handle polled).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::{Duration, Instant},
};

/// The timer of one connection (see the module docs).
pub(super) struct ConnectionTimer {
    sleep: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
}

impl ConnectionTimer {
    /// A timer for a new connection. Must be called inside a tokio runtime with its time driver.
    pub(super) fn new() -> Self {
        // Registered with the wheel only when first polled, at the first head's deadline.
        let unset = tokio::time::Instant::now() + Duration::from_secs(3600);
        Self {
            sleep: Arc::new(Mutex::new(Box::pin(tokio::time::sleep_until(unset)))),
        }
    }
}

impl hyper::rt::Timer for ConnectionTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline {
            sleep: Arc::clone(&self.sleep),
            deadline: deadline.into(),
        })
    }
}

/// One of hyper's sleeps: the connection's sleep, at this deadline.
struct Deadline {
    sleep: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
    deadline: tokio::time::Instant,
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Only this connection's task takes the lock: it is never contended.
        let mut sleep = self.sleep.lock().unwrap_or_else(PoisonError::into_inner);
        if sleep.deadline() != self.deadline {
            sleep.as_mut().reset(self.deadline);
        }
        sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for Deadline {}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;
    use hyper::rt::Timer as _;

    use super::*;

    /// `d` from now on tokio's clock (paused in these tests), as hyper's deadlines are made.
    fn after(d: Duration) -> Instant {
        (tokio::time::Instant::now() + d).into_std()
    }

    #[tokio::test(start_paused = true)]
    async fn each_sleep_ends_at_its_own_deadline() {
        let timer = ConnectionTimer::new();
        let mut first = timer.sleep_until(after(Duration::from_secs(10)));
        assert!((&mut first).now_or_never().is_none());
        // The next head: hyper drops the sleep it polled, and asks for a later one.
        tokio::time::advance(Duration::from_secs(4)).await;
        drop(first);
        let waited = tokio::time::Instant::now();
        timer.sleep_until(after(Duration::from_secs(10))).await;
        assert_eq!(waited.elapsed(), Duration::from_secs(10));
        // An earlier deadline than the one the connection's sleep was at is kept too.
        let mut long = timer.sleep_until(after(Duration::from_secs(60)));
        assert!((&mut long).now_or_never().is_none());
        drop(long);
        let waited = tokio::time::Instant::now();
        timer.sleep_until(after(Duration::from_secs(1))).await;
        assert_eq!(waited.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_held_beside_another_still_waits_for_its_own_deadline() {
        let timer = ConnectionTimer::new();
        let waited = tokio::time::Instant::now();
        let mut late = timer.sleep_until(after(Duration::from_secs(20)));
        let early = timer.sleep_until(after(Duration::from_secs(5)));
        assert!((&mut late).now_or_never().is_none());
        early.await;
        assert_eq!(waited.elapsed(), Duration::from_secs(5));
        assert!((&mut late).now_or_never().is_none(), "not at 5 s");
        late.await;
        assert_eq!(waited.elapsed(), Duration::from_secs(20));
    }
}
