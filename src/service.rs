//! [`ParService`]: routes each request to the PAR endpoint, the authorization-endpoint swap, or
//! straight through.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::{
    authorize,
    body::{RequestBody, ResponseBody},
    error::OAuthError,
    future::ResponseFuture,
    layer::Config,
    metadata, push, read_request, trace, BoxError,
};

/// The service [`ParLayer`](crate::ParLayer) produces around an inner authorization server.
///
/// The inner service receives [`RequestBody<B>`](crate::RequestBody) (the original body, or the
/// rebuilt form of a pushed request) and its errors stay its own: wrapped around an axum
/// `Router`, the error type is still `Infallible`.
///
/// ```
/// use std::convert::Infallible;
/// use axum::{routing::get, Router};
/// use tower::{Layer as _, Service};
/// use tower_par::{ParLayer, ParService, StaticClients};
///
/// let par = ParLayer::builder().issuer("https://as.example.com").clients(StaticClients::default()).build().unwrap();
/// let router: Router = Router::new().route("/as/authorize", get(|| async { "authorize" }));
/// let service: ParService<Router> = par.layer(router);
/// fn infallible<S: Service<axum::extract::Request, Error = Infallible>>(_: &S) {}
/// infallible(&service);
/// ```
#[derive(Clone)]
pub struct ParService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> ParService<S> {
    pub(crate) const fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for ParService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        if path == &*self.config.par_path {
            return self.push(req);
        }
        if path == &*self.config.authorize_path {
            return self.authorize(req);
        }
        if let Some(document) = &self.config.metadata {
            if req.method() == Method::GET && metadata::WELL_KNOWN_PATHS.contains(&path) {
                return ResponseFuture::ready(metadata::response(document).map(ResponseBody::own));
            }
        }
        ResponseFuture::passthrough(self.inner.call(req.map(RequestBody::original)))
    }
}

impl<S> ParService<S> {
    /// Kept out of `call`: its large future would otherwise be laid out in the frame of every
    /// pass-through request.
    #[cold]
    #[inline(never)]
    fn authorize<B, ResBody>(
        &mut self,
        req: Request<B>,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        ResBody: Send + 'static,
    {
        if req.method() != Method::GET && req.method() != Method::POST {
            return self.refuse(req, authorize::method_not_allowed(), Config::error_page);
        }
        // tower's clone rule: the ready service goes into the future, the clone stays.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        ResponseFuture::boxed(trace::boxed_in_span!(
            authorize::authorize(config, inner, req),
            trace::authorize_span
        ))
    }

    #[cold]
    #[inline(never)]
    fn push<B, ResBody, F, E>(&self, req: Request<B>) -> ResponseFuture<F, ResBody, E>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        ResBody: Send + 'static,
        E: Send + 'static,
    {
        ResponseFuture::boxed(trace::boxed_in_span!(
            push::respond(Arc::clone(&self.config), req),
            trace::push_span
        ))
    }
}

impl<S> ParService<S> {
    /// Answers `err` without calling the inner service: at once when the request has no body,
    /// else after the bounded drain (see `read_request`), so that the answer reaches a client
    /// that is still sending.
    fn refuse<B, ResBody, F, E>(
        &self,
        req: Request<B>,
        err: OAuthError,
        render: fn(&Config, &OAuthError) -> Response<Bytes>,
    ) -> ResponseFuture<F, ResBody, E>
    where
        B: Body<Data = Bytes> + Send + 'static,
        ResBody: Send + 'static,
        E: Send + 'static,
    {
        if req.body().is_end_stream() {
            return ResponseFuture::ready(render(&self.config, &err).map(ResponseBody::own));
        }
        let config = Arc::clone(&self.config);
        ResponseFuture::boxed(Box::pin(async move {
            let (parts, body) = req.into_parts();
            let err = read_request::refuse(&config, &parts.headers, body, err).await;
            Ok(render(&config, &err).map(ResponseBody::own))
        }))
    }
}

impl<S: fmt::Debug> fmt::Debug for ParService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParService")
            .field("inner", &self.inner)
            .field("par_path", &self.config.par_path)
            .field("authorize_path", &self.config.authorize_path)
            .finish_non_exhaustive()
    }
}
