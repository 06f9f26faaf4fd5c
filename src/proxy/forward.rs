//! [`Forward`]: the streaming forwarder to one upstream origin.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{
    header, uri::Authority, uri::PathAndQuery, uri::Scheme, HeaderValue, Method, Request, Response,
    StatusCode, Uri, Version,
};
use http_body::Body;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioTimer},
};
use serde_json::{Map, Value};
use tower_service::Service;

use super::{
    body::ProxyBody,
    discovery,
    headers::{remove_hop_by_hop, Peer},
    pool::{Kept, Pool},
};
use crate::{error::ConfigError, BoxError};

pub(crate) type Connector = HttpsConnector<HttpConnector>;

/// Builds a [`Forward`]; see [`Forward::builder`].
#[derive(Clone)]
#[must_use]
pub struct ForwardBuilder {
    upstream: String,
    response_timeout: Duration,
    ca_pem: Option<Vec<u8>>,
    max_idle_per_host: usize,
    preserve_host: bool,
}

impl ForwardBuilder {
    /// Whether the upstream sees the client's `Host` (default true): servers build absolute URLs
    /// (discovery, redirects, form actions) from it, so behind a proxy they must see the public
    /// one. Off, `Host` names the upstream; `X-Forwarded-Host` and `Forwarded` still carry the
    /// client's.
    pub const fn preserve_host(mut self, preserve: bool) -> Self {
        self.preserve_host = preserve;
        self
    }

    /// How long the upstream may take to send its response head (status and header fields)
    /// before the proxy answers `504` (default 30 s). The body then streams without a limit.
    pub const fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Trusts the CA certificates of this PEM text for an `https://` upstream, besides the
    /// system's roots: a private CA.
    pub fn upstream_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// How many idle keep-alive connections to the upstream are kept for client connections to
    /// come (default 256): a client connection keeps the upstream connection its first request
    /// took, and hands it to this list when it closes. Fewer means new TCP (and TLS) handshakes
    /// when clients reconnect.
    pub const fn max_idle_connections(mut self, connections: usize) -> Self {
        self.max_idle_per_host = connections;
        self
    }

    /// Checks the upstream URL, sets up TLS, and builds the forwarder for request bodies of type
    /// `B` (`tower_par::RequestBody<hyper::body::Incoming>` behind a `ParLayer` in a hyper
    /// server).
    ///
    /// # Errors
    ///
    /// The upstream is not an `http://` or `https://` origin, or the CA PEM holds no usable
    /// certificate.
    pub fn build<B>(self) -> Result<Forward<B>, ConfigError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let invalid = |message: String| ConfigError::Invalid {
            setting: "upstream",
            message,
        };
        let uri: Uri = self
            .upstream
            .parse()
            .map_err(|e| invalid(format!("{}: {e}", self.upstream)))?;
        let scheme = uri
            .scheme()
            .filter(|s| **s == Scheme::HTTP || **s == Scheme::HTTPS)
            .cloned()
            .ok_or_else(|| invalid(format!("{}: not an http:// or https:// URL", self.upstream)))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid(format!("{}: no host", self.upstream)))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(format!(
                "{}: an origin (scheme, host, port) without path or query",
                self.upstream
            )));
        }
        let connector = super::tls::connector(scheme == Scheme::HTTPS, self.ca_pem.as_deref())?;
        let fetcher = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(2)
            .build(connector.clone());
        let upstream_host =
            HeaderValue::from_str(authority.as_str()).expect("an authority is a header value");
        let upstream = Arc::new(Upstream {
            upstream_host,
            preserve_host: self.preserve_host,
            scheme,
            authority,
            response_timeout: self.response_timeout,
            fetcher,
        });
        let pool = Arc::new(Pool::new(
            connector,
            upstream.upstream_uri(PathAndQuery::from_static("/")),
            self.max_idle_per_host,
        ));
        Ok(Forward {
            connection: Arc::new(ClientConnection::new(&pool, None)),
            inner: Arc::new(Inner {
                pool,
                upstream,
                discovery: None,
            }),
        })
    }
}

impl fmt::Debug for ForwardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardBuilder")
            .field("upstream", &self.upstream)
            .field("response_timeout", &self.response_timeout)
            .field("private_ca", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// The upstream origin and the proxy's own client to it.
pub(crate) struct Upstream {
    /// The upstream's authority as a `Host` value: for every forwarded request when the
    /// client's is not kept, else for a request that has none (HTTP/1.0).
    pub(crate) upstream_host: HeaderValue,
    pub(crate) preserve_host: bool,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    pub(crate) response_timeout: Duration,
    /// The proxy's own requests (discovery), on a pool of their own: they have no client body.
    pub(crate) fetcher: Client<Connector, Empty<Bytes>>,
}

impl Upstream {
    /// The upstream URI of `path_and_query`.
    pub(crate) fn upstream_uri(&self, path_and_query: PathAndQuery) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).expect("scheme, authority and path are all set")
    }
}

