//! The layer among tower-http 0.6 middleware and served by `axum::serve` (issue 17, item 1):
//! the stack of the README's "Placing the layer", and the ways to serve `par.layer(router)`.
//! Over real TCP.

mod common;

use std::{future::IntoFuture as _, time::Duration};

use axum::{extract::RawQuery, response::IntoResponse, routing::get, Router};
use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::Full;
use tower::{Layer as _, ServiceBuilder};
use tower_http::{
    compression::CompressionLayer, cors::CorsLayer, limit::RequestBodyLimitLayer,
    timeout::TimeoutLayer, trace::TraceLayer,
};
use tower_par::{ManualClock, ParService, ResponseBody};

/// The authorization endpoint echoes its query; `/big` is a compressible page; `/slow` never
/// answers.
fn routes() -> Router {
    Router::new()
        .route(
            "/as/authorize",
            get(|RawQuery(query): RawQuery| async move { query.unwrap_or_default() }),
        )
        .route("/big", get(|| async { "tower-par ".repeat(1000) }))
        .route("/slow", get(std::future::pending::<()>))
}

/// Push as `web-app`, then redeem: the handler sees the pushed parameters.
async fn push_and_redeem(server: &TestServer) {
    let uri = server.push_web("scope=openid").await.request_uri();
    let redeemed = server.redeem("web-app", &uri).await;
    assert_eq!(redeemed.status, 200);
    let query = String::from_utf8_lossy(&redeemed.body).into_owned();
    assert!(
        query.starts_with("client_id=web-app&response_type=code&")
            && query.ends_with("scope=openid"),
        "{query}"
    );
}

#[tokio::test]
async fn the_usual_tower_http_stack_around_the_layer_served_by_axum_serve() {
    let par = builder(&ManualClock::new()).build().unwrap();
    let stack = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(CorsLayer::permissive())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(200),
        ))
        .layer(CompressionLayer::new())
        .layer(par);
    let server = serve_axum(routes().layer(stack)).await;

    push_and_redeem(&server).await;
    // CorsLayer answers a preflight with `ResBody::default()`.
    let preflight = server
        .send(
            http::Request::options(server.url("/as/par"))
                .header("origin", "https://client.example.org")
                .header("access-control-request-method", "POST")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(preflight.body.is_empty());
    // TimeoutLayer answers with `ResBody::default()` too.
    let timed_out = server.get("/slow").await;
    assert_eq!(timed_out.status, 408);
    assert!(timed_out.body.is_empty());
    // CompressionLayer compresses what passes through the layer.
    let big = server
        .send(
            http::Request::get(server.url("/big"))
                .header("accept-encoding", "gzip")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(big.header("content-encoding"), Some("gzip"));
    // The PAR endpoint's own errors still carry their headers through the stack.
    let refused = server
        .push(Some("web-app:wrong"), "response_type=code")
        .await;
    refused.assert_error(401, "invalid_client");
}

#[tokio::test]
async fn a_wrapped_router_is_served_with_into_make_service() {
    let par = builder(&ManualClock::new()).build().unwrap();
    let wrapped: ParService<Router> = par.layer(routes());
    // The obvious code, with feature `axum`.
    let server =
        serving(|listener| axum::serve(listener, wrapped.into_make_service()).into_future());
    push_and_redeem(&server.await).await;
}

#[tokio::test]
async fn a_wrapped_router_is_served_without_the_axum_feature() {
    let par = builder(&ManualClock::new()).build().unwrap();
    // Without feature `axum`: map the response into axum's, then share one service.
    let service = tower::ServiceExt::<axum::extract::Request>::map_response(
        par.layer(routes()),
        IntoResponse::into_response,
    );
    let make_service = tower::make::Shared::new(service);
    let server = serving(|listener| axum::serve(listener, make_service).into_future());
    push_and_redeem(&server.await).await;
}

#[tokio::test]
async fn a_tower_http_stack_outside_a_wrapped_router() {
    // ServiceBuilder::service(par.layer(router)): the stack sees the layer's own answers.
    let par = builder(&ManualClock::new()).build().unwrap();
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(CorsLayer::permissive())
        .service(par.layer(routes()).into_axum());
    let server = serve_service(service).await;
    push_and_redeem(&server).await;
}

#[test]
fn bodies_have_what_tower_http_asks_of_them() {
    fn default_body<B: Default + http_body::Body>() {}
    default_body::<ResponseBody<axum::body::Body>>();
    default_body::<tower_par::RequestBody<axum::body::Body>>();
}

/// The 413 names the limit that applied: the layer's own, or one set in front of it.
mod too_large {
    use super::*;

    /// POSTs a form of `len` bytes with chunked transfer coding (no declared length); returns
    /// the status and the JSON body.
    async fn post_chunked(server: &TestServer, path: &str, len: usize) -> (u16, serde_json::Value) {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             authorization: Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA==\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        .into_bytes();
        let form = "a=".to_owned() + &"b".repeat(len - 2);
        for chunk in form.as_bytes().chunks(1000) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let reply = server.raw(&request).await;
        let status = reply[9..12].parse().unwrap();
        let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
        let json = body[body.find('{').unwrap()..=body.rfind('}').unwrap()].to_owned();
        (status, serde_json::from_str(&json).unwrap())
    }

    #[tokio::test]
    async fn names_the_layers_limit_at_both_endpoints() {
        let par = builder(&ManualClock::new())
            .max_body_bytes(4096)
            .build()
            .unwrap();
        let server = serve(par, InnerMode::Echo).await;
        for path in ["/as/par", "/as/authorize"] {
            let declared = server
                .send(
                    http::Request::post(server.url(path))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(Full::new(Bytes::from("a=".to_owned() + &"b".repeat(5000))))
                        .unwrap(),
                )
                .await;
            declared.assert_error(413, "invalid_request");
            let (status, streamed) = post_chunked(&server, path, 5000).await;
            assert_eq!(status, 413, "{path}: {streamed}");
            for json in [declared.json(), streamed] {
                assert_eq!(json["error"], "invalid_request");
                let description = json["error_description"].as_str().unwrap();
                assert!(
                    description.contains("4096 bytes") && description.contains("max_body_bytes"),
                    "{path}: {description}"
                );
            }
        }
    }

    #[tokio::test]
    async fn names_a_limit_set_in_front_of_the_layer() {
        // RequestBodyLimitLayer (1000 bytes) in front of the layer (1 MiB): a chunked body
        // passes the outer check and fails while the layer reads it.
        let par = builder(&ManualClock::new()).build().unwrap();
        let service = ServiceBuilder::new()
            .layer(RequestBodyLimitLayer::new(1000))
            .service(par.layer(inner_app(InnerMode::Echo)));
        let server = serve_service(service).await;
        for path in ["/as/par", "/as/authorize"] {
            let (status, json) = post_chunked(&server, path, 5000).await;
            assert_eq!(status, 413, "{path}: {json}");
            assert_eq!(json["error"], "invalid_request");
            let description = json["error_description"].as_str().unwrap();
            assert!(
                description.contains("in front of") && !description.contains("1048576"),
                "{path}: {description}"
            );
        }
    }
}
