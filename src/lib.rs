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
//!   storage, the `201`;
//! * at the authorization endpoint (GET and POST) swaps `client_id` + `request_uri` for the pushed
//!   parameters and hands the rebuilt request to the inner service, which never needs to know PAR
//!   exists (a [`PushedAuthorizationRequest`] extension tells it, if it wants to);
//! * passes every other request straight through.
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
//! Mount the layer around the whole `Router` (`Router::layer` called after every route, or
//! `par.layer(router)`), so that the PAR path reaches it even though no route exists for it.
//!
//! ## Features
//!
//! * `redis`: [`store::RedisStore`], one-time handles across many nodes.
//! * `jwt`: `private_key_jwt`, `client_secret_jwt`, signed request objects, DPoP at PAR.
//! * `test-suite`: the shared store test-suite, for backend authors.
//!
//! [RFC 9126]: https://www.rfc-editor.org/rfc/rfc9126
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authorize;
mod body;
pub mod client;
mod clock;
mod error;
mod future;
#[cfg(feature = "jwt")]
mod jwt;
mod layer;
mod metadata;
mod params;
mod push;
mod service;
pub mod store;

pub use self::{
    authorize::Completion,
    body::{RequestBody, ResponseBody},
    client::{Client, ClientRegistry, StaticClients},
    clock::{Clock, ManualClock, SystemClock},
    error::{ConfigError, ErrorResponder, OAuthError},
    future::ResponseFuture,
    layer::{Consumption, ParLayer, ParLayerBuilder, PkceRequirement},
    params::PushedAuthorizationRequest,
    service::ParService,
    store::{MemoryStore, ParStore},
};

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