/// A tower `Service` that forwards every request to one upstream origin and streams the response
/// back: a reverse proxy (RFC 9110 §7.6) as the inner service of a
/// [`ParLayer`](crate::ParLayer), so that an existing authorization server, in any language,
/// gets PAR without a change.
///
/// * Bodies stream both ways, frame by frame; nothing is buffered.
/// * Hop-by-hop fields (`Connection` and the fields it names, `Keep-Alive`, `TE`, `Trailer`,
///   `Transfer-Encoding`, `Upgrade`, `Proxy-*`) are removed in both directions; `Host` is kept
///   (unless [`ForwardBuilder::preserve_host`] says otherwise), because servers build their
///   absolute URLs from it; `X-Forwarded-For`,
///   `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` (RFC 7239) are appended to any
///   chain the request carries. Every other field, every `Set-Cookie` line, and redirects pass
///   unchanged.
/// * Connections to the upstream are kept alive: each client connection keeps the upstream
///   connection its first request took, and hands it back to the idle ones when it closes.
///   `https://` upstreams use rustls with the system's roots and an optional private CA.
/// * An upstream that cannot be reached is `502`; one whose response head does not come within
///   [`ForwardBuilder::response_timeout`] is `504`. Both have a short plain-text body.
///
/// Its errors are `Infallible`: every failure is a response.
///
/// ```no_run
/// use std::time::Duration;
/// use hyper::body::Incoming;
/// use tower::Layer as _;
/// use tower_par::{proxy::Forward, server, ParLayer, RequestBody, StaticClients};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let par = ParLayer::builder()
///     .issuer("https://as.example.com")
///     .par_path("/par")
///     .authorize_path("/oauth2/authorize")
///     .clients(StaticClients::from_json_file("clients.json")?)
///     // Across HTTP the upstream cannot read the layer's extension: a request too long for a
///     // URI goes to it as a POST form.
///     .long_requests_as_post(true)
///     .build()?;
/// let forward: Forward<RequestBody<Incoming>> = Forward::builder("http://127.0.0.1:8080")
///     .response_timeout(Duration::from_secs(30))
///     .build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
/// server::serve_with(
///     listener,
///     move |peer| par.layer(forward.for_peer(peer)),
///     server::ServeConfig::default(),
///     server::shutdown_signal(),
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub struct Forward<B> {
    // Two reference counts a clone: `server::serve` clones the service for every connection,
    // hyper-util's `TowerToHyperService` for every request.
    inner: Arc<Inner<B>>,
    connection: Arc<ClientConnection<B>>,
}

struct Inner<B> {
    pool: Arc<Pool<B>>,
    upstream: Arc<Upstream>,
    discovery: Option<Arc<discovery::Discovery>>,
}

/// What belongs to one client connection: its address and its upstream connection.
struct ClientConnection<B> {
    peer: Peer,
    upstream: Kept<B>,
}

impl<B> ClientConnection<B> {
    fn new(pool: &Arc<Pool<B>>, peer: Option<SocketAddr>) -> Self {
        Self {
            peer: Peer::new(peer),
            upstream: Kept::new(Arc::clone(pool)),
        }
    }
}

impl<B> Clone for Forward<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            connection: Arc::clone(&self.connection),
        }
    }
}

impl Forward<()> {
    /// Starts a forwarder to `upstream`, an `http://` or `https://` origin such as
    /// `http://127.0.0.1:8080`.
    pub fn builder(upstream: impl Into<String>) -> ForwardBuilder {
        ForwardBuilder {
            upstream: upstream.into(),
            response_timeout: Duration::from_secs(30),
            ca_pem: None,
            max_idle_per_host: 256,
            preserve_host: true,
        }
    }
}

