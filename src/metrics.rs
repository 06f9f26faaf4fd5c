//! Metrics (feature `metrics`), through the [`metrics`](https://docs.rs/metrics) facade: any
//! recorder the host installs receives them (Prometheus, OpenTelemetry, StatsD).
//!
//! The names and labels are a contract that dashboards rely on:
//!
//! | name | type | labels | counts |
//! |---|---|---|---|
//! | `tower_par_pushes_total` | counter | `outcome` | every request to the PAR endpoint but a CORS preflight (`405`, `408` and `413` too): `created`, or the `error` code of the refusal (`invalid_request`, `invalid_client`, `unauthorized_client`, `unsupported_response_type`, `invalid_request_object`, `invalid_dpop_proof`, `temporarily_unavailable` for `503` and `429`, …) |
//! | `tower_par_redemptions_total` | counter | `outcome` | every request to the authorization endpoint from which the layer read one `request_uri`: `swapped` (the inner service got the pushed request), `invalid_request_uri` (unknown, used, expired, another client's, or unreadable), `temporarily_unavailable` (the store or the registry failed), or `invalid_request` (refused before the lookup: no `client_id`, an unknown `client_id`, `request` beside `request_uri`; or, after it, a pushed `redirect_uri` that is no longer registered) |
//! | `tower_par_completions_total` | counter | `outcome` | consumption at completion ([`Consumption::AtCompletion`](crate::Consumption)), whoever completes (the layer on the authorization response, [`Completion::complete`](crate::Completion::complete), [`ParLayer::complete`]): `completed`, `lost_race` (another flow completed first, or the window is over: no code may be issued), `temporarily_unavailable` (the store failed) |
//! | `tower_par_push_duration_seconds` | histogram | — | every push counted above, from its first body byte to the answer (from the request head for a push refused before any body byte arrived: `405`, a `413` on its declared length) |
//! | `tower_par_stored_requests` | gauge | — | the pushed requests the store holds, set by [`ParLayer::update_gauges`]; see [`ParStore::stored_requests`](crate::ParStore::stored_requests) for how exact each store is |
//!
//! No label carries a secret, a handle or a pushed value. A request to the authorization
//! endpoint without a `request_uri` is not a redemption and is not counted (nor is a request
//! the layer refused before it read one: a `405`, a POST whose form it could not read).
//!
//! **Label `client_id`**, on the three counters, only when the host asks for it with
//! [`ParLayerBuilder::metrics_client_id_label`](crate::ParLayerBuilder::metrics_client_id_label):
//! one time series per client and outcome, so only for registries of a bounded size. The label
//! names registered clients only (an authenticated client at the PAR endpoint, a registered one
//! at the authorization endpoint); a refusal before that is labelled `client_id=""`, so that
//! whatever strangers send cannot grow the number of series. With the label, each event builds
//! its key at run time (one allocation); without it, every key is static.
//!
//! **The gauge** needs the store, so it is set when the host calls
//! [`ParLayer::update_gauges`]: before each scrape (the reference server does, on its `/metrics`
//! listener), or on an interval.
//!
//! **Cost.** The keys are `static`s (name and label values `&'static str`, hashed at compile
//! time): an event is one look-up in the recorder, no allocation of the layer's. Without a
//! recorder installed an event is a check of a thread-local and an atomic load, and a push reads
//! the clock twice for its duration (`BENCHMARKS.md`: 1.4% more instructions a push without a
//! recorder, 3.9% with the Prometheus recorder).
//!
//! A Prometheus setup that renders the duration as a histogram (rather than a summary), with
//! [`PUSH_DURATION_BUCKETS`]:
//!
//! ```
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! use tower_par::metrics::{PUSH_DURATION_BUCKETS, PUSH_DURATION_SECONDS};
//!
//! let recorder = PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Full(PUSH_DURATION_SECONDS.into()), &PUSH_DURATION_BUCKETS)
//!     .unwrap()
//!     .build_recorder();
//! let handle = recorder.handle();
//! // metrics::set_global_recorder(recorder).unwrap();
//! // tower_par::metrics::describe();
//! assert!(handle.render().is_empty());
//! ```

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use metrics::{Key, Label, Level, Metadata};
use pin_project_lite::pin_project;

