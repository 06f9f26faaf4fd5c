//! Logs an operator can follow, and a span for tower-http's `TraceLayer` that keeps live handles
//! out of its logs.
//!
//! # What the layer logs (`tracing`)
//!
//! Every request to the PAR endpoint runs in a span `par.push` (target `tower_par::push`), every
//! request to the authorization endpoint in a span `par.authorize` (target
//! `tower_par::authorize`), both at level `INFO`, with these fields as they become known:
//!
//! | field | value |
//! |---|---|
//! | `client_id` | the `client_id` the request presented (Basic user-id, form, or the unverified `sub` of a client assertion), at most 128 bytes of it; also when authentication then fails |
//! | `handle_fp` | the [`fingerprint`] of the `request_uri`: written at the push, read again at the redemption, so a push and its redemption join on it |
//! | `expires_in` | the lifetime of an accepted push, in seconds |
//! | `outcome` | `created` or the `error` code at the PAR endpoint; `swapped` or the `error` code at the authorization endpoint |
//!
//! Each answer of the layer is **one event** inside its span: `pushed authorization request
//! accepted` / `… rejected` at the PAR endpoint; `pushed authorization request redeemed` /
//! `authorization request refused` at the authorization endpoint; `pushed authorization request
//! completed` / `… not completed` when a request is consumed at completion. A refusal is `INFO`
//! with its `error` and `reason` (the `error_description` the client got), `WARN` when a limit
//! of the server was reached (the store or a client's share is full), `ERROR` when the server
//! failed (the store, the client registry, the random number generator), with the `cause`.
//!
//! Never logged: client secrets, client assertions, DPoP proofs, live `request_uri`s (only their
//! fingerprints), pushed parameter values (RFC 9126 §8).
//!
//! # The fingerprint of a handle
//!
//! The first 48 bits of SHA-256 over a label of its own and the 32 random bytes of the handle:
//!
//! * it cannot be used to redeem: redeeming takes the whole handle, and the fingerprint is a
//!   one-way digest of it (finding a handle to a fingerprint is a search of 2^256 values);
//! * it does not find the record in the store: store keys are SHA-256 digests of the issuer, the
//!   client *and the handle* under another label, so a fingerprint and a store key share nothing
//!   that can be computed from either without the handle. Someone holding both the logs and a
//!   dump of the store cannot join them (the handle, which would join them, is in neither);
//! * it is short on purpose: 48 bits tell apart the handles alive at one time (a million live
//!   handles collide with odds of about 1 in 500) without being a second identifier of the
//!   request.
//!
//! It is computed only when a subscriber records the span, so a layer that nobody logs never
//! pays for the digest.
//!
//! # tower-http's `TraceLayer`
//!
//! tower-http's default span records the request URI, and the authorization endpoint's URI
//! carries the live `request_uri`: anyone who reads the DEBUG log could redeem it first. Give the
//! `TraceLayer` this module's [`make_span`] instead, and put it **outside** the PAR layer (inside,
//! it would see the rebuilt request, whose URI carries the pushed parameters):
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower::ServiceBuilder;
//! use tower_http::trace::TraceLayer;
//! use tower_par::{ParLayer, StaticClients};
//!
//! let par = ParLayer::builder()
//!     .issuer("https://as.example.com")
//!     .clients(StaticClients::default())
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/as/authorize", get(|| async { "authorize" }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(TraceLayer::new_for_http().make_span_with(tower_par::trace::make_span))
//!             .layer(par),
//!     );
//! ```
//!
//! The span is tower-http's default one (`request`, level `DEBUG`, `method`, `uri`, `version`)
//! with the values of `request_uri`, `client_secret` and `client_assertion` in the query written
//! as `[redacted]`. [`redacted_uri`] does the same for a span of your own.

use std::fmt::{self, Write as _};

use http::{Request, Uri};
use sha2::{Digest, Sha256};
use tracing::{field::Empty, Span};

use crate::{authorize::parse_handle, params};

/// Query parameters whose values never reach a log: the handle and client credentials.
const REDACTED: [&str; 3] = ["request_uri", "client_secret", "client_assertion"];

