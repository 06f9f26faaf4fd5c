//! The authorization endpoint over real HTTP: the swap, single use, client binding, expiry,
//! require_par, pass-through. IDs refer to ../shared/docs/spec-checklist.md.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tower_par::{
    client::{Client, RegistryFuture},
    store::{Charge, ParStore, Record, StoreError, StoreFuture, StoreKey, StoreLimits},
    ClientRegistry, ManualClock, ParLayer,
};

async fn server_with(clock: &ManualClock) -> TestServer {
    serve(builder(clock).build().unwrap(), InnerMode::Echo).await
}

async fn server() -> TestServer {
    server_with(&ManualClock::new()).await
}

#[tokio::test]
async fn the_inner_service_receives_exactly_the_pushed_request() {
    // AZ-01, AZ-03, URI-05
    let server = server().await;
    let uri = server
        .push_web("scope=openid%20profile&nonce=n-1&ext_param=x")
        .await
        .request_uri();
    // Front-channel extras are dropped: only client_id + request_uri count.
    let reply = server
        .get(&format!("/as/authorize?client_id=web-app&request_uri={}&scope=admin&redirect_uri=https%3A%2F%2Fevil", enc(&uri)))
        .await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(
        echo["query"],
        "client_id=web-app&response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&state=xyz&scope=openid%20profile&nonce=n-1&ext_param=x"
    );
    assert_eq!(echo["pushed"]["client_id"], "web-app");
    assert_eq!(echo["pushed"]["complete_in_uri"], true);
    assert_eq!(
        pushed_params(&echo)[0],
        ("response_type".into(), "code".into())
    );
}

#[tokio::test]
async fn values_round_trip_exactly() {
    // PAR-03: `+`, `%20`, `%2B`, UTF-8 and reserved characters survive push and swap.
    let server = server().await;
    let uri = server.push_web("note=a+b%20c%2Bd&claims=%7B%22x%22%3A1%7D&ui_locales=z%C3%B6%20%E6%97%A5&x=%26%3D%3F%23").await.request_uri();
    let echo = server.redeem("web-app", &uri).await.json();
    let params = pushed_params(&echo);
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("note"), "a b c+d");
    assert_eq!(get("claims"), "{\"x\":1}");
    assert_eq!(get("ui_locales"), "zö 日");
    assert_eq!(get("x"), "&=?#");
    // The query says the same thing to any decoder: %20 for space, never `+`.
    assert!(echo["query"]
        .as_str()
        .unwrap()
        .contains("note=a%20b%20c%2Bd"));
}

