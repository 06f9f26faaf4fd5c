//! tracing: pushes and redemptions are logged with the client and the reason, never with a
//! secret, a live handle or the pushed values (RFC 9126 §8, spec-checklist SEC-06).

mod common;

use common::*;
use tower_par::ManualClock;

#[tokio::test]
async fn logs_name_the_client_and_the_reason_but_never_secrets_handles_or_values() {
    // The test runtime is single-threaded, so the server's tasks log through this subscriber too.
    let logs = Logs::capture();

    let server = serve(
        builder(&ManualClock::new()).build().unwrap(),
        InnerMode::Echo,
    )
    .await;
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
