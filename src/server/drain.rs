//! The graceful shutdown of [`serve`](super::serve)'s connections: when the server stops, each
//! open connection finishes the request in flight (hyper's `graceful_shutdown`), and the server
//! waits until all are closed.
//!
//! hyper-util's `GracefulShutdown` does the same through a `watch` channel whose receivers, one a
//! connection, poll the channel's `Notify` each time their connection is polled, and a `Notify`
//! that a task waits on takes its mutex on every poll: every poll of every connection, a few a
//! request, took the one mutex that all connections on all cores share. Here a connection
//! registers with the `Notify` once (again only if its task's waker changes) and otherwise reads
//! an atomic flag; the shutdown sets the flag, then wakes every connection once.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll, Waker},
};

use pin_project_lite::pin_project;
use tokio::sync::{futures::OwnedNotified, Notify};

/// A connection that can be asked to finish: hyper's, and test doubles.
pub(super) trait GracefulConnection: Future {
    /// Finish the request in flight, take no other, then close.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, B, S> GracefulConnection for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<crate::BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        Self::graceful_shutdown(self);
    }
}

/// The connections of one server, and whether it is shutting down.
pub(super) struct Drain {
    shared: Arc<Shared>,
    /// Wakes every watched connection once when the shutdown starts.
    wake: Arc<Notify>,
}

struct Shared {
    draining: AtomicBool,
    open: AtomicUsize,
    /// Notified when the last watched connection closes.
    closed: Notify,
}

impl Drain {
    pub(super) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                draining: AtomicBool::new(false),
                open: AtomicUsize::new(0),
                closed: Notify::new(),
            }),
            wake: Arc::new(Notify::new()),
        }
    }

    /// `connection`, asked to finish when the shutdown starts, and counted until it is dropped.
    pub(super) fn watch<C: GracefulConnection>(&self, connection: C) -> Watched<C> {
        self.shared.open.fetch_add(1, Ordering::AcqRel);
        Watched {
            connection,
            // Created now: it completes for a shutdown that starts from here on, polled or not.
            woken: Arc::clone(&self.wake).notified_owned(),
            registered: None,
            finishing: false,
            open: Open(Arc::clone(&self.shared)),
        }
    }

    /// Asks every watched connection to finish, and waits until all have closed.
    pub(super) async fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::Release);
        self.wake.notify_waiters();
        loop {
            let closed = self.shared.closed.notified();
            let mut closed = std::pin::pin!(closed);
            // Enabled before the count is read: a close in between still wakes this.
            closed.as_mut().enable();
            if self.shared.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

pin_project! {
    /// A connection under [`Drain::watch`].
    pub(super) struct Watched<C> {
        #[pin]
        connection: C,
        #[pin]
        woken: OwnedNotified,
        // The waker `woken` was last polled with.
        registered: Option<Waker>,
        finishing: bool,
        open: Open,
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.finishing {
            if !this
                .registered
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
            {
                // Only on the first poll, or when the task's waker changed: this locks the
                // `Notify`. A notification that came first is not lost: the flag below says so.
                let _ = this.woken.as_mut().poll(cx);
                *this.registered = Some(cx.waker().clone());
            }
            if this.open.0.draining.load(Ordering::Acquire) {
                *this.finishing = true;
                this.connection.as_mut().graceful_shutdown();
            }
        }
        this.connection.poll(cx)
    }
}

/// One open connection, counted while it lives.
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, time::Duration};

    use super::*;

    /// What a test sees of a connection double: asked to finish, polls, and its task's waker.
    #[derive(Default)]
    struct Seen {
        asked: AtomicBool,
        released: AtomicBool,
        polls: AtomicUsize,
        waker: Mutex<Option<Waker>>,
    }

    impl Seen {
        /// Lets the connection end (once asked to), and wakes it as its I/O would.
        fn release(&self) {
            self.released.store(true, Ordering::Relaxed);
            if let Some(waker) = self.waker.lock().unwrap().take() {
                waker.wake();
            }
        }

        fn asked(&self) -> bool {
            self.asked.load(Ordering::Relaxed)
        }
    }

    /// A connection that ends once asked to finish and released.
    struct Fake(Arc<Seen>);

    impl Future for Fake {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.polls.fetch_add(1, Ordering::Relaxed);
            if self.0.asked() && self.0.released.load(Ordering::Relaxed) {
                return Poll::Ready(());
            }
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl GracefulConnection for Fake {
        fn graceful_shutdown(self: Pin<&mut Self>) {
            self.0.asked.store(true, Ordering::Relaxed);
        }
    }

    fn fake() -> (Fake, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        (Fake(Arc::clone(&seen)), seen)
    }

    #[tokio::test]
    async fn a_shutdown_asks_every_connection_to_finish_and_waits_for_them() {
        let drain = Drain::new();
        let (first, first_seen) = fake();
        let (second, second_seen) = fake();
        tokio::spawn(drain.watch(first));
        tokio::spawn(drain.watch(second));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!first_seen.asked() && !second_seen.asked());
        let polls_before = second_seen.polls.load(Ordering::Relaxed);

        let shutdown = drain.shutdown();
        let mut shutdown = std::pin::pin!(shutdown);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), shutdown.as_mut())
                .await
                .is_err(),
            "both connections are still open"
        );
        // Woken by the shutdown alone (no I/O of their own) and asked to finish.
        assert!(first_seen.asked() && second_seen.asked());
        assert!(second_seen.polls.load(Ordering::Relaxed) > polls_before);

        first_seen.release();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), shutdown.as_mut())
                .await
                .is_err(),
            "the second connection is still open"
        );
        second_seen.release();
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("the shutdown ends once every connection has closed");
    }

    #[tokio::test]
    async fn a_connection_watched_after_the_shutdown_started_is_asked_at_its_first_poll() {
        let drain = Drain::new();
        drain.shutdown().await;
        let (late, seen) = fake();
        seen.released.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(5), drain.watch(late))
            .await
            .expect("asked to finish at once, so it ended");
        assert!(seen.asked());
        drain.shutdown().await;
    }
}
