//! The layer on `RedisStore` across nodes (issue 6): two layers (two HTTP servers, "nodes" A and
//! B) with the same issuer on one real `redis-server` and the same key prefix, as behind a load
//! balancer.
//!
//! Every test starts its own `redis-server` (see `common/redis_server.rs`); none is ever skipped:
//! a missing `redis-server` fails the test with what to install.
#![cfg(feature = "redis")]

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::*;
use redis_server::RedisServer;
use tower_par::{
    store::{RedisStore, RedisStoreConfig},
    Consumption, ManualClock, ParLayerBuilder, SystemClock,
};

/// Short, so that an outage answers quickly; far above a loopback round trip.
const OP_TIMEOUT: Duration = Duration::from_millis(300);

/// The same prefix for both nodes of a test (they serve one issuer), distinct across tests.
fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "tower-par:{ISSUER}:{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One node's store: its own connection to the shared Redis, under the shared prefix.
async fn node_store(redis: &RedisServer, prefix: &str) -> RedisStore {
    let config = RedisStoreConfig::new(redis.url())
        .prefix(prefix)
        .op_timeout(OP_TIMEOUT)
        .connect_timeout(OP_TIMEOUT);
    RedisStore::connect(config)
        .await
        .expect("connect to the test redis-server")
}

/// Two nodes on one Redis.
struct Cluster {
    redis: RedisServer,
    a: TestServer,
    b: TestServer,
}

/// Starts Redis and two nodes, each built by `configure` from the test builder on its own
/// `RedisStore` (the same issuer and prefix).
async fn cluster(
    mode: InnerMode,
    configure: impl Fn(ParLayerBuilder) -> ParLayerBuilder,
) -> Cluster {
    let redis = RedisServer::start();
    let prefix = fresh_prefix();
    let clock = ManualClock::new();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let store = node_store(&redis, &prefix).await;
        let layer = configure(builder(&clock).store(store))
            .build()
            .expect("layer");
        nodes.push(serve(layer, mode).await);
    }
    let (b, a) = (nodes.pop().expect("b"), nodes.pop().expect("a"));
    Cluster { redis, a, b }
}

/// Both nodes on the real clock, strict single use.
async fn real_time_cluster(mode: InnerMode) -> Cluster {
    cluster(mode, |b| b.clock(SystemClock)).await
}

#[track_caller]
fn assert_code_redirect(reply: &Reply, redirect_uri: &str) {
    assert_eq!(
        reply.status,
        303,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let location = reply.header("location").expect("location");
    assert!(
        location.starts_with(&format!("{redirect_uri}?code=")),
        "{location}"
    );
}

/// A 503 from the layer itself: the echo inner service would have answered 200 with what it saw.
#[track_caller]
fn assert_unavailable(reply: &Reply) {
    reply.assert_error(503, "temporarily_unavailable");
    assert!(
        reply.header("retry-after").is_some(),
        "503 without Retry-After"
    );
    let body = reply.json();
    assert!(
        body.get("method").is_none() && body.get("pushed").is_none(),
        "the inner service answered: {body}"
    );
}

/// PAR-xx / AZ-xx across nodes: the push lands on A, the browser on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_on_a_redeem_on_b() {
    let nodes = real_time_cluster(InnerMode::Redirect).await;
    let uri = nodes.a.push_web("").await.request_uri();
    assert_code_redirect(&nodes.b.redeem("web-app", &uri).await, WEB_CB);
    // Single use holds across nodes, in both directions.
    for node in [&nodes.a, &nodes.b] {
        node.redeem("web-app", &uri)
            .await
            .assert_error(400, "invalid_request_uri");
    }

    let echo = real_time_cluster(InnerMode::Echo).await;
    let uri = echo.a.push_web("scope=openid").await.request_uri();
    let reply = echo.b.redeem("web-app", &uri).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let seen = reply.json();
    assert_eq!(seen["pushed"]["client_id"], "web-app");
    let params = pushed_params(&seen);
    for (name, value) in [
        ("response_type", "code"),
        ("redirect_uri", WEB_CB),
        ("state", "xyz"),
        ("scope", "openid"),
    ] {
        assert!(
            params.iter().any(|(n, v)| n == name && v == value),
            "{name}={value} missing from {params:?}"
        );
    }
}

/// Sends `count` redemptions of one handle, alternating between the nodes, all at once; returns
/// (codes, refusals) after checking every reply is one or the other.
async fn race(nodes: &Arc<Cluster>, uri: &str, count: usize, signed_in: bool) -> (usize, usize) {
    let uri: Arc<str> = uri.into();
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (nodes, uri) = (Arc::clone(nodes), Arc::clone(&uri));
            tokio::spawn(async move {
                let node = if i % 2 == 0 { &nodes.a } else { &nodes.b };
                if signed_in {
                    node.redeem_signed_in("web-app", &uri).await
                } else {
                    node.redeem("web-app", &uri).await
                }
            })
        })
        .collect();
    let (mut codes, mut refused) = (0, 0);
    for task in tasks {
        let reply = task.await.expect("task");
        if reply.status == 303 {
            assert_code_redirect(&reply, WEB_CB);
            codes += 1;
        } else {
            reply.assert_error(400, "invalid_request_uri");
            refused += 1;
        }
    }
    (codes, refused)
}

