//! Where the layer goes in an axum application, and what each wrong place does (issue 17,
//! item 1; README "Placing the layer"). Every case runs a real axum `Router` over TCP.
//!
//! The handlers here echo what they received; `guarded` takes the pushed request through the
//! `Option<PushedAuthorizationRequest>` extractor (feature `axum`), which refuses a
//! `request_uri` the layer never saw.

mod common;

use axum::{extract::RawQuery, routing::get, Json, Router};
use common::*;
use serde_json::{json, Value};
use tower::Layer as _;
use tower_par::{ManualClock, ParLayer, PushedAuthorizationRequest};

/// Echoes the raw query: what a handler without the extractor works with.
async fn unguarded(RawQuery(query): RawQuery) -> Json<Value> {
    Json(json!({ "query": query }))
}

/// Takes the pushed request through the extractor.
async fn guarded(pushed: Option<PushedAuthorizationRequest>) -> Json<Value> {
    Json(json!({ "pushed_by": pushed.as_ref().map(PushedAuthorizationRequest::client_id) }))
}

/// Requires a pushed request.
async fn pushed_only(pushed: PushedAuthorizationRequest) -> Json<Value> {
    Json(json!({ "pushed_by": pushed.client_id() }))
}

fn par(par_path: &str, authorize_path: &str) -> ParLayer {
    builder(&ManualClock::new())
        .par_path(par_path)
        .authorize_path(authorize_path)
        .build()
        .unwrap()
}

fn authorize_routes() -> Router {
    Router::new()
        .route("/as/authorize", get(unguarded))
        .route("/as/guarded", get(guarded))
        .route("/as/pushed-only", get(pushed_only))
}

/// A push by `web-app` to `par_path`.
async fn push_at(server: &TestServer, par_path: &str) -> Reply {
    server
        .send(
            http::Request::post(server.url(par_path))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", "Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA==")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    "response_type=code&state=xyz",
                )))
                .unwrap(),
        )
        .await
}

/// A push to `par_path`, then a redemption at `authorize_path`.
async fn push_then_redeem(server: &TestServer, par_path: &str, authorize_path: &str) -> Reply {
    let uri = push_at(server, par_path).await.request_uri();
    server
        .get(&format!(
            "{authorize_path}?client_id=web-app&request_uri={}",
            enc(&uri)
        ))
        .await
}

// ----- The right places -------------------------------------------------------------------

#[tokio::test]
async fn router_layer_after_every_route_and_nest() {
    let app = Router::new()
        .nest("/oauth", authorize_routes())
        .layer(par("/oauth/as/par", "/oauth/as/authorize"));
    let server = serve_axum(app).await;
    let redeemed = push_then_redeem(&server, "/oauth/as/par", "/oauth/as/authorize").await;
    assert_eq!(redeemed.status, 200);
    let query = redeemed.json()["query"].as_str().unwrap().to_owned();
    assert!(
        query.starts_with("client_id=web-app&response_type=code"),
        "{query}"
    );
}

#[tokio::test]
async fn the_layer_around_a_nested_router_with_nest_service() {
    // The layer wraps the nested router whole: it sees the paths with the prefix stripped.
    let wrapped = par("/as/par", "/as/guarded").layer(authorize_routes());
    let app = Router::new().nest_service("/oauth", wrapped.into_axum());
    let server = serve_axum(app).await;
    let redeemed = push_then_redeem(&server, "/oauth/as/par", "/oauth/as/guarded").await;
    assert_eq!(redeemed.status, 200);
    assert_eq!(redeemed.json()["pushed_by"], "web-app");
}

// ----- The wrong places, and what they do -------------------------------------------------

#[tokio::test]
async fn the_layer_on_a_nested_router_leaves_the_par_endpoint_404() {
    let app = Router::new().nest(
        "/oauth",
        authorize_routes().layer(par("/as/par", "/as/authorize")),
    );
    let server = serve_axum(app).await;
    for path in ["/oauth/as/par", "/as/par"] {
        assert_eq!(push_at(&server, path).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn route_layer_leaves_the_par_endpoint_404() {
    let app = authorize_routes().route_layer(par("/as/par", "/as/authorize"));
    let server = serve_axum(app).await;
    assert_eq!(push_at(&server, "/as/par").await.status, 404);
}

/// `Router::new().layer(par).nest(…)`: the layer answers the push (through the fallback) but
/// never sees the nested authorization route.
fn layer_before_nest() -> Router {
    Router::new()
        .layer(par("/oauth/as/par", "/oauth/as/authorize"))
        .nest("/oauth", authorize_routes())
}

#[tokio::test]
async fn layer_before_nest_answers_the_push_but_never_swaps() {
    let server = serve_axum(layer_before_nest()).await;
    let redeemed = push_then_redeem(&server, "/oauth/as/par", "/oauth/as/authorize").await;
    // The silent failure the extractor exists for: the raw handle reaches the handler.
    assert_eq!(redeemed.status, 200);
    let query = redeemed.json()["query"].as_str().unwrap().to_owned();
    assert!(query.contains("request_uri=urn"), "{query}");
}

#[tokio::test]
async fn the_extractor_refuses_an_unswapped_request_uri_and_logs_the_fix() {
    let logs = Logs::capture();
    let server = serve_axum(layer_before_nest()).await;
    for path in ["/oauth/as/guarded", "/oauth/as/pushed-only"] {
        let refused = push_then_redeem(&server, "/oauth/as/par", path).await;
        refused.assert_error(400, "request_uri_not_supported");
    }
    let logs = logs.text();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(
        logs.contains("the layer is not in front of this route")
            && logs.contains("Placing the layer")
            && logs.contains("path=\"/as/guarded\""),
        "{logs}"
    );
    assert!(
        !logs.contains("request_uri:"),
        "the live handle stays out of the log: {logs}"
    );
}

#[tokio::test]
async fn the_extractor_after_a_swap_and_on_plain_requests() {
    let app = authorize_routes().layer(par("/as/par", "/as/guarded"));
    let server = serve_axum(app).await;
    let redeemed = push_then_redeem(&server, "/as/par", "/as/guarded").await;
    assert_eq!(redeemed.json()["pushed_by"], "web-app");
    // A plain front-channel request: `None`, or a refusal where a pushed one is required.
    let plain = server
        .get("/as/guarded?client_id=web-app&response_type=code")
        .await;
    assert_eq!(plain.json()["pushed_by"], Value::Null);
    let empty = server
        .get("/as/guarded?client_id=web-app&request_uri=")
        .await;
    assert_eq!(
        empty.json()["pushed_by"],
        Value::Null,
        "empty counts as omitted"
    );
    server
        .get("/as/pushed-only?client_id=web-app")
        .await
        .assert_error(400, "invalid_request");
}
