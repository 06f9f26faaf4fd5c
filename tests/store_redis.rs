//! `RedisStore` against a real `redis-server` (issue 6): the store contract, two nodes on one
//! Redis, an outage, and expiry on Redis' own clock.
//!
//! Every test starts its own server (see `common/redis_server.rs`); none is ever skipped. Needs
//! `redis-server` installed: `apt-get install -y redis-server`.
#![cfg(all(feature = "redis", feature = "test-suite"))]

#[path = "common/redis_server.rs"]
mod redis_server;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::time::{Duration, Instant, SystemTime};

use redis_server::RedisServer;
use store_fixtures::{free, fresh_prefix, key};
use tower_par::store::{
    test_suite, ParStore, Record, RedisStore, RedisStoreConfig, StoreError, StoreKey,
};

const OP_TIMEOUT: Duration = Duration::from_millis(300);

fn config(server: &RedisServer, prefix: &str) -> RedisStoreConfig {
    RedisStoreConfig::new(server.url())
        .prefix(prefix)
        .op_timeout(OP_TIMEOUT)
}

async fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::connect(config(server, prefix))
        .await
        .expect("connect to the test redis-server")
}

fn record(expires_at: SystemTime, payload: &'static str) -> Record {
    Record::new(expires_at, payload)
}

/// The Redis key of a record, as `RedisStore`'s docs lay it out: the shard (of 16, the default)
/// from the digest's last four bytes, in the hash tag `{<prefix>:<shard>:<salt>}` whose salt is
/// the smallest that puts the tag's Redis Cluster slot (CRC16/XMODEM mod 16,384) in the shard's
/// sixteenth of the slots.
fn record_key_name(prefix: &str, key: StoreKey) -> String {
    let digest = key.as_bytes();
    let shard = u32::from_be_bytes([digest[28], digest[29], digest[30], digest[31]]) % 16;
    let slot =
        |tag: &String| u32::from(crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes())) % 16_384;
    let tag = (0..)
        .map(|salt| format!("{prefix}:{shard}:{salt}"))
        .find(|tag| slot(tag) / 1_024 == shard)
        .expect("a salt");
    format!("{{{tag}}}:{}", key.to_hex())
}

/// A raw connection for looking at what the store left in Redis.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

/// The shared store test-suite, unchanged; each store gets its own prefix, and its limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_test_suite() {
    let server = RedisServer::start();
    let url = server.url();
    test_suite::run(|limits| {
        let config = RedisStoreConfig::new(url.clone())
            .prefix(fresh_prefix())
            .op_timeout(OP_TIMEOUT)
            .max_entries(limits.max_entries())
            .max_stored_bytes(limits.max_bytes());
        async move { RedisStore::connect(config).await.expect("connect") }
    })
    .await;
}

/// The shared checks that hold on a sharded store too, on stores with the default limits (16
/// shards): the budget checks with small limits run on one shard above, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_checks_on_sixteen_shards() {
    let server = RedisServer::start();
    let make = || async {
        let s = store(&server, &fresh_prefix()).await;
        assert_eq!(s.limits().partitions(), 16);
        s
    };
    test_suite::check_parallel_puts_within_a_share(std::sync::Arc::new(make().await)).await;
    test_suite::check_put_then_take(make().await).await;
    test_suite::check_put_existing_key(make().await).await;
    test_suite::check_expiry_at_exact_deadline(make().await).await;
    test_suite::check_parallel_takes(std::sync::Arc::new(make().await)).await;
    test_suite::check_open_then_complete(make().await).await;
    test_suite::check_reopen_after_window(make().await).await;
    test_suite::check_parallel_completes(std::sync::Arc::new(make().await)).await;
    test_suite::check_remember(make().await).await;
    test_suite::check_payload_round_trip(make().await).await;
}

