//! Registered clients: the [`ClientRegistry`] trait, [`Client`], and the JSON-file registry
//! [`StaticClients`].

pub(crate) mod authenticate;
#[cfg(feature = "jwt")]
mod signed;
mod static_clients;

pub(crate) use self::authenticate::authenticate;
#[cfg(feature = "jwt")]
pub use self::signed::JwtSettings;
#[cfg(feature = "jwt")]
pub(crate) use self::signed::{
    authenticate_assertion, metadata as jwt_metadata, pushed_params as jwt_params,
};
pub use self::static_clients::StaticClients;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    time::Duration,
};

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::ConfigError;

/// The boxed future of [`ClientRegistry::client`].
pub type RegistryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Arc<Client>>, RegistryError>> + Send + 'a>>;

/// The boxed future of [`ClientRegistry::is_web_origin`] (see its example).
pub type WebOriginFuture<'a> =
    Pin<Box<dyn Future<Output = Result<bool, RegistryError>> + Send + 'a>>;

/// Looks clients up by `client_id`. Plug in your own to serve clients from a database or an
/// existing framework; [`StaticClients`] serves a fixed set.
///
/// ```
/// use std::sync::Arc;
/// use tower_par::client::{AuthMethod, Client, ClientRegistry, RegistryFuture};
///
/// struct OneClient(Arc<Client>);
///
/// impl ClientRegistry for OneClient {
///     fn client<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a> {
///         let found = (self.0.client_id() == client_id).then(|| Arc::clone(&self.0));
///         Box::pin(async move { Ok(found) })
///     }
/// }
///
/// let client = Client::builder("spa")
///     .auth_method(AuthMethod::None)
///     .redirect_uri("https://spa.example/cb")
///     .grant_type("authorization_code")
///     .build()
///     .unwrap();
/// let _registry = OneClient(Arc::new(client));
/// ```
pub trait ClientRegistry: Send + Sync + 'static {
    /// The client registered as `client_id`, `None` if there is none.
    fn client<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a>;

    /// Whether any client may require pushed authorization requests
    /// ([`Client::require_par`]); asked on every authorization request that carries a
    /// `client_id` but no `request_uri`.
    ///
    /// The cost it saves: to enforce a per-client requirement, the layer looks the client up
    /// (one [`client`](Self::client) call, a database round-trip for a database-backed registry)
    /// on every such plain request. Answer `false` when no client requires PAR and the layer
    /// skips that lookup; the default, `true`, always looks. [`StaticClients`] answers from its
    /// table. A registry whose clients can change must keep the answer current: `false` while a
    /// client requires PAR lets that client's plain requests through.
    fn any_client_requires_par(&self) -> bool {
        true
    }

    /// Whether any client registered `origin` as a web origin ([`Client::web_origins`]).
    /// `origin` is an ASCII serialisation (RFC 6454 §6.2) as browsers send it: lower-case
    /// `scheme://host`, a port only when it is not the scheme's default.
    ///
    /// Asked before the client is known: for a CORS preflight at the PAR endpoint (the browser
    /// sends it before a push with a `DPoP` or `Authorization` header, and caches the answer for
    /// two hours), and for an error answered to a browser before the client authenticated. The
    /// push itself uses the origins of the client it already looked up.
    ///
    /// The default, `false`, refuses every preflight: browser-based clients of a registry that
    /// does not answer it can push only without `DPoP` and `Authorization` headers. A
    /// database-backed registry pays one query per preflight (an index on the origin column), or
    /// keeps the set of all web origins in memory and refreshes it when clients change.
    /// [`StaticClients`] answers from its table. A registry error answers the preflight with
    /// `503 temporarily_unavailable`.
    ///
    /// ```
    /// use std::{collections::HashSet, sync::Arc};
    /// use tower_par::client::{Client, ClientRegistry, RegistryFuture, WebOriginFuture};
    ///
    /// struct Registry {
    ///     clients: Vec<Arc<Client>>,
    ///     web_origins: HashSet<String>,
    /// }
    ///
    /// impl ClientRegistry for Registry {
    ///     fn client<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a> {
    ///         let found = self.clients.iter().find(|c| c.client_id() == client_id).cloned();
    ///         Box::pin(async move { Ok(found) })
    ///     }
    ///
    ///     fn is_web_origin<'a>(&'a self, origin: &'a str) -> WebOriginFuture<'a> {
    ///         let registered = self.web_origins.contains(origin);
    ///         Box::pin(async move { Ok(registered) })
    ///     }
    /// }
    /// ```
    fn is_web_origin<'a>(&'a self, origin: &'a str) -> WebOriginFuture<'a> {
        let _ = origin;
        Box::pin(std::future::ready(Ok(false)))
    }
}

