//! A fair share of the store per client (issue 11 item 4, spec-checklist PAR-05), over HTTP on
//! real TCP, against the memory store and against a real Redis.
//!
//! The store holds 16 entries (bytes to spare unless a test says otherwise), so with the default
//! shares each client may hold 8 and all public clients together 4. Floods are parallel pushes;
//! every refusal must be `429` with `Retry-After` and the RFC 6749 §5.2 JSON error, and every
//! handle that got `201` must redeem exactly once.

mod common;
#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;

use common::*;
use tower_par::{
    store::{ParStore, StoreLimits},
    ManualClock, ParLayer, StaticClients,
};

const ENTRIES: u64 = 16;
const CLIENT_SHARE: usize = 8;
const PUBLIC_SHARE: usize = 4;
const ROOMY_BYTES: u64 = 4 << 20;

/// Three confidential clients and two public ones; `limited-app` has limits of its own.
fn clients() -> StaticClients {
    let confidential = |id: &str| {
        format!(
            r#"{{"client_id":"{id}","client_secret":"{id}-secret","auth_method":"client_secret_basic",
                "redirect_uris":["https://{id}.example.org/cb"],"grant_types":["authorization_code"]}}"#
        )
    };
    let public = |id: &str| {
        format!(
            r#"{{"client_id":"{id}","auth_method":"none","redirect_uris":["{SPA_CB}"],
                "grant_types":["authorization_code"]}}"#
        )
    };
    let limited = confidential("limited-app").replace(
        r#""auth_method""#,
        r#""par_max_outstanding":2,"par_max_outstanding_bytes":3000,"auth_method""#,
    );
    StaticClients::from_json_str(&format!(
        r#"{{"clients":[{},{},{},{},{},{limited}]}}"#,
        confidential("web-app"),
        confidential("other-app"),
        confidential("third-app"),
        public("spa"),
        public("spa-2"),
    ))
    .unwrap()
}

async fn server(store: impl ParStore) -> Arc<TestServer> {
    let layer = ParLayer::builder()
        .issuer(ISSUER)
        .clients(clients())
        .store(store)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    Arc::new(serve(layer, InnerMode::Echo).await)
}

/// A valid push by `client_id` with `extra` form parameters.
async fn push(server: &TestServer, client_id: &str, extra: &str) -> Reply {
    if client_id.starts_with("spa") {
        let form = format!(
            "client_id={client_id}&response_type=code&code_challenge={CHALLENGE}\
             &code_challenge_method=S256{extra}"
        );
        server.push(None, &form).await
    } else {
        let credentials = format!("{client_id}:{client_id}-secret");
        server
            .push(Some(&credentials), &format!("response_type=code{extra}"))
            .await
    }
}

/// `n` pushes at once, by the clients in turn.
async fn flood(
    server: &Arc<TestServer>,
    clients: &[&'static str],
    n: usize,
) -> Vec<(&'static str, Reply)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let server = Arc::clone(server);
            let client_id = clients[i % clients.len()];
            tokio::spawn(async move { (client_id, push(&server, client_id, "").await) })
        })
        .collect();
    let mut replies = Vec::with_capacity(n);
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

/// Splits replies into issued handles and refusals, asserting that every refusal is the share's
/// `429` (JSON, `no-store`, `Retry-After`).
#[track_caller]
fn issued_and_refused(replies: Vec<(&'static str, Reply)>) -> (Vec<(&'static str, String)>, usize) {
    let mut issued = Vec::new();
    let mut refused = 0;
    for (client_id, reply) in replies {
        if reply.status == 201 {
            issued.push((client_id, reply.request_uri()));
        } else {
            reply.assert_error(429, "temporarily_unavailable");
            assert_eq!(
                reply.header("retry-after"),
                Some("1"),
                "429 needs Retry-After"
            );
            refused += 1;
        }
    }
    (issued, refused)
}

/// Every issued handle redeems once, and only once.
async fn redeem_all_once(server: &TestServer, issued: &[(&str, String)]) {
    for (client_id, uri) in issued {
        let reply = server.redeem(client_id, uri).await;
        assert_eq!(
            reply.status, 200,
            "a handle that got 201 must redeem: {reply:?}"
        );
        assert_eq!(reply.json()["pushed"]["client_id"], *client_id);
        server
            .redeem(client_id, uri)
            .await
            .assert_error(400, "invalid_request_uri");
    }
}