/// Rules of the contract the shared suite leaves to backends that keep dead records around.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_records_never_block_or_resurface() {
    let server = RedisServer::start();
    let s = store(&server, &fresh_prefix()).await;
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);

    // Dead at `now >= expires_at` by the caller's clock, although Redis still holds it; a dead
    // record does not block a new put of the same key.
    s.put(key(3), record(later, "old"), free(), now)
        .await
        .unwrap();
    let after = later + Duration::from_secs(1);
    s.put(
        key(3),
        record(after + Duration::from_secs(60), "new"),
        free(),
        after,
    )
    .await
    .unwrap();
    let got = s.take(key(3), after).await.unwrap().expect("replaced");
    assert_eq!(got.payload().as_ref(), b"new");
    // A record already dead when stored is never handed out.
    s.put(key(4), record(now, "dead"), free(), now)
        .await
        .unwrap();
    assert!(s.take(key(4), now).await.unwrap().is_none());
    // An opened record whose window is over is dead for take too, even before its expires_at,
    // and a put may then reuse the key.
    s.put(key(5), record(later, "p"), free(), now)
        .await
        .unwrap();
    let window = Duration::from_secs(5);
    assert!(s.open(key(5), now, window).await.unwrap().is_some());
    assert!(s.take(key(5), now + window).await.unwrap().is_none());
    s.put(key(6), record(later, "p"), free(), now)
        .await
        .unwrap();
    assert!(s.open(key(6), now, window).await.unwrap().is_some());
    assert!(matches!(
        s.put(
            key(6),
            record(later, "q"),
            free(),
            now + window - Duration::from_millis(1)
        )
        .await,
        Err(StoreError::Exists)
    ));
    s.put(key(6), record(later, "q"), free(), now + window)
        .await
        .unwrap();
    // Re-put after a dead opened record: it starts unopened (complete fails, open starts anew).
    assert!(!s.complete(key(6), now + window).await.unwrap());
    assert!(s
        .open(key(6), now + window, window)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_counts_live_records_only() {
    let server = RedisServer::start();
    let prefix = fresh_prefix();
    let s = RedisStore::connect(config(&server, &prefix).max_entries(3))
        .await
        .unwrap();
    let now = SystemTime::now();
    let short = now + Duration::from_secs(10);
    let long = now + Duration::from_secs(60);
    s.put(key(1), record(short, "1"), free(), now)
        .await
        .unwrap();
    s.put(key(2), record(long, "2"), free(), now).await.unwrap();
    s.put(key(3), record(long, "3"), free(), now).await.unwrap();
    assert!(matches!(
        s.put(key(4), record(long, "4"), free(), now).await,
        Err(StoreError::Full)
    ));
    // Full is not Exists: a present key still answers Exists.
    assert!(matches!(
        s.put(key(2), record(long, "2"), free(), now).await,
        Err(StoreError::Exists)
    ));
    // A take frees a slot.
    assert!(s.take(key(2), now).await.unwrap().is_some());
    s.put(key(4), record(long, "4"), free(), now).await.unwrap();
    assert!(matches!(
        s.put(key(5), record(long, "5"), free(), now).await,
        Err(StoreError::Full)
    ));
    // Expiry (by the caller's clock) frees a slot.
    s.put(key(5), record(long, "5"), free(), short)
        .await
        .unwrap();
    // An opened record holds its slot until its window ends, then frees it.
    let t = short;
    assert!(s
        .open(key(5), t, Duration::from_secs(5))
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        s.put(key(6), record(long, "6"), free(), t).await,
        Err(StoreError::Full)
    ));
    s.put(
        key(6),
        record(long, "6"),
        free(),
        t + Duration::from_secs(5),
    )
    .await
    .unwrap();

    // Another store with the same prefix (another node) shares the count.
    let b = RedisStore::connect(config(&server, &prefix).max_entries(3))
        .await
        .unwrap();
    let t = t + Duration::from_secs(5);
    assert!(matches!(
        b.put(key(7), record(long, "7"), free(), t).await,
        Err(StoreError::Full)
    ));
    assert!(b.take(key(3), t).await.unwrap().is_some());
    b.put(key(7), record(long, "7"), free(), t).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_are_separate_namespaces() {
    let server = RedisServer::start();
    let a = store(&server, "issuer-a").await;
    let b = store(&server, "issuer-b").await;
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);
    a.put(key(1), record(later, "a"), free(), now)
        .await
        .unwrap();
    assert!(b.take(key(1), now).await.unwrap().is_none());
    b.put(key(1), record(later, "b"), free(), now)
        .await
        .unwrap();
    assert_eq!(
        a.take(key(1), now)
            .await
            .unwrap()
            .unwrap()
            .payload()
            .as_ref(),
        b"a"
    );
    // The key in Redis is the digest under the prefix: no handle in clear.
    let mut raw = raw(&server).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(record_key_name("issuer-b", key(1)))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(exists);
}

