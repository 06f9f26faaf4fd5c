//! A 413 that every client sees (issue 11.2), on raw sockets so that every byte and every close
//! is the test's own: the layer reads and discards an oversize body within the drain's bounds
//! before it answers (the connection then stays open), refuses at once what the drain would not
//! read (with `Connection: close`), never asks for a body that `Expect: 100-continue` holds back,
//! and `tower_par::server::serve` lingers after such a close so that the client still reads the
//! answer. The same reader serves a POST form at the authorization endpoint. Real clients (Node,
//! undici, curl, hyper) against `par_server`: tests/client/oversize.test.mjs and
//! tests/hostile_clients.rs. IDs refer to ../shared/docs/spec-checklist.md.

mod common;

use std::time::{Duration, Instant};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use common::{raw_http::*, *};
use tower_par::{server::ServeConfig, ManualClock, ParLayerBuilder};

const WAIT: Duration = Duration::from_secs(10);
const CAP: usize = 1_048_576;
const FORM: &str = "content-type: application/x-www-form-urlencoded";

async fn server_with(builder: ParLayerBuilder) -> TestServer {
    serve_with_server_loop(
        builder.build().unwrap(),
        InnerMode::Echo,
        ServeConfig::default(),
    )
    .await
}

async fn server() -> TestServer {
    server_with(builder(&ManualClock::new())).await
}

fn auth() -> String {
    format!(
        "authorization: Basic {}",
        STANDARD.encode("web-app:web-app-secret")
    )
}

/// A valid push, to send after a refusal on the same connection.
fn good_push() -> Vec<u8> {
    let form = format!(
        "response_type=code&client_id=web-app&redirect_uri={}&state=xyz",
        enc(WEB_CB)
    );
    request("POST /as/par HTTP/1.1", &[&auth(), FORM], form.as_bytes())
}

fn oversize_form(len: usize) -> Vec<u8> {
    let mut body = b"client_id=web-app&state=".to_vec();
    body.resize(len, b'a');
    body
}

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk * 12 + 8);
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[track_caller]
fn assert_too_large(reply: &RawResponse) {
    reply.assert_error(413, "invalid_request");
}

#[tokio::test]
async fn a_declared_oversize_body_is_drained_then_413_and_the_connection_serves_on() {
    // PAR-04: 1.1 MB with Content-Length, sent whole as a client does.
    let server = server().await;
    let mut connection = RawConnection::connect(server.addr).await;
    let body = oversize_form(1_100_000);
    connection
        .send(&request("POST /as/par HTTP/1.1", &[&auth(), FORM], &body))
        .await
        .unwrap();
    let reply = connection.response(WAIT).await.expect("the 413");
    assert_too_large(&reply);
    assert!(!reply.closes(), "drained: the connection stays open");
    connection.send(&good_push()).await.unwrap();
    let next = connection.response(WAIT).await.expect("the next answer");
    assert_eq!(next.status, 201, "{}", String::from_utf8_lossy(&next.body));
}

#[tokio::test]
async fn a_chunked_body_that_passes_the_cap_is_drained_then_413() {
    // PAR-04: no declared length; 3 MB in 64 KiB chunks.
    let server = server().await;
    let mut connection = RawConnection::connect(server.addr).await;
    let mut bytes = head(
        "POST /as/par HTTP/1.1",
        &[&auth(), FORM, "transfer-encoding: chunked"],
    );
    bytes.extend_from_slice(&chunked(&oversize_form(3_000_000), 64 * 1024));
    connection.send(&bytes).await.unwrap();
    let reply = connection.response(WAIT).await.expect("the 413");
    assert_too_large(&reply);
    assert!(!reply.closes());
    connection.send(&good_push()).await.unwrap();
    assert_eq!(connection.response(WAIT).await.unwrap().status, 201);
}

