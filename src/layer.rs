//! [`ParLayer`] and its builder.

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use tower_layer::Layer;

use crate::{
    clock::{Clock, SystemClock},
    error::{ConfigError, ErrorResponder, OAuthError},
    service::ParService,
    store::{MemoryStore, ParStore},
    ClientRegistry,
};

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
    /// answers with the authorization response (a redirect to the pushed `redirect_uri` carrying
    /// `code`, `error`, `access_token` or `id_token`), or when the inner service calls
    /// [`Completion::complete`](crate::Completion::complete).
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
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) default_lifetime: Duration,
    pub(crate) max_body: usize,
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
}

impl Config {
    /// The error page of the authorization endpoint.
    pub(crate) fn error_page(&self, err: &OAuthError) -> http::Response<Bytes> {
        tracing::info!(
            error = err.code(),
            reason = err.description(),
            "authorization request refused"
        );
        match &self.error_responder {
            Some(responder) => {
                let mut response = responder(err);
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
    clients: Option<Arc<dyn ClientRegistry>>,
    store: Option<Arc<dyn ParStore>>,
    clock: Arc<dyn Clock>,
    default_lifetime: Duration,
    max_body: usize,
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
}

impl Default for ParLayerBuilder {
    fn default() -> Self {
        Self {
            par_path: "/as/par".into(),
            authorize_path: "/as/authorize".into(),
            issuer: None,
            clients: None,
            store: None,
            clock: Arc::new(SystemClock),
            default_lifetime: Duration::from_secs(60),
            max_body: 1024 * 1024,
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
        }
    }
}

impl ParLayerBuilder {
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
    /// query or fragment. Handles are bound to it, and endpoint URLs are built from it.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The client registry (required).
    pub fn clients(mut self, clients: impl ClientRegistry) -> Self {
        self.clients = Some(Arc::new(clients));
        self
    }

    /// The store (default: a [`MemoryStore`] of 1,000,000 requests).
    pub fn store(mut self, store: impl ParStore) -> Self {
        self.store = Some(Arc::new(store));
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
    /// layer's PAR members (see [`ParLayer::metadata`]).
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

    /// Checks the settings and builds the layer.
    pub fn build(self) -> Result<ParLayer, ConfigError> {
        let invalid =
            |setting: &'static str, message: String| ConfigError::Invalid { setting, message };
        let issuer = self
            .issuer
            .ok_or(ConfigError::Missing { setting: "issuer" })?;
        let issuer = issuer.trim_end_matches('/').to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.contains(['?', '#'])
            || issuer.split("://").nth(1).map_or(true, str::is_empty)
        {
            return Err(invalid(
                "issuer",
                format!("{issuer} is not an http(s) URL without query or fragment"),
            ));
        }
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
        if let Consumption::AtCompletion { window } = self.consumption {
            if window.is_zero() {
                return Err(invalid(
                    "consumption",
                    "the completion window must be positive".into(),
                ));
            }
        }
        let clients = self
            .clients
            .ok_or(ConfigError::Missing { setting: "clients" })?;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::with_capacity(1_000_000)));
        let mut config = Config {
            par_endpoint: format!("{issuer}{}", self.par_path),
            authorization_endpoint: format!("{issuer}{}", self.authorize_path),
            realm: issuer.as_str().into(),
            issuer: issuer.into(),
            par_path: self.par_path.into(),
            authorize_path: self.authorize_path.into(),
            clients,
            store,
            clock: self.clock,
            default_lifetime: lifetime,
            max_body: self.max_body,
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
        };
        if let Some(document) = self.metadata {
            config.metadata = Some(crate::metadata::render(&config, document)?);
        }
        Ok(ParLayer {
            config: Arc::new(config),
        })
    }
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