impl<T: ClientRegistry + ?Sized> ClientRegistry for Arc<T> {
    fn client<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a> {
        (**self).client(client_id)
    }

    fn any_client_requires_par(&self) -> bool {
        (**self).any_client_requires_par()
    }

    fn is_web_origin<'a>(&'a self, origin: &'a str) -> WebOriginFuture<'a> {
        (**self).is_web_origin(origin)
    }
}

/// A registry lookup that failed (the layer answers `503 temporarily_unavailable`).
///
/// ```
/// use tower_par::client::RegistryError;
///
/// let err = RegistryError::new("database timeout");
/// assert_eq!(err.to_string(), "client registry unavailable: database timeout");
/// ```
#[derive(Debug)]
pub struct RegistryError(Box<dyn std::error::Error + Send + Sync>);

impl RegistryError {
    /// Wraps the backend's error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(source.into())
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client registry unavailable: {}", self.0)
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// How a client authenticates at the PAR endpoint (the same method it uses at the token
/// endpoint, RFC 9126 §2). A client may use only its registered method.
///
/// ```
/// use tower_par::client::AuthMethod;
///
/// assert_eq!(AuthMethod::ClientSecretBasic.as_str(), "client_secret_basic");
/// assert!(!AuthMethod::None.is_confidential());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// HTTP Basic with the form-urlencoded client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with the client secret (RFC 7523, feature `jwt`).
    ClientSecretJwt,
    /// A JWT assertion signed with the client's private key (RFC 7523, feature `jwt`).
    PrivateKeyJwt,
    /// A public client: `client_id` only.
    None,
}

impl AuthMethod {
    /// The registered name, as in `token_endpoint_auth_methods_supported`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }

    /// Whether the method proves possession of a credential.
    #[must_use]
    pub const fn is_confidential(self) -> bool {
        !matches!(self, Self::None)
    }

    const fn needs_secret(self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A digest as four words, for `ct_eq`: `subtle` keeps the compiler from short-cutting the
/// comparison with an optimisation barrier per element, so four words cost an eighth of 32 bytes.
fn digest_words(digest: &[u8; 32]) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(8)) {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(bytes);
        *word = u64::from_le_bytes(chunk);
    }
    words
}

/// One valid client secret, or only its SHA-256 digest. Presented secrets are compared in
/// constant time through their digest, so neither content nor length leak through timing;
/// `Debug` never shows it.
#[derive(Clone)]
struct ClientSecret {
    /// The secret itself (the HMAC key of `client_secret_jwt`); `None` when only its digest is
    /// registered.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    raw: Option<Box<[u8]>>,
    digest: [u8; 32],
}

