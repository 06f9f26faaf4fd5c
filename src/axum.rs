//! axum integration (feature `axum`, on `axum-core` only).
//!
//! * [`PushedAuthorizationRequest`] is an extractor. As `Option<PushedAuthorizationRequest>` it
//!   is `Some` after the layer swapped a `request_uri` and `None` for a plain front-channel
//!   request. A request whose query still carries a `request_uri` never went through the layer —
//!   the layer is misplaced (see the README, "Placing the layer") — and is refused with
//!   `400 request_uri_not_supported`, and a warning naming the fix is logged. Without the
//!   extractor, such a handler would silently treat the raw `request_uri` as an ordinary
//!   front-channel request.
//! * [`ParService::into_make_service`] serves `par.layer(router)` with `axum::serve`.
//! * [`OAuthError`] is a response, so handlers can answer with one.
//!
//! Why `400 request_uri_not_supported` for a misplaced layer: the client did nothing wrong, but
//! this endpoint, as deployed, does not handle `request_uri`, which is what that code
//! (RFC 9101 §7, OpenID Connect Core §6.2) says. A 5xx would invite retries that cannot succeed.
//! Nothing is consumed (the layer never saw the handle), so once the layer is placed right the
//! same `request_uri` works.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower::Layer as _;
//! use tower_par::{ParLayer, PushedAuthorizationRequest, StaticClients};
//!
//! async fn authorize(pushed: Option<PushedAuthorizationRequest>) -> String {
//!     match pushed {
//!         Some(pushed) => format!("pushed by {}", pushed.client_id()),
//!         None => "a front-channel request".into(),
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let par = ParLayer::builder()
//!     .issuer("https://as.example.com")
//!     .clients(StaticClients::default())
//!     .build()?;
//! let router = Router::new().route("/as/authorize", get(authorize).post(authorize));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // The layer around the whole router; `into_make_service` gives axum its response type.
//! axum::serve(listener, par.layer(router).into_make_service()).await?;
//! # Ok(()) }
//! ```

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum_core::{
    body::Body,
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{request::Parts, Request, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    body::ResponseBody, error::OAuthError, params, service::ParService, PushedAuthorizationRequest,
};

impl<S: Send + Sync> OptionalFromRequestParts<S> for PushedAuthorizationRequest {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, OAuthError> {
        if let Some(pushed) = parts.extensions.get::<Self>() {
            return Ok(Some(pushed.clone()));
        }
        if carries_request_uri(parts.uri.query()) {
            return Err(unswapped(parts));
        }
        Ok(None)
    }
}

/// Refuses a request that was not pushed: `400 invalid_request`, or, when it carries a
/// `request_uri` the layer never saw, `400 request_uri_not_supported` and a warning.
impl<S: Send + Sync> FromRequestParts<S> for PushedAuthorizationRequest {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, OAuthError> {
        <Self as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await?
            .ok_or_else(|| {
                OAuthError::invalid_request(
                    "this endpoint needs a pushed authorization request (client_id and request_uri)",
                )
            })
    }
}

/// Whether a query names a non-empty `request_uri` (an empty one counts as omitted, RFC 6749
/// §3.1). Tolerant of bad encoding elsewhere in the query: only names are decoded.
fn carries_request_uri(query: Option<&str>) -> bool {
    query.is_some_and(|query| {
        query.split('&').any(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            !value.is_empty()
                && params::decode(name.as_bytes()).is_ok_and(|name| name == "request_uri")
        })
    })
}

fn unswapped(parts: &Parts) -> OAuthError {
    // The handle stays out of the log: it is live until the layer sees it.
    tracing::warn!(
        path = parts.uri.path(),
        "an authorization request carries a request_uri that tower-par never saw: the layer is \
         not in front of this route. Call Router::layer(par) after every route and nest, or wrap \
         the whole router (par.layer(router)); see the README, \"Placing the layer\""
    );
    OAuthError::new(
        StatusCode::BAD_REQUEST,
        "request_uri_not_supported",
        "this authorization endpoint does not process request_uri (the PAR layer is not in front of it)",
    )
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        self.to_response().map(Body::from)
    }
}

impl From<ResponseBody<Body>> for Body {
    /// The inner service's body as it was (no new allocation on the pass-through path), or the
    /// layer's own.
    fn from(body: ResponseBody<Body>) -> Self {
        match body.into_inner() {
            Ok(inner) => inner,
            Err(own) => Self::new(own),
        }
    }
}

impl<S> ParService<S> {
    /// This service with axum's response type, for `axum::serve` or anything that wants an
    /// `axum::response::Response` (feature `axum`).
    pub fn into_axum(self) -> AxumService<S> {
        AxumService { inner: self }
    }

    /// A make-service for `axum::serve(listener, par.layer(router).into_make_service())`
    /// (feature `axum`). It takes precedence over `axum::ServiceExt::into_make_service`, which
    /// would keep the layer's response body type that `axum::serve` refuses. For
    /// `ConnectInfo`, put the layer inside the router instead (`Router::layer(par)`).
    pub fn into_make_service(self) -> IntoMakeService<S> {
        IntoMakeService {
            service: self.into_axum(),
        }
    }
}

/// [`ParService`] answering with `axum::response::Response` (feature `axum`); see
/// [`ParService::into_axum`].
#[derive(Clone)]
pub struct AxumService<S> {
    inner: ParService<S>,
}

impl<S> AxumService<S> {
    /// A make-service that hands out clones of this service, for `axum::serve`.
    pub fn into_make_service(self) -> IntoMakeService<S> {
        IntoMakeService { service: self }
    }
}

impl<S, B, E> Service<Request<B>> for AxumService<S>
where
    ParService<S>: Service<Request<B>, Response = http::Response<ResponseBody<Body>>, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = AxumResponseFuture<<ParService<S> as Service<Request<B>>>::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        AxumResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for AxumService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AxumService").field(&self.inner).finish()
    }
}

pin_project! {
    /// Response future of [`AxumService`]: the layer's future, its body turned into axum's.
    pub struct AxumResponseFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for AxumResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResponseBody<Body>>, E>>,
{
    type Output = Result<Response, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map_ok(|response| response.map(Body::from))
    }
}

impl<F> fmt::Debug for AxumResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AxumResponseFuture").finish_non_exhaustive()
    }
}

/// A make-service that hands out [`AxumService`]s (feature `axum`): what `axum::serve` takes.
#[derive(Clone, Debug)]
pub struct IntoMakeService<S> {
    service: AxumService<S>,
}

impl<S: Clone, T> Service<T> for IntoMakeService<S> {
    type Response = AxumService<S>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<AxumService<S>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: T) -> Self::Future {
        std::future::ready(Ok(self.service.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_non_empty_request_uri_counts() {
        assert!(carries_request_uri(Some("client_id=a&request_uri=urn:x")));
        assert!(carries_request_uri(Some("request%5Furi=urn:x&bad=%ZZ")));
        assert!(!carries_request_uri(Some("client_id=a&request_uri=")));
        assert!(!carries_request_uri(Some("request_urix=1&xrequest_uri=2")));
        assert!(!carries_request_uri(Some("request_uri")));
        assert!(!carries_request_uri(None));
    }
}