async fn flooding_one_public_client_leaves_room_for_confidential_clients(store: impl ParStore) {
    let server = server(store).await;
    let (mut issued, refused) = issued_and_refused(flood(&server, &["spa"], 40).await);
    assert_eq!(
        issued.len(),
        PUBLIC_SHARE,
        "a public client gets the public clients' share (a quarter of 16), then 429"
    );
    assert_eq!(refused, 40 - PUBLIC_SHARE);
    for client_id in ["web-app", "other-app"] {
        issued.push((client_id, push(&server, client_id, "").await.request_uri()));
    }
    redeem_all_once(&server, &issued).await;
}

async fn flooding_all_public_clients_leaves_room_for_confidential_clients(store: impl ParStore) {
    let server = server(store).await;
    let (mut issued, refused) = issued_and_refused(flood(&server, &["spa", "spa-2"], 40).await);
    assert_eq!(
        issued.len(),
        PUBLIC_SHARE,
        "all public clients together hold at most their share"
    );
    assert_eq!(refused, 40 - PUBLIC_SHARE);
    // Both public clients are refused now, each below its own share (8).
    for client_id in ["spa", "spa-2"] {
        let reply = push(&server, client_id, "").await;
        reply.assert_error(429, "temporarily_unavailable");
    }
    for client_id in ["web-app", "other-app", "third-app"] {
        issued.push((client_id, push(&server, client_id, "").await.request_uri()));
    }
    redeem_all_once(&server, &issued).await;
}

async fn flooding_one_confidential_client_leaves_room_for_another(store: impl ParStore) {
    let server = server(store).await;
    let (mut issued, refused) = issued_and_refused(flood(&server, &["web-app"], 40).await);
    assert_eq!(
        issued.len(),
        CLIENT_SHARE,
        "a client holds at most half of the store"
    );
    assert_eq!(refused, 40 - CLIENT_SHARE);
    issued.push((
        "other-app",
        push(&server, "other-app", "").await.request_uri(),
    ));
    issued.push(("spa", push(&server, "spa", "").await.request_uri()));
    redeem_all_once(&server, &issued).await;
    // Redeemed handles give the share back.
    push(&server, "web-app", "").await.request_uri();
}