impl<B> Forward<B> {
    /// A clone for the connection from `peer`: its address goes into `X-Forwarded-For` and
    /// `Forwarded`, and its requests go to the upstream on one keep-alive connection of their
    /// own. Without it every clone shares one address (`for=unknown`) and one kept connection
    /// (concurrent requests each take another).
    #[must_use]
    pub fn for_peer(&self, peer: SocketAddr) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            connection: Arc::new(ClientConnection::new(&self.inner.pool, Some(peer))),
        }
    }

    /// Answers `GET /.well-known/openid-configuration` and
    /// `/.well-known/oauth-authorization-server` with the upstream's document, fetched with the
    /// `Host` of `layer`'s issuer, and the layer's members merged in (see
    /// [`merge_discovery`](super::merge_discovery) and [`par_members`](super::par_members)).
    #[must_use]
    pub fn merge_discovery(self, layer: &crate::ParLayer) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: Arc::clone(&self.inner.pool),
                upstream: Arc::clone(&self.inner.upstream),
                discovery: Some(Arc::new(discovery::Discovery::of(layer))),
            }),
            connection: self.connection,
        }
    }

    /// Fetches the upstream's discovery document as a client reaching it through the proxy at
    /// `public_host` would see it (`Host: public_host`): `/.well-known/openid-configuration`,
    /// or `/.well-known/oauth-authorization-server` when the first is not found.
    ///
    /// # Errors
    ///
    /// The upstream cannot be reached, does not answer in time, or has no such JSON document.
    pub async fn upstream_discovery(
        &self,
        public_host: &str,
    ) -> Result<Map<String, Value>, discovery::DiscoveryError> {
        discovery::fetch(&self.inner.upstream, public_host).await
    }

    fn prepare(&self, parts: &mut http::request::Parts) {
        let upstream = &self.inner.upstream;
        // The upstream gets the origin form (RFC 9112 §3.2.1); a client that sent the absolute
        // form named the host in it, and that host replaces any `Host` field (§3.2.2).
        if let Some(authority) = parts.uri.authority() {
            if upstream.preserve_host {
                // Host is host[:port]: never the userinfo an authority may carry.
                let host = match authority.port() {
                    Some(port) => HeaderValue::from_str(&format!("{}:{port}", authority.host())),
                    None => HeaderValue::from_str(authority.host()),
                };
                if let Ok(host) = host {
                    parts.headers.insert(header::HOST, host);
                }
            }
            let path_and_query = std::mem::take(&mut parts.uri)
                .into_parts()
                .path_and_query
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            parts.uri = Uri::from(path_and_query);
        }
        // Keep-alive to the upstream whatever the client spoke.
        parts.version = Version::HTTP_11;
        remove_hop_by_hop(&mut parts.headers);
        self.connection
            .peer
            .append_forwarded(&mut parts.headers, "http");
        if !upstream.preserve_host || !parts.headers.contains_key(header::HOST) {
            parts
                .headers
                .insert(header::HOST, upstream.upstream_host.clone());
        }
    }
}

impl<B> Service<Request<B>> for Forward<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ForwardFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The pool opens connections on demand; there is nothing to wait for.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ForwardFuture {
        let (mut parts, body) = req.into_parts();
        if let Some(merge) = &self.inner.discovery {
            if parts.method == Method::GET && discovery::is_well_known(parts.uri.path()) {
                let path = parts.uri.path().to_owned();
                let merge = Arc::clone(merge);
                self.prepare(&mut parts);
                let upstream = Arc::clone(&self.inner.upstream);
                return ForwardFuture::boxed(Box::pin(async move {
                    discovery::merged(&upstream, &path, parts.headers, &merge).await
                }));
            }
        }
        self.prepare(&mut parts);
        let connection = Arc::clone(&self.connection);
        let response_timeout = self.inner.upstream.response_timeout;
        ForwardFuture::boxed(Box::pin(async move {
            let request = Request::from_parts(parts, body);
            match tokio::time::timeout(response_timeout, connection.upstream.send(request)).await {
                Ok(Ok(response)) => from_upstream(response),
                Ok(Err(err)) => bad_gateway(&ErrorChain(&*err)),
                Err(_elapsed) => gateway_timeout(),
            }
        }))
    }
}

impl<B> fmt::Debug for Forward<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let upstream = &self.inner.upstream;
        f.debug_struct("Forward")
            .field("scheme", &upstream.scheme)
            .field("authority", &upstream.authority)
            .field("response_timeout", &upstream.response_timeout)
            .field("merges_discovery", &self.inner.discovery.is_some())
            .finish_non_exhaustive()
    }
}

type BoxedResponse = Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;

/// Response future of [`Forward`]: the upstream's response head, or `502`/`504`.
///
/// Boxed: hyper's `send_request` future has no name to store it under.
pub struct ForwardFuture {
    future: BoxedResponse,
}

impl ForwardFuture {
    fn boxed(future: BoxedResponse) -> Self {
        Self { future }
    }
}

impl Future for ForwardFuture {
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for ForwardFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardFuture").finish_non_exhaustive()
    }
}

fn from_upstream(response: Response<hyper::body::Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, ProxyBody::upstream(body))
}

pub(crate) fn bad_gateway(why: &dyn fmt::Display) -> Response<ProxyBody> {
    tracing::warn!(error = %why, "upstream unreachable: 502");
    short_answer(
        StatusCode::BAD_GATEWAY,
        "502 Bad Gateway: the upstream server cannot be reached\n",
    )
}

pub(crate) fn gateway_timeout() -> Response<ProxyBody> {
    tracing::warn!("upstream response head timed out: 504");
    short_answer(
        StatusCode::GATEWAY_TIMEOUT,
        "504 Gateway Timeout: the upstream server did not answer in time\n",
    )
}

fn short_answer(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::from_static(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Displays an error with its sources: hyper-util's "client error (Connect)" alone says little.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
