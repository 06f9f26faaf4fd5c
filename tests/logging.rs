//! tracing: pushes and redemptions are logged with the client and the reason, never with a
//! secret, a live handle or the pushed values (RFC 9126 §8, spec-checklist SEC-06); each request
//! runs in a span (`par.push`, `par.authorize`) that names the presented client and the handle's
//! fingerprint, which joins a push to its redemption; each refusal is exactly one event; and
//! `tower_par::trace::make_span` keeps live handles out of tower-http's `TraceLayer`.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tower::{Layer as _, ServiceBuilder};
use tower_http::trace::TraceLayer;
use tower_par::{
    store::{RedisStore, RedisStoreConfig},
    trace::fingerprint,
    ManualClock, MemoryStore,
};

/// The lines of the layer's events (targets `tower_par::…`) at the levels of the one-event-per-
/// answer contract (`INFO`, `WARN`, `ERROR`) in captured log text. A `DEBUG` line is a
/// diagnostic, not an answer: the Redis store's background delete of an earlier refused push
/// logs one when Redis is still down, while a later request is served.
fn events(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| line.contains(" tower_par::"))
        .filter(|line| {
            matches!(
                line.split_whitespace().nth(1),
                Some("INFO" | "WARN" | "ERROR")
            )
        })
        .collect()
}

/// The one event a request produced, checked to be the only one.
#[track_caller]
fn only_event(text: &str) -> &str {
    let events = events(text);
    assert_eq!(events.len(), 1, "exactly one event per refusal:\n{text}");
    events[0]
}

const UNKNOWN_HANDLE: &str =
    "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[tokio::test]
async fn logs_name_the_client_and_the_reason_but_never_secrets_handles_or_values() {
    // The test runtime is single-threaded, so the server's tasks log through this subscriber too.
    let logs = Logs::capture();

    let server = serve_echo(builder(&ManualClock::new())).await;
    let uri = server
        .push_web("nonce=personal-data-4711")
        .await
        .request_uri();
    assert_eq!(server.redeem("web-app", &uri).await.status, 200);
    server
        .redeem("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
    server
        .push(Some("web-app:wrong-secret-0815"), "response_type=code")
        .await
        .assert_error(401, "invalid_client");
    server
        .push_web("response_type=code")
        .await
        .assert_error(400, "invalid_request");

    let logs = logs.text();
    for expected in [
        "pushed authorization request accepted",
        "pushed authorization request redeemed",
        "request_uri refused",
        "pushed authorization request rejected",
        "client_id=\"web-app\"",
        "invalid_client",
        "included more than once",
        "outcome=\"created\"",
        "outcome=\"swapped\"",
        "outcome=\"invalid_request_uri\"",
    ] {
        assert!(logs.contains(expected), "missing {expected:?} in:\n{logs}");
    }
    let handle = uri.rsplit(':').next().unwrap();
    for secret in [
        handle,
        "web-app-secret",
        "wrong-secret-0815",
        "personal-data-4711",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn a_push_and_its_redemption_share_the_handle_fingerprint() {
    let logs = Logs::capture();
    let server = serve_echo(builder(&ManualClock::new())).await;
    let uri = server.push_web("").await.request_uri();
    let push = logs.take();
    assert_eq!(server.redeem("web-app", &uri).await.status, 200);
    let redemption = logs.take();

    let fp = fingerprint(&uri).unwrap();
    let tag = format!("handle_fp=\"{fp}\"");
    let pushed = only_event(&push);
    assert!(
        pushed.contains("par.push{") && pushed.contains(&tag),
        "{pushed}"
    );
    assert!(pushed.contains("expires_in=60"), "{pushed}");
    let redeemed = only_event(&redemption);
    assert!(
        redeemed.contains("par.authorize{") && redeemed.contains(&tag),
        "{redeemed}"
    );
    assert!(redeemed.contains("client_id=\"web-app\""), "{redeemed}");
    // Another handle, another fingerprint: the join is by handle, not by client.
    let other = server.push_web("").await.request_uri();
    assert_ne!(fingerprint(&other), Some(fp));
}

/// Checks the answer to one refused request and the one event it was logged with.
#[track_caller]
fn check_refusal(what: &str, reply: &Reply, logged: &str, error: &str, detail: Option<&str>) {
    if reply.status == 405 || reply.status == 413 {
        assert_eq!(reply.json()["error"], error, "{what}");
    } else {
        reply.assert_error(reply.status, error);
    }
    let event = only_event(logged);
    assert!(event.contains(" INFO "), "{what}: {event}");
    assert!(
        event.contains(&format!("error=\"{error}\"")),
        "{what}: {event}"
    );
    if let Some(detail) = detail {
        assert!(event.contains(detail), "{what}: {event}");
    }
    for secret in ["wrong-secret-0815", "guess-0815"] {
        assert!(
            !logged.contains(secret),
            "{what}: {secret:?} leaked:\n{logged}"
        );
    }
}

#[tokio::test]
async fn every_refusal_is_one_event_that_names_the_presented_client() {
    let logs = Logs::capture();
    let server = serve_echo(builder(&ManualClock::new()).max_body_bytes(2_000)).await;
    let used = server.push_web("").await.request_uri();
    assert_eq!(server.redeem("web-app", &used).await.status, 200);
    let with_used = |path: &str| format!("{path}request_uri={}", enc(&used));
    let text_plain = http::Request::post(server.url("/as/par"))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"response_type=code")))
        .unwrap();
    let head = http::Request::head(server.url(&with_used("/as/authorize?client_id=web-app&")))
        .body(Full::default())
        .unwrap();
    logs.take();

    let web_app = Some("client_id=\"web-app\"");
    let reply = server
        .push(Some("web-app:wrong-secret-0815"), "response_type=code")
        .await;
    check_refusal(
        "wrong Basic secret",
        &reply,
        &logs.take(),
        "invalid_client",
        web_app,
    );
    let reply = server
        .push(
            None,
            "response_type=code&client_id=nobody&client_secret=guess-0815",
        )
        .await;
    let nobody = Some("client_id=\"nobody\"");
    check_refusal(
        "unknown client",
        &reply,
        &logs.take(),
        "invalid_client",
        nobody,
    );
    let reply = server.push_web("state=again").await;
    check_refusal(
        "duplicate",
        &reply,
        &logs.take(),
        "invalid_request",
        web_app,
    );
    let reply = server.push_web(&with_used("")).await;
    check_refusal(
        "request_uri pushed",
        &reply,
        &logs.take(),
        "invalid_request",
        web_app,
    );
    let reply = server.get("/as/par").await;
    check_refusal("GET", &reply, &logs.take(), "invalid_request", None);
    let reply = server.send(text_plain).await;
    check_refusal("media type", &reply, &logs.take(), "invalid_request", None);
    let reply = server.push_web(&"x".repeat(3_000)).await;
    check_refusal(
        "over max_body_bytes",
        &reply,
        &logs.take(),
        "invalid_request",
        None,
    );

    let invalid = "invalid_request_uri";
    let reply = server.redeem("web-app", UNKNOWN_HANDLE).await;
    check_refusal("unknown handle", &reply, &logs.take(), invalid, web_app);
    let reply = server.redeem("web-app", &used).await;
    check_refusal(
        "used handle",
        &reply,
        &logs.take(),
        invalid,
        Some("handle_fp="),
    );
    let reply = server.redeem("spa", &used).await;
    let spa = Some("client_id=\"spa\"");
    check_refusal(
        "another client's handle",
        &reply,
        &logs.take(),
        invalid,
        spa,
    );
    let reply = server.get(&with_used("/as/authorize?")).await;
    check_refusal(
        "no client_id",
        &reply,
        &logs.take(),
        "invalid_request",
        None,
    );
    let reply = server.get("/as/authorize?client_id=par-required").await;
    check_refusal("require_par", &reply, &logs.take(), "invalid_request", None);
    let reply = server.send(head).await;
    assert_eq!(reply.status, 405);
    assert!(only_event(&logs.take()).contains("error=\"invalid_request\""));
    assert!(!logs.text().contains(used.rsplit(':').next().unwrap()));
}

