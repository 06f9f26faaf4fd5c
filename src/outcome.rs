//! What the layer reports about each answer it decides, one call per endpoint: the outcome on the
//! request's span, exactly one log event, and the metrics (feature `metrics`). The endpoints call
//! these where their outcome is decided; nothing else in the crate logs a refusal.

use std::sync::Arc;

use crate::{
    client::Client,
    error::OAuthError,
    layer::Config,
    store::StoreError,
    trace::{self},
};

/// A refusal, with the client when it was known (registered, or authenticated at the PAR
/// endpoint): for the log, the metrics' optional `client_id` label, and CORS.
pub(crate) type Rejection = (OAuthError, Option<Arc<Client>>);

/// One event for a refusal `$err` at `$target`: `INFO` for the client's mistakes, `WARN` for a
/// limit the server reached, `ERROR` for a failure of the server, with its cause.
macro_rules! refusal_event {
    ($target:literal, $message:literal, $err:expr) => {{
        let err: &OAuthError = $err;
        match err.incident() {
            None => tracing::info!(
                target: $target,
                error = err.code(),
                reason = err.description(),
                $message
            ),
            Some(incident) if incident.failure => tracing::error!(
                target: $target,
                error = err.code(),
                reason = err.description(),
                cause = %incident.cause,
                $message
            ),
            Some(incident) => tracing::warn!(
                target: $target,
                error = err.code(),
                reason = err.description(),
                cause = %incident.cause,
                $message
            ),
        }
    }};
}

/// The answer of the PAR endpoint to one push (not to a CORS preflight, which pushes nothing):
/// `created`, or the `error` code of the refusal.
pub(crate) fn push<T>(
    config: &Config,
    answer: &Result<(T, Arc<Client>), Rejection>,
    clock: &PushClock,
) {
    let (outcome, client) = match answer {
        Ok((_, client)) => ("created", Some(client)),
        Err((err, client)) => (err.code(), client.as_ref()),
    };
    trace::record_outcome(outcome);
    match answer {
        Ok(_) => tracing::info!(target: "tower_par::push", "pushed authorization request accepted"),
        Err((err, _)) => refusal_event!(
            "tower_par::push",
            "pushed authorization request rejected",
            err
        ),
    }
    #[cfg(feature = "metrics")]
    crate::metrics::push(
        config,
        outcome,
        client.map(|c| c.client_id()),
        clock.elapsed(),
    );
    #[cfg(not(feature = "metrics"))]
    let _ = (config, client, clock);
}

/// The outcome of a redemption: a request to the authorization endpoint from which the layer
/// read one `request_uri`. `swapped` (the inner service gets the pushed request), or the
/// `error` code of the refusal.
pub(crate) fn redemption(config: &Config, swapped: Result<&Client, &Rejection>) {
    let (outcome, client) = match swapped {
        Ok(client) => ("swapped", Some(client)),
        Err((err, client)) => (err.code(), client.as_deref()),
    };
    trace::record_outcome(outcome);
    match swapped {
        Ok(_) => tracing::info!(
            target: "tower_par::authorize",
            "pushed authorization request redeemed"
        ),
        Err((err, _)) => refusal_event!("tower_par::authorize", "request_uri refused", err),
    }
    #[cfg(feature = "metrics")]
    crate::metrics::redemption(config, outcome, client.map(Client::client_id));
    #[cfg(not(feature = "metrics"))]
    let _ = (config, client);
}

/// Any other refusal at the authorization endpoint (a request without `request_uri` under
/// `require_par`, a method or a body the endpoint does not take): not a redemption, logged only.
pub(crate) fn authorize_refused(err: &OAuthError) {
    trace::record_outcome(err.code());
    refusal_event!("tower_par::authorize", "authorization request refused", err);
}

/// A stored request that [`ParLayer::pushed_request`](crate::ParLayer::pushed_request) could not
/// read: the store's failure (`crate::seal`), one `error` event. Not a redemption, not counted.
pub(crate) fn unreadable(client_id: &str, cause: &crate::seal::IntegrityError) {
    tracing::error!(
        target: "tower_par::authorize",
        client_id,
        cause = %cause,
        "pushed request not read"
    );
}

/// The store's decision on a completion ([`Consumption::AtCompletion`](crate::Consumption)):
/// `completed`, `lost_race` (another flow completed first, or the window is over), or
/// `temporarily_unavailable` (the store failed). `client_id` is labelled (when the host asked
/// for the label) only if it is known to be a registered client's.
pub(crate) fn completion(
    config: &Config,
    client_id: Option<&str>,
    decided: &Result<bool, StoreError>,
) {
    let outcome = match decided {
        Ok(true) => {
            tracing::info!(
                target: "tower_par::authorize",
                "pushed authorization request completed"
            );
            "completed"
        }
        Ok(false) => {
            tracing::info!(
                target: "tower_par::authorize",
                "pushed authorization request not completed: another flow completed it first, or its window is over"
            );
            "lost_race"
        }
        Err(err) => {
            tracing::error!(
                target: "tower_par::authorize",
                cause = %err,
                "pushed authorization request not completed: the store failed"
            );
            "temporarily_unavailable"
        }
    };
    #[cfg(feature = "metrics")]
    crate::metrics::completion(config, outcome, client_id);
    #[cfg(not(feature = "metrics"))]
    let _ = (config, client_id, outcome);
}

/// When a push started, for `tower_par_push_duration_seconds`: at its first body byte, or, for a
/// push refused before any of its body arrived, when the layer got its head. Without the
/// `metrics` feature it is nothing and reads no clock.
pub(crate) struct PushClock {
    #[cfg(feature = "metrics")]
    head: std::time::Instant,
    /// Nanoseconds from `head` to the first body byte, plus one; 0 until it arrived. An atomic
    /// rather than a `OnceLock`: setting a `OnceLock` takes its slow path every time.
    #[cfg(feature = "metrics")]
    first_byte: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "metrics")]
impl PushClock {
    pub(crate) fn start() -> Self {
        Self {
            head: std::time::Instant::now(),
            first_byte: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `body`, noting on this clock when its first data arrives.
    pub(crate) fn watch<B>(&self, body: B) -> crate::metrics::FirstByte<'_, B> {
        crate::metrics::FirstByte::new(body, self)
    }

    /// Called by [`FirstByte`](crate::metrics::FirstByte) for each data frame.
    pub(crate) fn data_arrived(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.first_byte.load(Relaxed) == 0 {
            let since_head = u64::try_from(self.head.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            self.first_byte.store(since_head + 1, Relaxed);
        }
    }

    fn elapsed(&self) -> std::time::Duration {
        let to_first_byte = match self.first_byte.load(std::sync::atomic::Ordering::Relaxed) {
            0 => std::time::Duration::ZERO,
            nanos => std::time::Duration::from_nanos(nanos - 1),
        };
        self.head.elapsed().saturating_sub(to_first_byte)
    }
}

#[cfg(not(feature = "metrics"))]
impl PushClock {
    pub(crate) const fn start() -> Self {
        Self {}
    }

    #[allow(clippy::unused_self)]
    pub(crate) fn watch<B>(&self, body: B) -> B {
        body
    }
}
