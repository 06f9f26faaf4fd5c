//! Browser-based clients at the PAR endpoint and discovery (issue 15), over real TCP: client-based
//! CORS. The rules are in `src/cors.rs`; the README's "Browser-based clients" tells them to
//! integrators. `tests/browser` drives the same rules with a real browser.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::json;
use tower_par::{
    client::{AuthMethod, Client, ClientRegistry, RegistryError, RegistryFuture, WebOriginFuture},
    ManualClock, MemoryStore, ParLayerBuilder, StaticClients,
};

/// The `spa` demo client's redirect URI origin (public client, no `web_origins`).
const SPA_ORIGIN: &str = "http://127.0.0.1:8080";
/// Registered by `portal` (confidential) as `https://portal.example:443`.
const PORTAL_ORIGIN: &str = "https://portal.example";
/// `web-app`'s redirect URI origin: a confidential client without `web_origins`.
const WEB_APP_ORIGIN: &str = "https://client.example.org";
const KIOSK_ORIGIN: &str = "https://kiosk.example";
const KIOSK_CB: &str = "https://kiosk-callback.example/cb";
const EVIL_ORIGIN: &str = "https://evil.example";

/// The demo clients plus `portal` (confidential, `web_origins`) and `kiosk` (public, explicit
/// `web_origins` that differ from its redirect URI's origin).
fn registry() -> StaticClients {
    let demo = clients();
    let portal = Client::builder("portal")
        .secret("portal-secret")
        .redirect_uri("https://portal.example/cb")
        .grant_type("authorization_code")
        .web_origin("https://portal.example:443")
        .build()
        .unwrap();
    let kiosk = Client::builder("kiosk")
        .auth_method(AuthMethod::None)
        .redirect_uri(KIOSK_CB)
        .grant_type("authorization_code")
        .web_origins([KIOSK_ORIGIN])
        .build()
        .unwrap();
    StaticClients::from_clients(
        demo.iter()
            .map(|client| Client::clone(client))
            .chain([portal, kiosk]),
    )
    .unwrap()
}

fn layer(clock: &ManualClock) -> ParLayerBuilder {
    builder(clock).clients(registry())
}

async fn server() -> TestServer {
    serve(layer(&ManualClock::new()).build().unwrap(), InnerMode::Echo).await
}

/// A server whose store holds one request: a second push tells whether the first was stored.
async fn server_holding_one_request() -> TestServer {
    // Whole-store shares, so that a push meets the full store (503), not a share (429).
    let par = layer(&ManualClock::new())
        .store(MemoryStore::with_capacity(1))
        .client_share(1.0)
        .public_clients_share(1.0)
        .build()
        .unwrap();
    serve(par, InnerMode::Echo).await
}

fn spa_form(extra: &str) -> String {
    format!(
        "response_type=code&client_id=spa&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        enc(SPA_CB)
    )
}

fn kiosk_form() -> String {
    format!(
        "response_type=code&client_id=kiosk&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256",
        enc(KIOSK_CB)
    )
}

const WEB_APP_FORM: &str =
    "response_type=code&client_id=web-app&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb";
const PORTAL_FORM: &str =
    "response_type=code&client_id=portal&redirect_uri=https%3A%2F%2Fportal.example%2Fcb";

/// A form POST to the PAR endpoint from `origin`, with optional Basic credentials.
async fn push_from(
    server: &TestServer,
    origin: Option<&str>,
    basic: Option<&str>,
    form: &str,
) -> Reply {
    let mut request = http::Request::post(server.url("/as/par"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(credentials) = basic {
        use base64::{engine::general_purpose::STANDARD, Engine as _};
        request = request.header(
            "authorization",
            format!("Basic {}", STANDARD.encode(credentials)),
        );
    }
    server
        .send(
            request
                .body(Full::new(Bytes::from(form.to_owned())))
                .unwrap(),
        )
        .await
}

/// A push as a public client (no credentials) from `origin`.
async fn push_public(server: &TestServer, origin: &str, form: &str) -> Reply {
    push_from(server, Some(origin), None, form).await
}

/// A push as `portal` (client_secret_basic with `secret`) from `origin`.
async fn push_as_portal(server: &TestServer, origin: &str, secret: &str) -> Reply {
    let credentials = format!("portal:{secret}");
    push_from(server, Some(origin), Some(&credentials), PORTAL_FORM).await
}

/// A request without a body to the PAR endpoint, from `origin`, with `headers`.
async fn bodiless(
    server: &TestServer,
    method: http::Method,
    origin: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = http::Request::builder()
        .method(method)
        .uri(server.url("/as/par"));
    for (name, value) in origin.map(|o| ("origin", o)).iter().chain(headers) {
        request = request.header(*name, *value);
    }
    server.send(request.body(Full::default()).unwrap()).await
}

/// The preflight a browser sends before a push with a `DPoP` header.
async fn preflight(server: &TestServer, origin: &str) -> Reply {
    let asks = [
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type,dpop"),
    ];
    bodiless(server, http::Method::OPTIONS, Some(origin), &asks).await
}

/// The page at `origin` may read this answer: exactly the headers a browser checks.
#[track_caller]
fn assert_readable_by(reply: &Reply, origin: &str) {
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some(origin),
        "{reply:?}"
    );
    assert_eq!(reply.header("vary"), Some("Origin"));
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("WWW-Authenticate, Retry-After, DPoP-Nonce")
    );
    assert!(
        reply.header("access-control-allow-credentials").is_none(),
        "no cookies at the PAR endpoint"
    );
}

