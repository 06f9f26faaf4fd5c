//! [`ParLayer`] and its builder.

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use tower_layer::Layer;

use crate::{
    clock::{Clock, SystemClock},
    error::{ConfigError, ErrorResponder, OAuthError},
    service::ParService,
    shares::{Shares, DEFAULT_CLIENT_SHARE, DEFAULT_PUBLIC_CLIENTS_SHARE},
    store::{MemoryStore, ParStore, StoreLimits},
    timer::{default_timer, Timer},
    ClientRegistry,
};

/// How often a push tries a fresh handle when a partitioned store (see
/// [`StoreLimits::partitions`]) is full: a full partition may not be a full store.
const MAX_PUT_ATTEMPTS: u32 = 3;

/// Whether public clients, every client, or no client must use PKCE (RFC 7636) with `response_type=code`.
///
/// ```
/// use tower_par::{ParLayer, PkceRequirement, StaticClients};
///
/// let layer = ParLayer::builder()
///     .issuer("https://as.example.com")
///     .clients(StaticClients::default())
///     .pkce(PkceRequirement::AllClients)
///     .build()
///     .unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkceRequirement {
    /// Public clients (`none`) must send `code_challenge` (the default; RFC 9700 §2.1.1).
    #[default]
    PublicClients,
    /// Every client must send `code_challenge` (FAPI 2.0, OAuth 2.1).
    AllClients,
    /// PKCE is checked when sent, never required.
    Optional,
}

/// When a `request_uri` is used up.
///
/// | mode | a reload or login round-trip before completion | choose it when |
/// |---|---|---|
/// | [`Strict`](Consumption::Strict) (default) | fails: the first hit consumed the handle | the authorize handler completes in one request (PingOne behaviour, RFC 9126 §7.3) |
/// | [`AtCompletion`](Consumption::AtCompletion) | succeeds until the authorization response is produced | the handler shows login/consent pages that come back to `/authorize` (FAPI 2.0 §5.3.2.2 note 3) |
///
/// ```
/// use std::time::Duration;
/// use tower_par::{Consumption, ParLayer, StaticClients};
///
/// let layer = ParLayer::builder()
///     .issuer("https://as.example.com")
///     .clients(StaticClients::default())
///     .consumption(Consumption::AtCompletion { window: Duration::from_secs(900) })
///     .build()
///     .unwrap();
/// assert_eq!(Consumption::at_completion(), Consumption::AtCompletion { window: Duration::from_secs(600) });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Consumption {
    /// Atomic take at the first authorization-endpoint hit.
    #[default]
    Strict,
    /// The first hit must come within `expires_in`; from then on the same client may load the same
    /// `request_uri` again for `window`. The handle is consumed atomically when the inner service
    /// answers with the authorization response (any redirect to the pushed `redirect_uri`,
    /// whatever it carries), or when the inner service calls
    /// [`Completion::complete`](crate::Completion::complete) (`form_post` and other answers that
    /// are not a redirect must).
    AtCompletion {
        /// How long the handle stays loadable after its first use.
        window: Duration,
    },
}

impl Consumption {
    /// [`Consumption::AtCompletion`] with the default window of 10 minutes.
    #[must_use]
    pub const fn at_completion() -> Self {
        Self::AtCompletion {
            window: Duration::from_secs(600),
        }
    }
}

/// The layer's settings, shared by every clone of the service.
pub(crate) struct Config {
    pub(crate) par_path: Box<str>,
    pub(crate) authorize_path: Box<str>,
    pub(crate) issuer: Arc<str>,
    pub(crate) realm: Arc<str>,
    pub(crate) par_endpoint: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) clients: Arc<dyn ClientRegistry>,
    pub(crate) store: Arc<dyn ParStore>,
    /// What each push is charged to.
    pub(crate) shares: Shares,
    /// How many handles a push may try (1 unless the store is partitioned).
    pub(crate) put_attempts: u32,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) default_lifetime: Duration,
    pub(crate) max_body: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) max_drain: u64,
    pub(crate) drain_timeout: Duration,
    pub(crate) timer: Arc<dyn Timer>,
    pub(crate) require_par: bool,
    pub(crate) pkce: PkceRequirement,
    pub(crate) allow_plain_pkce: bool,
    pub(crate) consumption: Consumption,
    pub(crate) error_responder: Option<ErrorResponder>,
    pub(crate) metadata: Option<Bytes>,
    pub(crate) long_requests_as_post: bool,
    #[cfg(feature = "jwt")]
    pub(crate) jwt: crate::client::JwtSettings,
    #[cfg(feature = "jwt")]
    pub(crate) forward_request_objects: bool,
    /// Whether the counters carry a `client_id` label (`crate::metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics_client_id_label: bool,
}

