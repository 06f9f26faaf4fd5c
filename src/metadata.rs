//! Discovery metadata (RFC 8414, RFC 9126 §5): the PAR members a host merges into its own
//! document, and the optional well-known route the layer can serve.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::{error::ConfigError, layer::Config, ParLayer};

/// The well-known paths the layer answers when metadata is served.
pub(crate) const WELL_KNOWN_PATHS: [&str; 2] = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
];

impl ParLayer {
    /// The layer's members of the authorization server metadata, to merge into the host's
    /// discovery document:
    /// `pushed_authorization_request_endpoint`, `require_pushed_authorization_requests` (true only
    /// when PAR is required globally; per-client requirements are client metadata, RFC 9126 §6),
    /// `token_endpoint_auth_methods_supported` (RFC 9126 §2: it governs PAR too),
    /// `code_challenge_methods_supported`, and with the `jwt` feature the signing algorithms.
    ///
    /// Serve the document with `Access-Control-Allow-Origin: *`, as the layer does with
    /// [`serve_metadata`](crate::ParLayerBuilder::serve_metadata): a browser-based client
    /// discovers the server from its own origin.
    ///
    /// ```
    /// use tower_par::{ParLayer, StaticClients};
    ///
    /// let layer = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .clients(StaticClients::default())
    ///     .build()
    ///     .unwrap();
    /// let fragment = layer.metadata();
    /// assert_eq!(fragment["pushed_authorization_request_endpoint"], "https://as.example.com/as/par");
    /// assert_eq!(fragment["require_pushed_authorization_requests"], false);
    /// ```
    #[must_use]
    pub fn metadata(&self) -> Map<String, Value> {
        fragment(self.config())
    }
}

pub(crate) fn fragment(config: &Config) -> Map<String, Value> {
    let mut methods = vec!["client_secret_basic", "client_secret_post"];
    #[cfg(feature = "jwt")]
    methods.extend(["client_secret_jwt", "private_key_jwt"]);
    methods.push("none");
    let mut challenge_methods = vec!["S256"];
    if config.allow_plain_pkce {
        challenge_methods.push("plain");
    }
    let mut map = Map::new();
    map.insert(
        "pushed_authorization_request_endpoint".into(),
        json!(config.par_endpoint),
    );
    map.insert(
        "require_pushed_authorization_requests".into(),
        json!(config.require_par),
    );
    map.insert(
        "token_endpoint_auth_methods_supported".into(),
        json!(methods),
    );
    map.insert(
        "code_challenge_methods_supported".into(),
        json!(challenge_methods),
    );
    #[cfg(feature = "jwt")]
    crate::client::jwt_metadata(config, &mut map);
    map
}

/// The document served at the well-known paths: the host's members, defaults for `issuer`,
/// `authorization_endpoint` and `response_types_supported`, and the layer's members on top.
pub(crate) fn render(config: &Config, document: Value) -> Result<Bytes, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        setting: "serve_metadata",
        message,
    };
    let Value::Object(mut doc) = document else {
        return Err(invalid(
            "the metadata document must be a JSON object".into(),
        ));
    };
    match doc.get("issuer") {
        None => {
            doc.insert("issuer".into(), json!(&*config.issuer));
        }
        Some(Value::String(issuer)) if issuer.trim_end_matches('/') == &*config.issuer => {}
        Some(other) => {
            return Err(invalid(format!(
                "issuer {other} differs from the layer's {}",
                config.issuer
            )))
        }
    }
    doc.entry("authorization_endpoint")
        .or_insert_with(|| json!(config.authorization_endpoint));
    doc.entry("response_types_supported")
        .or_insert_with(|| json!(["code"]));
    doc.extend(fragment(config));
    serde_json::to_vec(&Value::Object(doc))
        .map(Bytes::from)
        .map_err(|e| invalid(e.to_string()))
}

/// The served document; public, so readable from any origin (a browser-based client discovers
/// the server from its own origin).
pub(crate) fn response(document: &Bytes) -> http::Response<Bytes> {
    let mut response = http::Response::new(document.clone());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    crate::cors::allow_any_origin(response.headers_mut());
    response
}
