//! Consumption at completion (FAPI 2.0 §5.3.2.2 note 3, spec-checklist URI-04, C-3), per store.
//! Strict single use, the default, is covered in tests/authorize.rs.
//!
//! `mod redis` runs every scenario on a `RedisStore` against a real `redis-server` (one per test,
//! never skipped; see `common/redis_server.rs`).

mod common;
#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

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

/// The scenarios every store must pass, each on a fresh store.
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
    let server = completion_server(&clock, store, InnerMode::Deny).await;
    let uri = server.push_web("").await.request_uri();
    let denied = server.redeem("web-app", &uri).await;
    assert_eq!(denied.status, 303);
    assert!(denied
        .header("location")
        .unwrap()
        .starts_with(&format!("{WEB_CB}?error=access_denied")));
    server
        .redeem("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

/// Issue 12: a sealed record is opened again on every reload and by `pushed_request` (the store
/// keeps the sealed bytes; each open decrypts them, none re-seals), and still completes whole.
async fn a_sealed_record_opens_three_times_then_completes<S: ParStore>(store: S) {
    let clock = ManualClock::new();
    let par = builder(&clock)
        .store(store)
        .consumption(Consumption::AtCompletion { window: WINDOW })
        .build()
        .unwrap();
    let server = serve(par.clone(), InnerMode::Login).await;
    let uri = server
        .push_web("login_hint=alice%40example.org")
        .await
        .request_uri();
    assert_login_redirect(&server.redeem("web-app", &uri).await); // open 1
    let pushed = par.pushed_request("web-app", &uri).await.unwrap(); // open 2
    let pushed = pushed.expect("the pushed request, opened again");
    assert_eq!(pushed.get("login_hint"), Some("alice@example.org"));
    assert_eq!(pushed.get("state"), Some("xyz"));
    clock.advance(Duration::from_secs(90)); // past expires_in, within the window
    assert_login_redirect(&server.redeem("web-app", &uri).await); // open 3
    let done = server.redeem_signed_in("web-app", &uri).await; // open 4, then completion
    assert_code_redirect(&done);
    assert!(done.header("location").unwrap().ends_with("&state=xyz"));
    server
        .redeem_signed_in("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
    assert_eq!(par.pushed_request("web-app", &uri).await.unwrap(), None);
}

/// Issue 16.5: any redirect to the pushed `redirect_uri` is the authorization response and
/// completes, whatever it carries; each of these redeemed again and again before.
async fn any_redirect_to_the_redirect_uri_completes<S: ParStore>(store: impl Fn() -> S) {
    for suffix in [
        // JARM (response_mode=query.jwt): one `response` parameter.
        "?response=eyJhbGciOiJFUzI1NiJ9.eyJjb2RlIjoiYyJ9.c2ln",
        // response_type=none: only state (and iss).
        "?state=xyz&iss=https%3A%2F%2Fas.example.com",
        // An implicit response carrying only state, in the fragment.
        "#state=xyz",
        // Nothing at all.
        "",
    ] {
        let clock = ManualClock::new();
        let server = completion_server(&clock, store(), InnerMode::RedirectWith(suffix)).await;
        let uri = server.push_web("").await.request_uri();
        let reply = server.redeem("web-app", &uri).await;
        assert_eq!(reply.status, 303, "{suffix}");
        assert_eq!(
            reply.header("location"),
            Some(format!("{WEB_CB}{suffix}").as_str())
        );
        server
            .redeem("web-app", &uri)
            .await
            .assert_error(400, "invalid_request_uri");
    }
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

    #[tokio::test]
    async fn any_redirect_to_the_redirect_uri_completes() {
        super::any_redirect_to_the_redirect_uri_completes(store).await;
    }

    #[tokio::test]
    async fn a_sealed_record_opens_three_times_then_completes() {
        super::a_sealed_record_opens_three_times_then_completes(store()).await;
    }
}

/// The same scenarios on Redis. The scenarios move a `ManualClock` by minutes while Redis' own
/// expiry runs in real time; they are valid because `RedisStore` judges liveness by the `now` the
/// layer passes in (`redis_decides_by_the_layers_clock` checks that directly).
#[cfg(feature = "redis")]
mod redis {
    use std::{
        sync::atomic::{AtomicU64, Ordering},
        time::Duration,
    };

    use tower_par::{
        store::{RedisStore, RedisStoreConfig},
        ManualClock,
    };

    use super::{common::*, redis_server::RedisServer};

    /// A prefix no other store in this process uses.
    fn fresh_prefix() -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!(
            "consumption-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A running Redis (kept alive by the caller for the whole test) and a store on it.
    async fn store() -> (RedisServer, RedisStore, String) {
        let server = RedisServer::start();
        let prefix = fresh_prefix();
        let config = RedisStoreConfig::new(server.url())
            .prefix(prefix.as_str())
            .op_timeout(Duration::from_secs(2));
        let store = RedisStore::connect(config)
            .await
            .expect("connect to the test redis-server");
        (server, store, prefix)
    }

    #[tokio::test]
    async fn reload_before_completion_succeeds_and_reload_after_fails() {
        let (_server, store, _) = store().await;
        super::reload_before_completion_succeeds_and_reload_after_fails(store).await;
    }

    #[tokio::test]
    async fn first_use_after_expires_in_fails() {
        let (_server, store, _) = store().await;
        super::first_use_after_expires_in_fails(store).await;
    }

    #[tokio::test]
    async fn reuse_after_the_window_fails() {
        let (_server, store, _) = store().await;
        super::reuse_after_the_window_fails(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_completions_hand_out_one_code() {
        let (_server, store, _) = store().await;
        super::parallel_completions_hand_out_one_code(store).await;
    }

    #[tokio::test]
    async fn a_wrong_client_neither_burns_nor_extends() {
        let (_server, store, _) = store().await;
        super::a_wrong_client_neither_burns_nor_extends(store).await;
    }

    #[tokio::test]
    async fn explicit_completion_through_the_extension() {
        let (_server, store, _) = store().await;
        super::explicit_completion_through_the_extension(store).await;
    }

    #[tokio::test]
    async fn an_error_response_completes_too() {
        let (_server, store, _) = store().await;
        super::an_error_response_completes_too(store).await;
    }

    #[tokio::test]
    async fn a_sealed_record_opens_three_times_then_completes() {
        let (_server, store, _) = store().await;
        super::a_sealed_record_opens_three_times_then_completes(store).await;
    }

    /// Redis still holds the record (its TTL runs in real time), yet a handle is dead once the
    /// layer's clock passes `expires_in`, and an opened one once it passes the window: the store
    /// decides by the `now` it is given, which is what makes the fake-time scenarios above valid.
    #[tokio::test]
    async fn redis_decides_by_the_layers_clock() {
        let (server, store, prefix) = store().await;
        let clock = ManualClock::new();
        let server_a = super::completion_server(&clock, store, InnerMode::Login).await;
        let unopened = server_a.push_web("").await.request_uri();
        let opened = server_a.push_web("").await.request_uri();
        super::assert_login_redirect(&server_a.redeem("web-app", &opened).await);

        let mut raw = redis::Client::open(server.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        let keys = |raw: &mut redis::aio::MultiplexedConnection| {
            let mut raw = raw.clone();
            // Records and markers of every shard (`{<prefix>:<shard>}:<key hex>[:opened]`),
            // not the shards' books.
            let pattern = format!("{{{prefix}:*}}:*");
            async move {
                let mut keys: Vec<String> = redis::cmd("KEYS")
                    .arg(pattern)
                    .query_async(&mut raw)
                    .await
                    .expect("KEYS");
                keys.retain(|k| {
                    ![":live", ":charges", ":usage"]
                        .iter()
                        .any(|b| k.ends_with(b))
                });
                keys.sort();
                keys
            }
        };
        // Two records and one opened marker.
        let before = keys(&mut raw).await;
        assert_eq!(before.len(), 3, "{before:?}");

        clock.advance(Duration::from_secs(60)); // expires_in of the unopened one
        server_a
            .redeem("web-app", &unopened)
            .await
            .assert_error(400, "invalid_request_uri");
        clock.advance(super::WINDOW); // past the opened one's window
        server_a
            .redeem_signed_in("web-app", &opened)
            .await
            .assert_error(400, "invalid_request_uri");
        // Nothing was consumed on the way (a refused open leaves Redis alone): the refusals came
        // from the layer's clock, not from Redis' expiry.
        assert_eq!(keys(&mut raw).await, before);
    }
}