impl Config {
    /// The error page of a refusal at the authorization endpoint that is not a redemption's,
    /// with its one log event.
    pub(crate) fn error_page(&self, err: &OAuthError) -> http::Response<Bytes> {
        crate::outcome::authorize_refused(err);
        self.render_error_page(err)
    }

    /// The error page of the authorization endpoint, for a refusal already logged.
    pub(crate) fn render_error_page(&self, err: &OAuthError) -> http::Response<Bytes> {
        match &self.error_responder {
            Some(responder) => {
                let mut response = responder(err);
                // What the protocol needs whatever the page looks like.
                err.protocol_headers(response.headers_mut());
                response.extensions_mut().insert(err.clone());
                response
            }
            None => err.to_response(),
        }
    }
}

/// Adds RFC 9126 Pushed Authorization Requests in front of an authorization endpoint.
///
/// The layer owns the PAR endpoint, swaps `client_id` + `request_uri` for the pushed parameters
/// at the authorization endpoint, and passes every other request straight through.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use tower_par::{MemoryStore, ParLayer, StaticClients};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// async fn authorize() -> &'static str { "the existing authorization endpoint" }
///
/// let par = ParLayer::builder()
///     .par_path("/as/par")
///     .authorize_path("/as/authorize")
///     .issuer("https://as.example.com")
///     .clients(StaticClients::from_json_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/clients.json"))?)
///     .store(MemoryStore::with_capacity(1_000_000))
///     .default_lifetime(Duration::from_secs(60))
///     .build()?;
/// let app: Router = Router::new().route("/as/authorize", get(authorize).post(authorize)).layer(par);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ParLayer {
    config: Arc<Config>,
}

impl ParLayer {
    /// Starts the configuration.
    pub fn builder() -> ParLayerBuilder {
        ParLayerBuilder::default()
    }

    pub(crate) const fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The issuer identifier, without a trailing slash (for the `iss` authorization response
    /// parameter, RFC 9207).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The public URL of the PAR endpoint: what metadata advertises, DPoP proofs name as `htu`,
    /// and client assertions may name as `aud`.
    #[must_use]
    pub fn par_endpoint(&self) -> &str {
        &self.config.par_endpoint
    }

    /// The public URL of the authorization endpoint.
    #[must_use]
    pub fn authorization_endpoint(&self) -> &str {
        &self.config.authorization_endpoint
    }
}

impl<S> Layer<S> for ParLayer {
    type Service = ParService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ParService::new(inner, Arc::clone(&self.config))
    }
}

impl fmt::Debug for ParLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParLayer")
            .field("par_path", &self.config.par_path)
            .field("authorize_path", &self.config.authorize_path)
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ParLayer`]; [`ParLayerBuilder::build`] checks the settings.
///
/// ```
/// use std::time::Duration;
/// use tower_par::{ParLayer, StaticClients};
///
/// let err = ParLayer::builder()
///     .issuer("https://as.example.com")
///     .clients(StaticClients::default())
///     .default_lifetime(Duration::from_secs(601))
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("1-600"));
/// ```
#[must_use]
pub struct ParLayerBuilder {
    par_path: String,
    authorize_path: String,
    issuer: Option<String>,
    par_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
    clients: Option<Arc<dyn ClientRegistry>>,
    store: Option<Arc<dyn ParStore>>,
    client_share: f64,
    public_clients_share: f64,
    clock: Arc<dyn Clock>,
    default_lifetime: Duration,
    max_body: usize,
    body_timeout: Duration,
    max_drain: u64,
    drain_timeout: Duration,
    timer: Option<Arc<dyn Timer>>,
    require_par: bool,
    pkce: PkceRequirement,
    allow_plain_pkce: bool,
    consumption: Consumption,
    error_responder: Option<ErrorResponder>,
    metadata: Option<serde_json::Value>,
    long_requests_as_post: bool,
    #[cfg(feature = "jwt")]
    jwt: crate::client::JwtSettings,
    #[cfg(feature = "jwt")]
    forward_request_objects: bool,
    #[cfg(feature = "metrics")]
    metrics_client_id_label: bool,
}