/// Two nodes on one Redis: push on A, redeem on B; and races split across both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_winner() {
    let server = RedisServer::start();
    let prefix = fresh_prefix();
    let a = store(&server, &prefix).await;
    let b = store(&server, &prefix).await;
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);

    a.put(key(0), record(later, "pushed on A"), free(), now)
        .await
        .unwrap();
    let got = b.take(key(0), now).await.unwrap().expect("redeemed on B");
    assert_eq!(got.payload().as_ref(), b"pushed on A");
    assert!(a.take(key(0), now).await.unwrap().is_none());

    // 20 parallel takes, alternating nodes, over many rounds: exactly one winner each time.
    for round in 1..=50 {
        a.put(key(round), record(later, "r"), free(), now)
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.spawn(async move { node.take(key(round), now).await });
        }
        let mut winners = 0;
        while let Some(result) = tasks.join_next().await {
            if result.unwrap().unwrap().is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }

    // The same for completion: opened on A, 20 completes split across A and B.
    for round in 100..110 {
        a.put(key(round), record(later, "c"), free(), now)
            .await
            .unwrap();
        assert!(b
            .open(key(round), now, Duration::from_secs(30))
            .await
            .unwrap()
            .is_some());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.spawn(async move { node.complete(key(round), now).await });
        }
        let mut winners = 0;
        while let Some(result) = tasks.join_next().await {
            winners += usize::from(result.unwrap().unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }

    // And replay memory: 20 parallel remembers of one jti across nodes, one `true`.
    let jti = StoreKey::derive_tagged(b"jti", "iss", "client", b"race");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { node.remember(jti, later, now).await });
    }
    let mut firsts = 0;
    while let Some(result) = tasks.join_next().await {
        firsts += usize::from(result.unwrap().unwrap());
    }
    assert_eq!(firsts, 1);
}