use crate::{layer::Config, outcome::PushClock, store::StoreError, ParLayer};

/// Counter: requests to the PAR endpoint, by `outcome`.
pub const PUSHES_TOTAL: &str = "tower_par_pushes_total";
/// Counter: redemptions at the authorization endpoint, by `outcome`.
pub const REDEMPTIONS_TOTAL: &str = "tower_par_redemptions_total";
/// Counter: completions in consumption at completion, by `outcome`.
pub const COMPLETIONS_TOTAL: &str = "tower_par_completions_total";
/// Histogram: seconds from a push's first body byte to its answer.
pub const PUSH_DURATION_SECONDS: &str = "tower_par_push_duration_seconds";
/// Gauge: the pushed requests the store holds.
pub const STORED_REQUESTS: &str = "tower_par_stored_requests";

/// Bucket bounds (seconds) for [`PUSH_DURATION_SECONDS`] in a Prometheus histogram: 100 µs to
/// 10 s (a push in memory takes tens of microseconds of CPU; the body timeout is 10 s).
pub const PUSH_DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Describes the metrics (help text and units) to the installed recorder: call it once, after
/// installing the recorder.
///
/// ```
/// use metrics_exporter_prometheus::PrometheusBuilder;
///
/// let recorder = PrometheusBuilder::new().build_recorder();
/// metrics::with_local_recorder(&recorder, tower_par::metrics::describe);
/// ```
pub fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(
        PUSHES_TOTAL,
        "Requests to the PAR endpoint, by outcome: created, or the OAuth error code"
    );
    metrics::describe_counter!(
        REDEMPTIONS_TOTAL,
        "request_uri redemptions at the authorization endpoint, by outcome: swapped, or the OAuth error code"
    );
    metrics::describe_counter!(
        COMPLETIONS_TOTAL,
        "Completions of pushed requests consumed at completion: completed, lost_race, temporarily_unavailable"
    );
    metrics::describe_histogram!(
        PUSH_DURATION_SECONDS,
        Unit::Seconds,
        "Seconds from the first body byte of a push to its answer"
    );
    metrics::describe_gauge!(
        STORED_REQUESTS,
        "Pushed authorization requests the store holds"
    );
}

impl ParLayer {
    /// Sets the gauge `tower_par_stored_requests` from the store (feature `metrics`): call it
    /// before each scrape, or on an interval. A store that does not count
    /// ([`ParStore::stored_requests`](crate::ParStore::stored_requests) is `None`) leaves the
    /// gauge unset.
    ///
    /// ```
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let par = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .clients(StaticClients::default())
    ///     .build()
    ///     .unwrap();
    /// par.update_gauges().await.unwrap();
    /// # }
    /// ```
    ///
    /// # Errors
    /// The store could not be reached.
    pub async fn update_gauges(&self) -> Result<(), StoreError> {
        let config = self.config();
        if let Some(stored) = config.store.stored_requests(config.clock.now()).await? {
            static KEY: Key = Key::from_static_name(STORED_REQUESTS);
            #[allow(clippy::cast_precision_loss)] // exact below 2^53 requests
            metrics::with_recorder(|r| r.register_gauge(&KEY, &METADATA).set(stored as f64));
        }
        Ok(())
    }
}

static METADATA: Metadata<'static> = Metadata::new("tower_par", Level::INFO, Some(module_path!()));

/// The static key of counter `$name` for the outcomes listed, `None` for any other.
macro_rules! outcome_key {
    ($name:expr, $outcome:expr; $($known:literal)|+) => {
        match $outcome {
            $($known => {
                static LABELS: [Label; 1] = [Label::from_static_parts("outcome", $known)];
                static KEY: Key = Key::from_static_parts($name, &LABELS);
                Some(&KEY)
            })+
            _ => None,
        }
    };
}