/// URI-03 across nodes: 20 parallel redemptions split over A and B, one authorization code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_redemptions_across_nodes_hand_out_one_code() {
    let nodes = Arc::new(real_time_cluster(InnerMode::Redirect).await);
    for _ in 0..3 {
        let uri = nodes.a.push_web("").await.request_uri();
        assert_eq!(race(&nodes, &uri, 20, false).await, (1, 19));
    }
}

/// Issue 7 across nodes: the flow opens on A, then two tabs on two nodes finish it; exactly one
/// completion wins, the others get `invalid_request_uri` instead of a second code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_completions_across_nodes_hand_out_one_code() {
    let nodes = Arc::new(
        cluster(InnerMode::Login, |b| {
            b.clock(SystemClock)
                .consumption(Consumption::at_completion())
        })
        .await,
    );
    for _ in 0..3 {
        let uri = nodes.a.push_web("").await.request_uri();
        // The login round-trip, on both nodes: not a completion.
        for node in [&nodes.a, &nodes.b] {
            let reply = node.redeem("web-app", &uri).await;
            assert_eq!(reply.status, 303);
            assert!(reply
                .header("location")
                .is_some_and(|l| l.starts_with("/login?return=")));
        }
        assert_eq!(race(&nodes, &uri, 20, true).await, (1, 19));
    }
}

/// AZ-xx: the key binds the client, so a wrong `client_id` on another node burns nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_on_b_does_not_burn_a_handle_pushed_on_a() {
    let nodes = real_time_cluster(InnerMode::Redirect).await;
    let uri = nodes.a.push_web("").await.request_uri();
    for client in ["post-app", "spa", "short-lived"] {
        nodes
            .b
            .redeem(client, &uri)
            .await
            .assert_error(400, "invalid_request_uri");
    }
    assert_code_redirect(&nodes.b.redeem("web-app", &uri).await, WEB_CB);
}

/// Fail closed (issue 6): with Redis down, no handle is issued and no `request_uri` is passed
/// through unresolved; when Redis is back, the same layers serve again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_closed_and_recovers_without_a_restart() {
    let mut nodes = real_time_cluster(InnerMode::Echo).await;
    let before = nodes.a.push_web("").await.request_uri();

    nodes.redis.stop();
    for node in [&nodes.a, &nodes.b] {
        let started = Instant::now();
        assert_unavailable(&node.push_web("").await);
        assert_unavailable(&node.redeem("web-app", &before).await);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a push and a redemption took {:?} to fail",
            started.elapsed()
        );
    }

    nodes.redis.restart();
    let restarted = Instant::now();
    for node in [&nodes.a, &nodes.b] {
        let deadline = restarted + Duration::from_secs(5);
        loop {
            let reply = node.push_web("").await;
            if reply.status == 201 {
                break;
            }
            assert_unavailable(&reply);
            assert!(
                Instant::now() < deadline,
                "no recovery within 5 s of the restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "both nodes pushing again {:?} after the restart",
        restarted.elapsed()
    );
    // The whole flow again, across nodes.
    let uri = nodes.b.push_web("").await.request_uri();
    let reply = nodes.a.redeem("web-app", &uri).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["pushed"]["client_id"], "web-app");
    // The test server has no persistence: what was pushed before the outage is gone, and is
    // refused as unknown, not passed through.
    nodes
        .b
        .redeem("web-app", &before)
        .await
        .assert_error(400, "invalid_request_uri");
}

