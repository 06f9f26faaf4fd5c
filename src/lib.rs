//! # tower-par
//!
//! OAuth 2.0 Pushed Authorization Requests ([RFC 9126]) in front of an existing authorization
//! endpoint, as one tower [`Layer`](tower_layer::Layer).
//!
//! A client POSTs its authorization parameters, authenticated, to the PAR endpoint and gets back
//! `201 {"request_uri": "urn:ietf:params:oauth:request_uri:…", "expires_in": 60}`. It then sends
//! the browser to the authorization endpoint with only `client_id` and `request_uri`. The layer:
//!
//! * owns the PAR endpoint: POST only, body capped (1 MiB), client authentication, validation,
//!   storage within budgets of entries and bytes and a fair share per client (`429` past a
//!   client's share, `503` when the store is full; see [`store`]), the `201`;
//! * at the authorization endpoint (GET and POST) swaps `client_id` + `request_uri` for the pushed
//!   parameters and hands the rebuilt request to the inner service, which never needs to know PAR
//!   exists (a [`PushedAuthorizationRequest`] extension tells it, if it wants to);
//! * passes every other request straight through.
//!
//! Browser-based clients (single-page apps) push cross-origin: the layer answers CORS at the PAR
//! endpoint per client, from the origins each client registered
//! ([`Client::web_origins`]; a public client's redirect URIs' origins by default), and serves its
//! discovery documents to any origin.
//!
//! A handle works once, only for the client that pushed it, only within its lifetime. See
//! [`Consumption`] for consuming at completion instead of at the first hit.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_par::{ParLayer, StaticClients};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async fn authorize(axum::extract::RawQuery(query): axum::extract::RawQuery) -> String {
//!     // An unchanged handler: after a push it sees the pushed parameters in the query.
//!     query.unwrap_or_default()
//! }
//!
//! let par = ParLayer::builder()
//!     .issuer("https://as.example.com")
//!     .clients(StaticClients::from_json_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/clients.json"))?)
//!     .build()?;
//! let app: Router = Router::new().route("/as/authorize", get(authorize).post(authorize)).layer(par);
//! # Ok(()) }
//! ```
//!
//! Mount the layer around the whole `Router`: `Router::layer(par)` called after every `route`
//! and `nest`, or `par.layer(router)` (served with `ParService::into_make_service`, feature
//! `axum`), so that the PAR path reaches it even though no route exists for it. A layer on a
//! nested router or added with `route_layer` leaves the PAR endpoint `404`; one added before the
//! authorization route never swaps there. The README's "Placing the layer" shows each case, and
//! the `Option<PushedAuthorizationRequest>` extractor (feature `axum`, module `axum`)
//! refuses a `request_uri` the layer never saw instead of passing it to the handler.
//!
//! ## Hostile clients
//!
//! * A request with two lines of a field the layer reads (`Authorization`, `Content-Type`,
//!   `DPoP`), equal or not, is `400 invalid_request`: a proxy in front may have judged it by the
//!   other line. At the authorization endpoint `client_id` and `request_uri` come once, across
//!   the query and the form body of a POST, which are one request.
//! * The authorization endpoint takes GET and POST; every other method, HEAD included, is `405`
//!   and never reaches the inner service (which might run its GET handler for a HEAD).
//! * A body the layer refuses without using it (over
//!   [`max_body_bytes`](ParLayerBuilder::max_body_bytes), wrong media type, …) is first read and
//!   discarded within [`max_drain_bytes`](ParLayerBuilder::max_drain_bytes) and
//!   [`drain_timeout`](ParLayerBuilder::drain_timeout), so that the answer reaches a client that
//!   is still sending; past those bounds the answer carries `Connection: close`, and
//!   `server::serve` (feature `server`) lingers so that the client still reads it.
//! * A body that has not arrived within [`body_timeout`](ParLayerBuilder::body_timeout)
//!   (default 10 s) is `408 Request Timeout` with `Connection: close`.
//!
//! **The timer.** The layer runs on the host's executor and does not bring a runtime of its
//! own: its time limits sleep on a [`Timer`] the host lends. The `tokio` feature (on by default)
//! provides `TokioTimer` as the default; without it (`default-features = false`),
//! [`ParLayerBuilder::timer`] must name one, and [`ParLayerBuilder::build`] fails until it does,
//! rather than serve without a body timeout.
//!
//! ## Features
//!
//! * `redis`: [`store::RedisStore`], one-time handles across many nodes, on one Redis or a Redis
//!   Cluster, optionally waiting for replicas.
//! * `jwt`: `private_key_jwt`, `client_secret_jwt`, signed request objects, DPoP at PAR.
//! * `test-suite`: the shared store test-suite, for backend authors.
//! * `server`: [`server`], serving the layer over TCP as the reference binaries do.
//! * `axum`: the extractor above, `ParService::into_make_service` for `axum::serve`, and
//!   `IntoResponse` for [`OAuthError`]; depends on `axum-core` only.
//! * `tokio` (default): `TokioTimer`, the default [`Timer`] (tokio's `time` only).
//! * `proxy`: [`proxy`], the layer in front of any existing authorization server over HTTP (a
//!   streaming reverse proxy), and the `par-proxy` binary.
//! * `metrics`: counters, a histogram and a gauge through the `metrics` facade (module
//!   `metrics`).
//! * `prometheus`: `--metrics ADDR` of the reference binaries, `/metrics` in the Prometheus text
//!   format (with `server`).
//!
//! ## Logs
//!
//! Each request to the PAR endpoint and to the authorization endpoint runs in a span
//! (`par.push`, `par.authorize`) that names the client, the fingerprint of the handle (the same
//! at the push and at its redemption) and the outcome; each answer is one event. No secret, live
//! handle or pushed value is ever logged. [`trace`] says what is logged and has the span maker
//! that keeps handles out of tower-http's `TraceLayer`.
//!
//! [RFC 9126]: https://www.rfc-editor.org/rfc/rfc9126
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authorize;
#[cfg(feature = "axum")]
pub mod axum;
mod body;
pub mod client;
mod clock;
mod completion;
mod cors;
mod error;
mod future;
#[cfg(feature = "jwt")]
mod jwt;
mod layer;
mod metadata;
#[cfg(feature = "metrics")]
pub mod metrics;
mod outcome;
mod params;
mod payload;
#[cfg(feature = "proxy")]
pub mod proxy;
mod push;
mod read_request;
mod seal;
#[cfg(feature = "server")]
pub mod server;
mod service;
mod shares;
pub mod store;
mod timer;
pub mod trace;

