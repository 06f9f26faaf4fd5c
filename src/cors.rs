//! Cross-origin requests from browser-based clients (the Fetch standard's CORS protocol), decided
//! per client: which origins a client registered (`web_origins`), what a preflight gets, which
//! answers of the PAR endpoint a page may read, and the public discovery documents.
//!
//! tower-http's `CorsLayer` cannot make these decisions: only the layer knows which client is
//! pushing and which origins that client registered.
//!
//! The rules, and why:
//!
//! * **Preflight** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`): the body is not
//!   there yet, so the client is unknown. An origin that any client registered gets `204` and the
//!   allow headers; any other origin gets `403 invalid_request` without them.
//! * **Answers before the client is known** (wrong method, body too large, not a form, a failed
//!   authentication): readable by an origin that any client registered, as the preflight promised;
//!   they say nothing about any client.
//! * **Answers once the client is known** (the `201` and every later error): readable only by an
//!   origin that this client registered.
//! * **A push from an origin the client did not register is refused** (`400 invalid_request`,
//!   nothing stored), unless it comes from the PAR endpoint's own origin (same-origin needs no
//!   CORS). Its answer would be unreadable anyway, so storing it would only spend the store's
//!   budget on a handle nobody can read; and a public client's id is public, so a hostile page
//!   could otherwise make its visitors' browsers push as that client from many addresses.
//!   Server-side clients send no `Origin` and are unaffected. node-oidc-provider refuses the same
//!   way.
//! * **Discovery documents** are public: `Access-Control-Allow-Origin: *`.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use crate::{client::Client, error::OAuthError, layer::Config};

/// The request headers a push may carry besides the CORS-safelisted ones: Basic credentials,
/// the form's media type (safelisted only without parameters other browsers add) and a DPoP
/// proof (RFC 9449 §4).
const ALLOW_HEADERS: HeaderValue = HeaderValue::from_static("authorization, content-type, dpop");

/// How long a browser may reuse a preflight answer: two hours, the most Chromium honours. A
/// stale answer costs nothing: the push it lets through is still checked against the client.
const MAX_AGE: HeaderValue = HeaderValue::from_static("7200");

/// Response headers a page may read besides the safelisted ones: the Basic challenge of a `401`,
/// the `Retry-After` of a `503`, and a DPoP nonce (RFC 9449 §8) that a server may send.
const EXPOSE_HEADERS: HeaderValue =
    HeaderValue::from_static("WWW-Authenticate, Retry-After, DPoP-Nonce");

/// The `Origin` of a request (RFC 6454 §7), as sent and as compared.
#[derive(Debug)]
pub(crate) struct RequestOrigin {
    /// Echoed in `Access-Control-Allow-Origin`: browsers compare it byte for byte with their own
    /// serialisation, which is what they sent.
    sent: HeaderValue,
    /// `None` for `null` and anything that is not one http(s) origin: never registered.
    canonical: Option<String>,
}

impl RequestOrigin {
    /// The request's origin, `None` when it has no `Origin` header (not a browser, or a browser's
    /// same-origin `GET`).
    pub(crate) fn of(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let sent = values.next()?.clone();
        let canonical = match values.next() {
            Some(_) => None,
            None => sent
                .to_str()
                .ok()
                .and_then(|origin| canonical_origin(origin).ok())
                .map(Cow::into_owned),
        };
        Some(Self { sent, canonical })
    }

    fn registered_by(&self, client: &Client) -> bool {
        self.canonical
            .as_deref()
            .is_some_and(|origin| client.has_web_origin(origin))
    }

    /// Whether a client of the registry registered this origin (`503 temporarily_unavailable`
    /// when the registry cannot tell).
    async fn registered_by_any(&self, config: &Config) -> Result<bool, OAuthError> {
        let Some(origin) = &self.canonical else {
            return Ok(false);
        };
        config.clients.is_web_origin(origin).await.map_err(|err| {
            tracing::error!(error = %err, "client registry failed (web origins)");
            OAuthError::unavailable("the client registry is unavailable, retry later")
        })
    }

    /// Whether the request comes from the PAR endpoint's own origin.
    fn is_same_origin(&self, config: &Config) -> bool {
        let own = url_origin(&config.par_endpoint);
        self.canonical.is_some() && self.canonical.as_deref() == own.as_deref()
    }
}

/// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method` (the caller found `Origin`).
pub(crate) fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Answers a preflight at the PAR endpoint: `204` with the allow headers for an origin some
/// client registered, `403` without them otherwise, `503` when the registry cannot tell.
pub(crate) async fn preflight(config: &Config, origin: &RequestOrigin) -> Response<Bytes> {
    let mut response = match origin.registered_by_any(config).await {
        Ok(true) => {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST"),
            );
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.sent.clone());
            response
        }
        Ok(false) => {
            tracing::info!(origin = ?origin.sent, "CORS preflight refused: no client registered the origin");
            OAuthError::new(
                StatusCode::FORBIDDEN,
                "invalid_request",
                "no client registered this origin (web_origins) for the PAR endpoint",
            )
            .to_response()
        }
        Err(err) => err.to_response(),
    };
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// Refuses a push from an origin the authenticated client did not register (see the module
/// docs), before anything is stored.
pub(crate) fn admit(
    config: &Config,
    origin: &RequestOrigin,
    client: &Client,
) -> Result<(), OAuthError> {
    if origin.registered_by(client) || origin.is_same_origin(config) {
        return Ok(());
    }
    Err(OAuthError::invalid_request(format!(
        "the request's Origin is not registered for client {} (web_origins)",
        client.client_id()
    )))
}

/// Makes an answer of the PAR endpoint readable by the requesting page when the rules allow it:
/// the authenticated client's own origins, or, before any client authenticated, an origin some
/// client registered.
pub(crate) async fn allow_answer(
    config: &Config,
    origin: &RequestOrigin,
    client: Option<&Client>,
    response: &mut Response<Bytes>,
) {
    let readable = match client {
        Some(client) => origin.registered_by(client),
        // The answer is an error already; a failing registry only keeps it unreadable.
        None => origin.registered_by_any(config).await.unwrap_or(false),
    };
    if readable {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.sent.clone());
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// A public document (discovery metadata): readable from any origin.
pub(crate) fn allow_any_origin(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
}

/// The ASCII serialisation of an http(s) origin (RFC 6454 §6.2): `scheme://host[:port]`, scheme
/// and host in lower case, the default port (80, 443) left out. So `https://A.example:443` and
/// `https://a.example` are the same origin, as they are to a browser.
///
/// Refused, with the reason: a path (even `/`), a query, a fragment, user information, `*`,
/// `null`, a scheme other than http and https, a host that is not ASCII (write its `xn--` form),
/// a port outside 1-65535.
pub(crate) fn canonical_origin(origin: &str) -> Result<Cow<'_, str>, &'static str> {
    if origin == "*" {
        return Err("`*` is not an origin: list each origin");
    }
    let (scheme, authority) = origin
        .split_once("://")
        .ok_or("an origin is scheme://host[:port]")?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        return Err("an origin's scheme is http or https");
    };
    if authority.contains('/') {
        return Err("an origin has no path, not even `/`");
    }
    if authority.contains(['?', '#']) {
        return Err("an origin has no query or fragment");
    }
    if authority.contains('@') {
        return Err("an origin has no user information");
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => None,
        Some(digits) => {
            let port = digits
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0 && digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or("an origin's port is a number in 1-65535")?;
            (port != default_port).then_some(port)
        }
    };
    let canonical = port.is_none()
        && !scheme.bytes().any(|b| b.is_ascii_uppercase())
        && !host.bytes().any(|b| b.is_ascii_uppercase())
        && authority.len() == host.len();
    if canonical {
        return Ok(Cow::Borrowed(origin));
    }
    let mut out = String::with_capacity(origin.len());
    out.push_str(&scheme.to_ascii_lowercase());
    out.push_str("://");
    out.push_str(&host.to_ascii_lowercase());
    if let Some(port) = port {
        out.push(':');
        out.push_str(&port.to_string());
    }
    Ok(Cow::Owned(out))
}

