//! hyper's view of one connection's tower service: every request of the connection is a `call` on
//! the connection's own service.
//!
//! hyper calls a service through `&self`, tower through `&mut self` after `poll_ready`.
//! hyper-util's `TowerToHyperService` bridges the two with a clone of the service for every
//! request, and a service built of `Arc`s that every connection shares (the layer's
//! configuration, an axum `Router`) then pays, per request, reference-count updates on cache lines
//! that all cores write. An HTTP/1 connection hands hyper one request at a time, so the
//! connection's own service can serve them all: it is asked whether it is ready, and called at
//! once when it is, as tower's contract wants. A service that is not ready at the moment of the
//! request (a concurrency limit, say) is served the way `TowerToHyperService` does it: a clone is
//! polled for readiness with the connection task's waker, then called.

use std::{
    cell::RefCell,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll, Wake, Waker},
};

use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::BoxError;

/// A connection's tower service `S`, as the hyper service of that connection.
pub(super) struct ConnectionService<S> {
    /// Borrowed for the duration of one `call` only, never across an await: hyper calls
    /// `call` from the connection's task, one request after another.
    service: RefCell<S>,
}

impl<S> ConnectionService<S> {
    pub(super) const fn new(service: S) -> Self {
        Self {
            service: RefCell::new(service),
        }
    }
}

impl<S, R> hyper::service::Service<R> for ConnectionService<S>
where
    S: Service<R> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ConnectionFuture<S, R>;

    fn call(&self, request: R) -> Self::Future {
        let mut service = self.service.borrow_mut();
        // Asking costs nothing when the answer is "ready", which it is for every service that
        // has no limit of its own (a `Router`, the PAR layer around one); a pending answer is
        // dropped with the no-op waker, and the clone below asks again with the real one.
        let state = match service.poll_ready(&mut Context::from_waker(noop_waker())) {
            Poll::Ready(Ok(())) => State::Called {
                future: service.call(request),
            },
            Poll::Ready(Err(error)) => State::Failed {
                error: Some(error.into()),
            },
            Poll::Pending => State::Waiting {
                future: hyper::service::Service::call(
                    &TowerToHyperService::new(service.clone()),
                    request,
                ),
            },
        };
        ConnectionFuture { state }
    }
}

pin_project! {
    /// The response future of [`ConnectionService`].
    pub(super) struct ConnectionFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, R>
    where
        S: Service<R>,
    {
        Called { #[pin] future: S::Future },
        Waiting { #[pin] future: TowerToHyperServiceFuture<S, R> },
        Failed { error: Option<BoxError> },
    }
}

impl<S, R> std::future::Future for ConnectionFuture<S, R>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Waiting { future } => future.poll(cx).map_err(Into::into),
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .expect("ConnectionFuture polled after completion"))),
        }
    }
}

/// A waker that does nothing (`Waker::noop` needs Rust 1.85).
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static NOOP: OnceLock<Waker> = OnceLock::new();
    NOOP.get_or_init(|| Waker::from(Arc::new(Noop)))
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        future::{ready, Ready},
        sync::atomic::{AtomicUsize, Ordering},
    };

    use hyper::service::Service as _;

    use super::*;

    /// Counts its clones and the calls made on each copy; ready after `pending` polls.
    struct Counted {
        clones: Arc<AtomicUsize>,
        calls: usize,
        pending: Arc<AtomicUsize>,
    }

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.clones.fetch_add(1, Ordering::Relaxed);
            Self {
                clones: Arc::clone(&self.clones),
                calls: self.calls,
                pending: Arc::clone(&self.pending),
            }
        }
    }

    impl Service<u32> for Counted {
        type Response = (u32, usize);
        type Error = Infallible;
        type Future = Ready<Result<(u32, usize), Infallible>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            if self.pending.load(Ordering::Relaxed) == 0 {
                return Poll::Ready(Ok(()));
            }
            self.pending.fetch_sub(1, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            Poll::Pending
        }

        fn call(&mut self, request: u32) -> Self::Future {
            self.calls += 1;
            ready(Ok((request, self.calls)))
        }
    }

    fn counted(pending: usize) -> (ConnectionService<Counted>, Arc<AtomicUsize>) {
        let clones = Arc::new(AtomicUsize::new(0));
        let service = Counted {
            clones: Arc::clone(&clones),
            calls: 0,
            pending: Arc::new(AtomicUsize::new(pending)),
        };
        (ConnectionService::new(service), clones)
    }

    #[tokio::test]
    async fn a_ready_service_serves_every_request_itself() {
        let (connection, clones) = counted(0);
        for n in 1..=3 {
            // The connection's own service: its n-th call.
            assert_eq!(connection.call(n).await.unwrap(), (n, n as usize));
        }
        assert_eq!(clones.load(Ordering::Relaxed), 0, "no clone was made");
    }

    #[tokio::test]
    async fn a_service_that_is_not_ready_is_waited_for_on_a_clone() {
        // tower's rule: never call a service that did not say it is ready. The first request
        // waits on a clone, polled with the task's waker until it is ready.
        let (connection, clones) = counted(2);
        assert_eq!(connection.call(7).await.unwrap(), (7, 1), "a clone's call");
        assert!(clones.load(Ordering::Relaxed) >= 1);
        // Ready now: the connection's own service serves the next request, its first call.
        let before = clones.load(Ordering::Relaxed);
        assert_eq!(connection.call(8).await.unwrap(), (8, 1));
        assert_eq!(
            clones.load(Ordering::Relaxed),
            before,
            "no clone for a ready service"
        );
    }
}