#[tokio::test]
async fn expect_100_continue_with_an_oversize_length_gets_413_without_being_asked_for_the_body() {
    let server = server().await;
    let mut connection = RawConnection::connect(server.addr).await;
    let length = format!("content-length: {}", CAP + 1);
    connection
        .send(&head(
            "POST /as/par HTTP/1.1",
            &[&auth(), FORM, &length, "expect: 100-continue"],
        ))
        .await
        .unwrap();
    // No body byte is sent: a server that asked for it (100 Continue) or waited for it would
    // not answer 413 first.
    let started = Instant::now();
    let reply = connection.response(WAIT).await.expect("an answer");
    assert_eq!(
        reply.status, 413,
        "the first response is the 413, not 100 Continue"
    );
    assert_too_large(&reply);
    assert!(reply.closes());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_huge_declared_length_is_refused_at_once_without_reading_it() {
    // 50 MB declared, 64 KiB sent: the drain would not read 50 MB, so the layer answers at once
    // and closes; the serving loop's lingering close lets the client read the answer.
    let server = server().await;
    let mut connection = RawConnection::connect(server.addr).await;
    let mut bytes = head(
        "POST /as/par HTTP/1.1",
        &[&auth(), FORM, "content-length: 50000000"],
    );
    bytes.extend_from_slice(&oversize_form(64 * 1024));
    connection.send(&bytes).await.unwrap();
    let started = Instant::now();
    let reply = connection.response(WAIT).await.expect("the 413");
    assert_too_large(&reply);
    assert!(reply.closes());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(connection.closed_by_server(WAIT).await);
}

#[tokio::test]
async fn past_the_drain_the_answer_still_arrives_and_the_connection_closes() {
    // The client writes its whole 16 MB before it reads anything, as simple clients do. The
    // drain stops at 64 KiB here, far less than the kernel's buffers hold; the serving loop's
    // lingering close reads and discards the rest, so the writes do not fail on a reset and
    // the 413 is there to read.
    let server = server_with(builder(&ManualClock::new()).max_drain_bytes(64 * 1024)).await;
    let mut connection = RawConnection::connect(server.addr).await;
    let mut bytes = head(
        "POST /as/par HTTP/1.1",
        &[&auth(), FORM, "transfer-encoding: chunked"],
    );
    bytes.extend_from_slice(&chunked(&oversize_form(16_000_000), 64 * 1024));
    connection
        .send(&bytes)
        .await
        .expect("the server reads what it will not use");
    let reply = connection.response(WAIT).await.expect("the 413");
    assert_too_large(&reply);
    assert!(reply.closes());
    assert!(connection.closed_by_server(WAIT).await);
    // The server serves on.
    assert_eq!(server.push_web("").await.status, 201);
}

#[tokio::test]
async fn a_post_authorization_form_over_the_cap_is_drained_then_413() {
    // The authorization endpoint reads a POST form with the PAR endpoint's reader.
    let server = server().await;
    let uri = server.push_web("").await.request_uri();
    let mut connection = RawConnection::connect(server.addr).await;
    let mut body = format!("client_id=web-app&request_uri={}&pad=", enc(&uri)).into_bytes();
    body.resize(1_100_000, b'p');
    connection
        .send(&request("POST /as/authorize HTTP/1.1", &[FORM], &body))
        .await
        .unwrap();
    let reply = connection.response(WAIT).await.expect("the 413");
    assert_too_large(&reply);
    assert!(!reply.closes());
    let get = head(
        &format!(
            "GET /as/authorize?client_id=web-app&request_uri={} HTTP/1.1",
            enc(&uri)
        ),
        &[],
    );
    connection.send(&get).await.unwrap();
    let echo = connection
        .response(WAIT)
        .await
        .expect("the redemption")
        .json();
    assert_eq!(
        echo["pushed"]["client_id"], "web-app",
        "the refused form did not use the handle"
    );
}

#[tokio::test]
async fn a_refusal_on_the_request_head_drains_the_body_too() {
    // 405 for a PUT with a 600 KB body, 400 for a JSON body: answered after the body was read
    // and discarded, so the next request on the connection is served.
    let server = server().await;
    let mut connection = RawConnection::connect(server.addr).await;
    let body = vec![b'x'; 600_000];
    connection
        .send(&request("PUT /as/par HTTP/1.1", &[FORM], &body))
        .await
        .unwrap();
    let reply = connection.response(WAIT).await.expect("the 405");
    reply.assert_error(405, "invalid_request");
    assert_eq!(reply.header("allow"), Some("POST"));
    assert!(!reply.closes());
    connection
        .send(&request(
            "POST /as/par HTTP/1.1",
            &[&auth(), "content-type: application/json"],
            &body,
        ))
        .await
        .unwrap();
    let reply = connection.response(WAIT).await.expect("the 400");
    reply.assert_error(400, "invalid_request");
    assert!(!reply.closes());
    connection.send(&good_push()).await.unwrap();
    assert_eq!(connection.response(WAIT).await.unwrap().status, 201);
}
