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
    /// axum's `Router` and handlers accept it like any other body.
    pub struct RequestBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    /// The response body of [`ParService`](crate::ParService): the inner service's body,
    /// untouched, or a response the layer wrote itself (PAR answers and OAuth errors).
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