impl ClientSecret {
    fn new(secret: &str) -> Self {
        Self {
            raw: Some(secret.as_bytes().into()),
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// A secret known only by its digest: 64 hex digits.
    fn from_hex_digest(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |b: u8| char::from(b).to_digit(16);
            *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok()?;
        }
        Some(Self { raw: None, digest })
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// A registered client, as the PAR endpoint and the authorization endpoint see it.
///
/// ```
/// use std::time::Duration;
/// use tower_par::client::{AuthMethod, Client};
///
/// let client = Client::builder("web-app")
///     .secret("web-app-secret")
///     .auth_method(AuthMethod::ClientSecretBasic)
///     .redirect_uri("https://client.example.org/cb")
///     .grant_type("authorization_code")
///     .par_lifetime(Duration::from_secs(120))
///     .build()
///     .unwrap();
/// assert!(client.has_redirect_uri("https://client.example.org/cb"));
/// assert!(!client.has_redirect_uri("https://client.example.org/cb/"));
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    client_id: String,
    secrets: Box<[ClientSecret]>,
    auth_method: AuthMethod,
    redirect_uris: Vec<String>,
    web_origins: Vec<String>,
    grant_types: Vec<String>,
    require_par: bool,
    par_lifetime: Option<Duration>,
    par_max_outstanding: Option<u64>,
    par_max_outstanding_bytes: Option<u64>,
    require_signed_request_object: bool,
    forward_request_object: bool,
    #[cfg(feature = "jwt")]
    keys: Option<crate::jwt::ClientKeys>,
    /// The digest naming this client's share of the store, with the issuer it was derived for.
    share_bucket: OnceLock<(Arc<str>, crate::store::StoreKey)>,
}

impl Client {
    /// Starts a client registration.
    pub fn builder(client_id: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            client_id: client_id.into(),
            secrets: Vec::new(),
            secret_digests: Vec::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            redirect_uris: Vec::new(),
            web_origins: None,
            grant_types: Vec::new(),
            require_par: false,
            par_lifetime: None,
            par_max_outstanding: None,
            par_max_outstanding_bytes: None,
            require_signed_request_object: false,
            forward_request_object: true,
            #[cfg(feature = "jwt")]
            jwks: None,
        }
    }

    /// The client identifier.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The registered authentication method.
    #[must_use]
    pub const fn auth_method(&self) -> AuthMethod {
        self.auth_method
    }

    /// The registered redirect URIs (compared byte for byte).
    #[must_use]
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// The origins whose pages may push as this client and read the answers (CORS), as ASCII
    /// serialisations (`https://spa.example`, lower case, no default port): the registered
    /// `web_origins`, or for a public client without them the origins of its http(s) redirect
    /// URIs. Empty for a confidential client without `web_origins`.
    #[must_use]
    pub fn web_origins(&self) -> &[String] {
        &self.web_origins
    }

    /// Whether `origin` is one of [`web_origins`](Self::web_origins) (exact match, so pass the
    /// ASCII serialisation a browser sends in `Origin`).
    ///
    /// ```
    /// use tower_par::client::{AuthMethod, Client};
    ///
    /// let spa = Client::builder("spa")
    ///     .auth_method(AuthMethod::None)
    ///     .redirect_uri("https://spa.example/callback")
    ///     .grant_type("authorization_code")
    ///     .build()
    ///     .unwrap();
    /// assert!(spa.has_web_origin("https://spa.example"));
    /// assert!(!spa.has_web_origin("https://evil.example"));
    /// ```
    #[must_use]
    pub fn has_web_origin(&self, origin: &str) -> bool {
        self.web_origins.iter().any(|o| o == origin)
    }

    /// The registered grant types.
    #[must_use]
    pub fn grant_types(&self) -> &[String] {
        &self.grant_types
    }

    /// Whether the client has `grant_type`.
    #[must_use]
    pub fn has_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// Whether this client must push every authorization request.
    #[must_use]
    pub const fn require_par(&self) -> bool {
        self.require_par
    }

    /// The client's own `request_uri` lifetime, if it has one (1–600 s).
    #[must_use]
    pub const fn par_lifetime(&self) -> Option<Duration> {
        self.par_lifetime
    }

    /// The most pushed requests this client may hold in the store at once, if it has its own
    /// limit (otherwise the layer's [`client_share`](crate::ParLayerBuilder::client_share) of
    /// the store's entries applies).
    #[must_use]
    pub const fn par_max_outstanding(&self) -> Option<u64> {
        self.par_max_outstanding
    }

    /// The most bytes of pushed requests ([`Record::weight`](crate::store::Record::weight)s) this
    /// client may hold in the store at once, if it has its own limit (otherwise the layer's
    /// [`client_share`](crate::ParLayerBuilder::client_share) of the store's bytes applies).
    #[must_use]
    pub const fn par_max_outstanding_bytes(&self) -> Option<u64> {
        self.par_max_outstanding_bytes
    }

    /// Whether the client must push signed request objects (RFC 9101 §10.5).
    #[must_use]
    pub const fn require_signed_request_object(&self) -> bool {
        self.require_signed_request_object
    }

    /// Whether a signed request object this client pushes travels on to the inner service, when
    /// the layer [forwards request objects](crate::ParLayerBuilder::forward_request_objects)
    /// (default true).
    #[must_use]
    pub const fn forward_request_object(&self) -> bool {
        self.forward_request_object
    }

    /// Whether `redirect_uri` is registered for this client (exact match).
    #[must_use]
    pub fn has_redirect_uri(&self, redirect_uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == redirect_uri)
    }

