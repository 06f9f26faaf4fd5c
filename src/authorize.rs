//! The swap at the authorization endpoint: `client_id` + `request_uri` in, the pushed request
//! out, exactly once.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use http::{
    header, request::Parts, uri::PathAndQuery, HeaderValue, Method, Request, Response, Uri,
};
use http_body::Body;
use tower_service::Service;

use crate::{
    body::{RequestBody, ResponseBody},
    client,
    error::OAuthError,
    layer::{Config, Consumption},
    params::{self, PushedAuthorizationRequest},
    push::{self, REQUEST_URI_PREFIX},
    store::{Record, StoreError, StoreKey},
    BoxError,
};

/// `http::Uri` refuses a path and query longer than this (rust-notes D10).
const MAX_PATH_AND_QUERY: usize = u16::MAX as usize - 1;

/// Completes a pushed request in [`Consumption::AtCompletion`] mode.
///
/// The layer puts one in the request extensions of every redeemed request in that mode. The layer
/// completes by itself when the inner service answers with a redirect to the pushed
/// `redirect_uri`; flows that answer otherwise (`response_mode=form_post`, custom flows) call
/// [`Completion::complete`] before they hand out the authorization response.
///
/// ```
/// use axum::{extract::Request, http::StatusCode};
/// use tower_par::Completion;
///
/// // A form_post authorize handler completes before it writes the auto-submitting form.
/// async fn authorize(request: Request) -> Result<String, StatusCode> {
///     if let Some(completion) = request.extensions().get::<Completion>() {
///         match completion.complete().await {
///             Ok(true) => {}
///             Ok(false) => return Err(StatusCode::BAD_REQUEST), // another tab finished first
///             Err(_) => return Err(StatusCode::SERVICE_UNAVAILABLE),
///         }
///     }
///     Ok("<form method=post action=https://client.example/cb>…</form>".into())
/// }
/// ```
#[derive(Clone)]
pub struct Completion {
    inner: Arc<CompletionState>,
}

struct CompletionState {
    config: Arc<Config>,
    key: StoreKey,
    outcome: AtomicU8,
}

const PENDING: u8 = 0;
const WON: u8 = 1;
const LOST: u8 = 2;

impl Completion {
    /// Consumes the pushed request. `Ok(true)`: this flow owns it and may answer with the
    /// authorization response. `Ok(false)`: another flow completed it first (or its window is
    /// over), so this one must answer with an error and never hand out a code. Calling it again
    /// returns the first outcome.
    ///
    /// # Errors
    /// The store could not be reached; the flow must not complete.
    pub async fn complete(&self) -> Result<bool, StoreError> {
        match self.inner.outcome.load(Ordering::Acquire) {
            WON => return Ok(true),
            LOST => return Ok(false),
            _ => {}
        }
        let now = self.inner.config.clock.now();
        let won = self
            .inner
            .config
            .store
            .complete(self.inner.key, now)
            .await?;
        let outcome = if won { WON } else { LOST };
        // A concurrent call on a clone may have finished first; the store decided once.
        let _ = self.inner.outcome.compare_exchange(
            PENDING,
            outcome,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        Ok(self.inner.outcome.load(Ordering::Acquire) == WON)
    }

    fn outcome(&self) -> u8 {
        self.inner.outcome.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match self.outcome() {
            WON => "completed",
            LOST => "lost",
            _ => "pending",
        };
        f.debug_struct("Completion")
            .field("outcome", &outcome)
            .finish()
    }
}

/// Where the parameters of an authorization request came from.
enum Source<B> {
    /// A GET: the query; the body is passed on untouched.
    Query(B),
    /// A POST: the form body, already read.
    Form(Bytes),
}

type AuthorizeResult<ResBody, E> = Result<Response<ResponseBody<ResBody>>, E>;

fn own<ResBody>(response: Response<Bytes>) -> Response<ResponseBody<ResBody>> {
    response.map(ResponseBody::own)
}

/// Handles a GET or POST to the authorization endpoint.
pub(crate) async fn authorize<S, B, ResBody>(
    config: Arc<Config>,
    mut inner: S,
    req: Request<B>,
) -> AuthorizeResult<ResBody, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let source = if parts.method == Method::POST {
        let form_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(push::is_form);
        if !form_type {
            // RFC 6749 §3.1 / OIDC Core §3.1.2.1: authorization requests are forms; anything else
            // could hide a request from the require_par check.
            return Ok(own(config.error_page(&OAuthError::invalid_request(
                "authorization requests sent with POST must be application/x-www-form-urlencoded",
            ))));
        }
        if push::exceeds_limit(&parts.headers, &body, config.max_body) {
            return Ok(own(
                config.error_page(&OAuthError::payload_too_large(config.max_body))
            ));
        }
        match push::read_body(body, config.max_body).await {
            Ok(bytes) => Source::Form(bytes),
            Err(err) => return Ok(own(config.error_page(&err))),
        }
    } else {
        Source::Query(body)
    };