fn push_key(outcome: &str) -> Option<&'static Key> {
    outcome_key!(PUSHES_TOTAL, outcome;
        "created" | "invalid_request" | "invalid_client" | "unauthorized_client"
        | "unsupported_response_type" | "invalid_request_object" | "invalid_dpop_proof"
        | "temporarily_unavailable" | "request_not_supported" | "request_uri_not_supported")
}

fn redemption_key(outcome: &str) -> Option<&'static Key> {
    outcome_key!(REDEMPTIONS_TOTAL, outcome;
        "swapped" | "invalid_request_uri" | "temporarily_unavailable" | "invalid_request")
}

fn completion_key(outcome: &str) -> Option<&'static Key> {
    outcome_key!(COMPLETIONS_TOTAL, outcome; "completed" | "lost_race" | "temporarily_unavailable")
}

/// Adds one to counter `name` for `outcome`: through its static key when there is one and the
/// host did not ask for the `client_id` label, else through a key built now.
fn count(
    config: &Config,
    name: &'static str,
    known: Option<&'static Key>,
    outcome: &'static str,
    client_id: Option<&str>,
) {
    let increment = |key: &Key| {
        metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
    };
    match known {
        Some(key) if !config.metrics_client_id_label => increment(key),
        _ => {
            let mut labels = vec![Label::from_static_parts("outcome", outcome)];
            if config.metrics_client_id_label {
                labels.push(Label::new("client_id", client_id.unwrap_or("").to_owned()));
            }
            increment(&Key::from_parts(name, labels));
        }
    }
}

pub(crate) fn push(
    config: &Config,
    outcome: &'static str,
    client_id: Option<&str>,
    duration: Duration,
) {
    count(config, PUSHES_TOTAL, push_key(outcome), outcome, client_id);
    static KEY: Key = Key::from_static_name(PUSH_DURATION_SECONDS);
    metrics::with_recorder(|r| r.register_histogram(&KEY, &METADATA).record(duration));
}

pub(crate) fn redemption(config: &Config, outcome: &'static str, client_id: Option<&str>) {
    count(
        config,
        REDEMPTIONS_TOTAL,
        redemption_key(outcome),
        outcome,
        client_id,
    );
}

pub(crate) fn completion(config: &Config, outcome: &'static str, client_id: Option<&str>) {
    count(
        config,
        COMPLETIONS_TOTAL,
        completion_key(outcome),
        outcome,
        client_id,
    );
}

pin_project! {
    /// A request body that notes when its first data arrives (the start of a push's duration).
    pub(crate) struct FirstByte<'a, B> {
        #[pin]
        body: B,
        clock: &'a PushClock,
    }
}

impl<'a, B> FirstByte<'a, B> {
    pub(crate) const fn new(body: B, clock: &'a PushClock) -> Self {
        Self { body, clock }
    }
}

impl<B: Body> Body for FirstByte<'_, B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if frame.is_data() {
                this.clock.data_arrived();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_the_layer_answers_has_a_static_key() {
        for outcome in [
            "created",
            "invalid_request",
            "invalid_client",
            "unauthorized_client",
            "unsupported_response_type",
            "invalid_request_object",
            "invalid_dpop_proof",
            "temporarily_unavailable",
            "request_not_supported",
            "request_uri_not_supported",
        ] {
            let key = push_key(outcome).unwrap();
            assert_eq!(key.name(), PUSHES_TOTAL);
            assert_eq!(key.labels().next().unwrap().value(), outcome);
        }
        for outcome in ["swapped", "invalid_request_uri", "temporarily_unavailable"] {
            assert_eq!(
                redemption_key(outcome)
                    .unwrap()
                    .labels()
                    .next()
                    .unwrap()
                    .value(),
                outcome
            );
        }
        for outcome in ["completed", "lost_race", "temporarily_unavailable"] {
            assert!(completion_key(outcome).is_some());
        }
        assert!(push_key("something_new").is_none());
    }
}