/// Fail closed while Redis is down, recover without recreating the store when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_closed_and_recovers() {
    let mut server = RedisServer::start();
    let s = store(&server, &fresh_prefix()).await;
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);
    s.put(key(1), record(later, "before"), free(), now)
        .await
        .unwrap();

    server.stop();
    // Allow the timeout plus scheduling slack on a loaded machine.
    let bound = OP_TIMEOUT + Duration::from_millis(400);
    for attempt in 0..3 {
        let started = Instant::now();
        let put = s.put(key(2), record(later, "during"), free(), now).await;
        assert!(
            matches!(put, Err(StoreError::Unavailable(_))),
            "put {attempt}: {put:?}"
        );
        assert!(
            started.elapsed() < bound,
            "put took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let take = s.take(key(1), now).await;
        assert!(
            matches!(take, Err(StoreError::Unavailable(_))),
            "take {attempt}: {take:?}"
        );
        assert!(
            started.elapsed() < bound,
            "take took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert!(matches!(
            s.remember(key(3), later, now).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(started.elapsed() < bound);
    }
    // A new store cannot be created eagerly while Redis is down; the lazy one can.
    assert!(matches!(
        RedisStore::connect(config(&server, "x")).await,
        Err(StoreError::Unavailable(_))
    ));
    let lazy = RedisStore::connect_lazy(config(&server, &fresh_prefix())).unwrap();
    assert!(matches!(
        lazy.take(key(1), now).await,
        Err(StoreError::Unavailable(_))
    ));

    server.restart();
    let restarted = Instant::now();
    let mut recovered = false;
    while restarted.elapsed() < Duration::from_secs(5) {
        match s.put(key(2), record(later, "after"), free(), now).await {
            Ok(()) => {
                recovered = true;
                break;
            }
            Err(StoreError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(recovered, "no recovery within 5 s");
    eprintln!("recovered {:?} after restart", restarted.elapsed());
    // The scripts are reloaded on the fresh server (NOSCRIPT fallback) for every operation.
    assert!(s.take(key(2), now).await.unwrap().is_some());
    assert!(
        s.take(key(1), now).await.unwrap().is_none(),
        "no persistence"
    );
    assert!(s.remember(key(3), later, now).await.unwrap());
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match lazy.take(key(1), now).await {
            Ok(none) => break assert!(none.is_none()),
            Err(_) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("lazy store did not connect: {e}"),
        }
    }
}

/// A 2-s handle is dead after 2 s on both nodes, by the layer's clock and by Redis' own expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_in_real_time_on_both_nodes() {
    let server = RedisServer::start();
    let prefix = fresh_prefix();
    let a = store(&server, &prefix).await;
    let b = store(&server, &prefix).await;
    let t0 = SystemTime::now();
    let short = t0 + Duration::from_secs(2);
    a.put(key(1), record(short, "1"), free(), t0).await.unwrap();
    a.put(key(2), record(short, "2"), free(), t0).await.unwrap();
    a.put(
        key(3),
        record(t0 + Duration::from_secs(30), "control"),
        free(),
        t0,
    )
    .await
    .unwrap();

    let mut raw = raw(&server).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(record_key_name(&prefix, key(1)))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((1..=2_000).contains(&pttl), "Redis TTL {pttl} ms");

    let wait = short.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;

    // Redis itself has dropped them: the key is gone even for a caller whose clock lags.
    let exists: u32 = redis::cmd("EXISTS")
        .arg(record_key_name(&prefix, key(1)))
        .arg(record_key_name(&prefix, key(2)))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    let now = SystemTime::now();
    assert!(a.take(key(1), now).await.unwrap().is_none());
    assert!(b.take(key(2), now).await.unwrap().is_none());
    assert!(b
        .take(key(1), t0 + Duration::from_secs(1))
        .await
        .unwrap()
        .is_none());
    // The control record, alive until t0 + 30 s, is still there on B.
    assert!(b.take(key(3), now).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_reported_at_connect() {
    for url in ["not a url", "http://127.0.0.1/", "redis://127.0.0.1:1/"] {
        let started = Instant::now();
        let result = RedisStore::connect(RedisStoreConfig::new(url)).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{url}: {result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{url}");
    }
}

/// The shard count is part of every key's name: chosen from the limits unless set, within 1-1024;
/// a prefix must not contain the braces of a Redis Cluster hash tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_and_prefixes_are_checked() {
    let url = "redis://127.0.0.1:1/";
    let lazy = |config: RedisStoreConfig| RedisStore::connect_lazy(config);
    let partitions = |config| lazy(config).expect("valid").limits().partitions();
    assert_eq!(partitions(RedisStoreConfig::new(url)), 16);
    assert_eq!(partitions(RedisStoreConfig::new(url).max_entries(3)), 1);
    assert_eq!(
        partitions(RedisStoreConfig::new(url).max_stored_bytes(64 << 20)),
        8
    );
    assert_eq!(partitions(RedisStoreConfig::new(url).shards(4)), 4);
    for bad in [
        RedisStoreConfig::new(url).shards(0),
        RedisStoreConfig::new(url).shards(1025),
        RedisStoreConfig::new(url).prefix("tower-par:{tenant}"),
    ] {
        assert!(
            matches!(lazy(bad), Err(StoreError::Unavailable(_))),
            "refused at creation"
        );
    }
}

/// `rediss://` with a private CA (feature `redis-tls`); an untrusted server is refused.
#[cfg(feature = "redis-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let server = RedisServer::start_tls();
    let ca = server.tls_ca_pem().expect("TLS server").to_vec();
    let s = RedisStore::connect(config(&server, &fresh_prefix()).tls_root_certificates(ca))
        .await
        .expect("connect over TLS");
    let now = SystemTime::now();
    s.put(
        key(1),
        record(now + Duration::from_secs(60), "tls"),
        free(),
        now,
    )
    .await
    .unwrap();
    assert!(s.take(key(1), now).await.unwrap().is_some());
    // The system roots do not know the test CA; plain TCP does not speak TLS.
    assert!(matches!(
        RedisStore::connect(config(&server, "x")).await,
        Err(StoreError::Unavailable(_))
    ));
    let plain = RedisStoreConfig::new(server.url().replace("rediss://", "redis://"));
    assert!(matches!(
        RedisStore::connect(plain.op_timeout(OP_TIMEOUT)).await,
        Err(StoreError::Unavailable(_))
    ));
}

/// How many replicas the master at `server` lists as online (`INFO replication`).
async fn online_replicas(server: &RedisServer) -> usize {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut raw(server).await)
        .await
        .unwrap();
    info.matches("state=online").count()
}

/// Waits (at most 10 s) until the master lists `count` online replicas.
async fn until_online_replicas(server: &RedisServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while online_replicas(server).await != count {
        assert!(
            Instant::now() < deadline,
            "not {count} online replicas in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `wait_replicas` on one Redis with one replica (`--redis-wait-replicas` with `redis://`): writes
/// count once the replica holds them. Without an online replica every operation is refused before
/// it writes (a take burns nothing); with a replica that stalls, a put is refused after `WAIT`
/// times out and its record is deleted. Both within the operation timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_a_replica_and_fail_closed_without_one() {
    let master = RedisServer::start();
    let master_port = master.port().to_string();
    let mut replica = RedisServer::start_with_args(&[
        "--replicaof",
        "127.0.0.1",
        &master_port,
        "--repl-diskless-sync-delay",
        "0",
    ]);
    until_online_replicas(&master, 1).await;
    let prefix = fresh_prefix();
    let s = RedisStore::connect(config(&master, &prefix).wait_replicas(1))
        .await
        .unwrap();
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);
    for n in 1..=3 {
        s.put(key(n), record(later, "kept"), free(), now)
            .await
            .unwrap();
    }
    assert!(s.take(key(1), now).await.unwrap().is_some());
    // The replica holds what the master confirmed.
    let mut on_replica = raw(&replica).await;
    let copied: u32 = redis::cmd("EXISTS")
        .arg(record_key_name(&prefix, key(2)))
        .arg(record_key_name(&prefix, key(1)))
        .query_async(&mut on_replica)
        .await
        .unwrap();
    assert_eq!(copied, 1, "key 2 is on the replica, taken key 1 is not");

    replica.stop();
    until_online_replicas(&master, 0).await;
    let refused = |result: Result<(), StoreError>, started: Instant| {
        assert!(started.elapsed() < OP_TIMEOUT + Duration::from_millis(200));
        match result {
            Err(StoreError::Unavailable(e)) => assert!(e.to_string().contains("NOREPLICAS"), "{e}"),
            other => panic!("{other:?}"),
        }
    };
    let started = Instant::now();
    refused(
        s.put(key(4), record(later, "x"), free(), now).await,
        started,
    );
    let started = Instant::now();
    refused(s.take(key(2), now).await.map(drop), started);

    replica.restart();
    until_online_replicas(&master, 1).await;
    assert!(
        s.take(key(2), now).await.unwrap().is_some(),
        "the refused take burnt nothing"
    );
    assert!(s.take(key(4), now).await.unwrap().is_none(), "never stored");

    // A replica that stalls: online for the master, but its WAIT times out.
    replica.pause();
    let started = Instant::now();
    let put = s.put(key(5), record(later, "x"), free(), now).await;
    replica.resume();
    assert!(started.elapsed() < OP_TIMEOUT + Duration::from_millis(200));
    match put {
        Err(StoreError::Unavailable(e)) => {
            assert!(e.to_string().contains("replicas confirmed"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // The master had stored it; the store deletes it in the background.
    let mut on_master = raw(&master).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(record_key_name(&prefix, key(5)))
            .query_async(&mut on_master)
            .await
            .unwrap();
        if !exists {
            break;
        }
        assert!(Instant::now() < deadline, "the unconfirmed record stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.put(key(6), record(later, "after"), free(), now)
        .await
        .unwrap();
    assert!(s.take(key(3), now).await.unwrap().is_some());
}
