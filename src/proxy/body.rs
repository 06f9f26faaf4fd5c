//! The response body of [`Forward`](super::Forward): the upstream's body, streamed, or the
//! proxy's own short answer (`502`, `504`, a merged discovery document).

use std::{
    convert::Infallible,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a forwarded response: the upstream's, frame by frame as it arrives (never
    /// buffered), or one the proxy wrote itself.
    ///
    /// ```
    /// use http_body::Body as _;
    /// use tower_par::proxy::ProxyBody;
    ///
    /// let body = ProxyBody::from_static("upstream unreachable\n");
    /// assert_eq!(body.size_hint().exact(), Some(21));
    /// ```
    pub struct ProxyBody {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        Upstream { #[pin] body: Incoming },
        Own { #[pin] body: Full<Bytes> },
    }
}

impl ProxyBody {
    pub(crate) const fn upstream(body: Incoming) -> Self {
        Self {
            kind: Kind::Upstream { body },
        }
    }

    /// A body the proxy wrote.
    #[must_use]
    pub fn own(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Own {
                body: Full::new(bytes),
            },
        }
    }

    /// A fixed body the proxy wrote.
    #[must_use]
    pub fn from_static(text: &'static str) -> Self {
        Self::own(Bytes::from_static(text.as_bytes()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project().kind.project() {
            KindProj::Upstream { body } => body.poll_frame(cx),
            KindProj::Own { body } => body
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream { body } => body.is_end_stream(),
            Kind::Own { body } => body.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream { body } => body.size_hint(),
            Kind::Own { body } => body.size_hint(),
        }
    }
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Upstream { .. } => "upstream",
            Kind::Own { .. } => "own",
        };
        f.debug_struct("ProxyBody").field("kind", &kind).finish()
    }
}