/// The most bytes of a presented `client_id` a span records: an unregistered one can be as long
/// as the body cap.
const MAX_LOGGED_CLIENT_ID: usize = 128;

/// tower-http's default request span with the secrets of the query redacted (see the
/// [module docs](self)); the shape `TraceLayer::make_span_with` takes.
///
/// ```
/// let request = http::Request::get(
///     "/as/authorize?client_id=web-app&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ah4ndle",
/// )
/// .body(())
/// .unwrap();
/// let _span = tower_par::trace::make_span(&request);
/// assert_eq!(
///     tower_par::trace::redacted_uri(request.uri()).to_string(),
///     "/as/authorize?client_id=web-app&request_uri=[redacted]",
/// );
/// ```
pub fn make_span<B>(request: &Request<B>) -> Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %redacted_uri(request.uri()),
        version = ?request.version(),
    )
}

/// `uri` for a log: as it is, but with the values of `request_uri`, `client_secret` and
/// `client_assertion` in its query (however their names are percent-encoded) written as
/// `[redacted]`. Writing it allocates nothing.
///
/// ```
/// let uri: http::Uri = "/as/authorize?client_id=a&request_uri=urn%3Ax%3Ah&state=s".parse().unwrap();
/// // In a span of your own:
/// let _span = tracing::info_span!("authorize", uri = %tower_par::trace::redacted_uri(&uri));
/// assert_eq!(
///     tower_par::trace::redacted_uri(&uri).to_string(),
///     "/as/authorize?client_id=a&request_uri=[redacted]&state=s",
/// );
/// ```
#[must_use]
pub fn redacted_uri(uri: &Uri) -> RedactedUri<'_> {
    RedactedUri(uri)
}

/// A URI that displays with its secrets redacted; made by [`redacted_uri`] (see its example).
#[derive(Debug, Clone, Copy)]
pub struct RedactedUri<'a>(&'a Uri);

impl fmt::Display for RedactedUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.0;
        if let Some(scheme) = uri.scheme_str() {
            write!(f, "{scheme}://")?;
        }
        if let Some(authority) = uri.authority() {
            write!(f, "{authority}")?;
        }
        f.write_str(uri.path())?;
        let Some(query) = uri.query() else {
            return Ok(());
        };
        f.write_char('?')?;
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                f.write_char('&')?;
            }
            match pair.split_once('=') {
                Some((name, _)) if is_redacted(name) => write!(f, "{name}=[redacted]")?,
                _ => f.write_str(pair)?,
            }
        }
        Ok(())
    }
}

fn is_redacted(name: &str) -> bool {
    // Decoded as the layer decodes names: `request%5Furi` is a request_uri to the layer too.
    params::decode(name.as_bytes()).is_ok_and(|name| REDACTED.contains(&name.as_ref()))
}

/// The fingerprint the logs show for a `request_uri` this server issued (see the
/// [module docs](self)), or `None` for a value it could not have issued.
///
/// For support: a user's `request_uri` (from a browser's address bar or a client's log) finds
/// its push and its redemption in the server's logs.
///
/// ```
/// let fp = tower_par::trace::fingerprint(
///     "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
/// )
/// .unwrap();
/// assert_eq!(fp.len(), 12);
/// assert!(tower_par::trace::fingerprint("urn:example:not-ours").is_none());
/// ```
#[must_use]
pub fn fingerprint(request_uri: &str) -> Option<String> {
    parse_handle(request_uri).map(|handle| Fingerprint::of(&handle).as_str().to_owned())
}

/// 48 bits of a handle's digest, in hex.
struct Fingerprint([u8; 12]);

