//! The PAR endpoint (RFC 9126 §2): method and size checks, strict form decoding, client
//! authentication, validation as the authorization endpoint would do it, storage, `201`.

use std::{
    cell::RefCell,
    fmt::Write as _,
    sync::Arc,
    time::{Duration, SystemTime},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use http::{
    header, request::Parts, HeaderName, HeaderValue, Method, Request, Response, StatusCode,
};
use http_body::Body;

use crate::{
    body::ResponseBody,
    client::{authenticate, Client},
    cors::{self, RequestOrigin},
    error::{no_store, OAuthError},
    layer::{Config, PkceRequirement},
    outcome::{self, PushClock, Rejection},
    params::{self, FormError, Pair},
    payload, read_request, seal,
    store::{unix_millis, Record, StoreError, StoreKey},
    trace, BoxError,
};

/// The prefix of every `request_uri` the layer issues (RFC 9126 §2.2).
pub(crate) const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Parameters that authenticate the client and never become part of the stored request (VAL-08).
const CREDENTIAL_PARAMS: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// The DPoP proof header (RFC 9449 §4.1).
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// RFC 8707 §2: `resource` may be sent more than once.
pub(crate) const REPEATABLE: &[&str] = &["resource"];

/// `405` with `Allow: POST` (RFC 9110 §15.5.6, PAR-02).
pub(crate) fn method_not_allowed() -> OAuthError {
    OAuthError::method_not_allowed("POST", "the PAR endpoint accepts POST only")
}

/// Answers every request to the PAR endpoint: the future [`ParService`](crate::ParService)
/// boxes. A browser's request (one with `Origin`) gets its CORS answer from [`cors`]: the
/// preflight, and the headers on whatever the endpoint answered; any other method is `405`.
///
/// One `async fn` from the box down to [`accept`]: boxing copies the whole future it is given,
/// and the two levels this replaces (an `async` block around the CORS wrapper, the wrapper
/// around the push's answer) made that 2.3 KB a push; it is now this future, 1.9 KB, with two
/// levels fewer to poll through.
pub(crate) async fn respond<B, R, E>(
    config: Arc<Config>,
    req: Request<B>,
) -> Result<Response<ResponseBody<R>>, E>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let config = &*config;
    let origin = RequestOrigin::of(req.headers());
    if let Some(origin) = &origin {
        if cors::is_preflight(&req) {
            return Ok(cors::preflight(config, origin).await.map(ResponseBody::own));
        }
    }
    let (parts, body) = req.into_parts();
    let clock = PushClock::start();
    let body = clock.watch(body);
    let answer = if parts.method == Method::POST {
        accept(config, &parts, origin.as_ref(), body).await
    } else {
        let err = read_request::refuse(config, &parts.headers, body, method_not_allowed()).await;
        Err((err, None))
    };
    outcome::push(config, &answer, &clock);
    let (mut response, client) = match answer {
        Ok((response, client)) => (response, Some(client)),
        Err((err, client)) => (err.to_response(), client),
    };
    if let Some(origin) = &origin {
        cors::allow_answer(config, origin, client.as_deref(), &mut response).await;
    }
    Ok(response.map(ResponseBody::own))
}

async fn accept<B>(
    config: &Config,
    parts: &Parts,
    origin: Option<&RequestOrigin>,
    body: B,
) -> Result<(Response<Bytes>, Arc<Client>), Rejection>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let unauthenticated = |err: OAuthError| (err, None);
    if let Err(err) = check_head(parts) {
        return Err(unauthenticated(
            read_request::refuse(config, &parts.headers, body, err).await,
        ));
    }
    let bytes = read_request::read_form(config, &parts.headers, body)
        .await
        .map_err(unauthenticated)?;
    let pairs = params::parse(&bytes).map_err(|e| (form_error(e), None))?;
    if trace::enabled() {
        if let Some(client_id) = params::first(&pairs, "client_id") {
            trace::record_client_id(client_id);
        }
    }
    params::reject_duplicates(&pairs, REPEATABLE).map_err(|e| (form_error(e), None))?;
    if params::first(&pairs, "request_uri").is_some() {
        return Err(unauthenticated(OAuthError::invalid_request(
            "request_uri must not be pushed (RFC 9126 section 2.1)",
        )));
    }

    let client = authenticate(config, &parts.headers, &pairs)
        .await
        .map_err(unauthenticated)?;
    if let Some(origin) = origin {
        if let Err(err) = cors::admit(config, origin, &client) {
            return Err((err, Some(client)));
        }
    }
    match store_request(config, parts, &client, pairs).await {
        Ok(response) => Ok((response, client)),
        Err(err) => Err((err, Some(client))),
    }
}

