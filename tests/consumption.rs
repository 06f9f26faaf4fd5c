//! Consumption at completion (FAPI 2.0 §5.3.2.2 note 3, spec-checklist URI-04, C-3), per store.
//! Strict single use, the default, is covered in tests/authorize.rs.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use tower_par::{Consumption, ManualClock, ParStore};

const WINDOW: Duration = Duration::from_secs(600);

async fn completion_server(
    clock: &ManualClock,
    store: impl ParStore,
    mode: InnerMode,
) -> TestServer {
    let layer = builder(clock)
        .store(store)
        .consumption(Consumption::AtCompletion { window: WINDOW })
        .build()
        .unwrap();
    serve(layer, mode).await
}

#[track_caller]
fn assert_login_redirect(reply: &Reply) {
    assert_eq!(
        reply.status,
        303,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply
        .header("location")
        .unwrap()
        .starts_with("/login?return="));
}

#[track_caller]
fn assert_code_redirect(reply: &Reply) {
    assert_eq!(
        reply.status,
        303,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let location = reply.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{WEB_CB}?code=")),
        "{location}"
    );
}

/// The scenarios every store must pass; `make` returns a fresh store.
async fn reload_before_completion_succeeds_and_reload_after_fails<S: ParStore>(store: S) {
    let clock = ManualClock::new();
    let server = completion_server(&clock, store, InnerMode::Login).await;
    let uri = server.push_web("").await.request_uri();
    assert_login_redirect(&server.redeem("web-app", &uri).await);
    assert_login_redirect(&server.redeem("web-app", &uri).await); // a reload
    clock.advance(Duration::from_secs(120)); // the login outlasts expires_in
    assert_code_redirect(&server.redeem_signed_in("web-app", &uri).await);
    server
        .redeem_signed_in("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

async fn first_use_after_expires_in_fails<S: ParStore>(store: S) {
    let clock = ManualClock::new();
    let server = completion_server(&clock, store, InnerMode::Login).await;
    let uri = server.push_web("").await.request_uri();
    clock.advance(Duration::from_secs(60));
    server
        .redeem("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

async fn reuse_after_the_window_fails<S: ParStore>(store: S) {
    let clock = ManualClock::new();
    let server = completion_server(&clock, store, InnerMode::Login).await;
    let kept = server.push_web("").await.request_uri();
    let lapsed = server.push_web("").await.request_uri();
    assert_login_redirect(&server.redeem("web-app", &kept).await);
    assert_login_redirect(&server.redeem("web-app", &lapsed).await);
    clock.advance(WINDOW - Duration::from_millis(1));
    assert_code_redirect(&server.redeem_signed_in("web-app", &kept).await);
    clock.advance(Duration::from_millis(1));
    server
        .redeem_signed_in("web-app", &lapsed)
        .await
        .assert_error(400, "invalid_request_uri");
}

async fn parallel_completions_hand_out_one_code<S: ParStore>(store: S) {
    let clock = ManualClock::new();
    let server = Arc::new(completion_server(&clock, store, InnerMode::Login).await);
    let uri = Arc::new(server.push_web("").await.request_uri());
    assert_login_redirect(&server.redeem("web-app", &uri).await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (server, uri) = (Arc::clone(&server), Arc::clone(&uri));
            tokio::spawn(async move { server.redeem_signed_in("web-app", &uri).await })
        })
        .collect();
    let (mut codes, mut refused) = (0, 0);
    for task in tasks {
        let reply = task.await.unwrap();
        if reply.status == 303 {
            assert_code_redirect(&reply);
            codes += 1;
        } else {
            reply.assert_error(400, "invalid_request_uri");
            refused += 1;
        }
    }
    assert_eq!((codes, refused), (1, 19));
}

async fn a_wrong_client_neither_burns_nor_extends<S: ParStore>(store: S) {
    let clock = ManualClock::new();
    let server = completion_server(&clock, store, InnerMode::Login).await;
    let uri = server.push_web("").await.request_uri();
    let unopened = server.push_web("").await.request_uri();
    server
        .redeem("post-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
    server
        .redeem("post-app", &unopened)
        .await
        .assert_error(400, "invalid_request_uri");
    assert_login_redirect(&server.redeem("web-app", &uri).await);
    // Had the wrong client opened `unopened`, it would now live for the window.
    clock.advance(Duration::from_secs(60));
    server
        .redeem("web-app", &unopened)
        .await
        .assert_error(400, "invalid_request_uri");
    assert_code_redirect(&server.redeem_signed_in("web-app", &uri).await);
}

async fn explicit_completion_through_the_extension<S: ParStore>(store: S) {
    let clock = ManualClock::new();
    let server = completion_server(&clock, store, InnerMode::ExplicitCompletion).await;
    let uri = server.push_web("").await.request_uri();
    let reply = server.redeem("web-app", &uri).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["completed"], true);
    server
        .redeem("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

async fn an_error_response_completes_too<S: ParStore>(store: S) {
    // The authorization response may be an error redirect (access_denied): it consumes as well.
    let clock = ManualClock::new();
    let server = completion_server(&clock, store, InnerMode::Redirect).await;
    let uri = server.push_web("").await.request_uri();
    assert_code_redirect(&server.redeem("web-app", &uri).await);
    server
        .redeem("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

mod memory {
    use tower_par::MemoryStore;

    fn store() -> MemoryStore {
        MemoryStore::with_capacity(10_000)
    }

    #[tokio::test]
    async fn reload_before_completion_succeeds_and_reload_after_fails() {
        super::reload_before_completion_succeeds_and_reload_after_fails(store()).await;
    }

    #[tokio::test]
    async fn first_use_after_expires_in_fails() {
        super::first_use_after_expires_in_fails(store()).await;
    }

    #[tokio::test]
    async fn reuse_after_the_window_fails() {
        super::reuse_after_the_window_fails(store()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_completions_hand_out_one_code() {
        super::parallel_completions_hand_out_one_code(store()).await;
    }

    #[tokio::test]
    async fn a_wrong_client_neither_burns_nor_extends() {
        super::a_wrong_client_neither_burns_nor_extends(store()).await;
    }

    #[tokio::test]
    async fn explicit_completion_through_the_extension() {
        super::explicit_completion_through_the_extension(store()).await;
    }

    #[tokio::test]
    async fn an_error_response_completes_too() {
        super::an_error_response_completes_too(store()).await;
    }
}