async fn a_full_store_stays_503_a_share_429(store: impl ParStore) {
    let server = server(store).await;
    let (mut issued, _) = issued_and_refused(flood(&server, &["web-app"], 8).await);
    let (more, _) = issued_and_refused(flood(&server, &["other-app"], 8).await);
    issued.extend(more);
    assert_eq!(issued.len(), 2 * CLIENT_SHARE, "two clients fill the store");
    // third-app is within its share: the store itself is full.
    let reply = push(&server, "third-app", "").await;
    reply.assert_error(503, "temporarily_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // web-app is past its share, and that is what it is told.
    push(&server, "web-app", "")
        .await
        .assert_error(429, "temporarily_unavailable");
    redeem_all_once(&server, &issued).await;
    push(&server, "third-app", "").await.request_uri();
}

/// Shares count bytes too: with 64 KiB in the store (32 KiB a client, 16 KiB for all public
/// clients), 6 KiB pushes are refused long before the entries run out.
async fn shares_count_bytes(store: impl ParStore) {
    let server = server(store).await;
    let state = format!("&state={}", "!".repeat(6 * 1024));
    let mut issued = Vec::new();
    for _ in 0..2 {
        issued.push(("spa", push(&server, "spa", &state).await.request_uri()));
    }
    push(&server, "spa", &state)
        .await
        .assert_error(429, "temporarily_unavailable");
    // A small push still fits the public clients' bytes.
    issued.push(("spa-2", push(&server, "spa-2", "").await.request_uri()));
    for _ in 0..4 {
        issued.push((
            "web-app",
            push(&server, "web-app", &state).await.request_uri(),
        ));
    }
    push(&server, "web-app", &state)
        .await
        .assert_error(429, "temporarily_unavailable");
    redeem_all_once(&server, &issued).await;
}

/// A client's own limits (clients file `par_max_outstanding`, `par_max_outstanding_bytes`)
/// replace the default share: 2 entries, 3,000 bytes.
async fn a_client_s_own_limits_replace_the_default_share(store: impl ParStore) {
    let server = server(store).await;
    let (mut issued, refused) = issued_and_refused(flood(&server, &["limited-app"], 10).await);
    assert_eq!(issued.len(), 2, "par_max_outstanding: 2");
    assert_eq!(refused, 8);
    redeem_all_once(&server, &issued).await;
    issued.clear();
    // 2,000 bytes of state weigh more than half of 3,000 with the record overhead: one fits.
    let state = format!("&state={}", "s".repeat(2_000));
    issued.push((
        "limited-app",
        push(&server, "limited-app", &state).await.request_uri(),
    ));
    push(&server, "limited-app", &state)
        .await
        .assert_error(429, "temporarily_unavailable");
    redeem_all_once(&server, &issued).await;
}

const BYTES_LIMITS: StoreLimits = StoreLimits::new(1_000, 64 * 1024);

mod memory {
    use super::*;
    use tower_par::MemoryStore;

    fn store(limits: StoreLimits) -> MemoryStore {
        MemoryStore::with_limits(limits)
    }

    fn sixteen() -> MemoryStore {
        store(StoreLimits::new(ENTRIES, ROOMY_BYTES))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flooding_one_public_client_leaves_room_for_confidential_clients() {
        super::flooding_one_public_client_leaves_room_for_confidential_clients(sixteen()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flooding_all_public_clients_leaves_room_for_confidential_clients() {
        super::flooding_all_public_clients_leaves_room_for_confidential_clients(sixteen()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flooding_one_confidential_client_leaves_room_for_another() {
        super::flooding_one_confidential_client_leaves_room_for_another(sixteen()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_store_stays_503_a_share_429() {
        super::a_full_store_stays_503_a_share_429(sixteen()).await;
    }

    #[tokio::test]
    async fn shares_count_bytes() {
        super::shares_count_bytes(store(BYTES_LIMITS)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_s_own_limits_replace_the_default_share() {
        super::a_client_s_own_limits_replace_the_default_share(sixteen()).await;
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use redis_server::RedisServer;
    use tower_par::store::{RedisStore, RedisStoreConfig};

    /// A fresh Redis and a store on it within `limits` (one shard at these sizes: exact).
    async fn store(limits: StoreLimits) -> (RedisServer, RedisStore) {
        let redis = RedisServer::start();
        let config = RedisStoreConfig::new(redis.url())
            .prefix("shares-test")
            .max_entries(limits.max_entries())
            .max_stored_bytes(limits.max_bytes());
        let store = RedisStore::connect(config).await.expect("connect");
        assert_eq!(store.limits().partitions(), 1);
        (redis, store)
    }

    async fn sixteen() -> (RedisServer, RedisStore) {
        store(StoreLimits::new(ENTRIES, ROOMY_BYTES)).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flooding_one_public_client_leaves_room_for_confidential_clients() {
        let (_redis, store) = sixteen().await;
        super::flooding_one_public_client_leaves_room_for_confidential_clients(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flooding_all_public_clients_leaves_room_for_confidential_clients() {
        let (_redis, store) = sixteen().await;
        super::flooding_all_public_clients_leaves_room_for_confidential_clients(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flooding_one_confidential_client_leaves_room_for_another() {
        let (_redis, store) = sixteen().await;
        super::flooding_one_confidential_client_leaves_room_for_another(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_store_stays_503_a_share_429() {
        let (_redis, store) = sixteen().await;
        super::a_full_store_stays_503_a_share_429(store).await;
    }

    #[tokio::test]
    async fn shares_count_bytes() {
        let (_redis, store) = store(BYTES_LIMITS).await;
        super::shares_count_bytes(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_s_own_limits_replace_the_default_share() {
        let (_redis, store) = sixteen().await;
        super::a_client_s_own_limits_replace_the_default_share(store).await;
    }
}
