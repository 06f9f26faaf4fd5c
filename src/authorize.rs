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
    outcome::{self, Rejection},
    params::{self, PushedAuthorizationRequest},
    payload,
    push::{self, REQUEST_URI_PREFIX},
    read_request,
    store::{Record, StoreError, StoreKey},
    trace, BoxError,
};

/// `http::Uri` refuses a path and query longer than this (rust-notes D10).
const MAX_PATH_AND_QUERY: usize = u16::MAX as usize - 1;

/// Completes a pushed request in [`Consumption::AtCompletion`] mode.
///
/// The layer puts one in the request extensions of every redeemed request in that mode. The layer
/// completes by itself when the inner service answers with a redirect to the pushed
/// `redirect_uri`; flows that answer otherwise (`response_mode=form_post`, custom flows) call
/// [`Completion::complete`] before they hand out the authorization response. A page on another
/// path or node, which has no `Completion`, uses [`ParLayer::complete`](crate::ParLayer::complete)
/// with the client and the `request_uri`.
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
    /// The registered client that redeemed the request (for the metrics' optional label).
    client: Arc<crate::Client>,
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
        let state = &*self.inner;
        let won =
            crate::completion::consume(&state.config, state.key, state.client.client_id(), true)
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

type AuthorizeResult<ResBody, E> = Result<Response<ResponseBody<ResBody>>, E>;

fn own<ResBody>(response: Response<Bytes>) -> Response<ResponseBody<ResBody>> {
    response.map(ResponseBody::own)
}

/// `405` with `Allow: GET, POST` for every other method at the authorization endpoint.
///
/// A HEAD is not treated as a GET: a link checker or prefetcher that sends HEAD must not use up
/// (or, in completion mode, open) a single-use `request_uri`, and the inner service must not
/// answer a HEAD that the layer has not checked (axum runs the GET handler for it, `require_par`
/// and the swap would be bypassed). The authorization endpoint is a page the browser navigates
/// to, so it has no use for HEAD, OPTIONS or any other method.
pub(crate) fn method_not_allowed() -> OAuthError {
    OAuthError::method_not_allowed(
        "GET, POST",
        "the authorization endpoint accepts GET and POST only",
    )
}

/// Handles a GET or POST to the authorization endpoint.
///
/// A POST's query and form body are one request (RFC 6749 §3.1: the endpoint URI may have a
/// query of its own): `client_id` and `request_uri` are read from both, each at most once in
/// all, and `require_par` and the swap apply wherever they are.
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
    let (form, body) = if parts.method == Method::POST {
        match read_post_form(&config, &parts, body).await {
            Ok(form) => (Some(form), None),
            Err(err) => return Ok(own(config.error_page(&err))),
        }
    } else {
        (None, Some(body))
    };

    let decision = decide(&config, parts.uri.query(), form.as_deref()).await;
    match decision {
        Err(err) => Ok(own(config.error_page(&err))),
        Ok(Decision::PassThrough) => {
            let body = match body {
                Some(body) => RequestBody::original(body),
                None => RequestBody::rebuilt(form.unwrap_or_default()),
            };
            inner
                .call(Request::from_parts(parts, body))
                .await
                .map(|res| res.map(ResponseBody::inner))
        }
        Ok(Decision::Redeem(redeemed)) => {
            redeem(config, inner, parts, form.is_some(), redeemed).await
        }
    }
}

/// The form body of a POST: one `Content-Type` line naming a form, read under the layer's
/// limits (the PAR endpoint's reader).
async fn read_post_form<B>(config: &Config, parts: &Parts, body: B) -> Result<Bytes, OAuthError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // RFC 6749 §3.1 / OIDC Core §3.1.2.1: authorization requests are forms; anything else could
    // hide a request from the require_par check.
    if let Err(err) = read_request::check_media_type(
        &parts.headers,
        "authorization requests sent with POST must be application/x-www-form-urlencoded",
    ) {
        return Err(read_request::refuse(config, &parts.headers, body, err).await);
    }
    read_request::read_form(config, &parts.headers, body).await
}

enum Decision {
    PassThrough,
    /// A redemption: the request carries one `request_uri`; its handle taken (or opened), or
    /// the refusal.
    Redeem(Result<Redeemed, Rejection>),
}

struct Redeemed {
    client: Arc<crate::Client>,
    request_uri: String,
    key: StoreKey,
    record: Record,
}