/// An OAuth error the page at `origin` may read.
#[track_caller]
fn assert_readable_error(reply: &Reply, status: u16, error: &str, origin: &str) {
    reply.assert_error(status, error);
    assert_readable_by(reply, origin);
}

/// An OAuth error the page may not read.
#[track_caller]
fn assert_unreadable_error(reply: &Reply, status: u16, error: &str) {
    reply.assert_error(status, error);
    assert_no_cors(reply);
}

/// No CORS header at all: a browser keeps the answer from the page.
#[track_caller]
fn assert_no_cors(reply: &Reply) {
    let cors: Vec<_> = reply
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(
        cors.is_empty(),
        "unexpected CORS headers {cors:?}: {reply:?}"
    );
}

#[tokio::test]
async fn a_preflight_from_an_origin_some_client_registered_gets_204_and_the_allow_headers() {
    let server = server().await;
    for origin in [SPA_ORIGIN, PORTAL_ORIGIN, KIOSK_ORIGIN] {
        let reply = preflight(&server, origin).await;
        assert_eq!(reply.status, 204, "{origin}: {reply:?}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("access-control-allow-origin"), Some(origin));
        assert_eq!(reply.header("access-control-allow-methods"), Some("POST"));
        let allowed: Vec<String> = reply
            .header("access-control-allow-headers")
            .unwrap()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        for needed in ["content-type", "dpop", "authorization"] {
            assert!(
                allowed.iter().any(|h| h == needed),
                "{needed} in {allowed:?}"
            );
        }
        assert_eq!(reply.header("access-control-max-age"), Some("7200"));
        assert_eq!(reply.header("vary"), Some("Origin"));
        assert!(reply.header("access-control-allow-credentials").is_none());
    }
}

#[tokio::test]
async fn a_preflight_from_an_origin_no_client_registered_gets_403_without_allow_headers() {
    let server = server().await;
    for origin in [
        EVIL_ORIGIN,
        WEB_APP_ORIGIN, // a confidential client's redirect URI origin is not a web origin
        "https://kiosk-callback.example", // kiosk registered other origins
        "http://127.0.0.1:8081",
        "null",
    ] {
        let reply = preflight(&server, origin).await;
        assert_unreadable_error(&reply, 403, "invalid_request");
        assert_eq!(reply.header("vary"), Some("Origin"));
    }
}

#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_stays_405_with_allow_post() {
    // PAR-02: no Origin, or no Access-Control-Request-Method, is no preflight.
    let server = server().await;
    let plain = bodiless(&server, http::Method::OPTIONS, None, &[]).await;
    plain.assert_error(405, "invalid_request");
    assert_eq!(plain.header("allow"), Some("POST"));
    assert_no_cors(&plain);

    let without_method = bodiless(&server, http::Method::OPTIONS, Some(SPA_ORIGIN), &[]).await;
    without_method.assert_error(405, "invalid_request");
    assert_eq!(without_method.header("allow"), Some("POST"));
    // An answer before any client is known: readable by an origin some client registered.
    assert_readable_by(&without_method, SPA_ORIGIN);
}

#[tokio::test]
async fn a_push_from_a_public_clients_redirect_uri_origin_is_readable() {
    let server = server().await;
    let reply = push_public(&server, SPA_ORIGIN, &spa_form("&state=s1")).await;
    let request_uri = reply.request_uri();
    assert_readable_by(&reply, SPA_ORIGIN);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let redeemed = server.redeem("spa", &request_uri).await;
    assert_eq!(redeemed.status, 200);
}