impl Default for ParLayerBuilder {
    fn default() -> Self {
        Self {
            par_path: "/as/par".into(),
            authorize_path: "/as/authorize".into(),
            issuer: None,
            par_endpoint: None,
            authorization_endpoint: None,
            clients: None,
            store: None,
            client_share: DEFAULT_CLIENT_SHARE,
            public_clients_share: DEFAULT_PUBLIC_CLIENTS_SHARE,
            clock: Arc::new(SystemClock),
            default_lifetime: Duration::from_secs(60),
            max_body: 1024 * 1024,
            body_timeout: ParLayerBuilder::DEFAULT_BODY_TIMEOUT,
            max_drain: ParLayerBuilder::DEFAULT_MAX_DRAIN_BYTES,
            drain_timeout: ParLayerBuilder::DEFAULT_DRAIN_TIMEOUT,
            timer: None,
            require_par: false,
            pkce: PkceRequirement::default(),
            allow_plain_pkce: false,
            consumption: Consumption::Strict,
            error_responder: None,
            metadata: None,
            long_requests_as_post: false,
            #[cfg(feature = "jwt")]
            jwt: crate::client::JwtSettings::default(),
            #[cfg(feature = "jwt")]
            forward_request_objects: false,
            #[cfg(feature = "metrics")]
            metrics_client_id_label: false,
        }
    }
}