pub use self::{
    authorize::Completion,
    body::{RequestBody, ResponseBody},
    client::{
        AuthMethod, Client, ClientBuilder, ClientRegistry, RegistryError, RegistryFuture,
        StaticClients, WebOriginFuture,
    },
    clock::{Clock, ManualClock, SystemClock},
    error::{ConfigError, ErrorResponder, OAuthError},
    future::ResponseFuture,
    layer::{Consumption, ParLayer, ParLayerBuilder, PkceRequirement},
    params::PushedAuthorizationRequest,
    service::ParService,
    store::{MemoryStore, ParStore},
    timer::{SleepFuture, Timer},
};

#[cfg(feature = "tokio")]
pub use self::timer::TokioTimer;

#[cfg(feature = "jwt")]
pub use self::{
    client::JwtSettings,
    jwt::{ClientKeys, KeyError},
};

/// The boxed error type of request bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Entry points for `benches/layer.rs` only.
///
/// Not API: hidden from the docs, exempt from semver, and may change or vanish in any release.
/// It exists because criterion benches are a separate crate and cannot reach `pub(crate)` items.
#[doc(hidden)]
pub mod __bench {
    /// Decodes a form body exactly as the PAR endpoint does (strict decoding, then the duplicate
    /// check) and returns the number of pairs, or `None` if the form is refused.
    #[must_use]
    pub fn parse_form(bytes: &[u8]) -> Option<usize> {
        let pairs = crate::params::parse(bytes).ok()?;
        crate::params::reject_duplicates(&pairs, crate::push::REPEATABLE).ok()?;
        Some(pairs.len())
    }
}

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;