#[tokio::test]
async fn every_error_after_authentication_is_readable_by_the_clients_origin() {
    let server = server_holding_one_request().await;
    // 400: PKCE missing for a public client.
    let no_pkce = push_public(
        &server,
        SPA_ORIGIN,
        &format!(
            "response_type=code&client_id=spa&redirect_uri={}",
            enc(SPA_CB)
        ),
    )
    .await;
    assert_readable_error(&no_pkce, 400, "invalid_request", SPA_ORIGIN);
    // 400 unsupported_response_type.
    let bad_type = push_public(
        &server,
        SPA_ORIGIN,
        &spa_form("").replace("response_type=code", "response_type=magic"),
    )
    .await;
    assert_readable_error(&bad_type, 400, "unsupported_response_type", SPA_ORIGIN);
    // 503 with Retry-After, which the page may read: the store holds one request (another
    // client's, so that the SPA meets the full store rather than its own share).
    server
        .push(
            Some("web-app:web-app-secret"),
            &format!("response_type=code&redirect_uri={}&state=s", enc(WEB_CB)),
        )
        .await
        .request_uri();
    let full = push_public(&server, SPA_ORIGIN, &spa_form("")).await;
    full.assert_error(503, "temporarily_unavailable");
    assert_eq!(full.header("retry-after"), Some("1"));
    assert_readable_by(&full, SPA_ORIGIN);
}

#[tokio::test]
async fn a_401_is_readable_by_an_origin_some_client_registered() {
    let server = server().await;
    // An unknown public client: no client is known, the origin is registered (by spa).
    let unknown = push_public(
        &server,
        SPA_ORIGIN,
        &spa_form("").replace("client_id=spa", "client_id=nobody"),
    )
    .await;
    assert_readable_error(&unknown, 401, "invalid_client", SPA_ORIGIN);
    // A wrong Basic secret: the challenge is exposed to the page.
    let wrong_secret = push_as_portal(&server, PORTAL_ORIGIN, "wrong").await;
    wrong_secret.assert_error(401, "invalid_client");
    assert!(wrong_secret
        .header("www-authenticate")
        .is_some_and(|c| c.starts_with("Basic realm=")));
    assert_readable_by(&wrong_secret, PORTAL_ORIGIN);
    // From an origin no client registered: unreadable.
    let from_evil = push_as_portal(&server, EVIL_ORIGIN, "wrong").await;
    assert_unreadable_error(&from_evil, 401, "invalid_client");
}

#[tokio::test]
async fn errors_before_the_client_is_known_follow_the_preflight_rule() {
    let server = server().await;
    let json_body = |origin: &str| {
        http::Request::post(server.url("/as/par"))
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"client_id\":\"spa\"}")))
            .unwrap()
    };
    // 400: not a form.
    let registered = server.send(json_body(SPA_ORIGIN)).await;
    assert_readable_error(&registered, 400, "invalid_request", SPA_ORIGIN);
    let unregistered = server.send(json_body(EVIL_ORIGIN)).await;
    assert_unreadable_error(&unregistered, 400, "invalid_request");
    // 400: a duplicate parameter.
    let duplicate = push_public(&server, SPA_ORIGIN, &spa_form("&state=a&state=b")).await;
    assert_readable_error(&duplicate, 400, "invalid_request", SPA_ORIGIN);
    // 413: declared over the cap, answered before the body is read.
    let declared = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("content-length", "1048577"),
    ];
    let too_large = bodiless(&server, http::Method::POST, Some(SPA_ORIGIN), &declared).await;
    assert_readable_error(&too_large, 413, "invalid_request", SPA_ORIGIN);
    // 405: a GET from a page.
    let get = bodiless(&server, http::Method::GET, Some(SPA_ORIGIN), &[]).await;
    assert_readable_error(&get, 405, "invalid_request", SPA_ORIGIN);
}

#[tokio::test]
async fn a_push_from_an_origin_the_client_did_not_register_is_refused_and_nothing_is_stored() {
    let server = server_holding_one_request().await;
    for origin in [
        EVIL_ORIGIN,
        PORTAL_ORIGIN, // registered, but by another client
        "http://127.0.0.1:8081",
        "null",
    ] {
        let reply = push_public(&server, origin, &spa_form("")).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("not registered for client spa"),
            "{reply:?}"
        );
        assert_no_cors(&reply);
    }
    // The store holds one request, and the refused pushes took none of it.
    let stored = push_from(&server, None, None, &spa_form("")).await;
    stored.request_uri();
}

#[tokio::test]
async fn a_confidential_client_without_web_origins_gets_no_cors() {
    let server = server().await;
    let reply = push_from(
        &server,
        Some(WEB_APP_ORIGIN),
        Some("web-app:web-app-secret"),
        WEB_APP_FORM,
    )
    .await;
    assert_unreadable_error(&reply, 400, "invalid_request");
    // Without Origin (a server-side client) the same push is fine.
    push_from(&server, None, Some("web-app:web-app-secret"), WEB_APP_FORM)
        .await
        .request_uri();
}