/// The host (a name, an IPv4 address or a bracketed IPv6 address) and the port digits.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or("an IPv6 host is closed with `]`")?;
        let (host, rest) = authority.split_at(end + 1);
        let valid = host[1..end]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid || end == 1 {
            return Err("an IPv6 host holds hex digits, `:` and `.`");
        }
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(
                    rest.strip_prefix(':')
                        .ok_or("an origin's port follows a `:`")?,
                ),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("an origin has a host");
    }
    if !host.is_ascii() {
        return Err("an origin's host is ASCII: write an international name in its xn-- form");
    }
    let name_like = host.starts_with('[')
        || host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !name_like {
        return Err("an origin's host holds letters, digits, `-`, `.` and `_`");
    }
    Ok((host, port))
}

/// The origin of an http(s) URL (a redirect URI, the PAR endpoint), `None` for other schemes
/// and for URLs that have no valid origin.
pub(crate) fn url_origin(url: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| scheme_end + at);
    canonical_origin(&url[..authority_end])
        .ok()
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_as_their_ascii_serialisation() {
        for (given, canonical) in [
            ("https://a.example", "https://a.example"),
            ("https://a.example:443", "https://a.example"),
            ("HTTPS://A.Example", "https://a.example"),
            ("http://a.example:80", "http://a.example"),
            ("http://a.example:443", "http://a.example:443"),
            ("https://a.example:80", "https://a.example:80"),
            ("https://a.example:08443", "https://a.example:8443"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("http://[::1]:80", "http://[::1]"),
            (
                "https://xn--bcher-kva.example",
                "https://xn--bcher-kva.example",
            ),
        ] {
            assert_eq!(canonical_origin(given).as_deref(), Ok(canonical), "{given}");
        }
        assert!(matches!(
            canonical_origin("https://a.example"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn malformed_origins_are_refused_with_the_reason() {
        for (given, reason) in [
            ("*", "`*`"),
            ("null", "scheme://host"),
            ("a.example", "scheme://host"),
            ("ftp://a.example", "http or https"),
            ("chrome-extension://abc", "http or https"),
            ("https://a.example/", "no path"),
            ("https://a.example/app", "no path"),
            ("https://a.example?x=1", "no query"),
            ("https://a.example#f", "no query or fragment"),
            ("https://user@a.example", "user information"),
            ("https://", "has a host"),
            ("https://:443", "has a host"),
            ("https://a.example:", "1-65535"),
            ("https://a.example:0", "1-65535"),
            ("https://a.example:65536", "1-65535"),
            ("https://a.example:+443", "1-65535"),
            ("https://a.example:44 3", "1-65535"),
            ("https://bücher.example", "xn--"),
            ("https://a example", "letters, digits"),
            ("https://*.example", "letters, digits"),
            ("http://[::1", "`]`"),
            ("http://[]", "IPv6"),
            ("http://[::1]x", "follows a `:`"),
        ] {
            let err = canonical_origin(given).unwrap_err();
            assert!(err.contains(reason), "{given}: {err}");
        }
    }

    #[test]
    fn urls_have_origins_other_schemes_do_not() {
        assert_eq!(
            url_origin("http://127.0.0.1:8080/callback").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            url_origin("https://SPA.example:443?x=1").as_deref(),
            Some("https://spa.example")
        );
        assert_eq!(
            url_origin("https://spa.example#x").as_deref(),
            Some("https://spa.example")
        );
        assert_eq!(url_origin("com.example.app:/callback"), None);
        assert_eq!(url_origin("https://user@spa.example/cb"), None);
    }

    #[test]
    fn the_request_origin_is_read_once_and_kept_as_sent() {
        let mut headers = HeaderMap::new();
        assert!(RequestOrigin::of(&headers).is_none());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://A.example:443"),
        );
        let origin = RequestOrigin::of(&headers).unwrap();
        assert_eq!(origin.sent, "https://A.example:443");
        assert_eq!(origin.canonical.as_deref(), Some("https://a.example"));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert_eq!(RequestOrigin::of(&headers).unwrap().canonical, None);
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://a.example"),
        );
        headers.append(
            header::ORIGIN,
            HeaderValue::from_static("https://a.example"),
        );
        assert_eq!(
            RequestOrigin::of(&headers).unwrap().canonical,
            None,
            "two Origin headers are not one origin"
        );
    }
}