impl ParLayerBuilder {
    /// Default [`ParLayerBuilder::body_timeout`]: 10 s.
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`ParLayerBuilder::max_drain_bytes`]: 4 MiB.
    pub const DEFAULT_MAX_DRAIN_BYTES: u64 = 4 * 1024 * 1024;
    /// Default [`ParLayerBuilder::drain_timeout`]: 5 s.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

    /// The path of the PAR endpoint the layer owns (default `/as/par`).
    pub fn par_path(mut self, path: impl Into<String>) -> Self {
        self.par_path = path.into();
        self
    }

    /// The path of the inner service's authorization endpoint (default `/as/authorize`).
    pub fn authorize_path(mut self, path: impl Into<String>) -> Self {
        self.authorize_path = path.into();
        self
    }

    /// The issuer identifier (required): an `https` (or, for development, `http`) URL without
    /// query or fragment, with or without a path. Handles are bound to it. Unless set
    /// explicitly, the endpoint URLs are its **origin** (scheme and host) plus the paths the layer
    /// matches: issuer `https://as.example.com/tenant-a` with `par_path("/tenant-a/as/par")`
    /// advertises `https://as.example.com/tenant-a/as/par`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The public URL of the PAR endpoint, when it is not the issuer's origin plus `par_path`:
    /// behind a proxy that strips a prefix, or with the layer inside `Router::nest_service`.
    /// Metadata advertises it, DPoP proofs must name it as `htu`, and client assertions may name
    /// it as `aud`.
    ///
    /// ```
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// // A proxy serves https://as.example.com/auth/… and forwards /as/par to the layer.
    /// let layer = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .par_endpoint("https://as.example.com/auth/as/par")
    ///     .authorization_endpoint("https://as.example.com/auth/as/authorize")
    ///     .clients(StaticClients::default())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(layer.par_endpoint(), "https://as.example.com/auth/as/par");
    /// assert_eq!(layer.metadata()["pushed_authorization_request_endpoint"], "https://as.example.com/auth/as/par");
    /// ```
    pub fn par_endpoint(mut self, url: impl Into<String>) -> Self {
        self.par_endpoint = Some(url.into());
        self
    }

    /// The public URL of the authorization endpoint, when it is not the issuer's origin plus
    /// `authorize_path` (see [`ParLayerBuilder::par_endpoint`]). Served metadata advertises it.
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.authorization_endpoint = Some(url.into());
        self
    }

    /// The client registry (required).
    pub fn clients(mut self, clients: impl ClientRegistry) -> Self {
        self.clients = Some(Arc::new(clients));
        self
    }

    /// The store (default: a [`MemoryStore`] with the default [`StoreLimits`]: 1,000,000
    /// entries, 256 MiB).
    pub fn store(mut self, store: impl ParStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The fraction of the store's entries and bytes one client may hold at once (default 0.5;
    /// more than 0, at most 1). A push past it is answered `429 temporarily_unavailable`. A
    /// client's own `par_max_outstanding` / `par_max_outstanding_bytes` replace it.
    ///
    /// At 0.5 or less, one client, however it floods, leaves at least half of the store to the
    /// others.
    ///
    /// ```
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// let layer = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .clients(StaticClients::default())
    ///     .client_share(0.1)
    ///     .public_clients_share(0.05)
    ///     .build()
    ///     .unwrap();
    /// ```
    pub const fn client_share(mut self, fraction: f64) -> Self {
        self.client_share = fraction;
        self
    }

    /// The fraction of the store's entries and bytes all public clients (`auth_method` `none`)
    /// may hold together (default 0.25; more than 0, at most 1). Anyone can push as a public
    /// client, so this bounds what strangers can take: at 0.25, a flood through any number of
    /// public clients leaves three quarters of the store to confidential clients.
    pub const fn public_clients_share(mut self, fraction: f64) -> Self {
        self.public_clients_share = fraction;
        self
    }

    /// The clock (default: the system clock). Tests use a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The `request_uri` lifetime of clients without their own (default 60 s; 1–600 whole seconds).
    pub const fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// The largest PAR (and POST authorization) body accepted, in bytes (default 1 MiB, 1,048,576).
    pub const fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body = limit;
        self
    }

    /// How long a PAR body (or a POST authorization form) may take to arrive once the layer waits
    /// for it (default 10 s, [`DEFAULT_BODY_TIMEOUT`](Self::DEFAULT_BODY_TIMEOUT)). Past it the
    /// layer answers `408 Request Timeout` with an RFC 6749 §5.2 error and `Connection: close`,
    /// so a client that trickles its body cannot hold the endpoint. Must be positive; needs a
    /// [`timer`](Self::timer).
    pub const fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The largest body the layer reads to its end, and discards, before it refuses a request
    /// whose body it will not use (over `max_body_bytes`, or refused on its head alone); default
    /// 4 MiB ([`DEFAULT_MAX_DRAIN_BYTES`](Self::DEFAULT_MAX_DRAIN_BYTES)).
    ///
    /// A server that answers while the client is still sending, and then closes, makes the
    /// client's kernel reset the connection, and the answer can be lost with it. After a drain
    /// the answer arrives and the connection stays open. A body declared larger than this
    /// (or one that turns out larger, or is still arriving after
    /// [`drain_timeout`](Self::drain_timeout)) is refused at once with `Connection: close`;
    /// `tower_par::server::serve` (feature `server`) then lingers on the connection so that
    /// the client still reads the answer. Drained bytes are never kept; `0` turns the drain off.
    pub const fn max_drain_bytes(mut self, bytes: u64) -> Self {
        self.max_drain = bytes;
        self
    }

    /// How long the drain of [`max_drain_bytes`](Self::max_drain_bytes) may take (default 5 s,
    /// [`DEFAULT_DRAIN_TIMEOUT`](Self::DEFAULT_DRAIN_TIMEOUT)).
    pub const fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The timer of [`body_timeout`](Self::body_timeout) and
    /// [`drain_timeout`](Self::drain_timeout). Default: `TokioTimer` with the `tokio` feature;
    /// without that feature there is none, and [`build`](Self::build) refuses to build until one
    /// is set.
    pub fn timer(mut self, timer: impl Timer) -> Self {
        self.timer = Some(Arc::new(timer));
        self
    }

    /// Requires every client to push its authorization requests (RFC 9126 §5).
    pub const fn require_par(mut self, required: bool) -> Self {
        self.require_par = required;
        self
    }

    /// Who must use PKCE (default: public clients).
    pub const fn pkce(mut self, requirement: PkceRequirement) -> Self {
        self.pkce = requirement;
        self
    }

    /// Accepts `code_challenge_method=plain` (default: only `S256`).
    pub const fn allow_plain_pkce(mut self, allow: bool) -> Self {
        self.allow_plain_pkce = allow;
        self
    }

    /// When a `request_uri` is consumed (default [`Consumption::Strict`]).
    pub const fn consumption(mut self, consumption: Consumption) -> Self {
        self.consumption = consumption;
        self
    }

    /// Renders the authorization endpoint's error pages (default: the OAuth JSON error).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_par::ParLayer;
    ///
    /// let builder = ParLayer::builder().authorize_error_responder(|err| {
    ///     http::Response::builder()
    ///         .status(err.status())
    ///         .header("content-type", "text/html; charset=utf-8")
    ///         .body(Bytes::from(format!("<h1>Sign-in failed</h1><p>{}</p>", err.code())))
    ///         .unwrap()
    /// });
    /// ```
    pub fn authorize_error_responder(
        mut self,
        responder: impl Fn(&OAuthError) -> http::Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.error_responder = Some(Arc::new(responder));
        self
    }

    /// Serves discovery metadata at `/.well-known/oauth-authorization-server` and
    /// `/.well-known/openid-configuration`: `document` (the host's own members) merged with the
    /// layer's PAR members (see [`ParLayer::metadata`]). The documents are public:
    /// `Access-Control-Allow-Origin: *`.
    pub fn serve_metadata(mut self, document: serde_json::Value) -> Self {
        self.metadata = Some(document);
        self
    }

    /// Hands a redeemed GET whose rebuilt query would pass the 64 KiB limit of an `http::Uri` to
    /// the inner service as a POST form instead (default off: the query then carries only
    /// `client_id`, and the [`PushedAuthorizationRequest`](crate::PushedAuthorizationRequest)
    /// extension the whole request). For an inner service that cannot read extensions, such as an
    /// authorization server behind `par-proxy`, which turns this on. Authorization endpoints
    /// accept POST forms (OIDC Core §3.1.2.1, RFC 6749 §3.1).
    ///
    /// ```
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// let par = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .clients(StaticClients::default())
    ///     .long_requests_as_post(true)
    ///     .build()
    ///     .unwrap();
    /// ```
    pub const fn long_requests_as_post(mut self, as_post: bool) -> Self {
        self.long_requests_as_post = as_post;
        self
    }

    /// Settings for signed JWTs at the PAR endpoint (feature `jwt`).
    #[cfg(feature = "jwt")]
    pub fn jwt(mut self, settings: crate::client::JwtSettings) -> Self {
        self.jwt = settings;
        self
    }

    /// Passes a pushed signed request object on (feature `jwt`; default off): the original JWT
    /// goes to the inner service as the `request` parameter of the rebuilt authorization request,
    /// next to the parameters unpacked from it (RFC 9101 §6.3), for an inner server that verifies
    /// request objects itself, or requires them. A client registered with
    /// [`forward_request_object(false)`](crate::client::ClientBuilder::forward_request_object) is
    /// exempt. Off, the JWT is verified at the PAR endpoint and never reaches the inner service.
    /// `par-proxy` turns it on when its upstream's discovery says
    /// `request_parameter_supported: true`.
    ///
    /// ```
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// let par = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .clients(StaticClients::default())
    ///     .forward_request_objects(true)
    ///     .build()
    ///     .unwrap();
    /// ```
    #[cfg(feature = "jwt")]
    pub const fn forward_request_objects(mut self, forward: bool) -> Self {
        self.forward_request_objects = forward;
        self
    }

    /// Labels the counters of [`tower_par::metrics`](crate::metrics) with the `client_id` of
    /// registered clients too (feature `metrics`; default off). One time series per client and
    /// outcome: turn it on only for a registry of bounded size. Each counted event then builds
    /// its metric key at run time (one allocation).
    ///
    /// ```
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// let layer = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .clients(StaticClients::default())
    ///     .metrics_client_id_label(true)
    ///     .build()
    ///     .unwrap();
    /// ```
    #[cfg(feature = "metrics")]
    pub const fn metrics_client_id_label(mut self, labelled: bool) -> Self {
        self.metrics_client_id_label = labelled;
        self
    }

    /// Checks the settings and builds the layer.
    pub fn build(self) -> Result<ParLayer, ConfigError> {
        let invalid =
            |setting: &'static str, message: String| ConfigError::Invalid { setting, message };
        let issuer = self
            .issuer
            .ok_or(ConfigError::Missing { setting: "issuer" })?;
        let issuer = issuer.trim_end_matches('/').to_owned();
        let origin = origin_of(&issuer).ok_or_else(|| {
            invalid(
                "issuer",
                format!("{issuer} is not an http(s) URL without query or fragment"),
            )
        })?;
        for (setting, path) in [
            ("par_path", &self.par_path),
            ("authorize_path", &self.authorize_path),
        ] {
            if !path.starts_with('/') || path.contains(['?', '#']) {
                return Err(invalid(setting, format!("{path} must be an absolute path")));
            }
        }
        if self.par_path == self.authorize_path {
            return Err(invalid(
                "par_path",
                "the PAR and authorization endpoints need different paths".into(),
            ));
        }
        let lifetime = self.default_lifetime;
        if lifetime.subsec_nanos() != 0 || !(1..=600).contains(&lifetime.as_secs()) {
            return Err(invalid(
                "default_lifetime",
                format!("must be 1-600 whole seconds, got {lifetime:?}"),
            ));
        }
        if self.max_body == 0 {
            return Err(invalid("max_body_bytes", "must be positive".into()));
        }
        if self.body_timeout.is_zero() {
            return Err(invalid("body_timeout", "must be positive".into()));
        }
        let timer = choose_timer(self.timer, default_timer())?;
        if let Consumption::AtCompletion { window } = self.consumption {
            if window.is_zero() {
                return Err(invalid(
                    "consumption",
                    "the completion window must be positive".into(),
                ));
            }
        }
        for (setting, fraction) in [
            ("client_share", self.client_share),
            ("public_clients_share", self.public_clients_share),
        ] {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(invalid(
                    setting,
                    format!("must be a fraction above 0 and at most 1, got {fraction}"),
                ));
            }
        }
        let clients = self
            .clients
            .ok_or(ConfigError::Missing { setting: "clients" })?;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::with_limits(StoreLimits::default())));
        let limits = store.limits();
        let shares = Shares::new(
            &issuer,
            limits,
            self.client_share,
            self.public_clients_share,
        );
        let endpoint = |setting: &'static str, explicit: Option<String>, path: &str| match explicit
        {
            None => Ok(format!("{origin}{path}")),
            Some(url) if origin_of(&url).is_some_and(|o| o.len() < url.len()) => Ok(url),
            Some(url) => Err(invalid(
                setting,
                format!("{url} is not an http(s) URL with a path and without query or fragment"),
            )),
        };
        let par_endpoint = endpoint("par_endpoint", self.par_endpoint, &self.par_path)?;
        let authorization_endpoint = endpoint(
            "authorization_endpoint",
            self.authorization_endpoint,
            &self.authorize_path,
        )?;
        let mut config = Config {
            par_endpoint,
            authorization_endpoint,
            realm: issuer.as_str().into(),
            issuer: issuer.into(),
            par_path: self.par_path.into(),
            authorize_path: self.authorize_path.into(),
            clients,
            store,
            shares,
            put_attempts: limits.partitions().min(MAX_PUT_ATTEMPTS),
            clock: self.clock,
            default_lifetime: lifetime,
            max_body: self.max_body,
            body_timeout: self.body_timeout,
            max_drain: self.max_drain,
            drain_timeout: self.drain_timeout,
            timer,
            require_par: self.require_par,
            pkce: self.pkce,
            allow_plain_pkce: self.allow_plain_pkce,
            consumption: self.consumption,
            error_responder: self.error_responder,
            metadata: None,
            long_requests_as_post: self.long_requests_as_post,
            #[cfg(feature = "jwt")]
            jwt: self.jwt,
            #[cfg(feature = "jwt")]
            forward_request_objects: self.forward_request_objects,
            #[cfg(feature = "metrics")]
            metrics_client_id_label: self.metrics_client_id_label,
        };
        if let Some(document) = self.metadata {
            config.metadata = Some(crate::metadata::render(&config, document)?);
        }
        Ok(ParLayer {
            config: Arc::new(config),
        })
    }
}

