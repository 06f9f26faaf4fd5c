//! Body wrappers: what the inner service receives and what the layer answers with.

use std::{
    convert::Infallible,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The request body the inner service receives: the original body, untouched, or the form
    /// the layer rebuilt from a pushed request (or re-issued after reading it at the
    /// authorization endpoint).
    ///
    /// axum's `Router` and handlers accept it like any other body; a plain hyper or tower
    /// service names it in its request type:
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt as _, Full};
    /// use tower_par::RequestBody;
    ///
    /// async fn authorize(
    ///     request: http::Request<RequestBody<Full<Bytes>>>,
    /// ) -> Result<http::Response<Full<Bytes>>, Infallible> {
    ///     // A rebuilt POST authorization request carries the pushed parameters in its body.
    ///     let form = request.into_body().collect().await?.to_bytes();
    ///     Ok(http::Response::new(Full::new(form)))
    /// }
    /// ```
    pub struct RequestBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    /// The response body of [`ParService`](crate::ParService): the inner service's body,
    /// untouched, or a response the layer wrote itself (PAR answers and OAuth errors).
    ///
    /// It is an `http_body::Body` with the inner body's error type, so axum, hyper and tower-http
    /// layers take it as they take the inner body:
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use tower_par::ResponseBody;
    ///
    /// fn answer(response: http::Response<ResponseBody<axum::body::Body>>) -> axum::response::Response {
    ///     response.into_response()
    /// }
    /// ```
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Own { #[pin] body: Full<Bytes> },
    }
}

impl<B> RequestBody<B> {
    /// Wraps a body as the layer passes it on untouched, e.g. to call a handler in a unit test:
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt as _, Full};
    /// use tower_par::RequestBody;
    ///
    /// async fn authorize(request: http::Request<RequestBody<Full<Bytes>>>) -> Bytes {
    ///     request.into_body().collect().await.unwrap().to_bytes()
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let request = http::Request::post("/as/authorize")
    ///     .header("content-type", "application/x-www-form-urlencoded")
    ///     .body(RequestBody::new(Full::new(Bytes::from_static(b"client_id=web-app&scope=openid"))))
    ///     .unwrap();
    /// assert_eq!(authorize(request).await, "client_id=web-app&scope=openid");
    /// # }
    /// ```
    pub const fn new(body: B) -> Self {
        Self::original(body)
    }

    /// Wraps the original body; nothing is copied.
    pub(crate) const fn original(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body the layer built.
    pub(crate) fn rebuilt(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Own {
                body: Full::new(bytes),
            },
        }
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body; nothing is copied.
    pub(crate) const fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body the layer wrote.
    pub(crate) fn own(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Own {
                body: Full::new(bytes),
            },
        }
    }

    /// The inner service's body, or the layer's own.
    #[cfg(feature = "axum")]
    pub(crate) fn into_inner(self) -> Result<B, Full<Bytes>> {
        match self.kind {
            Kind::Inner { body } => Ok(body),
            Kind::Own { body } => Err(body),
        }
    }
}

fn poll_kind<B: Body<Data = Bytes>>(
    kind: Pin<&mut Kind<B>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
    match kind.project() {
        KindProj::Inner { body } => body.poll_frame(cx),
        KindProj::Own { body } => body
            .poll_frame(cx)
            .map_err(|never: Infallible| match never {}),
    }
}

fn end_of<B: Body>(kind: &Kind<B>) -> bool {
    match kind {
        Kind::Inner { body } => body.is_end_stream(),
        Kind::Own { body } => body.is_end_stream(),
    }
}

fn hint_of<B: Body>(kind: &Kind<B>) -> SizeHint {
    match kind {
        Kind::Inner { body } => body.size_hint(),
        Kind::Own { body } => body.size_hint(),
    }
}

macro_rules! impl_body {
    ($name:ident) => {
        impl<B: Body<Data = Bytes>> Body for $name<B> {
            type Data = Bytes;
            type Error = B::Error;

            #[inline]
            fn poll_frame(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
                poll_kind(self.project().kind, cx)
            }

            #[inline]
            fn is_end_stream(&self) -> bool {
                end_of(&self.kind)
            }

            #[inline]
            fn size_hint(&self) -> SizeHint {
                hint_of(&self.kind)
            }
        }

        impl<B> fmt::Debug for $name<B> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let kind = match self.kind {
                    Kind::Inner { .. } => "inner",
                    Kind::Own { .. } => "own",
                };
                f.debug_struct(stringify!($name))
                    .field("kind", &kind)
                    .finish()
            }
        }
    };
}

impl_body!(RequestBody);
impl_body!(ResponseBody);

// What tower-http's own bodies implement besides `Body`: `Default` (an empty inner body) when the
// inner body has one. `CorsLayer` answers preflights and `TimeoutLayer` answers 408 with
// `ResBody::default()`, so a stack with either around the layer needs it.
impl<B: Default> Default for RequestBody<B> {
    fn default() -> Self {
        Self::new(B::default())
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::inner(B::default())
    }
}

impl<B> From<B> for RequestBody<B> {
    fn from(body: B) -> Self {
        Self::new(body)
    }
}
