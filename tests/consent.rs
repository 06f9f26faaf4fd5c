//! Completion away from the authorization endpoint (issue 17, item 4): the consent-page recipe
//! of examples/consent.rs, run over real TCP on one node and on two nodes sharing a store
//! (in memory, and a real Redis). Consumption at completion: FAPI 2.0 §5.3.2.2 note 3,
//! spec-checklist URI-04.

mod common;
#[allow(dead_code)]
#[path = "../examples/consent.rs"]
mod consent;
#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tower_par::{Consumption, ManualClock, MemoryStore, ParLayer, ParStore};

/// One node: the consent app behind a layer that consumes at completion, on `store`.
async fn node(store: impl ParStore, clock: &ManualClock) -> (TestServer, ParLayer) {
    let par = builder(clock)
        .store(store)
        .consumption(Consumption::at_completion())
        .build()
        .unwrap();
    let server = serve_service(consent::app(par.clone(), clients())).await;
    (server, par)
}

trait ConsentPost {
    async fn consent(&self, request_uri: &str, decision: &str) -> Reply;
}

impl ConsentPost for TestServer {
    async fn consent(&self, request_uri: &str, decision: &str) -> Reply {
        let form = format!(
            "client_id=web-app&request_uri={}&decision={decision}",
            enc(request_uri)
        );
        self.send(
            http::Request::post(self.url("/consent"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form)))
                .unwrap(),
        )
        .await
    }
}

/// The consent page for a pushed request, which names its request_uri in the form.
async fn open_consent_page(server: &TestServer, request_uri: &str) {
    let page = server.redeem("web-app", request_uri).await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("action=\"/consent\""), "{html}");
    assert!(html.contains(request_uri), "{html}");
}

#[track_caller]
fn assert_code(reply: &Reply) {
    assert_eq!(reply.status, 303, "{:?}", reply.body);
    let location = reply.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{WEB_CB}?code=")) && location.contains("&state=xyz&iss="),
        "{location}"
    );
}

#[track_caller]
fn assert_no_code(reply: &Reply) {
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert!(reply.header("location").is_none(), "no redirect, no code");
}

#[tokio::test]
async fn a_consent_post_on_another_path_completes_and_a_second_gets_no_code() {
    let clock = ManualClock::new();
    let (server, _) = node(MemoryStore::with_capacity(100), &clock).await;
    let uri = server.push_web("scope=openid").await.request_uri();
    open_consent_page(&server, &uri).await;
    open_consent_page(&server, &uri).await; // a reload before completion still works
    assert_code(&server.consent(&uri, "approve").await);
    assert_no_code(&server.consent(&uri, "approve").await);
    // The request_uri is dead at the authorization endpoint too.
    server
        .redeem("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

#[tokio::test]
async fn a_denial_completes_too() {
    let clock = ManualClock::new();
    let (server, _) = node(MemoryStore::with_capacity(100), &clock).await;
    let uri = server.push_web("").await.request_uri();
    open_consent_page(&server, &uri).await;
    let denied = server.consent(&uri, "deny").await;
    assert_eq!(denied.status, 303);
    assert!(denied
        .header("location")
        .unwrap()
        .starts_with(&format!("{WEB_CB}?error=access_denied&state=xyz")));
    assert_no_code(&server.consent(&uri, "approve").await);
}

/// Node A shows the consent page, node B takes the POST; then neither hands out another code.
async fn a_second_node_sharing_the_store_completes(a: Arc<TestServer>, b: Arc<TestServer>) {
    let uri = a.push_web("").await.request_uri();
    open_consent_page(&a, &uri).await;
    assert_code(&b.consent(&uri, "approve").await);
    assert_no_code(&a.consent(&uri, "approve").await);
    assert_no_code(&b.consent(&uri, "approve").await);
    a.redeem("web-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");

    // Concurrent POSTs on both nodes: one code in all.
    let uri = Arc::new(a.push_web("").await.request_uri());
    open_consent_page(&b, &uri).await;
    let posts: Vec<_> = (0..10)
        .map(|i| {
            let node = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let uri = Arc::clone(&uri);
            tokio::spawn(async move { node.consent(&uri, "approve").await })
        })
        .collect();
    let mut codes = 0;
    for post in posts {
        let reply = post.await.unwrap();
        if reply.status == 303 {
            assert_code(&reply);
            codes += 1;
        } else {
            assert_no_code(&reply);
        }
    }
    assert_eq!(codes, 1);
}

#[tokio::test]
async fn a_second_node_sharing_a_memory_store_completes() {
    let clock = ManualClock::new();
    let store = Arc::new(MemoryStore::with_capacity(100));
    let (a, _) = node(Arc::clone(&store), &clock).await;
    let (b, _) = node(store, &clock).await;
    a_second_node_sharing_the_store_completes(Arc::new(a), Arc::new(b)).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_second_node_sharing_a_redis_store_completes() {
    use std::time::Duration;
    use tower_par::store::{RedisStore, RedisStoreConfig};

    let redis = redis_server::RedisServer::start();
    let connect = || async {
        let config = RedisStoreConfig::new(redis.url())
            .prefix("consent-test")
            .op_timeout(Duration::from_secs(2));
        RedisStore::connect(config).await.expect("connect to redis")
    };
    // Two connections to one Redis: two nodes.
    let clock = ManualClock::new();
    let (a, _) = node(connect().await, &clock).await;
    let (b, _) = node(connect().await, &clock).await;
    a_second_node_sharing_the_store_completes(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn complete_refuses_what_it_must_not_complete() {
    let clock = ManualClock::new();
    let (server, par) = node(MemoryStore::with_capacity(100), &clock).await;
    let uri = server.push_web("").await.request_uri();
    // Never opened at the authorization endpoint: nothing to complete, and the handle survives.
    assert!(!par.complete("web-app", &uri).await.unwrap());
    assert!(par.pushed_request("spa", &uri).await.unwrap().is_none());
    assert!(
        !par.complete("spa", &uri).await.unwrap(),
        "another client's"
    );
    assert!(!par
        .complete("web-app", "urn:example:not-ours")
        .await
        .unwrap());
    let pushed = par.pushed_request("web-app", &uri).await.unwrap().unwrap();
    assert_eq!(pushed.get("state"), Some("xyz"));
    assert_eq!(pushed.request_uri(), uri);
    assert!(par.complete("web-app", &uri).await.unwrap());
    assert!(!par.complete("web-app", &uri).await.unwrap());
    assert!(par.pushed_request("web-app", &uri).await.unwrap().is_none());

    // Strict consumption: the authorization endpoint consumed it; nothing is left to finish.
    let strict = builder(&clock).build().unwrap();
    let server = serve(strict.clone(), InnerMode::Echo).await;
    let uri = server.push_web("").await.request_uri();
    assert!(strict
        .pushed_request("web-app", &uri)
        .await
        .unwrap()
        .is_none());
    assert_eq!(server.redeem("web-app", &uri).await.status, 200);
    assert!(!strict.complete("web-app", &uri).await.unwrap());
}
