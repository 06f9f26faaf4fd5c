//! `par-proxy`'s command line, start-up and serving loop, as library code.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use hyper::body::Incoming;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tower_layer::Layer as _;

use super::{discovery::origin_and_host, forward::Forward};
use crate::{
    server::{self, CommonFlags, FlagError, ServeConfig},
    ParLayer, RequestBody,
};

/// How long start-up waits for the upstream's discovery document when it needs it.
const DISCOVERY_WAIT: Duration = Duration::from_secs(30);
const DISCOVERY_RETRY: Duration = Duration::from_millis(500);
/// With `--authorize-path`, discovery is only asked once, this long, at start.
const ONE_TRY: Duration = Duration::from_secs(5);

/// The flags of `par-proxy`: the [`CommonFlags`] of the reference binaries plus the upstream.
///
/// ```
/// use std::time::Duration;
/// use tower_par::proxy::ProxyFlags;
///
/// let args = ["--upstream", "http://127.0.0.1:8080", "--issuer", "https://as.example.com",
///             "--clients", "clients.json", "--upstream-timeout", "5"];
/// let flags = ProxyFlags::parse(args.into_iter().map(String::from)).unwrap();
/// assert_eq!(flags.par_path, "/par");
/// assert_eq!(flags.upstream_timeout, Duration::from_secs(5));
/// assert_eq!(flags.common.listen.to_string(), "127.0.0.1:4000");
///
/// let err = ProxyFlags::parse(["--issuer", "https://as.example.com"].into_iter().map(String::from)).unwrap_err();
/// assert!(err.to_string().starts_with("--upstream is required"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProxyFlags {
    /// `--listen` (default 127.0.0.1:4000) and the other flags par-proxy shares with par_server
    /// (`--clients`, `--issuer`, `--store`, `--metrics`, …: [`CommonFlags::USAGE`]).
    pub common: CommonFlags,
    /// `--upstream URL`: the existing server's origin.
    pub upstream: String,
    /// `--par-path PATH` (default `/par`).
    pub par_path: String,
    /// `--authorize-path PATH`; `None`: the path of the upstream's `authorization_endpoint`.
    pub authorize_path: Option<String>,
    /// `--upstream-timeout SECS`: the response-head timeout (default 30).
    pub upstream_timeout: Duration,
    /// `--upstream-ca PATH`: a PEM file of CA certificates to trust for an `https://` upstream.
    pub upstream_ca: Option<PathBuf>,
}

impl ProxyFlags {
    /// The usage text: the upstream flags, then [`CommonFlags::USAGE`].
    #[must_use]
    pub fn usage() -> String {
        format!(
            "usage: par-proxy --upstream URL --issuer URL --clients PATH [--par-path PATH] \
[--authorize-path PATH] [--upstream-timeout SECS] [--upstream-ca PATH] {}",
            CommonFlags::USAGE
        )
    }

    /// Reads the command line (without the program name).
    ///
    /// # Errors
    ///
    /// An unknown flag, a flag without its value, a value that cannot be used, or a required
    /// flag (`--upstream`, `--issuer`, `--clients`) missing. The message ends with the usage.
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, FlagError> {
        let with_usage = |message: String| FlagError::new(format!("{message}\n{}", Self::usage()));
        let mut common = CommonFlags::new(SocketAddr::from(([127, 0, 0, 1], 4000)));
        let mut upstream = None;
        let mut par_path = "/par".to_owned();
        let mut authorize_path = None;
        let mut upstream_timeout = Duration::from_secs(30);
        let mut upstream_ca = None;
        while let Some(flag) = args.next() {
            if common
                .parse_flag(&flag, &mut args)
                .map_err(|e| with_usage(e.to_string()))?
            {
                continue;
            }
            if flag == "--help" || flag == "-h" {
                return Err(FlagError::new(Self::usage()));
            }
            if !matches!(
                flag.as_str(),
                "--upstream"
                    | "--par-path"
                    | "--authorize-path"
                    | "--upstream-timeout"
                    | "--upstream-ca"
            ) {
                return Err(with_usage(format!("unknown flag {flag}")));
            }
            let value = args
                .next()
                .ok_or_else(|| with_usage(format!("{flag} needs a value")))?;
            let bad = |what: &str| with_usage(format!("{flag} {value}: {what}"));
            match flag.as_str() {
                "--upstream" => {
                    if !(value.starts_with("http://") || value.starts_with("https://")) {
                        return Err(bad("expected an http:// or https:// URL"));
                    }
                    upstream = Some(value);
                }
                "--par-path" | "--authorize-path" => {
                    if !value.starts_with('/') || value.contains(['?', '#']) {
                        return Err(bad("expected an absolute path such as /par"));
                    }
                    if flag == "--par-path" {
                        par_path = value;
                    } else {
                        authorize_path = Some(value);
                    }
                }
                "--upstream-timeout" => {
                    upstream_timeout = value
                        .parse()
                        .ok()
                        .filter(|&secs: &u64| secs > 0)
                        .map(Duration::from_secs)
                        .ok_or_else(|| bad("not a positive number of seconds"))?;
                }
                _ => upstream_ca = Some(PathBuf::from(value)),
            }
        }
        let upstream = upstream.ok_or_else(|| with_usage("--upstream is required".into()))?;
        if common.issuer.is_none() {
            return Err(with_usage("--issuer is required".into()));
        }
        if common.clients.is_none() {
            return Err(with_usage("--clients is required".into()));
        }
        Ok(Self {
            common,
            upstream,
            par_path,
            authorize_path,
            upstream_timeout,
            upstream_ca,
        })
    }

