//! Discovery through the proxy: the upstream's document with the layer's PAR members merged in.

use std::fmt;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Limited};
use serde_json::{Map, Value};

use super::{
    body::ProxyBody,
    forward::{bad_gateway, gateway_timeout, ErrorChain, Upstream},
};
use crate::ParLayer;

const OPENID: &str = "/.well-known/openid-configuration";
const OAUTH: &str = "/.well-known/oauth-authorization-server";
/// A discovery document is a few KiB; more is not one.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// Members the layer owns outright.
const PAR_MEMBERS: [&str; 2] = [
    "pushed_authorization_request_endpoint",
    "require_pushed_authorization_requests",
];

pub(crate) fn is_well_known(path: &str) -> bool {
    path == OPENID || path == OAUTH
}

/// The upstream's discovery document could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryError(String);

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DiscoveryError {}

/// The members a proxy merges into the upstream's discovery document: the layer's
/// ([`ParLayer::metadata`]), whose `pushed_authorization_request_endpoint` is the issuer's origin
/// plus the PAR path, where the proxy answers it (or the public URL the layer was given).
///
/// ```
/// use tower_par::{proxy, ParLayer, StaticClients};
///
/// let par = ParLayer::builder()
///     .issuer("https://as.example.com/tenant")
///     .par_path("/par")
///     .clients(StaticClients::default())
///     .build()
///     .unwrap();
/// let members = proxy::par_members(&par);
/// assert_eq!(members["pushed_authorization_request_endpoint"], "https://as.example.com/par");
/// ```
#[must_use]
pub fn par_members(layer: &ParLayer) -> Map<String, Value> {
    layer.metadata()
}

/// The origin (`scheme://host[:port]`) and the host (`host[:port]`) of an http(s) URL.
pub(crate) fn origin_and_host(url: &str) -> (&str, &str) {
    let host_start = url.find("://").map_or(0, |scheme| scheme + 3);
    let host_end = url[host_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |end| host_start + end);
    (&url[..host_end], &url[host_start..host_end])
}

/// What the well-known routes of a forwarder merge: the layer's members, and the public `Host`
/// the upstream's document is fetched with.
pub(crate) struct Discovery {
    pub(crate) members: Map<String, Value>,
    pub(crate) public_host: Option<HeaderValue>,
}

impl Discovery {
    pub(crate) fn of(layer: &ParLayer) -> Self {
        let (_, host) = origin_and_host(&layer.config().issuer);
        Self {
            members: par_members(layer),
            public_host: HeaderValue::from_str(host).ok(),
        }
    }
}

/// Merges the layer's `members` into the upstream's `document`:
///
/// * `pushed_authorization_request_endpoint` and `require_pushed_authorization_requests` are the
///   layer's;
/// * a list the upstream publishes too (`token_endpoint_auth_methods_supported`, the signing
///   algorithms, `code_challenge_methods_supported`) becomes the values both accept, in the
///   upstream's order: a client that picks one of them is accepted at the PAR endpoint and at the
///   upstream's token and authorization endpoints;
/// * every other member stays as the upstream wrote it, and the layer adds nothing the upstream
///   does not claim to support.
///
/// ```
/// use serde_json::json;
///
/// let upstream = json!({
///     "issuer": "https://as.example.com",
///     "token_endpoint_auth_methods_supported": ["client_secret_basic", "tls_client_auth", "none"],
///     "userinfo_endpoint": "https://as.example.com/me",
/// });
/// let layer = json!({
///     "pushed_authorization_request_endpoint": "https://as.example.com/par",
///     "require_pushed_authorization_requests": false,
///     "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
///     "dpop_signing_alg_values_supported": ["ES256"],
/// });
/// let merged = tower_par::proxy::merge_discovery(
///     upstream.as_object().unwrap().clone(),
///     layer.as_object().unwrap(),
/// );
/// assert_eq!(merged["pushed_authorization_request_endpoint"], "https://as.example.com/par");
/// assert_eq!(merged["token_endpoint_auth_methods_supported"], json!(["client_secret_basic", "none"]));
/// assert_eq!(merged["userinfo_endpoint"], "https://as.example.com/me");
/// assert!(merged.get("dpop_signing_alg_values_supported").is_none());
/// ```
#[must_use]
pub fn merge_discovery(
    mut document: Map<String, Value>,
    members: &Map<String, Value>,
) -> Map<String, Value> {
    for (name, ours) in members {
        if PAR_MEMBERS.contains(&name.as_str()) {
            document.insert(name.clone(), ours.clone());
            continue;
        }
        if let (Some(Value::Array(theirs)), Value::Array(ours)) = (document.get_mut(name), ours) {
            theirs.retain(|value| ours.contains(value));
        }
    }
    document
}