/// The origin (`scheme://host[:port]`) of an http(s) URL without query or fragment.
fn origin_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    if url.contains(['?', '#']) {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return None;
    }
    Some(&url[..url.len() - rest.len() + authority.len()])
}

/// The timer set on the builder, else the feature's default; without either the layer could not
/// keep its time limits, so `build()` fails instead of serving without them.
fn choose_timer(
    set: Option<Arc<dyn Timer>>,
    default: Option<Arc<dyn Timer>>,
) -> Result<Arc<dyn Timer>, ConfigError> {
    set.or(default).ok_or_else(|| ConfigError::Invalid {
        setting: "timer",
        message: "the body timeout needs a timer: enable the `tokio` feature, or set one with \
                  ParLayerBuilder::timer"
            .into(),
    })
}

impl fmt::Debug for ParLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParLayerBuilder")
            .field("par_path", &self.par_path)
            .field("authorize_path", &self.authorize_path)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticClients;

    fn build(issuer: &str, par_path: &str) -> Result<ParLayer, ConfigError> {
        ParLayer::builder()
            .issuer(issuer)
            .par_path(par_path)
            .authorize_path("/x/authorize")
            .clients(StaticClients::default())
            .build()
    }

    #[test]
    fn endpoint_urls_are_the_issuer_origin_plus_the_matched_path() {
        let layer = build("https://as.example.com/tenant-a/", "/tenant-a/as/par").unwrap();
        assert_eq!(
            layer.par_endpoint(),
            "https://as.example.com/tenant-a/as/par"
        );
        assert_eq!(
            layer.authorization_endpoint(),
            "https://as.example.com/x/authorize"
        );
        let layer = build("http://127.0.0.1:3000", "/as/par").unwrap();
        assert_eq!(layer.par_endpoint(), "http://127.0.0.1:3000/as/par");
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin_of("https://a.example/b/c"),
            Some("https://a.example")
        );
        assert_eq!(origin_of("http://a:8080"), Some("http://a:8080"));
        for bad in [
            "https://",
            "ftp://a",
            "https:///x",
            "https://a?x",
            "https://a/#f",
            "a.example",
        ] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn explicit_endpoint_urls_are_checked() {
        let build = |url: &str| {
            ParLayer::builder()
                .issuer("https://as.example.com")
                .par_endpoint(url)
                .clients(StaticClients::default())
                .build()
        };
        assert_eq!(
            build("https://proxy.example/auth/as/par")
                .unwrap()
                .par_endpoint(),
            "https://proxy.example/auth/as/par"
        );
        for bad in [
            "https://proxy.example",
            "/auth/as/par",
            "https://p.example/par?x=1",
        ] {
            let err = build(bad).unwrap_err().to_string();
            assert!(err.contains("par_endpoint"), "{bad}: {err}");
        }
    }

    struct NeverTimer;

    impl Timer for NeverTimer {
        fn sleep(&self, _: Duration) -> crate::SleepFuture {
            Box::pin(std::future::pending())
        }
    }

    #[test]
    fn without_a_timer_the_layer_is_not_built() {
        // What a build without the `tokio` feature meets when no timer was set.
        let err = choose_timer(None, None).err().expect("an error");
        assert!(matches!(
            err,
            ConfigError::Invalid {
                setting: "timer",
                ..
            }
        ));
        assert!(err.to_string().contains("`tokio` feature"), "{err}");
        assert!(choose_timer(Some(Arc::new(NeverTimer)), None).is_ok());
    }

    #[test]
    fn a_zero_body_timeout_is_refused() {
        let err = ParLayer::builder()
            .issuer("https://as.example.com")
            .clients(crate::StaticClients::default())
            .timer(NeverTimer)
            .body_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("body_timeout"), "{err}");
    }
}