/// Everything after client authentication: request object and DPoP, validation, storage.
async fn store_request(
    config: &Config,
    parts: &Parts,
    client: &Client,
    pairs: Vec<Pair<'_>>,
) -> Result<Response<Bytes>, OAuthError> {
    let now = config.clock.now();
    let pushed = pushed_params(config, parts, client, pairs, now).await?;
    validate(config, client, &pushed.pairs)?;

    let lifetime = client.par_lifetime().unwrap_or(config.default_lifetime);
    let expires_at = match pushed.expires_at {
        // A request object's `exp` caps the handle's life (node-oidc-provider, Janssen #860).
        Some(exp) => exp.min(now + lifetime),
        None => now + lifetime,
    };
    let expires_in = expires_at
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    if expires_in == 0 {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_object",
            "the request object expires too soon",
        ));
    }

    let mut pairs = pushed.pairs;
    // VAL-08: credentials authenticate the push; they are never part of the stored request.
    pairs.retain(|(name, _)| !CREDENTIAL_PARAMS.contains(&name.as_ref()));
    let expires_at = now + Duration::from_secs(expires_in);
    let handle = store_under_fresh_handle(config, client, &pairs, expires_at, now).await?;
    trace::record_handle(&handle);
    trace::record_expires_in(expires_in);

    let mut response = Response::new(created_body(&handle, expires_in));
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(response.headers_mut());
    Ok(response)
}

/// `{"request_uri":"urn:ietf:params:oauth:request_uri:<handle>","expires_in":<seconds>}`, in a
/// buffer of exactly its length: `Bytes` then takes it over as it is, where a buffer with spare
/// room would cost another allocation for its reference count.
fn created_body(handle: &[u8; 32], expires_in: u64) -> Bytes {
    const OPEN: &str = "{\"request_uri\":\"";
    const EXPIRES_IN: &str = "\",\"expires_in\":";
    const HANDLE_CHARS: usize = match base64::encoded_len(32, false) {
        Some(len) => len,
        None => panic!("32 bytes have a base64 length"),
    };
    let digits = expires_in
        .checked_ilog10()
        .map_or(1, |log| log as usize + 1);
    let len = OPEN.len() + REQUEST_URI_PREFIX.len() + HANDLE_CHARS + EXPIRES_IN.len() + digits + 1;
    let mut body = String::with_capacity(len);
    body.push_str(OPEN);
    body.push_str(REQUEST_URI_PREFIX);
    URL_SAFE_NO_PAD.encode_string(handle, &mut body);
    body.push_str(EXPIRES_IN);
    let _ = write!(body, "{expires_in}}}");
    debug_assert_eq!((body.len(), body.capacity()), (len, len));
    Bytes::from(body)
}

/// The parameters to store, and a deadline a signed request object imposes.
pub(crate) struct Pushed<'a> {
    pub(crate) pairs: Vec<Pair<'a>>,
    pub(crate) expires_at: Option<std::time::SystemTime>,
}

#[cfg_attr(not(feature = "jwt"), allow(clippy::unused_async))]
async fn pushed_params<'a>(
    config: &Config,
    parts: &Parts,
    client: &Client,
    pairs: Vec<Pair<'a>>,
    now: std::time::SystemTime,
) -> Result<Pushed<'a>, OAuthError> {
    #[cfg(feature = "jwt")]
    {
        crate::client::jwt_params(config, parts, client, pairs, now).await
    }
    #[cfg(not(feature = "jwt"))]
    {
        // Without `jwt`, no client can require signed request objects: `ClientBuilder::build`
        // refuses that registration.
        let _ = (config, parts, client, now);
        if params::first(&pairs, "request").is_some() {
            // JAR-01
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "request_not_supported",
                "request objects are not enabled on this server",
            ));
        }
        Ok(Pushed {
            pairs,
            expires_at: None,
        })
    }
}