fn error(message: impl Into<String>) -> DiscoveryError {
    DiscoveryError(message.into())
}

/// Why the upstream gave no answer.
enum Failure {
    Unreachable(String),
    Timeout,
}

impl Failure {
    fn response(&self) -> Response<ProxyBody> {
        match self {
            Self::Unreachable(why) => bad_gateway(why),
            Self::Timeout => gateway_timeout(),
        }
    }
}

/// The document at `path`: status, headers, body.
async fn get(
    shared: &Upstream,
    path: &'static str,
    headers: &HeaderMap,
) -> Result<(http::response::Parts, Bytes), Failure> {
    let mut request = Request::new(Empty::<Bytes>::new());
    *request.uri_mut() = shared.upstream_uri(http::uri::PathAndQuery::from_static(path));
    *request.headers_mut() = headers.clone();
    // The proxy reads this body: no content coding it would have to undo.
    request.headers_mut().remove(header::ACCEPT_ENCODING);
    let response = match tokio::time::timeout(
        shared.response_timeout,
        shared.fetcher.request(request),
    )
    .await
    {
        Err(_elapsed) => return Err(Failure::Timeout),
        Ok(Err(err)) => return Err(Failure::Unreachable(ErrorChain(&err).to_string())),
        Ok(Ok(response)) => response,
    };
    let (parts, body) = response.into_parts();
    match Limited::new(body, MAX_DOCUMENT).collect().await {
        Ok(body) => Ok((parts, body.to_bytes())),
        Err(err) => Err(Failure::Unreachable(ErrorChain(&*err).to_string())),
    }
}

/// The upstream's document at the requested well-known path, or the other one when it has none
/// there (node-oidc-provider, for one, serves only the OpenID path).
async fn upstream_document(
    shared: &Upstream,
    first: &str,
    headers: &HeaderMap,
) -> Result<(http::response::Parts, Bytes), Failure> {
    let (first, second) = if first == OAUTH {
        (OAUTH, OPENID)
    } else {
        (OPENID, OAUTH)
    };
    let found = get(shared, first, headers).await?;
    if found.0.status != StatusCode::NOT_FOUND {
        return Ok(found);
    }
    match get(shared, second, headers).await {
        Ok(other) if other.0.status == StatusCode::OK => Ok(other),
        _ => Ok(found),
    }
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Answers a well-known request: the merged document, or the upstream's answer as it was when it
/// has no JSON document to merge into.
pub(crate) async fn merged(
    shared: &Upstream,
    path: &str,
    mut headers: HeaderMap,
    discovery: &Discovery,
) -> Response<ProxyBody> {
    // The document as the issuer's clients see it, whatever address this request came to.
    if let Some(host) = &discovery.public_host {
        headers.insert(header::HOST, host.clone());
    }
    let (mut parts, body) = match upstream_document(shared, path, &headers).await {
        Ok(found) => found,
        Err(failure) => return failure.response(),
    };
    super::headers::remove_hop_by_hop(&mut parts.headers);
    let document = (parts.status == StatusCode::OK)
        .then(|| json_object(&body))
        .flatten();
    let Some(document) = document else {
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, ProxyBody::own(body));
    };
    let merged = merge_discovery(document, &discovery.members);
    let bytes = serde_json::to_vec(&Value::Object(merged)).unwrap_or_default();
    let mut response = Response::new(ProxyBody::own(Bytes::from(bytes)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    // Public: a browser-based client on any origin reads it, as the layer's own documents.
    crate::cors::allow_any_origin(response.headers_mut());
    if let Some(cache) = parts.headers.get(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, cache.clone());
    }
    response
}

/// The start-up fetch: the document as a client of `public_host` sees it.
pub(crate) async fn fetch(
    shared: &Upstream,
    public_host: &str,
) -> Result<Map<String, Value>, DiscoveryError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::HOST,
        HeaderValue::from_str(public_host)
            .map_err(|_| error(format!("{public_host} is not a Host value")))?,
    );
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let (parts, body) = match upstream_document(shared, OPENID, &headers).await {
        Ok(found) => found,
        Err(Failure::Unreachable(why)) => {
            return Err(error(format!(
                "{}://{}: unreachable: {why}",
                shared.scheme, shared.authority
            )))
        }
        Err(Failure::Timeout) => {
            return Err(error(format!(
                "{}://{}: no answer within {:?}",
                shared.scheme, shared.authority, shared.response_timeout
            )))
        }
    };
    if parts.status != StatusCode::OK {
        return Err(error(format!(
            "{}://{}: no discovery document at {OPENID} or {OAUTH} ({})",
            shared.scheme, shared.authority, parts.status
        )));
    }
    json_object(&body).ok_or_else(|| {
        error(format!(
            "{}://{}: the discovery document is not a JSON object",
            shared.scheme, shared.authority
        ))
    })
}