    /// Whether `presented` is one of the client's secrets. Every registered secret is compared,
    /// each in constant time through SHA-256 digests, whichever matches.
    pub(crate) fn secret_matches(&self, presented: &[u8]) -> bool {
        let presented = digest_words(&Sha256::digest(presented).into());
        let matched = self
            .secrets
            .iter()
            .fold(Choice::from(0), |matched, secret| {
                matched | digest_words(&secret.digest).ct_eq(&presented)
            });
        matched.into()
    }

    /// The secrets themselves, as HMAC keys (`client_secret_jwt`, HMAC request objects); digests
    /// cannot serve as keys and are left out.
    #[cfg(feature = "jwt")]
    pub(crate) fn hmac_secrets(&self) -> Vec<&[u8]> {
        self.secrets
            .iter()
            .filter_map(|s| s.raw.as_deref())
            .collect()
    }

    /// The digest naming this client's share of the store under `issuer`: `derive`d once per
    /// client object and issuer, because a SHA-256 per push was a tenth of the push's
    /// instructions (benches/layer.rs).
    pub(crate) fn share_bucket(
        &self,
        issuer: &Arc<str>,
        derive: impl FnOnce() -> crate::store::StoreKey,
    ) -> crate::store::StoreKey {
        if let Some((derived_for, bucket)) = self.share_bucket.get() {
            if Arc::ptr_eq(derived_for, issuer) || **derived_for == **issuer {
                return *bucket;
            }
            // Another issuer (one client object in two layers): derive, and keep the first.
            return derive();
        }
        let bucket = derive();
        let _ = self.share_bucket.set((Arc::clone(issuer), bucket));
        bucket
    }

    #[cfg(feature = "jwt")]
    pub(crate) const fn keys(&self) -> Option<&crate::jwt::ClientKeys> {
        self.keys.as_ref()
    }
}

