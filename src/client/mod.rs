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

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ConfigError;

/// The boxed future of [`ClientRegistry::client`].
pub type RegistryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Arc<Client>>, RegistryError>> + Send + 'a>>;

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
}

impl<T: ClientRegistry + ?Sized> ClientRegistry for Arc<T> {
    fn client<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a> {
        (**self).client(client_id)
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

/// A client secret. It is compared in constant time through its SHA-256 digest, so neither
/// content nor length leak through timing (rust-notes D13); `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct ClientSecret {
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    raw: Box<[u8]>,
    digest: [u8; 32],
}

impl ClientSecret {
    fn new(secret: &str) -> Self {
        Self {
            raw: secret.as_bytes().into(),
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    pub(crate) fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&presented).into()
    }

    /// The secret itself, as the HMAC key of `client_secret_jwt`.
    #[cfg(feature = "jwt")]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.raw
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
    secret: Option<ClientSecret>,
    auth_method: AuthMethod,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    require_par: bool,
    par_lifetime: Option<Duration>,
    require_signed_request_object: bool,
    forward_request_object: bool,
    #[cfg(feature = "jwt")]
    keys: Option<crate::jwt::ClientKeys>,
}

impl Client {
    /// Starts a client registration.
    pub fn builder(client_id: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            client_id: client_id.into(),
            secret: None,
            auth_method: AuthMethod::ClientSecretBasic,
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            require_par: false,
            par_lifetime: None,
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

    /// Whether this client must push every authorization request (spec-checklist AZ-07).
    #[must_use]
    pub const fn require_par(&self) -> bool {
        self.require_par
    }

    /// The client's own `request_uri` lifetime, if it has one (1–600 s).
    #[must_use]
    pub const fn par_lifetime(&self) -> Option<Duration> {
        self.par_lifetime
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

    pub(crate) const fn secret(&self) -> Option<&ClientSecret> {
        self.secret.as_ref()
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
/// assert_eq!(err.to_string(), "client `svc`: auth_method client_secret_post needs a client_secret");
/// ```
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    client_id: String,
    secret: Option<String>,
    auth_method: AuthMethod,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    require_par: bool,
    par_lifetime: Option<Duration>,
    require_signed_request_object: bool,
    forward_request_object: bool,
    #[cfg(feature = "jwt")]
    jwks: Option<serde_json::Value>,
}

impl ClientBuilder {
    /// The client secret (confidential clients using a secret-based method).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
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

    /// Checks the registration: a secret-based method needs a secret, `none` must not have one,
    /// the lifetime is 1–600 whole seconds, JWT methods need the `jwt` feature (and keys for
    /// `private_key_jwt`).
    pub fn build(self) -> Result<Client, ConfigError> {
        let invalid = |message: String| ConfigError::Client {
            client_id: self.client_id.clone(),
            message,
        };
        if self.client_id.is_empty() {
            return Err(invalid("client_id must not be empty".into()));
        }
        if self.auth_method.needs_secret() && self.secret.as_deref().map_or(true, str::is_empty) {
            return Err(invalid(format!(
                "auth_method {} needs a client_secret",
                self.auth_method
            )));
        }
        if !self.auth_method.needs_secret() && self.secret.is_some() {
            return Err(invalid(format!(
                "auth_method {} must not have a client_secret",
                self.auth_method
            )));
        }
        if let Some(lifetime) = self.par_lifetime {
            if lifetime.subsec_nanos() != 0 || !(1..=600).contains(&lifetime.as_secs()) {
                return Err(invalid(format!(
                    "par_lifetime_secs must be 1-600 whole seconds, got {lifetime:?}"
                )));
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
            secret: self.secret.as_deref().map(ClientSecret::new),
            client_id: self.client_id,
            auth_method: self.auth_method,
            redirect_uris: self.redirect_uris,
            grant_types: self.grant_types,
            require_par: self.require_par,
            par_lifetime: self.par_lifetime,
            require_signed_request_object: self.require_signed_request_object,
            forward_request_object: self.forward_request_object,
            #[cfg(feature = "jwt")]
            keys,
        })
    }
}