#[tokio::test]
async fn a_confidential_client_with_web_origins_gets_cors_and_default_ports_compare_equal() {
    let server = server().await;
    // Registered as https://portal.example:443: the browser sends https://portal.example.
    let reply = push_as_portal(&server, PORTAL_ORIGIN, "portal-secret").await;
    reply.request_uri();
    assert_readable_by(&reply, PORTAL_ORIGIN);
    // The same origin written with its default port and in capitals is the same origin; the
    // answer echoes what was sent.
    let spelled_out = push_as_portal(&server, "HTTPS://Portal.example:443", "portal-secret").await;
    spelled_out.request_uri();
    assert_readable_by(&spelled_out, "HTTPS://Portal.example:443");
    // Another port is another origin.
    let other_port = push_as_portal(&server, "https://portal.example:8443", "portal-secret").await;
    assert_unreadable_error(&other_port, 400, "invalid_request");
}

#[tokio::test]
async fn registered_web_origins_replace_a_public_clients_redirect_uri_origins() {
    let server = server().await;
    let reply = push_public(&server, KIOSK_ORIGIN, &kiosk_form()).await;
    reply.request_uri();
    assert_readable_by(&reply, KIOSK_ORIGIN);
    let callback_origin =
        push_public(&server, "https://kiosk-callback.example", &kiosk_form()).await;
    assert_unreadable_error(&callback_origin, 400, "invalid_request");
}

#[tokio::test]
async fn a_same_origin_push_needs_no_registration_and_gets_no_cors_headers() {
    // A page of the authorization server itself: browsers send Origin on every POST.
    let server = server().await;
    let reply = push_from(
        &server,
        Some(ISSUER),
        Some("web-app:web-app-secret"),
        WEB_APP_FORM,
    )
    .await;
    reply.request_uri();
    assert_no_cors(&reply);
}

#[tokio::test]
async fn a_push_without_origin_is_answered_as_before() {
    let server = server().await;
    let reply = server.push_web("").await;
    reply.request_uri();
    assert_no_cors(&reply);
    assert!(reply.header("vary").is_none());
}

#[tokio::test]
async fn discovery_documents_are_readable_from_any_origin() {
    let par = layer(&ManualClock::new())
        .serve_metadata(json!({}))
        .build()
        .unwrap();
    let server = serve(par, InnerMode::Echo).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        for origin in [None, Some(EVIL_ORIGIN), Some(SPA_ORIGIN)] {
            let mut request = http::Request::get(server.url(path));
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            let reply = server.send(request.body(Full::default()).unwrap()).await;
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
            assert_eq!(
                reply.json()["pushed_authorization_request_endpoint"],
                "https://as.example.com/as/par"
            );
        }
    }
}

/// A registry that looks clients up but does not implement `is_web_origin` (or fails it).
struct Database {
    clients: StaticClients,
    origins_fail: bool,
}

impl ClientRegistry for Database {
    fn client<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a> {
        self.clients.client(client_id)
    }

    fn is_web_origin<'a>(&'a self, origin: &'a str) -> WebOriginFuture<'a> {
        if self.origins_fail {
            return Box::pin(async { Err(RegistryError::new("database timeout")) });
        }
        let _ = origin;
        Box::pin(async { Ok(false) })
    }
}

#[tokio::test]
async fn a_registry_that_does_not_list_web_origins_refuses_preflights_but_serves_its_clients() {
    let par = builder(&ManualClock::new())
        .clients(Database {
            clients: registry(),
            origins_fail: false,
        })
        .build()
        .unwrap();
    let server = serve(par, InnerMode::Echo).await;
    preflight(&server, SPA_ORIGIN)
        .await
        .assert_error(403, "invalid_request");
    // A push that needs no preflight still gets the client's own origins.
    let reply = push_public(&server, SPA_ORIGIN, &spa_form("")).await;
    reply.request_uri();
    assert_readable_by(&reply, SPA_ORIGIN);
}

#[tokio::test]
async fn a_failing_registry_answers_the_preflight_503_and_keeps_errors_unreadable() {
    let par = builder(&ManualClock::new())
        .clients(Arc::new(Database {
            clients: registry(),
            origins_fail: true,
        }))
        .build()
        .unwrap();
    let server = serve(par, InnerMode::Echo).await;
    let reply = preflight(&server, SPA_ORIGIN).await;
    assert_unreadable_error(&reply, 503, "temporarily_unavailable");
    assert_eq!(reply.header("vary"), Some("Origin"));
    let unknown = push_public(
        &server,
        SPA_ORIGIN,
        &spa_form("").replace("client_id=spa", "client_id=nobody"),
    )
    .await;
    assert_unreadable_error(&unknown, 401, "invalid_client");
}
