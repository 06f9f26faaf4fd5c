//! The timer behind the layer's time limits: the body timeout and the time bound of the drain.
//!
//! The layer runs on whatever executor its host uses, so it does not start timers of its own
//! choosing: the host lends one. With the `tokio` feature the default is [`TokioTimer`];
//! without it, [`ParLayerBuilder::build`](crate::ParLayerBuilder::build) refuses to build until
//! [`ParLayerBuilder::timer`](crate::ParLayerBuilder::timer) names one, so a missing timer is a
//! start-up error and never a silently missing timeout.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

/// The future a [`Timer`] returns: it completes once the duration has passed.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Sleeps on the host's executor, like hyper's `rt::Timer`.
///
/// The layer asks for a sleep only when a body makes it wait (a body that arrives with its
/// request head never starts one).
///
/// ```
/// use std::time::Duration;
/// use tower_par::{ParLayer, SleepFuture, StaticClients, Timer};
///
/// /// A timer for a host on tokio (what the `tokio` feature's `TokioTimer` does).
/// struct MyTimer;
///
/// impl Timer for MyTimer {
///     fn sleep(&self, duration: Duration) -> SleepFuture {
///         Box::pin(tokio::time::sleep(duration))
///     }
/// }
///
/// let layer = ParLayer::builder()
///     .issuer("https://as.example.com")
///     .clients(StaticClients::default())
///     .timer(MyTimer)
///     .build()
///     .unwrap();
/// ```
pub trait Timer: Send + Sync + 'static {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

impl<T: Timer + ?Sized> Timer for Arc<T> {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        (**self).sleep(duration)
    }
}

/// [`Timer`] on tokio's time driver (feature `tokio`): the default timer when that feature is on.
///
/// The runtime must have its time driver enabled (`#[tokio::main]`, `Runtime::new` and
/// `Builder::enable_all` do; a runtime built without `enable_time` makes tokio panic).
///
/// ```
/// use tower_par::{ParLayer, StaticClients, TokioTimer};
///
/// let layer = ParLayer::builder()
///     .issuer("https://as.example.com")
///     .clients(StaticClients::default())
///     .timer(TokioTimer)
///     .build()
///     .unwrap();
/// ```
#[cfg(feature = "tokio")]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimer;

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The timer `build()` uses when none was set: tokio's with the `tokio` feature, else none.
pub(crate) fn default_timer() -> Option<Arc<dyn Timer>> {
    #[cfg(feature = "tokio")]
    {
        Some(Arc::new(TokioTimer))
    }
    #[cfg(not(feature = "tokio"))]
    {
        None
    }
}