/// 32 bytes from the operating system's CSPRNG for a new handle (RFC 6749 §10.10: 256 bits).
///
/// Drawn from a per-thread pool that `getrandom` refills 4 KiB at a time: one system call per 128
/// pushes instead of one per push (the call and the kernel's CRNG were about 2% of a push under
/// load). Bytes are wiped from the pool as they are handed out.
fn fresh_handle() -> Result<[u8; 32], getrandom::Error> {
    const POOL: usize = 4096;
    struct Pool {
        bytes: [u8; POOL],
        next: usize,
    }
    thread_local! {
        static POOL_OF_THIS_THREAD: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; POOL], next: POOL }) };
    }
    POOL_OF_THIS_THREAD.with_borrow_mut(|pool| {
        if pool.next == POOL {
            getrandom::fill(&mut pool.bytes)?;
            pool.next = 0;
        }
        let taken = &mut pool.bytes[pool.next..pool.next + 32];
        let mut handle = [0u8; 32];
        handle.copy_from_slice(taken);
        taken.fill(0);
        pool.next += 32;
        Ok(handle)
    })
}

/// Stores `pairs` under a fresh handle, as the compact payload (`crate::payload`) sealed under
/// that handle's key ([`seal`](crate::seal)), charged to the client's share (and the public
/// clients' share), and returns the handle.
///
/// A partitioned store decides a put within the partition of its key, so a full partition may
/// not mean a full store: the push then tries a fresh handle, at most `config.put_attempts` times
/// in all, and seals again under the new handle's key (a key seals one record, ever). A share's
/// refusal is not retried: the client is at (or within a few percent of) its share, and a
/// flooding client must not make each refused push cost the store several puts.
async fn store_under_fresh_handle(
    config: &Config,
    client: &Client,
    pairs: &[Pair<'_>],
    expires_at: SystemTime,
    now: SystemTime,
) -> Result<[u8; 32], OAuthError> {
    let charge = config.shares.charge(&config.issuer, client);
    let expires_at_ms = unix_millis(expires_at);
    let payload_len = payload::encoded_len(pairs);
    let mut attempts_left = config.put_attempts;
    loop {
        let handle = fresh_handle().map_err(|err| {
            OAuthError::unavailable("no randomness available, retry later").failure(format_args!(
                "the operating system's random number generator failed: {err}"
            ))
        })?;
        let key = StoreKey::derive(&config.issuer, client.client_id(), &handle);
        let record = Record::new(
            expires_at,
            seal::seal_written(&handle, &key, expires_at_ms, payload_len, |out| {
                payload::encode_into(pairs, out);
            }),
        );
        attempts_left -= 1;
        match config.store.put(key, record, charge, now).await {
            Ok(()) => return Ok(handle),
            Err(StoreError::Full) if attempts_left > 0 => {}
            Err(err) => return Err(store_error(&err)),
        }
    }
}

pub(crate) fn form_error(err: FormError) -> OAuthError {
    OAuthError::invalid_request(err.to_string())
}

fn store_error(err: &StoreError) -> OAuthError {
    match err {
        StoreError::Full => {
            OAuthError::unavailable("the server holds too many pushed requests, retry later")
                .warning("the store is full")
        }
        StoreError::ShareExhausted => OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "this client holds too many pushed requests, retry later",
        )
        .warning("the client's share of the store is exhausted"),
        other => OAuthError::unavailable("the pushed request store is unavailable, retry later")
            .failure(format_args!("pushed request store failed: {other}")),
    }
}

/// What the request head alone can refuse: ambiguous field lines (RFC 9110 §5.3: a field that
/// is not a list is sent once; RFC 9449 §4.3: one `DPoP` field), the media type, credentials in
/// the query.
fn check_head(parts: &Parts) -> Result<(), OAuthError> {
    read_request::single_line(&parts.headers, &header::AUTHORIZATION)?;
    read_request::single_line(&parts.headers, &DPOP)?;
    read_request::check_media_type(
        &parts.headers,
        "the body must be application/x-www-form-urlencoded (UTF-8)",
    )?;
    check_query(parts.uri.query())
}

/// Client credentials never travel in the URI (RFC 6749 §2.3.1, PAR-06); other query
/// parameters on the PAR URL are ignored, never merged into the pushed request.
fn check_query(query: Option<&str>) -> Result<(), OAuthError> {
    let Some(query) = query else { return Ok(()) };
    let leaks = query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        params::decode(name.as_bytes())
            .is_ok_and(|n| matches!(n.as_ref(), "client_secret" | "client_assertion"))
    });
    if leaks {
        return Err(OAuthError::invalid_request(
            "client credentials must not be sent in the request URI",
        ));
    }
    Ok(())
}

