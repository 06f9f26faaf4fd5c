//! OAuth error responses (RFC 6749 §5.2) and configuration errors.

use std::{borrow::Cow, fmt, sync::Arc};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// An OAuth error the layer answered with: status, `error` code and `error_description`.
///
/// The layer inserts it into the extensions of every error response it produces, so outer
/// layers (metrics, logging) can see why a request was refused without parsing the body.
/// It is an opaque struct rather than an enum so that it can carry more context later without a
/// breaking change.
///
/// ```
/// use http::StatusCode;
/// use tower_par::OAuthError;
///
/// let err = OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request_uri", "request_uri is unknown");
/// assert_eq!(err.code(), "invalid_request_uri");
/// let response = err.to_response();
/// assert_eq!(response.status(), StatusCode::BAD_REQUEST);
/// assert_eq!(response.headers()["cache-control"], "no-store");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
    basic_challenge: Option<Arc<str>>,
    allow: Option<&'static str>,
    closes_connection: bool,
    /// What the operator's log says beyond what the client is told; never sent to the client.
    incident: Option<Box<Incident>>,
}

/// Why a refusal is the server's trouble rather than the client's: the log event of the refusal
/// carries the cause at the incident's level (`crate::outcome`), so that one refusal is one
/// event, whatever failed underneath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Incident {
    /// `error` (a failure: the store, the registry, the RNG) or `warn` (a limit was reached).
    pub(crate) failure: bool,
    /// The cause, for the operator; never a secret, a handle or a pushed value.
    pub(crate) cause: Cow<'static, str>,
}

