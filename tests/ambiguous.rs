//! Ambiguous requests are refused (issue 11.1): a field the layer reads must come once.
//!
//! Every request here is written byte for byte on a raw TCP socket (`common/raw_http.rs`), so
//! the repeated field lines reach the server exactly as listed, in that order; hyper keeps them
//! as separate values of one `HeaderMap` entry. RFC 9110 §5.3: a field that is not a list is
//! sent once (`Authorization`, `Content-Type`); RFC 9449 §4.3: one `DPoP` field. A proxy in
//! front of the layer may have judged the request by the other line, so the layer answers
//! neither: `400 invalid_request`, never a `201`, never a `401` with credentials taken from one
//! line. Equal repeated lines are refused too (the layer's call): a sender must not repeat them,
//! and an intermediary may have joined them into one value the layer never sees.

mod common;

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use common::{raw_http::*, *};
use tower_par::ManualClock;

const WAIT: Duration = Duration::from_secs(10);

async fn server() -> TestServer {
    serve(
        builder(&ManualClock::new()).build().unwrap(),
        InnerMode::Echo,
    )
    .await
}

fn basic(credentials: &str) -> String {
    format!("authorization: Basic {}", STANDARD.encode(credentials))
}

fn web_form() -> Vec<u8> {
    format!(
        "response_type=code&client_id=web-app&redirect_uri={}&state=xyz",
        enc(WEB_CB)
    )
    .into_bytes()
}

/// Sends one request on a fresh connection and reads the answer.
async fn exchange(server: &TestServer, request: &[u8]) -> RawResponse {
    let mut connection = RawConnection::connect(server.addr).await;
    connection.send(request).await.unwrap();
    connection.response(WAIT).await.expect("an answer")
}

const FORM: &str = "content-type: application/x-www-form-urlencoded";

#[tokio::test]
async fn one_authorization_line_authenticates() {
    // The control: the same bytes with one line are a 201.
    let server = server().await;
    let right = basic("web-app:web-app-secret");
    let reply = exchange(
        &server,
        &request("POST /as/par HTTP/1.1", &[&right, FORM], &web_form()),
    )
    .await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[tokio::test]
async fn two_authorization_lines_are_invalid_request_in_either_order() {
    let server = server().await;
    let right = basic("web-app:web-app-secret");
    let wrong = basic("web-app:not-the-secret");
    let cases: [[&str; 2]; 5] = [
        [&right, "authorization: Bearer x"],
        ["authorization: Bearer x", &right],
        [&right, &wrong],
        [&wrong, &right],
        // Equal lines: refused as well.
        [&right, &right],
    ];
    for [first, second] in cases {
        let reply = exchange(
            &server,
            &request("POST /as/par HTTP/1.1", &[first, second, FORM], &web_form()),
        )
        .await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.header("www-authenticate").is_none(),
            "no Basic challenge: neither line was used"
        );
    }
}

#[tokio::test]
async fn two_content_type_lines_are_invalid_request() {
    let server = server().await;
    let right = basic("web-app:web-app-secret");
    for second in ["content-type: application/json", FORM] {
        let reply = exchange(
            &server,
            &request(
                "POST /as/par HTTP/1.1",
                &[&right, FORM, second],
                &web_form(),
            ),
        )
        .await;
        reply.assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn two_dpop_lines_are_invalid_request() {
    // RFC 9449 §4.3; refused before either proof is looked at (tests/jwt.rs sends real proofs).
    let server = server().await;
    let right = basic("web-app:web-app-secret");
    for (first, second) in [
        ("dpop: a.b.c", "dpop: d.e.f"),
        ("dpop: a.b.c", "dpop: a.b.c"),
    ] {
        let reply = exchange(
            &server,
            &request(
                "POST /as/par HTTP/1.1",
                &[&right, FORM, first, second],
                &web_form(),
            ),
        )
        .await;
        reply.assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_post_authorization_request_names_client_id_and_request_uri_once_across_query_and_body() {
    // AZ-09 over query and body together (issue 16.3: they are one request).
    let server = server().await;
    let live = server.push_web("").await.request_uri();
    let other = server.push_web("").await.request_uri();
    let cases = [
        (
            format!("client_id=web-app&request_uri={}", enc(&live)),
            "client_id=par-required".to_owned(),
        ),
        (
            format!("request_uri={}", enc(&live)),
            format!("client_id=web-app&request_uri={}", enc(&other)),
        ),
        (
            format!("client_id=web-app&request_uri={}", enc(&live)),
            format!("request_uri={}", enc(&live)),
        ),
    ];
    for (query, body) in cases {
        let reply = exchange(
            &server,
            &request(
                &format!("POST /as/authorize?{query} HTTP/1.1"),
                &[FORM],
                body.as_bytes(),
            ),
        )
        .await;
        reply.assert_error(400, "invalid_request");
    }
    // Neither handle was taken by the refused requests.
    for uri in [&live, &other] {
        let echo = server.redeem("web-app", uri).await.json();
        assert_eq!(echo["pushed"]["client_id"], "web-app");
    }
}

#[tokio::test]
async fn a_post_authorization_request_has_one_content_type_line() {
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    let body = format!("client_id=web-app&request_uri={}", enc(&uri));
    let reply = exchange(
        &server,
        &request(
            "POST /as/authorize HTTP/1.1",
            &[FORM, "content-type: text/plain"],
            body.as_bytes(),
        ),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    let echo = server.redeem("web-app", &uri).await.json();
    assert_eq!(
        echo["pushed"]["client_id"], "web-app",
        "the handle was kept"
    );
}