/// Validates the pushed request as the authorization endpoint would (RFC 9126 §2.1 step 3).
pub(crate) fn validate(
    config: &Config,
    client: &Client,
    pairs: &[Pair<'_>],
) -> Result<(), OAuthError> {
    let response_type = params::first(pairs, "response_type")
        .ok_or_else(|| OAuthError::invalid_request("response_type is required"))?;
    // RFC 6749 §3.1.1: a list of values separated by one space. A blank value, or one with an
    // empty member, names no response type: refused, never read as "nothing asked for", which
    // would skip the checks that hang on `code` (PKCE).
    if response_type.split(' ').any(str::is_empty) {
        return Err(OAuthError::invalid_request(
            "response_type must be response types separated by single spaces",
        ));
    }
    let (mut wants_code, mut wants_implicit) = (false, false);
    for part in response_type.split(' ') {
        match part {
            "code" => wants_code = true,
            "token" | "id_token" => wants_implicit = true,
            _ => {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported_response_type",
                    format!("response_type {part} is not supported"),
                ))
            }
        }
    }
    let unauthorized =
        |why: String| OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", why);
    if !client.has_grant("authorization_code") && !client.has_grant("implicit") {
        // P1-06: PAR serves the grants that use the authorization endpoint.
        return Err(unauthorized(
            "the client has no grant type that uses the authorization endpoint (authorization_code or implicit)".into(),
        ));
    }
    if wants_code && !client.has_grant("authorization_code") {
        return Err(unauthorized(
            "the client may not use response_type code (no authorization_code grant)".into(),
        ));
    }
    if wants_implicit && !client.has_grant("implicit") {
        return Err(unauthorized(format!(
            "the client may not use response_type {response_type} (no implicit grant)"
        )));
    }

    match params::first(pairs, "redirect_uri") {
        Some(uri) if !client.has_redirect_uri(uri) => {
            // VAL-03: invalid_request, never an RFC 7591 code.
            return Err(OAuthError::invalid_request(format!(
                "redirect_uri {} is not registered for this client",
                shorten(uri)
            )));
        }
        Some(_) => {}
        None if client.redirect_uris().len() == 1 => {}
        None => {
            return Err(OAuthError::invalid_request(format!(
                "redirect_uri is required: the client has {} registered redirect URIs",
                client.redirect_uris().len()
            )))
        }
    }

    if wants_code {
        check_pkce(config, client, pairs)?;
    }
    Ok(())
}

fn shorten(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

fn check_pkce(config: &Config, client: &Client, pairs: &[Pair<'_>]) -> Result<(), OAuthError> {
    let required = match config.pkce {
        PkceRequirement::PublicClients => !client.auth_method().is_confidential(),
        PkceRequirement::AllClients => true,
        PkceRequirement::Optional => false,
    };
    let method = params::first(pairs, "code_challenge_method");
    let Some(challenge) = params::first(pairs, "code_challenge") else {
        if method.is_some() {
            return Err(OAuthError::invalid_request(
                "code_challenge_method was sent without code_challenge",
            ));
        }
        if required {
            return Err(OAuthError::invalid_request(
                "code_challenge is required (PKCE with S256)",
            ));
        }
        return Ok(());
    };
    // RFC 7636 §4.2: 43-128 characters of the unreserved set.
    let well_formed = (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return Err(OAuthError::invalid_request(
            "code_challenge must be 43-128 unreserved characters",
        ));
    }
    match method {
        Some("S256") => Ok(()),
        // RFC 7636 §4.3: no method means plain.
        None | Some("plain") if config.allow_plain_pkce => Ok(()),
        None | Some("plain") => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        )),
        Some(_) => Err(OAuthError::invalid_request(
            "code_challenge_method is not supported (use S256)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_query_are_refused_other_query_parameters_ignored() {
        assert!(check_query(Some("client_secret=x")).is_err());
        assert!(check_query(Some("a=1&client%5Fassertion=x")).is_err());
        assert!(check_query(Some("scope=admin")).is_ok());
        assert!(check_query(None).is_ok());
    }

    #[test]
    fn the_created_body_is_the_json_the_client_reads() {
        // OK-02: request_uri and expires_in (a JSON number), whatever its number of digits.
        for expires_in in [0, 9, 10, 60, 600, 86_400, u64::MAX] {
            let body = created_body(&[0xfb; 32], expires_in);
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["expires_in"], expires_in);
            let uri = json["request_uri"].as_str().unwrap();
            assert_eq!(uri.strip_prefix(REQUEST_URI_PREFIX).unwrap().len(), 43);
        }
    }

    #[test]
    fn handles_are_distinct_across_pool_refills() {
        let handles: std::collections::HashSet<[u8; 32]> =
            (0..1000).map(|_| fresh_handle().unwrap()).collect();
        assert_eq!(handles.len(), 1000);
        assert!(!handles.contains(&[0u8; 32]));
    }
}