    let decision = {
        let raw: &[u8] = match &source {
            Source::Query(_) => parts.uri.query().unwrap_or("").as_bytes(),
            Source::Form(bytes) => bytes,
        };
        decide(&config, raw).await
    };
    match decision {
        Err(err) => Ok(own(config.error_page(&err))),
        Ok(Decision::PassThrough) => {
            let body = match source {
                Source::Query(body) => RequestBody::original(body),
                Source::Form(bytes) => RequestBody::rebuilt(bytes),
            };
            inner
                .call(Request::from_parts(parts, body))
                .await
                .map(|res| res.map(ResponseBody::inner))
        }
        Ok(Decision::Redeem(redeemed)) => {
            let is_post = matches!(source, Source::Form(_));
            redeem(config, inner, parts, is_post, redeemed).await
        }
    }
}

enum Decision {
    PassThrough,
    Redeem(Redeemed),
}

struct Redeemed {
    client: Arc<crate::Client>,
    request_uri: String,
    key: StoreKey,
    record: Record,
}

/// Reads `client_id` and `request_uri`, applies `require_par`, and takes (or opens) the handle.
async fn decide(config: &Config, raw: &[u8]) -> Result<Decision, OAuthError> {
    let pairs = params::parse(raw).map_err(push::form_error)?;
    let count = |name: &str| pairs.iter().filter(|(n, _)| n == name).count();
    for name in ["client_id", "request_uri"] {
        if count(name) > 1 {
            // AZ-09
            return Err(OAuthError::invalid_request(format!(
                "{name} is included more than once"
            )));
        }
    }
    let client_id = params::first(&pairs, "client_id");
    let Some(request_uri) = params::first(&pairs, "request_uri") else {
        return require_par(config, client_id)
            .await
            .map(|()| Decision::PassThrough);
    };
    if params::first(&pairs, "request").is_some() {
        // AZ-04
        return Err(OAuthError::invalid_request(
            "request and request_uri must not both be sent",
        ));
    }
    // AZ-02: without client_id the handle cannot be bound to anyone; never a redirect.
    let client_id = client_id
        .ok_or_else(|| OAuthError::invalid_request("client_id is required with request_uri"))?;
    let handle = parse_handle(request_uri).ok_or_else(|| {
        OAuthError::invalid_request_uri("request_uri was not issued by this server")
    })?;
    let client = client::authenticate::lookup(config, client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
    let key = StoreKey::derive(&config.issuer, client_id, &handle);
    let now = config.clock.now();
    let found = match config.consumption {
        Consumption::Strict => config.store.take(key, now).await,
        Consumption::AtCompletion { window } => config.store.open(key, now, window).await,
    };
    match found {
        Ok(Some(record)) => {
            tracing::info!(client_id, "pushed authorization request redeemed");
            Ok(Decision::Redeem(Redeemed {
                client,
                request_uri: request_uri.to_owned(),
                key,
                record,
            }))
        }
        Ok(None) => {
            tracing::info!(
                client_id,
                "request_uri refused: unknown, expired, used, or pushed by another client"
            );
            Err(OAuthError::invalid_request_uri(
                "request_uri is invalid, expired, or was already used",
            ))
        }
        Err(err) => {
            tracing::error!(error = %err, "pushed request store failed at the authorization endpoint");
            Err(OAuthError::unavailable(
                "the pushed request store is unavailable, retry later",
            ))
        }
    }
}

async fn require_par(config: &Config, client_id: Option<&str>) -> Result<(), OAuthError> {
    let refused = || {
        OAuthError::invalid_request(
            "this client must use pushed authorization requests (request_uri)",
        )
    };
    if config.require_par {
        return Err(refused());
    }
    let Some(client_id) = client_id else {
        return Ok(());
    };
    // An unknown client is the inner service's to refuse.
    match client::authenticate::lookup(config, client_id).await? {
        Some(client) if client.require_par() => Err(refused()),
        _ => Ok(()),
    }
}

pub(crate) fn parse_handle(request_uri: &str) -> Option<[u8; 32]> {
    let encoded = request_uri.strip_prefix(REQUEST_URI_PREFIX)?;
    if encoded.len() != 43 {
        return None;
    }
    let mut handle = [0u8; 32];
    (URL_SAFE_NO_PAD.decode_slice(encoded, &mut handle).ok()? == 32).then_some(handle)
}

async fn redeem<S, B, ResBody>(
    config: Arc<Config>,
    mut inner: S,
    mut parts: Parts,
    is_post: bool,
    redeemed: Redeemed,
) -> AuthorizeResult<ResBody, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
{
    let Redeemed {
        client,
        request_uri,
        key,
        record,
    } = redeemed;
    // The payload is the layer's own canonical encoding: ASCII, ready to be a query. It is
    // decoded only if the inner service reads the extension.
    let payload = record.payload();
    let Ok(encoded) = std::str::from_utf8(payload).map_err(drop).and_then(|p| {
        if p.is_ascii() {
            Ok(p)
        } else {
            Err(())
        }
    }) else {
        tracing::error!(
            client_id = client.client_id(),
            "a stored pushed request is corrupt"
        );
        return Ok(own(config.error_page(&OAuthError::invalid_request_uri(
            "request_uri is invalid",
        ))));
    };
    // AZ-06 / SEC-04: the registration may have changed since the push.
    let redirect_uri = match params::find_encoded(encoded, "redirect_uri") {
        Some(uri) if client.has_redirect_uri(&uri) => Some(uri.into_owned()),
        None if client.redirect_uris().len() == 1 => client.redirect_uris().first().cloned(),
        _ => {
            return Ok(own(config.error_page(&OAuthError::invalid_request(
                "the pushed redirect_uri is no longer registered for this client",
            ))))
        }
    };

    let mut rebuilt = String::with_capacity(encoded.len() + client.client_id().len() * 3 + 12);
    params::append_pair(&mut rebuilt, "client_id", client.client_id());
    if !encoded.is_empty() {
        rebuilt.push('&');
        rebuilt.push_str(encoded);
    }

    let complete_in_uri = if is_post {
        set_path_and_query(&mut parts.uri, None);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(rebuilt.len()));
        true
    } else if parts.uri.path().len() + 1 + rebuilt.len() <= MAX_PATH_AND_QUERY {
        set_path_and_query(&mut parts.uri, Some(&rebuilt))
    } else {
        false
    };
    if !complete_in_uri && !is_post {
        // Too long for any URI: the query names the client, the extension carries the request.
        let mut client_only = String::new();
        params::append_pair(&mut client_only, "client_id", client.client_id());
        set_path_and_query(&mut parts.uri, Some(&client_only));
    }
    parts.extensions.insert(PushedAuthorizationRequest::new(
        client.client_id().to_owned(),
        request_uri,
        payload.clone(),
        complete_in_uri || is_post,
    ));
    parts.extensions.remove::<Completion>();
    let completion = match config.consumption {
        Consumption::Strict => None,
        Consumption::AtCompletion { .. } => {
            let completion = Completion {
                inner: Arc::new(CompletionState {
                    config: Arc::clone(&config),
                    key,
                    outcome: AtomicU8::new(PENDING),
                }),
            };
            parts.extensions.insert(completion.clone());
            Some(completion)
        }
    };
    let body = if is_post {
        RequestBody::rebuilt(Bytes::from(rebuilt))
    } else {
        RequestBody::rebuilt(Bytes::new())
    };
    let response = inner.call(Request::from_parts(parts, body)).await?;

    let Some(completion) = completion else {
        return Ok(response.map(ResponseBody::inner));
    };
    if completion.outcome() != PENDING
        || !redirect_uri
            .as_deref()
            .is_some_and(|uri| is_authorization_response(&response, uri))
    {
        return Ok(response.map(ResponseBody::inner));
    }
    match completion.complete().await {
        Ok(true) => Ok(response.map(ResponseBody::inner)),
        Ok(false) => {
            tracing::warn!(
                client_id = client.client_id(),
                "a second authorization response for one request_uri was withheld"
            );
            Ok(own(config.error_page(&OAuthError::invalid_request_uri(
                "request_uri was already used",
            ))))
        }
        Err(err) => {
            tracing::error!(error = %err, "pushed request store failed at completion");
            Ok(own(config.error_page(&OAuthError::unavailable(
                "the pushed request store is unavailable, retry later",
            ))))
        }
    }
}