#[tokio::test]
async fn a_full_store_is_one_warning_and_a_failed_store_one_error_with_its_cause() {
    let logs = Logs::capture();
    let full = serve_echo(builder(&ManualClock::new()).store(MemoryStore::with_capacity(2))).await;
    // Two clients fill the store, each within its share (half of it).
    full.push_web("").await.request_uri();
    full.push_post("").await.request_uri();
    logs.take();
    full.push(Some("short-lived:short-lived-secret"), "response_type=code")
        .await
        .assert_error(503, "temporarily_unavailable");
    let event = only_event(&logs.take()).to_owned();
    assert!(event.contains(" WARN "), "{event}");
    assert!(event.contains("cause=the store is full"), "{event}");

    // Nothing listens on port 1: every store operation fails.
    let down = RedisStore::connect_lazy(RedisStoreConfig::new("redis://127.0.0.1:1/")).unwrap();
    let failing = serve_echo(builder(&ManualClock::new()).store(down)).await;
    logs.take();
    failing
        .push_web("")
        .await
        .assert_error(503, "temporarily_unavailable");
    let event = only_event(&logs.take()).to_owned();
    assert!(event.contains(" ERROR "), "{event}");
    assert!(
        event.contains("cause=pushed request store failed"),
        "{event}"
    );
    failing
        .redeem("web-app", UNKNOWN_HANDLE)
        .await
        .assert_error(503, "temporarily_unavailable");
    let event = only_event(&logs.take()).to_owned();
    assert!(
        event.contains(" ERROR ") && event.contains("request_uri refused"),
        "{event}"
    );
    assert!(event.contains("handle_fp="), "{event}");
}

/// tower-http's default span records the URI, live handle included; `trace::make_span` records
/// it with the handle redacted.
#[tokio::test]
async fn make_span_keeps_the_handle_out_of_tower_http_logs() {
    let logs = Logs::capture();
    let layer = builder(&ManualClock::new()).build().unwrap();
    let default = serve_service(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .service(layer.layer(inner_app(InnerMode::Echo))),
    )
    .await;
    let redacted = serve_service(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http().make_span_with(tower_par::trace::make_span))
            .service(layer.layer(inner_app(InnerMode::Echo))),
    )
    .await;

    let uri = default.push_web("").await.request_uri();
    logs.take();
    assert_eq!(default.redeem("web-app", &uri).await.status, 200);
    let handle = uri.rsplit(':').next().unwrap();
    let leaked = logs.take();
    assert!(
        leaked.contains(handle),
        "tower-http's default span is expected to show the handle:\n{leaked}"
    );

    let uri = redacted.push_web("").await.request_uri();
    logs.take();
    assert_eq!(redacted.redeem("web-app", &uri).await.status, 200);
    let handle = uri.rsplit(':').next().unwrap();
    let text = logs.take();
    assert!(!text.contains(handle), "the handle leaked:\n{text}");
    assert!(
        text.contains("uri=/as/authorize?client_id=web-app&request_uri=[redacted]"),
        "{text}"
    );
    assert!(
        text.contains("pushed authorization request redeemed"),
        "{text}"
    );
}