impl Fingerprint {
    fn of(handle: &[u8; 32]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::new()
            .chain_update(b"tower-par/log-fingerprint/v1")
            .chain_update(handle)
            .finalize();
        let mut hex = [0u8; 12];
        for (i, byte) in digest[..6].iter().enumerate() {
            hex[2 * i] = HEX[usize::from(byte >> 4)];
            hex[2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
        Self(hex)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Whether anything may record the layer's spans: a subscriber at `INFO` or finer. When nothing
/// does, the endpoints neither create nor fill their spans (no thread-local look-ups on a push).
pub(crate) fn enabled() -> bool {
    tracing::level_enabled!(tracing::Level::INFO)
}

/// `$future`, boxed, in `$span()` when anything may record it, as it is otherwise. A macro
/// rather than a function so that the future is built in its box: moving a request's future
/// into a box costs a copy of its whole state machine (benches/layer.rs, callgrind).
macro_rules! boxed_in_span {
    ($future:expr, $span:expr) => {
        if $crate::trace::enabled() {
            Box::pin(::tracing::Instrument::instrument($future, $span()))
                as $crate::future::BoxedResponse<_, _>
        } else {
            Box::pin($future)
        }
    };
}
pub(crate) use boxed_in_span;

/// An endpoint's span: `INFO`, the fields every endpoint records, and its own.
macro_rules! endpoint_span {
    ($target:literal, $name:literal $(, $field:ident)*) => {
        tracing::info_span!(
            target: $target,
            $name,
            client_id = Empty,
            handle_fp = Empty,
            $($field = Empty,)*
            outcome = Empty,
        )
    };
}

/// The span of a request to the PAR endpoint.
pub(crate) fn push_span() -> Span {
    endpoint_span!("tower_par::push", "par.push", expires_in)
}

/// The span of a request to the authorization endpoint.
pub(crate) fn authorize_span() -> Span {
    endpoint_span!("tower_par::authorize", "par.authorize")
}

/// Records the presented `client_id` on the current span (its first 128 bytes).
pub(crate) fn record_client_id(client_id: &str) {
    if !enabled() {
        return;
    }
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    let mut end = client_id.len().min(MAX_LOGGED_CLIENT_ID);
    while !client_id.is_char_boundary(end) {
        end -= 1;
    }
    span.record("client_id", &client_id[..end]);
}

/// Records the fingerprint of `handle` on the current span; the digest is taken only when the
/// span is recorded.
pub(crate) fn record_handle(handle: &[u8; 32]) {
    if !enabled() {
        return;
    }
    let span = Span::current();
    if !span.is_disabled() {
        span.record("handle_fp", Fingerprint::of(handle).as_str());
    }
}

/// Records the lifetime of an accepted push on the current span.
pub(crate) fn record_expires_in(seconds: u64) {
    if enabled() {
        Span::current().record("expires_in", seconds);
    }
}

/// Records the outcome of the request on the current span.
pub(crate) fn record_outcome(outcome: &'static str) {
    if enabled() {
        Span::current().record("outcome", outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(uri: &str) -> String {
        redacted_uri(&uri.parse().unwrap()).to_string()
    }

    #[test]
    fn secrets_in_the_query_are_redacted_whatever_their_spelling() {
        assert_eq!(
            redacted("/as/authorize?client_id=a&request_uri=urn%3Ax%3Ah&state=s"),
            "/as/authorize?client_id=a&request_uri=[redacted]&state=s"
        );
        assert_eq!(
            redacted("https://as.example/p?request%5Furi=h&client_secret=s&client_assertion=j&x"),
            "https://as.example/p?request%5Furi=[redacted]&client_secret=[redacted]&client_assertion=[redacted]&x"
        );
        assert_eq!(redacted("/other"), "/other");
        assert_eq!(redacted("/other?a=1&&b"), "/other?a=1&&b");
    }

    #[test]
    fn fingerprints_are_short_stable_and_not_the_store_key() {
        let handle = [7u8; 32];
        let fp = Fingerprint::of(&handle);
        assert_eq!(fp.as_str().len(), 12);
        assert_eq!(fp.as_str(), Fingerprint::of(&handle).as_str());
        assert_ne!(fp.as_str(), Fingerprint::of(&[8u8; 32]).as_str());
        let key = crate::store::StoreKey::derive("https://as.example.com", "web-app", &handle);
        assert!(!key.to_hex().contains(fp.as_str()));
    }
}