/// Builds a [`Client`]; [`ClientBuilder::build`] checks the registration.
///
/// ```
/// use tower_par::client::{AuthMethod, Client};
///
/// // A confidential method without a secret is refused, naming the client.
/// let err = Client::builder("svc").auth_method(AuthMethod::ClientSecretPost).build().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "client `svc`: auth_method client_secret_post needs a client_secret (or client_secret_sha256)"
/// );
/// ```
#[must_use]
pub struct ClientBuilder {
    client_id: String,
    secrets: Vec<String>,
    secret_digests: Vec<String>,
    auth_method: AuthMethod,
    redirect_uris: Vec<String>,
    web_origins: Option<Vec<String>>,
    grant_types: Vec<String>,
    require_par: bool,
    par_lifetime: Option<Duration>,
    par_max_outstanding: Option<u64>,
    par_max_outstanding_bytes: Option<u64>,
    require_signed_request_object: bool,
    forward_request_object: bool,
    #[cfg(feature = "jwt")]
    jwks: Option<serde_json::Value>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("client_id", &self.client_id)
            .field("secrets", &self.secrets.len())
            .field("secret_digests", &self.secret_digests.len())
            .field("auth_method", &self.auth_method)
            .field("redirect_uris", &self.redirect_uris)
            .field("web_origins", &self.web_origins)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Adds a client secret (confidential clients using a secret-based method). It adds, it
    /// does not replace: call it again to accept several secrets at once while you rotate, and
    /// any of them authenticates. `client_secret_jwt` tries each as the HMAC key.
    ///
    /// ```
    /// use tower_par::{AuthMethod, Client};
    ///
    /// let client = Client::builder("svc")
    ///     .auth_method(AuthMethod::ClientSecretBasic)
    ///     .secret("old-secret")
    ///     .secret("new-secret")
    ///     .grant_type("authorization_code")
    ///     .build()
    ///     .unwrap();
    /// # let _ = client;
    /// ```
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Adds a client secret known only by its SHA-256 digest (64 hex digits, e.g. from
    /// `printf %s "$SECRET" | sha256sum`), so that the registry holds no usable secret. For
    /// `client_secret_basic` and `client_secret_post`; `client_secret_jwt` needs the secret
    /// itself as its HMAC key, and `build` refuses digests there. Like [`secret`](Self::secret),
    /// it adds.
    ///
    /// An unsalted digest is right for a random client secret of at least 128 bits, not for a
    /// password a human chose.
    pub fn secret_sha256(mut self, hex_digest: impl Into<String>) -> Self {
        self.secret_digests.push(hex_digest.into());
        self
    }

    /// The authentication method (default `client_secret_basic`).
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Adds a registered redirect URI.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Adds an origin whose pages may push as this client and read the answers (CORS):
    /// `scheme://host[:port]`, no path, not `*`; `build` checks it. Once a client has web
    /// origins, only those count: a public client no longer gets its redirect URIs' origins.
    ///
    /// ```
    /// use tower_par::client::{AuthMethod, Client};
    ///
    /// let client = Client::builder("web-app")
    ///     .secret("web-app-secret")
    ///     .redirect_uri("https://app.example/cb")
    ///     .grant_type("authorization_code")
    ///     .web_origin("https://App.example:443")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(client.web_origins(), ["https://app.example"]);
    ///
    /// let err = Client::builder("spa")
    ///     .auth_method(AuthMethod::None)
    ///     .web_origin("https://spa.example/")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("no path"), "{err}");
    /// ```
    pub fn web_origin(mut self, origin: impl Into<String>) -> Self {
        self.web_origins
            .get_or_insert_with(Vec::new)
            .push(origin.into());
        self
    }

    /// Sets the client's web origins (see [`web_origin`](Self::web_origin)), replacing any
    /// added before. An empty list turns CORS off for the client, a public one included.
    ///
    /// ```
    /// use tower_par::client::{AuthMethod, Client};
    ///
    /// let public = |origins: Vec<&str>| {
    ///     Client::builder("spa")
    ///         .auth_method(AuthMethod::None)
    ///         .redirect_uri("https://spa.example/callback")
    ///         .grant_type("authorization_code")
    ///         .web_origins(origins)
    ///         .build()
    ///         .unwrap()
    /// };
    /// assert_eq!(public(vec!["https://app.spa.example"]).web_origins(), ["https://app.spa.example"]);
    /// assert!(public(vec![]).web_origins().is_empty());
    /// ```
    pub fn web_origins<I>(mut self, origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.web_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a grant type (`authorization_code`, `implicit`, `client_credentials`, …).
    pub fn grant_type(mut self, grant_type: impl Into<String>) -> Self {
        self.grant_types.push(grant_type.into());
        self
    }

    /// Requires every authorization request of this client to be pushed.
    pub const fn require_par(mut self, required: bool) -> Self {
        self.require_par = required;
        self
    }

    /// The client's `request_uri` lifetime; must be whole seconds in 1–600.
    pub const fn par_lifetime(mut self, lifetime: Duration) -> Self {
        self.par_lifetime = Some(lifetime);
        self
    }

    /// The most pushed requests this client may hold in the store at once (at least 1), in
    /// place of the layer's default share (half of the store's entries). The client's bytes stay
    /// within the default share unless [`ClientBuilder::par_max_outstanding_bytes`] is set too. A
    /// public client also stays within the public clients' combined share.
    ///
    /// Above half of the store, this client can crowd the others out: raise it only for a
    /// client that is trusted to hold that much.
    pub const fn par_max_outstanding(mut self, max: u64) -> Self {
        self.par_max_outstanding = Some(max);
        self
    }

    /// The most bytes ([`Record::weight`](crate::store::Record::weight)s) of pushed requests this
    /// client may hold in the store at once (at least 1), in place of the layer's default share
    /// (half of the store's bytes).
    pub const fn par_max_outstanding_bytes(mut self, max: u64) -> Self {
        self.par_max_outstanding_bytes = Some(max);
        self
    }

    /// Requires pushed requests to be signed request objects.
    pub const fn require_signed_request_object(mut self, required: bool) -> Self {
        self.require_signed_request_object = required;
        self
    }

    /// Whether this client's signed request objects travel on to the inner service when the layer
    /// [forwards request objects](crate::ParLayerBuilder::forward_request_objects) (default
    /// true; clients-file member `forward_request_object`).
    pub const fn forward_request_object(mut self, forward: bool) -> Self {
        self.forward_request_object = forward;
        self
    }

    /// The client's public keys as an inline JWK Set (`private_key_jwt`, signed request objects).
    #[cfg(feature = "jwt")]
    pub fn jwks(mut self, jwks: serde_json::Value) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Checks the registration: a secret-based method needs a secret (or, except for
    /// `client_secret_jwt`, a secret digest), `none` must not have one, the lifetime is 1–600
    /// whole seconds, web origins are origins, JWT methods need the `jwt` feature (and keys for
    /// `private_key_jwt`).
    pub fn build(self) -> Result<Client, ConfigError> {
        let invalid = |message: String| ConfigError::Client {
            client_id: self.client_id.clone(),
            message,
        };
        if self.client_id.is_empty() {
            return Err(invalid("client_id must not be empty".into()));
        }
        let has_secret = !(self.secrets.is_empty() && self.secret_digests.is_empty());
        if self.auth_method.needs_secret() && !has_secret {
            return Err(invalid(format!(
                "auth_method {} needs a client_secret (or client_secret_sha256)",
                self.auth_method
            )));
        }
        if !self.auth_method.needs_secret() && has_secret {
            return Err(invalid(format!(
                "auth_method {} must not have a client_secret",
                self.auth_method
            )));
        }
        if self.secrets.iter().any(String::is_empty) {
            return Err(invalid("a client_secret must not be empty".into()));
        }
        if self.auth_method == AuthMethod::ClientSecretJwt && !self.secret_digests.is_empty() {
            return Err(invalid(
                "auth_method client_secret_jwt needs the secret itself as its HMAC key: \
                 client_secret_sha256 cannot verify its assertions"
                    .into(),
            ));
        }
        let mut secrets: Vec<ClientSecret> =
            self.secrets.iter().map(|s| ClientSecret::new(s)).collect();
        for hex in &self.secret_digests {
            secrets.push(ClientSecret::from_hex_digest(hex).ok_or_else(|| {
                invalid("client_secret_sha256 must be 64 hex digits (a SHA-256 digest)".into())
            })?);
        }
        if let Some(lifetime) = self.par_lifetime {
            if lifetime.subsec_nanos() != 0 || !(1..=600).contains(&lifetime.as_secs()) {
                return Err(invalid(format!(
                    "par_lifetime_secs must be 1-600 whole seconds, got {lifetime:?}"
                )));
            }
        }
        let web_origins = self.checked_web_origins().map_err(invalid)?;
        for (member, max) in [
            ("par_max_outstanding", self.par_max_outstanding),
            ("par_max_outstanding_bytes", self.par_max_outstanding_bytes),
        ] {
            if max == Some(0) {
                return Err(invalid(format!("{member} must be at least 1")));
            }
        }
        #[cfg(not(feature = "jwt"))]
        if matches!(
            self.auth_method,
            AuthMethod::ClientSecretJwt | AuthMethod::PrivateKeyJwt
        ) || self.require_signed_request_object
        {
            return Err(invalid(format!(
                "auth_method {} / require_signed_request_object need tower-par's `jwt` feature",
                self.auth_method
            )));
        }
        #[cfg(feature = "jwt")]
        let keys = match &self.jwks {
            Some(jwks) => Some(
                crate::jwt::ClientKeys::from_jwks(jwks)
                    .map_err(|e| invalid(format!("jwks: {e}")))?,
            ),
            None if self.auth_method == AuthMethod::PrivateKeyJwt => {
                return Err(invalid("auth_method private_key_jwt needs jwks".into()));
            }
            None => None,
        };
        Ok(Client {
            secrets: secrets.into(),
            client_id: self.client_id,
            auth_method: self.auth_method,
            redirect_uris: self.redirect_uris,
            web_origins,
            grant_types: self.grant_types,
            require_par: self.require_par,
            par_lifetime: self.par_lifetime,
            par_max_outstanding: self.par_max_outstanding,
            par_max_outstanding_bytes: self.par_max_outstanding_bytes,
            require_signed_request_object: self.require_signed_request_object,
            forward_request_object: self.forward_request_object,
            #[cfg(feature = "jwt")]
            keys,
            share_bucket: OnceLock::new(),
        })
    }

    /// The registered web origins in their ASCII serialisation, without repeats; for a public
    /// client without them, its http(s) redirect URIs' origins (node-oidc-provider's
    /// recommended `clientBasedCORS`). A confidential client gets CORS only when it asks.
    fn checked_web_origins(&self) -> Result<Vec<String>, String> {
        let mut origins: Vec<String> = Vec::new();
        let mut add = |origin: String| {
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        };
        match &self.web_origins {
            Some(registered) => {
                for origin in registered {
                    let canonical = crate::cors::canonical_origin(origin)
                        .map_err(|why| format!("web_origins: {origin} is not an origin: {why}"))?;
                    add(canonical.into_owned());
                }
            }
            None if !self.auth_method.is_confidential() => {
                self.redirect_uris
                    .iter()
                    .filter_map(|uri| crate::cors::url_origin(uri))
                    .for_each(add);
            }
            None => {}
        }
        Ok(origins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(builder: ClientBuilder) -> Result<Client, ConfigError> {
        builder
            .auth_method(AuthMethod::ClientSecretBasic)
            .grant_type("authorization_code")
            .build()
    }

    /// `printf %s new-secret | sha256sum`
    const NEW_SECRET_SHA256: &str =
        "fc97bb52861fcf328d0a7abe201f9632b8703e436656348f6d1b398f42e92c39";

    #[test]
    fn every_added_secret_authenticates() {
        let client = basic(
            Client::builder("c")
                .secret("old-secret")
                .secret("new-secret"),
        )
        .unwrap();
        assert!(client.secret_matches(b"old-secret"));
        assert!(client.secret_matches(b"new-secret"));
        assert!(!client.secret_matches(b"other"));
        assert!(!client.secret_matches(b""));
    }

    #[test]
    fn a_digest_authenticates_its_secret_only() {
        for digest in [
            NEW_SECRET_SHA256.to_owned(),
            NEW_SECRET_SHA256.to_uppercase(),
        ] {
            let client = basic(Client::builder("c").secret_sha256(digest)).unwrap();
            assert!(client.secret_matches(b"new-secret"));
            assert!(!client.secret_matches(b"new-secreT"));
            assert!(
                !client.secret_matches(NEW_SECRET_SHA256.as_bytes()),
                "the digest is not the secret"
            );
        }
    }

    #[test]
    fn malformed_digests_are_refused() {
        for bad in [
            "",
            "abc",
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
            &"é".repeat(32),
        ] {
            let err = basic(Client::builder("c").secret_sha256(bad)).unwrap_err();
            assert!(err.to_string().contains("64 hex digits"), "{bad}: {err}");
        }
    }

    #[test]
    fn empty_secrets_are_refused() {
        let err = basic(Client::builder("c").secret("a").secret("")).unwrap_err();
        assert!(err.to_string().contains("must not be empty"), "{err}");
    }

    fn public(builder: ClientBuilder) -> Result<Client, ConfigError> {
        builder
            .auth_method(AuthMethod::None)
            .grant_type("authorization_code")
            .build()
    }

    #[test]
    fn a_public_client_without_web_origins_gets_its_redirect_uris_origins() {
        let spa = public(
            Client::builder("spa")
                .redirect_uri("https://SPA.example/callback")
                .redirect_uri("https://spa.example:443/silent?x=1")
                .redirect_uri("http://127.0.0.1:8080/cb")
                .redirect_uri("com.example.app:/oauth2redirect"),
        )
        .unwrap();
        assert_eq!(
            spa.web_origins(),
            ["https://spa.example", "http://127.0.0.1:8080"],
            "one origin each, ASCII-serialised; a custom scheme has none"
        );
        assert!(spa.has_web_origin("http://127.0.0.1:8080"));
        assert!(!spa.has_web_origin("http://127.0.0.1:8081"));
    }

    #[test]
    fn a_confidential_client_gets_web_origins_only_when_it_registers_them() {
        let web = basic(Client::builder("web").secret("s").redirect_uri(WEB_CB)).unwrap();
        assert!(web.web_origins().is_empty());
        let with_origin = basic(
            Client::builder("web")
                .secret("s")
                .redirect_uri(WEB_CB)
                .web_origin("https://App.example:443")
                .web_origin("https://app.example"),
        )
        .unwrap();
        assert_eq!(with_origin.web_origins(), ["https://app.example"]);
    }

    #[test]
    fn registered_web_origins_replace_the_redirect_uris_origins() {
        let explicit = public(
            Client::builder("spa")
                .redirect_uri("https://spa.example/cb")
                .web_origins(["https://other.example:8443"]),
        )
        .unwrap();
        assert_eq!(explicit.web_origins(), ["https://other.example:8443"]);
        let none = public(
            Client::builder("spa")
                .redirect_uri("https://spa.example/cb")
                .web_origins(Vec::<String>::new()),
        )
        .unwrap();
        assert!(
            none.web_origins().is_empty(),
            "an empty list turns CORS off"
        );
        let replaced = public(
            Client::builder("spa")
                .web_origin("https://a.example")
                .web_origins(["https://b.example"]),
        )
        .unwrap();
        assert_eq!(replaced.web_origins(), ["https://b.example"]);
    }

    #[test]
    fn a_malformed_web_origin_is_refused_naming_the_client_and_the_origin() {
        for (origin, reason) in [
            ("https://spa.example/", "no path"),
            ("https://spa.example?x", "no query"),
            ("*", "`*`"),
            ("https://me@spa.example", "user information"),
            ("https://spa.example#top", "fragment"),
            ("null", "scheme://host"),
        ] {
            let err = public(Client::builder("spa").web_origin(origin))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("client `spa`: web_origins: ")
                    && err.contains(origin)
                    && err.contains(reason),
                "{origin}: {err}"
            );
        }
    }

    const WEB_CB: &str = "https://client.example.org/cb";

    #[test]
    fn the_builder_debug_output_hides_secrets() {
        let builder = Client::builder("c")
            .secret("hunter2")
            .secret_sha256("ab".repeat(32));
        let debug = format!("{builder:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("abab"),
            "{debug}"
        );
    }
}