/// Reads `client_id` and `request_uri` from the query and the form body of a POST, applies
/// `require_par` to a request without `request_uri`, and takes (or opens) the handle of one with.
async fn decide(
    config: &Config,
    query: Option<&str>,
    form: Option<&[u8]>,
) -> Result<Decision, OAuthError> {
    let mut pairs = params::parse(query.unwrap_or("").as_bytes()).map_err(push::form_error)?;
    if let Some(form) = form {
        pairs.extend(params::parse(form).map_err(push::form_error)?);
    }
    let count = |name: &str| pairs.iter().filter(|(n, _)| n == name).count();
    for name in ["client_id", "request_uri"] {
        if count(name) > 1 {
            // AZ-09, across the query and the body of a POST.
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
    let with_request_object = params::first(&pairs, "request").is_some();
    let redeemed = take(config, client_id, request_uri, with_request_object).await;
    Ok(Decision::Redeem(redeemed))
}

/// The redemption of `request_uri` by `client_id`: the handle taken (strict) or opened (at
/// completion), bound to the registered client.
async fn take(
    config: &Config,
    client_id: Option<&str>,
    request_uri: &str,
    with_request_object: bool,
) -> Result<Redeemed, Rejection> {
    let unregistered = |err: OAuthError| (err, None);
    if let Some(client_id) = client_id {
        trace::record_client_id(client_id);
    }
    if with_request_object {
        // AZ-04
        return Err(unregistered(OAuthError::invalid_request(
            "request and request_uri must not both be sent",
        )));
    }
    // AZ-02: without client_id the handle cannot be bound to anyone; never a redirect.
    let client_id = client_id.ok_or_else(|| {
        unregistered(OAuthError::invalid_request(
            "client_id is required with request_uri",
        ))
    })?;
    let handle = parse_handle(request_uri).ok_or_else(|| {
        unregistered(OAuthError::invalid_request_uri(
            "request_uri was not issued by this server",
        ))
    })?;
    trace::record_handle(&handle);
    let client = client::authenticate::lookup(config, client_id)
        .await
        .map_err(unregistered)?
        .ok_or_else(|| unregistered(OAuthError::invalid_request("unknown client_id")))?;
    let key = StoreKey::derive(&config.issuer, client_id, &handle);
    let now = config.clock.now();
    let found = match config.consumption {
        Consumption::Strict => config.store.take(key, now).await,
        Consumption::AtCompletion { window } => config.store.open(key, now, window).await,
    };
    match found {
        Ok(Some(record)) => Ok(Redeemed {
            client,
            request_uri: request_uri.to_owned(),
            key,
            record,
        }),
        Ok(None) => Err((
            OAuthError::invalid_request_uri("request_uri is invalid, expired, or was already used"),
            Some(client),
        )),
        Err(err) => Err((
            OAuthError::unavailable("the pushed request store is unavailable, retry later")
                .failure(format_args!(
                    "pushed request store failed at the authorization endpoint: {err}"
                )),
            Some(client),
        )),
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
    if !config.clients.any_client_requires_par() {
        // The registry says no client requires PAR: no lookup on a plain request.
        return Ok(());
    }
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

/// The redemption's one outcome (`crate::outcome`), then the inner service with the pushed
/// request, then, in completion mode, the completion on its authorization response.
async fn redeem<S, B, ResBody>(
    config: Arc<Config>,
    mut inner: S,
    mut parts: Parts,
    is_post: bool,
    redeemed: Result<Redeemed, Rejection>,
) -> AuthorizeResult<ResBody, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
{
    let swapped = redeemed.and_then(|redeemed| swap(&config, &mut parts, is_post, redeemed));
    outcome::redemption(&config, swapped.as_ref().map(|s| &*s.client));
    let Swapped {
        body,
        redirect_uri,
        completion,
        ..
    } = match swapped {
        Ok(swapped) => swapped,
        Err((err, _)) => return Ok(own(config.render_error_page(&err))),
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
    // `Completion::complete` logs and counts the completion's outcome.
    match completion.complete().await {
        Ok(true) => Ok(response.map(ResponseBody::inner)),
        // Another flow completed first: this second authorization response is withheld.
        Ok(false) => Ok(own(config.render_error_page(
            &OAuthError::invalid_request_uri("request_uri was already used"),
        ))),
        Err(_) => Ok(own(config.render_error_page(&OAuthError::unavailable(
            "the pushed request store is unavailable, retry later",
        )))),
    }
}

/// A redeemed request, ready for the inner service.
struct Swapped<B> {
    client: Arc<crate::Client>,
    body: RequestBody<B>,
    /// Where the authorization response goes (completion mode watches for it).
    redirect_uri: Option<String>,
    completion: Option<Completion>,
}

/// Rebuilds the request from the redeemed record: the pushed parameters in the query (or the
/// form of a POST), the [`PushedAuthorizationRequest`] extension, and in completion mode a
/// [`Completion`].
fn swap<B>(
    config: &Arc<Config>,
    parts: &mut Parts,
    is_post: bool,
    redeemed: Redeemed,
) -> Result<Swapped<B>, Rejection> {
    let Redeemed {
        client,
        request_uri,
        key,
        record,
    } = redeemed;
    // The payload is the layer's compact form (`crate::payload`): the canonical query is written
    // from it here, once; the extension decodes it again only if the inner service reads it.
    let payload = record.payload();
    let pairs = match payload::decode(payload) {
        Ok(pairs) => pairs,
        Err(err) => {
            return Err((
                OAuthError::invalid_request_uri("request_uri is invalid")
                    .failure(format_args!("a stored pushed request is corrupt: {err}")),
                Some(client),
            ));
        }
    };
    // AZ-06 / SEC-04: the registration may have changed since the push.
    let pushed_redirect_uri = pairs
        .iter()
        .find(|(name, _)| *name == "redirect_uri")
        .map(|(_, value)| *value);
    let redirect_uri = match pushed_redirect_uri {
        Some(uri) if client.has_redirect_uri(uri) => Some(uri.to_owned()),
        None if client.redirect_uris().len() == 1 => client.redirect_uris().first().cloned(),
        _ => {
            return Err((
                OAuthError::invalid_request(
                    "the pushed redirect_uri is no longer registered for this client",
                ),
                Some(client),
            ))
        }
    };

    // A POST carries the whole request in its body; a GET in its query while that fits a URI.
    let room = if is_post {
        usize::MAX
    } else {
        MAX_PATH_AND_QUERY.saturating_sub(parts.uri.path().len() + 1)
    };
    let mut rebuilt = canonical_query(client.client_id(), &pairs, room);
    // An inner service across HTTP (par-proxy) never sees the extension: a request too long for a
    // URI reaches it as a form instead.
    let is_post = if rebuilt.is_none() && !is_post && config.long_requests_as_post {
        parts.method = Method::POST;
        rebuilt = canonical_query(client.client_id(), &pairs, usize::MAX);
        true
    } else {
        is_post
    };
    let complete_in_uri = match &rebuilt {
        Some(form) if is_post => {
            set_path_and_query(&mut parts.uri, None);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(form.len()));
            true
        }
        Some(query) => set_path_and_query(&mut parts.uri, Some(query)),
        None => false,
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
                    config: Arc::clone(config),
                    key,
                    client: Arc::clone(&client),
                    outcome: AtomicU8::new(PENDING),
                }),
            };
            parts.extensions.insert(completion.clone());
            Some(completion)
        }
    };
    let body = match rebuilt {
        Some(form) if is_post => RequestBody::rebuilt(Bytes::from(form)),
        _ => RequestBody::rebuilt(Bytes::new()),
    };
    Ok(Swapped {
        client,
        body,
        redirect_uri,
        completion,
    })
}

