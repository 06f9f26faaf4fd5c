//! A slow body cannot hold the endpoint (issue 11.3): a client that trickles its body, one byte
//! at a time on a raw socket, gets `408 Request Timeout` with an RFC 6749 §5.2 error and
//! `Connection: close` once `body_timeout` (1 s here, 10 s by default) has passed, at the PAR
//! endpoint and for a POST form at the authorization endpoint. The request head's own timeout
//! (`par_server --header-read-timeout`) is tested against the binary in tests/hostile_clients.rs.

mod common;

use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use common::{raw_http::*, *};
use tower_par::{ManualClock, ParLayerBuilder};

const TIMEOUT: Duration = Duration::from_secs(1);
const FORM: &str = "content-type: application/x-www-form-urlencoded";

async fn server(builder: ParLayerBuilder) -> TestServer {
    serve(
        builder.body_timeout(TIMEOUT).build().unwrap(),
        InnerMode::Echo,
    )
    .await
}

/// Sends `head`, then the body one byte every 200 ms, until an answer arrives; returns it and
/// how long after the head it came, once the server has closed the connection.
async fn trickle(server: &TestServer, head: &[u8], body: &[u8]) -> (RawResponse, Duration) {
    let mut connection = RawConnection::connect(server.addr).await;
    connection.send(head).await.unwrap();
    let answer = connection.trickle(body).await;
    let (reply, elapsed) = answer.expect("an answer while the body trickled");
    assert!(connection.closed_by_server(Duration::from_secs(5)).await);
    (reply, elapsed)
}

#[track_caller]
fn assert_timed_out(reply: &RawResponse, elapsed: Duration) {
    reply.assert_error(408, "invalid_request");
    assert!(reply.closes(), "Connection: close");
    assert!(
        (TIMEOUT..TIMEOUT * 4).contains(&elapsed),
        "answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_trickling_push_gets_408_and_the_connection_closes() {
    let server = server(builder(&ManualClock::new())).await;
    let body = format!(
        "response_type=code&client_id=web-app&redirect_uri={}&state=slow",
        enc(WEB_CB)
    );
    let auth = format!(
        "authorization: Basic {}",
        STANDARD.encode("web-app:web-app-secret")
    );
    let length = format!("content-length: {}", body.len());
    let (reply, elapsed) = trickle(
        &server,
        &head("POST /as/par HTTP/1.1", &[&auth, FORM, &length]),
        body.as_bytes(),
    )
    .await;
    assert_timed_out(&reply, elapsed);
    // Others are served meanwhile and after.
    assert_eq!(server.push_web("").await.status, 201);
}

#[tokio::test]
async fn a_trickling_chunked_push_gets_408() {
    let server = server(builder(&ManualClock::new())).await;
    let auth = format!(
        "authorization: Basic {}",
        STANDARD.encode("web-app:web-app-secret")
    );
    // One chunk header up front, then its bytes one at a time.
    let mut head = head(
        "POST /as/par HTTP/1.1",
        &[&auth, FORM, "transfer-encoding: chunked"],
    );
    head.extend_from_slice(b"40\r\n");
    let (reply, elapsed) = trickle(&server, &head, &[b'a'; 64]).await;
    assert_timed_out(&reply, elapsed);
}

#[tokio::test]
async fn a_trickling_post_authorization_form_gets_408() {
    let server = server(builder(&ManualClock::new())).await;
    let uri = server.push_web("").await.request_uri();
    let body = format!("client_id=web-app&request_uri={}", enc(&uri));
    let length = format!("content-length: {}", body.len());
    let (reply, elapsed) = trickle(
        &server,
        &head("POST /as/authorize HTTP/1.1", &[FORM, &length]),
        body.as_bytes(),
    )
    .await;
    assert_timed_out(&reply, elapsed);
    // The handle was not used.
    let echo = server.redeem("web-app", &uri).await.json();
    assert_eq!(echo["pushed"]["client_id"], "web-app");
}

#[tokio::test]
async fn a_body_that_keeps_coming_within_the_timeout_is_read() {
    // Bytes 50 ms apart, done in well under the timeout: a 201, no 408.
    let server = server(builder(&ManualClock::new())).await;
    let body = format!(
        "response_type=code&client_id=web-app&redirect_uri={}",
        enc(WEB_CB)
    );
    let auth = format!(
        "authorization: Basic {}",
        STANDARD.encode("web-app:web-app-secret")
    );
    let length = format!("content-length: {}", body.len());
    let mut connection = RawConnection::connect(server.addr).await;
    connection
        .send(&head("POST /as/par HTTP/1.1", &[&auth, FORM, &length]))
        .await
        .unwrap();
    for piece in body.as_bytes().chunks(body.len() / 8 + 1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        connection.send(piece).await.unwrap();
    }
    let reply = connection.response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}