impl OAuthError {
    /// An error with any status and code. `description` is sanitised to the characters
    /// RFC 6749 §5.2 allows (`%x20-21 / %x23-5B / %x5D-7E`); others become `?`.
    #[must_use]
    pub fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            description: sanitize(description.into()),
            basic_challenge: None,
            allow: None,
            closes_connection: false,
            incident: None,
        }
    }

    /// Marks the refusal as a failure of the server (logged at `error` with `cause`).
    pub(crate) fn failure(mut self, cause: impl fmt::Display) -> Self {
        self.incident = Some(Box::new(Incident {
            failure: true,
            cause: Cow::Owned(cause.to_string()),
        }));
        self
    }

    /// Marks the refusal as a limit the server reached (logged at `warn` with `cause`).
    pub(crate) fn warning(mut self, cause: &'static str) -> Self {
        self.incident = Some(Box::new(Incident {
            failure: false,
            cause: Cow::Borrowed(cause),
        }));
        self
    }

    /// The incident behind the refusal, if the server rather than the client is the cause.
    pub(crate) fn incident(&self) -> Option<&Incident> {
        self.incident.as_deref()
    }

    pub(crate) fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub(crate) fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub(crate) fn invalid_request_uri(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_uri", description)
    }

    pub(crate) fn unavailable(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            description,
        )
    }

    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the request body is larger than {limit} bytes (max_body_bytes)"),
        )
    }

    /// `408`: the body did not arrive in time (the connection is closed after the answer).
    pub(crate) fn body_timeout(timeout: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request",
            format!("the request body did not arrive within {timeout:?}"),
        )
        .closing_connection()
    }

    /// Marks the answer as the last on its connection (`Connection: close`): the layer stopped
    /// reading a body it did not read to its end, so the rest of it must not be taken for the
    /// next request.
    pub(crate) fn closing_connection(mut self) -> Self {
        self.closes_connection = true;
        self
    }

    /// Whether the answer closes the connection.
    #[cfg(test)]
    pub(crate) const fn closes_connection(&self) -> bool {
        self.closes_connection
    }

    /// `405` with `Allow: <allow>` (RFC 9110 §15.5.6).
    pub(crate) fn method_not_allowed(allow: &'static str, description: &'static str) -> Self {
        let mut err = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            description,
        );
        err.allow = Some(allow);
        err
    }

    /// The headers the protocol needs whoever renders the page: `Allow` on a 405,
    /// `Connection: close` when the answer closes the connection.
    pub(crate) fn protocol_headers(&self, headers: &mut http::HeaderMap) {
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.closes_connection {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }

    /// Adds `WWW-Authenticate: Basic realm="…"` (RFC 6749 §5.2: required when the client
    /// authenticated with the Authorization header).
    pub(crate) fn with_basic_challenge(mut self, realm: Arc<str>) -> Self {
        self.basic_challenge = Some(realm);
        self
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        self.status
    }

    /// The OAuth `error` code, e.g. `invalid_request`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// The `error_description`.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The JSON body of RFC 6749 §5.2.
    #[must_use]
    pub fn to_json(&self) -> Bytes {
        serde_json::to_vec(&serde_json::json!({
            "error": self.code,
            "error_description": self.description,
        }))
        .map_or_else(
            |_| Bytes::from_static(b"{\"error\":\"server_error\"}"),
            Bytes::from,
        )
    }

    /// The JSON error response: status, `Content-Type: application/json`,
    /// `Cache-Control: no-store`, `Pragma: no-cache`, and `WWW-Authenticate` / `Retry-After`
    /// (`Retry-After: 1` on `503` and `429`) / `Allow` / `Connection: close` where they apply.
    /// The error itself is attached as a response extension.
    #[must_use]
    pub fn to_response(&self) -> Response<Bytes> {
        let mut response = Response::new(self.to_json());
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        no_store(headers);
        if let Some(realm) = &self.basic_challenge {
            if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        self.protocol_headers(headers);
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(headers: &mut http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn sanitize(description: Cow<'static, str>) -> Cow<'static, str> {
    let allowed = |c: char| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
    if description.chars().all(allowed) {
        return description;
    }
    Cow::Owned(
        description
            .chars()
            .map(|c| if allowed(c) { c } else { '?' })
            .collect(),
    )
}

/// Renders the error page of the authorization endpoint.
///
/// The default renders the JSON of [`OAuthError::to_response`]; an integrator with a browser-facing
/// endpoint can render HTML instead. Whatever it returns, the layer never redirects for an
/// unknown, used, expired or foreign `request_uri` (RFC 9101 §7).
pub type ErrorResponder = Arc<dyn Fn(&OAuthError) -> Response<Bytes> + Send + Sync>;

/// A problem in the layer's configuration, found by [`ParLayerBuilder::build`](crate::ParLayerBuilder::build)
/// or while loading a clients file.
///
/// ```
/// use tower_par::{ConfigError, ParLayer, StaticClients};
///
/// let err = ParLayer::builder().clients(StaticClients::default()).build().unwrap_err();
/// assert!(matches!(err, ConfigError::Missing { setting: "issuer" }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting was not given.
    Missing {
        /// The setting's name.
        setting: &'static str,
    },
    /// A setting has a value the layer cannot work with.
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A client in the registry is misconfigured.
    Client {
        /// The client's id (or its position in the file when the id is missing).
        client_id: String,
        /// What is wrong with it.
        message: String,
    },
    /// A clients file could not be read or parsed.
    File {
        /// The file's path.
        path: String,
        /// The underlying error.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { setting } => write!(f, "missing setting `{setting}`"),
            Self::Invalid { setting, message } => {
                write!(f, "invalid setting `{setting}`: {message}")
            }
            Self::Client { client_id, message } => write!(f, "client `{client_id}`: {message}"),
            Self::File { path, message } => write!(f, "clients file {path}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_keep_to_the_rfc_6749_character_set() {
        let err = OAuthError::invalid_request("bad \"value\" \\ é\n");
        assert_eq!(err.description(), "bad ?value? ? ??");
    }

    #[test]
    fn basic_challenge_and_no_store_headers() {
        let response = OAuthError::invalid_client("wrong secret")
            .with_basic_challenge("as".into())
            .to_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"as\""
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert!(response.extensions().get::<OAuthError>().is_some());
    }

    proptest::proptest! {
        #[test]
        fn any_description_is_sanitised_character_for_character(text in proptest::prelude::any::<String>()) {
            // ERR-01: only %x20-21 / %x23-5B / %x5D-7E; each other character becomes one `?`.
            let allowed = |c: char| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
            let err = OAuthError::invalid_request(text.clone());
            let expected: String = text.chars().map(|c| if allowed(c) { c } else { '?' }).collect();
            proptest::prop_assert_eq!(err.description(), expected.as_str());
            let body: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap();
            proptest::prop_assert_eq!(body["error_description"].as_str(), Some(expected.as_str()));
        }
    }

    #[test]
    fn unavailable_and_too_many_requests_carry_retry_after() {
        let response = OAuthError::unavailable("store down").to_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "share exhausted",
        )
        .to_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = OAuthError::invalid_request("bad").to_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