/// Replaces the path-and-query of `uri` with its path plus `query`; false if `http` refuses it.
fn set_path_and_query(uri: &mut Uri, query: Option<&str>) -> bool {
    let path = uri.path();
    let rebuilt = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let Ok(path_and_query) = PathAndQuery::try_from(rebuilt) else {
        return false;
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(path_and_query);
    match Uri::from_parts(parts) {
        Ok(new) => {
            *uri = new;
            true
        }
        Err(_) => false,
    }
}

/// Whether the inner service answered with the authorization response: a redirect to the pushed
/// `redirect_uri` carrying `code`, `error`, `access_token` or `id_token` in the query or fragment.
fn is_authorization_response<B>(response: &Response<B>, redirect_uri: &str) -> bool {
    if !response.status().is_redirection() {
        return false;
    }
    let Some(location) = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(rest) = location.strip_prefix(redirect_uri) else {
        return false;
    };
    if !(rest.is_empty() || rest.starts_with(['?', '&', '#'])) {
        return false;
    }
    rest.split(['?', '&', '#']).any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        matches!(name, "code" | "error" | "access_token" | "id_token")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(location: &str) -> Response<()> {
        Response::builder()
            .status(303)
            .header(header::LOCATION, location)
            .body(())
            .unwrap()
    }

    #[test]
    fn authorization_responses_are_recognised() {
        let cb = "https://c.example/cb";
        assert!(is_authorization_response(
            &redirect("https://c.example/cb?code=x&state=s"),
            cb
        ));
        assert!(is_authorization_response(
            &redirect("https://c.example/cb?state=s&error=access_denied"),
            cb
        ));
        assert!(is_authorization_response(
            &redirect("https://c.example/cb#access_token=t"),
            cb
        ));
        assert!(is_authorization_response(
            &redirect("https://c.example/cb?x=1&code=y"),
            "https://c.example/cb?x=1"
        ));
        // A login round-trip is not the authorization response.
        assert!(!is_authorization_response(
            &redirect("/login?return=%2Fas%2Fauthorize"),
            cb
        ));
        assert!(!is_authorization_response(
            &redirect("https://c.example/cb?state=s"),
            cb
        ));
        assert!(!is_authorization_response(
            &redirect("https://c.example/cb.evil?code=x"),
            cb
        ));
        let ok = Response::builder()
            .status(200)
            .header(header::LOCATION, "https://c.example/cb?code=x")
            .body(())
            .unwrap();
        assert!(!is_authorization_response(&ok, cb));
    }

    #[test]
    fn only_handles_this_server_issued_parse() {
        let good = format!("{REQUEST_URI_PREFIX}{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(parse_handle(&good), Some([7u8; 32]));
        assert_eq!(
            parse_handle("urn:ietf:params:oauth:request_uri:short"),
            None
        );
        assert_eq!(parse_handle(&good.replace("urn:ietf", "urn:other")), None);
        assert_eq!(parse_handle(&format!("{good}A")), None);
    }

    /// A `request_uri` as the PAR endpoint writes it (`push.rs`).
    fn issued(handle: [u8; 32]) -> String {
        format!("{REQUEST_URI_PREFIX}{}", URL_SAFE_NO_PAD.encode(handle))
    }

    proptest::proptest! {
        #[test]
        fn every_issued_request_uri_parses_to_its_handle(handle in proptest::prelude::any::<[u8; 32]>()) {
            // AZ-01, OK-03
            proptest::prop_assert_eq!(parse_handle(&issued(handle)), Some(handle));
        }

        #[test]
        fn only_issued_request_uris_parse(
            // The prefix and 43 base64url characters: the shape of a handle, including last
            // characters with trailing bits set, which no encoder writes.
            tail in "[A-Za-z0-9_-]{43}",
            noise in "[A-Za-z0-9_:=+/.-]{0,50}",
        ) {
            // AZ-01: recognise only URIs this PAR endpoint issued; one handle, one spelling.
            for candidate in [format!("{REQUEST_URI_PREFIX}{tail}"), noise] {
                if let Some(handle) = parse_handle(&candidate) {
                    proptest::prop_assert_eq!(candidate, issued(handle));
                }
            }
        }
    }

    #[test]
    fn uri_rewrite_keeps_scheme_and_authority() {
        let mut uri: Uri = "https://as.example/as/authorize?client_id=a&request_uri=b"
            .parse()
            .unwrap();
        assert!(set_path_and_query(
            &mut uri,
            Some("client_id=a&scope=openid")
        ));
        assert_eq!(
            uri.to_string(),
            "https://as.example/as/authorize?client_id=a&scope=openid"
        );
        let huge = "a".repeat(70_000);
        assert!(!set_path_and_query(&mut uri, Some(&huge)));
    }
}