/// `client_id` and the pushed pairs in the canonical encoding (`params::append_pair`), or `None`
/// when that is longer than `limit` bytes.
fn canonical_query(client_id: &str, pairs: &[(&str, &str)], limit: usize) -> Option<String> {
    // Encoding never shrinks: a request whose raw bytes pass the limit is not even started.
    let raw: usize = pairs.iter().map(|(n, v)| 2 + n.len() + v.len()).sum();
    if raw > limit {
        return None;
    }
    // Most of a request is unreserved characters; an eighth more covers typical escapes.
    let mut out = String::with_capacity("client_id=".len() + client_id.len() + raw + raw / 8);
    params::append_pair(&mut out, "client_id", client_id);
    for (name, value) in pairs {
        params::append_pair(&mut out, name, value);
        if out.len() > limit {
            return None;
        }
    }
    Some(out)
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
/// `redirect_uri`, followed by its end, `?`, `&` or `#`, whatever it carries. A response the
/// layer does not know (`response_type=none`, which carries only `state`; JARM's `response`;
/// an implicit response with `state` alone) completes like a code: only a redirect elsewhere
/// (a login or consent page of the host) leaves the handle open.
fn is_authorization_response<B>(response: &Response<B>, redirect_uri: &str) -> bool {
    if !response.status().is_redirection() {
        return false;
    }
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| location.strip_prefix(redirect_uri))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['?', '&', '#']))
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
        // Responses whatever they carry: `none` and state-only, JARM, nothing at all.
        for location in [
            "https://c.example/cb?state=s",
            "https://c.example/cb#state=s&iss=x",
            "https://c.example/cb?response=eyJhbGciOiJFUzI1NiJ9.e30.sig",
            "https://c.example/cb",
        ] {
            assert!(
                is_authorization_response(&redirect(location), cb),
                "{location}"
            );
        }
        // A login round-trip is not the authorization response.
        assert!(!is_authorization_response(
            &redirect("/login?return=%2Fas%2Fauthorize"),
            cb
        ));
        assert!(!is_authorization_response(
            &redirect("https://c.example/cbx?code=x"),
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
    fn the_canonical_query_is_written_whole_or_not_at_all() {
        let pairs = [("scope", "openid profile"), ("state", "!")];
        let query = "client_id=c%201&scope=openid%20profile&state=%21";
        assert_eq!(
            canonical_query("c 1", &pairs, query.len()).as_deref(),
            Some(query)
        );
        assert_eq!(canonical_query("c 1", &pairs, query.len() - 1), None);
        let long = "!".repeat(100);
        assert_eq!(canonical_query("c", &[("s", long.as_str())], 150), None);
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