#[tokio::test]
async fn a_request_uri_works_once() {
    // URI-03, P1-05
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    assert_eq!(server.redeem("web-app", &uri).await.status, 200);
    server
        .redeem("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

#[tokio::test]
async fn another_client_cannot_use_or_burn_a_handle() {
    // URI-01: the key is bound to the client, so a wrong client_id finds nothing to burn.
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    server
        .redeem("post-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
    assert_eq!(server.redeem("web-app", &uri).await.status, 200);
}

#[tokio::test]
async fn unknown_client_id_with_a_request_uri_is_refused_without_redirect() {
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    server
        .redeem("nobody", &uri)
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(server.redeem("web-app", &uri).await.status, 200);
}

#[tokio::test]
async fn a_handle_dies_exactly_at_its_deadline() {
    // URI-02: alive 1 ms before expires_in has passed, dead at that instant.
    let clock = ManualClock::new();
    let server = server_with(&clock).await;
    let early = server.push_web("").await.request_uri();
    let late = server.push_web("").await.request_uri();
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(server.redeem("web-app", &early).await.status, 200);
    clock.advance(Duration::from_millis(1));
    server
        .redeem("web-app", &late)
        .await
        .assert_error(400, "invalid_request_uri");
}

#[tokio::test]
async fn a_client_lifetime_is_its_deadline() {
    let clock = ManualClock::new();
    let server = server_with(&clock).await;
    let uri = server
        .push(Some("short-lived:short-lived-secret"), "response_type=code")
        .await
        .request_uri();
    clock.advance(Duration::from_secs(2));
    server
        .redeem("short-lived", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

#[tokio::test]
async fn request_uri_needs_a_client_id() {
    // AZ-02
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    server
        .get(&format!("/as/authorize?request_uri={}", enc(&uri)))
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(
        server.redeem("web-app", &uri).await.status,
        200,
        "the handle survived"
    );
}

#[tokio::test]
async fn request_and_request_uri_together_are_refused() {
    // AZ-04
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    let reply = server
        .get(&format!(
            "/as/authorize?client_id=web-app&request_uri={}&request=eyJ",
            enc(&uri)
        ))
        .await;
    reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn duplicate_client_id_or_request_uri_is_refused() {
    // AZ-09
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    let reply = server
        .get(&format!(
            "/as/authorize?client_id=web-app&request_uri={0}&request_uri={0}",
            enc(&uri)
        ))
        .await;
    reply.assert_error(400, "invalid_request");
    let reply = server
        .get(&format!(
            "/as/authorize?client_id=web-app&client_id=web-app&request_uri={}",
            enc(&uri)
        ))
        .await;
    reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn foreign_or_malformed_request_uris_are_invalid_request_uri() {
    // AZ-05
    let server = server().await;
    for uri in [
        "urn:ietf:params:oauth:request_uri:xyz",
        "https://client.example.org/request.jwt",
        "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        server
            .redeem("web-app", uri)
            .await
            .assert_error(400, "invalid_request_uri");
    }
}

#[tokio::test]
async fn post_authorization_requests_are_swapped_too() {
    // AZ-08
    let server = server().await;
    let uri = server.push_web("scope=openid").await.request_uri();
    let request = http::Request::post(server.url("/as/authorize?stale=1"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(Full::new(Bytes::from(format!(
            "client_id=web-app&request_uri={}",
            enc(&uri)
        ))))
        .unwrap();
    let echo = server.send(request).await.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(
        echo["query"],
        serde_json::Value::Null,
        "the front-channel query is dropped"
    );
    assert_eq!(echo["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(
        echo["body"],
        "client_id=web-app&response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&state=xyz&scope=openid"
    );
    assert_eq!(echo["pushed"]["client_id"], "web-app");
}

#[tokio::test]
async fn post_without_request_uri_reaches_the_inner_service_unchanged() {
    let server = server().await;
    let body = "response_type=code&client_id=web-app&state=a+b";
    let request = http::Request::post(server.url("/as/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let echo = server.send(request).await.json();
    assert_eq!(echo["body"], body);
    assert_eq!(echo["pushed"], serde_json::Value::Null);
}

#[tokio::test]
async fn post_authorization_requests_must_be_forms() {
    let server = server().await;
    let request = http::Request::post(server.url("/as/authorize"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            b"{\"client_id\":\"par-required\"}",
        )))
        .unwrap();
    server
        .send(request)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn require_par_per_client_and_globally() {
    // AZ-07, P1-04
    let clock = ManualClock::new();
    let server = server_with(&clock).await;
    let plain = "/as/authorize?client_id=par-required&response_type=code&redirect_uri=https%3A%2F%2Fstrict.example.org%2Fcb";
    server.get(plain).await.assert_error(400, "invalid_request");
    let uri = server
        .push(
            Some("par-required:par-required-secret"),
            "response_type=code",
        )
        .await
        .request_uri();
    assert_eq!(server.redeem("par-required", &uri).await.status, 200);
    // Other clients still pass through untouched.
    let echo = server
        .get("/as/authorize?client_id=web-app&response_type=code")
        .await
        .json();
    assert_eq!(echo["query"], "client_id=web-app&response_type=code");
    // A malformed query cannot smuggle a plain request past require_par.
    server
        .get("/as/authorize?client_id=par-required&x=%ZZ")
        .await
        .assert_error(400, "invalid_request");

    let global = serve(
        builder(&clock).require_par(true).build().unwrap(),
        InnerMode::Echo,
    )
    .await;
    global
        .get("/as/authorize?client_id=web-app&response_type=code")
        .await
        .assert_error(400, "invalid_request");
    global
        .get("/as/authorize")
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn other_paths_and_methods_pass_straight_through() {
    let server = server().await;
    let echo = server.get("/other?a=%ZZ&request_uri=x").await.json();
    assert_eq!(echo["path"], "/other");
    assert_eq!(echo["query"], "a=%ZZ&request_uri=x");
    assert_eq!(echo["pushed"], serde_json::Value::Null);
    let request = http::Request::post(server.url("/other"))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"raw \xff body")))
        .unwrap();
    let echo = server.send(request).await.json();
    assert_eq!(echo["body"], "raw \u{fffd} body");
    // Unrouted paths are the inner service's 404, not the layer's.
    assert_eq!(server.get("/missing").await.status, 404);
}

#[tokio::test]
async fn head_and_other_methods_at_the_authorization_endpoint_are_405() {
    // Issue 16.2: the layer checks GET and POST; no other method reaches the inner service,
    // which might answer it as a GET (axum runs the GET handler for HEAD).
    let clock = ManualClock::new();
    let server = serve(
        builder(&clock).require_par(true).build().unwrap(),
        InnerMode::Echo,
    )
    .await;
    let uri = server.push_web("").await.request_uri();
    let redeem_query = format!(
        "/as/authorize?client_id=web-app&request_uri={}&response_type=token",
        enc(&uri)
    );
    for method in [http::Method::HEAD, http::Method::PUT, http::Method::OPTIONS] {
        for path in [
            "/as/authorize?client_id=spa&response_type=code&state=x",
            redeem_query.as_str(),
        ] {
            let request = http::Request::builder()
                .method(method.clone())
                .uri(server.url(path))
                .body(Full::default())
                .unwrap();
            let reply = server.send(request).await;
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some("GET, POST"));
            assert!(reply.header("location").is_none());
            if method != http::Method::HEAD {
                reply.assert_error(405, "invalid_request");
            }
        }
    }
    // The handle is still there for the GET that follows.
    let echo = server.redeem("web-app", &uri).await.json();
    assert_eq!(echo["pushed"]["client_id"], "web-app");
}

#[tokio::test]
async fn a_post_query_is_part_of_the_request_for_require_par() {
    // Issue 16.3: parameters in the query of a POST no longer slip past require_par.
    let clock = ManualClock::new();
    let global = serve(
        builder(&clock).require_par(true).build().unwrap(),
        InnerMode::Echo,
    )
    .await;
    let per_client = server_with(&clock).await;
    for (server, query) in [
        (&global, "client_id=spa&response_type=code&state=x"),
        (&per_client, "client_id=par-required&response_type=code"),
    ] {
        server
            .post_form(&format!("/as/authorize?{query}"), "")
            .await
            .assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_request_uri_in_the_query_of_a_post_is_swapped_and_used_up() {
    // Issue 16.3: the handle in the query is redeemed, once, and the injected response_type
    // never reaches the inner service.
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    let path = format!(
        "/as/authorize?client_id=web-app&request_uri={}&response_type=token",
        enc(&uri)
    );
    let echo = server.post_form(&path, "").await.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["query"], serde_json::Value::Null);
    assert_eq!(
        echo["body"],
        "client_id=web-app&response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&state=xyz"
    );
    server
        .post_form(&path, "")
        .await
        .assert_error(400, "invalid_request_uri");
}

#[tokio::test]
async fn an_axum_form_handler_reads_a_redemption_by_get_and_by_post() {
    // The README's example handler (examples/axum.rs): `Form` reads the query of a GET and the
    // body of a POST, so a POST redemption gives it the pushed request too (issue 16.3).
    use axum::{extract::Form, routing::get, Router};
    use std::collections::HashMap;

    async fn authorize(Form(p): Form<HashMap<String, String>>) -> String {
        format!(
            "authorize {:?} for {:?}",
            p.get("response_type"),
            p.get("client_id")
        )
    }

    let app = Router::new().route("/as/authorize", get(authorize).post(authorize));
    let server = serve_app(builder(&ManualClock::new()).build().unwrap(), app).await;
    let pushed = "authorize Some(\"code\") for Some(\"web-app\")";
    let uri = server.push_web("").await.request_uri();
    let reply = server.redeem("web-app", &uri).await;
    assert_eq!(String::from_utf8_lossy(&reply.body), pushed);
    let uri = server.push_web("").await.request_uri();
    let form = format!("client_id=web-app&request_uri={}", enc(&uri));
    let reply = server.post_form("/as/authorize", &form).await;
    assert_eq!(String::from_utf8_lossy(&reply.body), pushed);
}

#[tokio::test]
async fn twenty_parallel_redemptions_have_one_winner() {
    // URI-03: atomic take
    let server = Arc::new(server().await);
    for _ in 0..5 {
        let uri = Arc::new(server.push_web("").await.request_uri());
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (server, uri) = (Arc::clone(&server), Arc::clone(&uri));
                tokio::spawn(async move { server.redeem("web-app", &uri).await.status })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|&&s| s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|&&s| s == 400).count(),
            19,
            "{statuses:?}"
        );
    }
}

#[tokio::test]
async fn a_request_too_big_for_a_uri_still_reaches_the_inner_service_whole() {
    // rust-notes D10: http::Uri caps path and query at 64 KiB.
    let server = server().await;
    let big = "b".repeat(200_000);
    let uri = server
        .push_web(&format!("authorization_details={big}"))
        .await
        .request_uri();
    let reply = server.redeem("web-app", &uri).await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(
        echo["query"], "client_id=web-app",
        "the URI names the client only"
    );
    assert_eq!(echo["pushed"]["complete_in_uri"], false);
    let params = pushed_params(&echo);
    assert_eq!(
        params
            .iter()
            .find(|(n, _)| n == "authorization_details")
            .unwrap()
            .1
            .len(),
        200_000
    );

    // The same request by POST travels whole in the body.
    let uri = server
        .push_web(&format!("authorization_details={big}"))
        .await
        .request_uri();
    let request = http::Request::post(server.url("/as/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!(
            "client_id=web-app&request_uri={}",
            enc(&uri)
        ))))
        .unwrap();
    let echo = server.send(request).await.json();
    assert!(echo["body"].as_str().unwrap().len() > 200_000);
    assert_eq!(echo["pushed"]["complete_in_uri"], true);
}

#[tokio::test]
async fn error_pages_can_be_rendered_by_the_integrator() {
    // AZ-05: a pluggable responder, never a redirect
    let layer = builder(&ManualClock::new())
        .authorize_error_responder(|err| {
            http::Response::builder()
                .status(err.status())
                .header("content-type", "text/html")
                .body(Bytes::from(format!("<p>{}</p>", err.code())))
                .unwrap()
        })
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    let reply = server
        .redeem("web-app", "urn:ietf:params:oauth:request_uri:nope")
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("content-type"), Some("text/html"));
    assert_eq!(&reply.body[..], b"<p>invalid_request_uri</p>");
    assert!(reply.header("location").is_none());
}

/// A registry whose clients can change at run time.
#[derive(Clone, Default)]
struct Mutable(Arc<Mutex<Vec<Arc<Client>>>>);

impl ClientRegistry for Mutable {
    fn client<'a>(&'a self, id: &'a str) -> RegistryFuture<'a> {
        let found = self
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.client_id() == id)
            .cloned();
        Box::pin(async move { Ok(found) })
    }
}

#[tokio::test]
async fn a_redirect_uri_deregistered_after_the_push_is_refused() {
    // AZ-06, SEC-04
    let registry = Mutable::default();
    let register = |uris: &[&str]| {
        let mut builder = Client::builder("app")
            .secret("s")
            .grant_type("authorization_code");
        for uri in uris {
            builder = builder.redirect_uri(*uri);
        }
        *registry.0.lock().unwrap() = vec![Arc::new(builder.build().unwrap())];
    };
    register(&["https://a.example/cb", "https://b.example/cb"]);
    let layer = ParLayer::builder()
        .issuer(ISSUER)
        .clients(registry.clone())
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    let uri = server
        .push(
            Some("app:s"),
            "response_type=code&redirect_uri=https%3A%2F%2Fa.example%2Fcb",
        )
        .await
        .request_uri();
    register(&["https://b.example/cb"]);
    server
        .redeem("app", &uri)
        .await
        .assert_error(400, "invalid_request");
}

/// A store that is down.
struct DownStore;

impl ParStore for DownStore {
    fn limits(&self) -> StoreLimits {
        StoreLimits::default()
    }
    fn put(
        &self,
        _: StoreKey,
        _: Record,
        _: Charge,
        _: std::time::SystemTime,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async { Err(StoreError::Unavailable("connection refused".into())) })
    }
    fn take(&self, _: StoreKey, _: std::time::SystemTime) -> StoreFuture<'_, Option<Record>> {
        Box::pin(async { Err(StoreError::Unavailable("connection refused".into())) })
    }
    fn open(
        &self,
        _: StoreKey,
        _: std::time::SystemTime,
        _: Duration,
    ) -> StoreFuture<'_, Option<Record>> {
        Box::pin(async { Err(StoreError::Unavailable("connection refused".into())) })
    }
    fn complete(&self, _: StoreKey, _: std::time::SystemTime) -> StoreFuture<'_, bool> {
        Box::pin(async { Err(StoreError::Unavailable("connection refused".into())) })
    }
    fn remember(
        &self,
        _: StoreKey,
        _: std::time::SystemTime,
        _: std::time::SystemTime,
    ) -> StoreFuture<'_, bool> {
        Box::pin(async { Err(StoreError::Unavailable("connection refused".into())) })
    }
}