/// Fail closed when Redis is slow (issue 6): while it answers nothing (`CLIENT PAUSE`), pushes
/// and redemptions fail with 503 after about the store's op timeout, not when Redis wakes up;
/// afterwards the same layers serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_fails_closed_within_the_timeout() {
    let nodes = real_time_cluster(InnerMode::Echo).await;
    let uri = nodes.a.push_web("").await.request_uri();
    let mut raw = redis::Client::open(nodes.redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let pause = Duration::from_secs(3);
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis().to_string())
        .arg("ALL")
        .query_async(&mut raw)
        .await
        .expect("CLIENT PAUSE");
    let paused = Instant::now();
    let started = Instant::now();
    assert_unavailable(&nodes.a.push_web("").await);
    assert_unavailable(&nodes.b.redeem("web-app", &uri).await);
    let took = started.elapsed();
    assert!(
        took >= OP_TIMEOUT && took < Duration::from_secs(2),
        "two requests took {took:?} to fail with an op timeout of {OP_TIMEOUT:?}"
    );
    assert!(
        paused.elapsed() < pause,
        "the pause ended before the checks"
    );

    tokio::time::sleep(pause.saturating_sub(paused.elapsed())).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = loop {
        let reply = nodes.b.push_web("").await;
        if reply.status == 201 {
            break reply.request_uri();
        }
        assert_unavailable(&reply);
        assert!(
            Instant::now() < deadline,
            "no recovery within 5 s of the pause"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reply = nodes.a.redeem("web-app", &fresh).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// Fail closed at completion too (issue 7 on Redis): a flow opened before the outage gets a 503,
/// never the inner service's authorization response, whose code could not be consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_in_completion_mode_withholds_the_authorization_response() {
    let mut nodes = cluster(InnerMode::Login, |b| {
        b.clock(SystemClock)
            .consumption(Consumption::at_completion())
    })
    .await;
    let uri = nodes.a.push_web("").await.request_uri();
    let login = nodes.a.redeem("web-app", &uri).await;
    assert_eq!(
        login.status,
        303,
        "{}",
        String::from_utf8_lossy(&login.body)
    );

    nodes.redis.stop();
    for node in [&nodes.a, &nodes.b] {
        let reply = node.redeem_signed_in("web-app", &uri).await;
        reply.assert_error(503, "temporarily_unavailable");
        assert!(reply.header("retry-after").is_some());
    }
}

/// Expiry in real time (issue 6, PAR-xx `expires_in`): `short-lived` has a 2-s lifetime; its
/// handles are dead after 2 s on both nodes, while a 60-s handle pushed at the same time lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_handle_is_dead_after_two_seconds_on_both_nodes() {
    let nodes = real_time_cluster(InnerMode::Redirect).await;
    let short_form = format!(
        "response_type=code&client_id=short-lived&redirect_uri={}",
        enc("https://short.example.org/cb")
    );
    let credentials = Some("short-lived:short-lived-secret");
    let pushed_at = Instant::now();
    let mut short = Vec::new();
    for _ in 0..3 {
        let reply = nodes.a.push(credentials, &short_form).await;
        assert_eq!(reply.json()["expires_in"], 2);
        short.push(reply.request_uri());
    }
    let long = nodes.a.push_web("").await.request_uri();
    // Alive within the lifetime, on B.
    assert_code_redirect(
        &nodes.b.redeem("short-lived", &short[2]).await,
        "https://short.example.org/cb",
    );

    tokio::time::sleep(Duration::from_millis(2_100).saturating_sub(pushed_at.elapsed())).await;
    nodes
        .a
        .redeem("short-lived", &short[0])
        .await
        .assert_error(400, "invalid_request_uri");
    nodes
        .b
        .redeem("short-lived", &short[1])
        .await
        .assert_error(400, "invalid_request_uri");
    assert_code_redirect(&nodes.b.redeem("web-app", &long).await, WEB_CB);
}

/// AUTH-06 across nodes (feature `jwt`): a client assertion's `jti`, and a DPoP proof's, are
/// remembered in the shared store, so a replay on another node is refused.
#[cfg(feature = "jwt")]
mod jwt_replay {
    use tower_par::{Clock as _, ManualClock, StaticClients};

    use super::{
        common::{jwt, *},
        *,
    };

    const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jti_replay_is_refused_on_the_other_node() {
        let key = jwt::TestKey::es256("k1");
        let client = private_key_jwt_client("jwt-app", &key);
        let clients = StaticClients::from_clients([client]).expect("registry");
        let nodes = cluster(InnerMode::Redirect, move |b| b.clients(clients.clone())).await;
        let clock = ManualClock::new();
        let form = |assertion: &str| {
            format!(
                "response_type=code&client_id=jwt-app&redirect_uri={}&client_assertion_type={}\
                 &client_assertion={assertion}",
                enc(WEB_CB),
                enc(JWT_BEARER)
            )
        };

        let assertion = jwt::client_assertion(&key, "jwt-app", ISSUER, clock.now());
        let uri = nodes.a.push(None, &form(&assertion)).await.request_uri();
        nodes
            .b
            .push(None, &form(&assertion))
            .await
            .assert_error(401, "invalid_client");
        nodes
            .a
            .push(None, &form(&assertion))
            .await
            .assert_error(401, "invalid_client");
        // A fresh assertion is fine on B, and the first push's handle is redeemable there.
        let fresh = jwt::client_assertion(&key, "jwt-app", ISSUER, clock.now());
        nodes.b.push(None, &form(&fresh)).await.request_uri();
        let reply = nodes.b.redeem("jwt-app", &uri).await;
        assert_eq!(
            reply.status,
            303,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );

        // DPoP (RFC 9449 §11.1): one proof, accepted on A, refused on B.
        let dpop_key = jwt::TestKey::es256("dpop");
        let proof = jwt::dpop_proof(&dpop_key, "POST", &format!("{ISSUER}/as/par"), clock.now());
        let push_with_proof = |node: &TestServer| {
            let assertion = jwt::client_assertion(&key, "jwt-app", ISSUER, clock.now());
            http::Request::post(node.url("/as/par"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("dpop", proof.as_str())
                .body(http_body_util::Full::new(bytes::Bytes::from(form(
                    &assertion,
                ))))
                .expect("request")
        };
        nodes.a.send(push_with_proof(&nodes.a)).await.request_uri();
        nodes
            .b
            .send(push_with_proof(&nodes.b))
            .await
            .assert_error(400, "invalid_dpop_proof");
    }
}