    /// Loads the clients, reads the upstream's discovery document (retrying for up to 30 s when
    /// `--authorize-path` is not given, since its path comes from there), builds the layer,
    /// binds `--listen` and, with `--metrics`, starts the `/metrics` listener.
    ///
    /// # Errors
    ///
    /// Anything `par-proxy` exits with code 2 for: a bad clients file, CA file or upstream URL, an
    /// upstream whose discovery does not answer in 30 s when it is needed, an address that cannot
    /// be bound, a store that cannot be reached.
    pub async fn start(&self) -> Result<Proxy, FlagError> {
        let common = &self.common;
        let clients = common.load_clients("")?;
        let issuer = common
            .issuer
            .as_deref()
            .ok_or_else(|| FlagError::new("--issuer is required"))?
            .trim_end_matches('/')
            .to_owned();
        let (_, public_host) = origin_and_host(&issuer);
        if !(issuer.starts_with("http://") || issuer.starts_with("https://"))
            || public_host.is_empty()
        {
            return Err(FlagError::new(format!(
                "--issuer {issuer}: not an http(s) URL"
            )));
        }
        let mut builder =
            Forward::builder(self.upstream.clone()).response_timeout(self.upstream_timeout);
        if let Some(path) = &self.upstream_ca {
            let pem = std::fs::read(path)
                .map_err(|e| FlagError::new(format!("--upstream-ca {}: {e}", path.display())))?;
            builder = builder.upstream_ca_pem(pem);
        }
        let forward: Forward<RequestBody<Incoming>> = builder
            .build()
            .map_err(|e| FlagError::new(format!("--upstream {}: {e}", self.upstream)))?;
        let (listener, _) = common.bind().await?;

        let (authorize_path, document) = match &self.authorize_path {
            None => {
                let document = wait_for_discovery(&forward, &self.upstream, public_host).await?;
                let path = authorization_path(&document).ok_or_else(|| {
                    FlagError::new(format!(
                        "--upstream {}: the discovery document has no usable authorization_endpoint; give --authorize-path",
                        self.upstream
                    ))
                })?;
                (path, Some(document))
            }
            // Only to learn whether the upstream takes request objects: one short try, not fatal.
            Some(path) => {
                let attempt =
                    tokio::time::timeout(ONE_TRY, forward.upstream_discovery(public_host)).await;
                let document = match attempt {
                    Ok(Ok(document)) => Some(document),
                    Ok(Err(err)) => {
                        eprintln!(
                            "par-proxy: warning: {err}; signed request objects are not forwarded"
                        );
                        None
                    }
                    Err(_) => {
                        eprintln!(
                            "par-proxy: warning: no upstream discovery document within {ONE_TRY:?}; signed request objects are not forwarded"
                        );
                        None
                    }
                };
                (path.clone(), document)
            }
        };
        if let Some(theirs) = document
            .as_ref()
            .and_then(|d| d.get("issuer"))
            .and_then(Value::as_str)
        {
            if theirs.trim_end_matches('/') != issuer {
                eprintln!(
                    "par-proxy: warning: the upstream names its issuer {theirs}, not --issuer {issuer}; configure it with the proxy's public URL"
                );
            }
        }
        let forward_request_objects = document
            .as_ref()
            .and_then(|d| d.get("request_parameter_supported"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let layer = common
            .layer_builder(&issuer, clients)
            .await?
            .par_path(self.par_path.as_str())
            .authorize_path(authorize_path)
            .forward_request_objects(forward_request_objects)
            .long_requests_as_post(true)
            .build()
            .map_err(|e| FlagError::new(e.to_string()))?;
        let forward = forward.merge_discovery(&layer);
        let metrics = common.start_metrics(&layer).await?;
        Ok(Proxy {
            listener,
            layer,
            forward,
            config: common.serve_config(),
            metrics,
        })
    }
}

/// The path of the document's `authorization_endpoint`.
fn authorization_path(document: &Map<String, Value>) -> Option<String> {
    let endpoint = document.get("authorization_endpoint")?.as_str()?;
    let uri: http::Uri = endpoint.parse().ok()?;
    let path = uri.path();
    path.starts_with('/').then(|| path.to_owned())
}

async fn wait_for_discovery(
    forward: &Forward<RequestBody<Incoming>>,
    upstream: &str,
    public_host: &str,
) -> Result<Map<String, Value>, FlagError> {
    let deadline = Instant::now() + DISCOVERY_WAIT;
    loop {
        let attempt = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            forward.upstream_discovery(public_host),
        )
        .await;
        let err = match attempt {
            Ok(Ok(document)) => return Ok(document),
            Ok(Err(err)) => err.to_string(),
            Err(_) => "no answer".to_owned(),
        };
        if Instant::now() + DISCOVERY_RETRY >= deadline {
            return Err(FlagError::new(format!(
                "--upstream {upstream}: no discovery document after {}s ({err}); the authorization endpoint's path comes from it (or give --authorize-path)",
                DISCOVERY_WAIT.as_secs()
            )));
        }
        tracing::info!(error = %err, "upstream discovery not available yet; retrying");
        tokio::time::sleep(DISCOVERY_RETRY).await;
    }
}

/// A started proxy: bound, configured, ready to [`serve`](Proxy::serve).
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    layer: ParLayer,
    forward: Forward<RequestBody<Incoming>>,
    config: ServeConfig,
    metrics: Option<SocketAddr>,
}

impl Proxy {
    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served, when `--metrics` was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// Serves until `shutdown` resolves (see [`server::serve_with`]).
    ///
    /// # Errors
    ///
    /// As [`server::serve_with`].
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Self {
            listener,
            layer,
            forward,
            config,
            metrics: _,
        } = self;
        server::serve_with(
            listener,
            move |peer| layer.layer(forward.for_peer(peer)),
            config,
            shutdown,
        )
        .await
    }
}