#[tokio::test]
async fn an_unavailable_store_fails_closed() {
    // design.md error table: 503 temporarily_unavailable at both endpoints, never a pass-through.
    let layer = builder(&ManualClock::new())
        .store(DownStore)
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    server
        .push_web("")
        .await
        .assert_error(503, "temporarily_unavailable");
    let uri = "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    server
        .redeem("web-app", uri)
        .await
        .assert_error(503, "temporarily_unavailable");
}

#[tokio::test]
async fn metadata_is_served_when_asked() {
    // MD-01, MD-02, MD-03
    let layer = builder(&ManualClock::new())
        .serve_metadata(serde_json::json!({"token_endpoint": "https://as.example.com/token", "response_types_supported": ["code"]}))
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        let doc = reply.json();
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(
            doc["authorization_endpoint"],
            "https://as.example.com/as/authorize"
        );
        assert_eq!(
            doc["pushed_authorization_request_endpoint"],
            "https://as.example.com/as/par"
        );
        assert_eq!(doc["require_pushed_authorization_requests"], false);
        assert_eq!(doc["token_endpoint"], "https://as.example.com/token");
        assert!(doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&"none".into()));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
    }
    // Without serve_metadata the well-known paths are the inner service's.
    assert_eq!(
        server_with(&ManualClock::new())
            .await
            .get("/.well-known/oauth-authorization-server")
            .await
            .status,
        404
    );
}

/// A client registry that is down.
struct DownRegistry;

impl ClientRegistry for DownRegistry {
    fn client<'a>(&'a self, _: &'a str) -> RegistryFuture<'a> {
        Box::pin(async { Err(tower_par::client::RegistryError::new("database timeout")) })
    }
}

#[tokio::test]
async fn an_unavailable_registry_is_503_at_both_endpoints_without_a_challenge() {
    // A registry failure is the server's, not the client's: no 401, no WWW-Authenticate.
    let layer = ParLayer::builder()
        .issuer(ISSUER)
        .clients(DownRegistry)
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    let reply = server.push_web("").await;
    reply.assert_error(503, "temporarily_unavailable");
    assert!(reply.header("www-authenticate").is_none());
    let uri = "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    server
        .redeem("web-app", uri)
        .await
        .assert_error(503, "temporarily_unavailable");
    // require_par cannot be checked either: fail closed rather than pass a plain request.
    server
        .get("/as/authorize?client_id=par-required&response_type=code")
        .await
        .assert_error(503, "temporarily_unavailable");
}
