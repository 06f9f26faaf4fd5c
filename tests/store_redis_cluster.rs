//! `RedisStore` on a real Redis Cluster of 3 masters and 3 replicas (issue 14): the shared store
//! test-suite unchanged, the shards spread over the masters, `WAIT` on the master that took the
//! write, unconfirmed writes refused and deleted, and a master killed: its slots fail closed
//! within the operation timeout, the others keep working, and its replica takes over with every
//! confirmed record.
//!
//! Every test starts its own cluster (see `common/redis_cluster.rs`); none is ever skipped. Needs
//! `redis-server` and `redis-cli`: `apt-get install -y redis-server`.
#![cfg(all(feature = "redis", feature = "test-suite"))]

#[path = "common/redis_cluster.rs"]
mod redis_cluster;
#[path = "common/redis_server.rs"]
mod redis_server;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use redis_cluster::{shard_of, RedisCluster};
use store_fixtures::{free, fresh_prefix, key};
use tower_par::store::{
    test_suite, ParStore, Record, RedisStore, RedisStoreConfig, StoreError, StoreKey,
};

/// Twice the default: `WAIT` gets a third (333 ms), for replicas on a machine shared by many
/// clusters' worth of servers.
const OP_TIMEOUT: Duration = Duration::from_millis(1_000);
/// What an operation on a failed master may take beyond its timeout on a loaded machine.
const SLACK: Duration = Duration::from_millis(400);

fn config(cluster: &RedisCluster, prefix: &str) -> RedisStoreConfig {
    RedisStoreConfig::new(cluster.url())
        .prefix(prefix)
        .op_timeout(OP_TIMEOUT)
}

async fn store(config: RedisStoreConfig) -> RedisStore {
    RedisStore::connect(config)
        .await
        .expect("connect to the test cluster")
}

fn later(now: SystemTime) -> Record {
    Record::new(now + Duration::from_secs(300), "scope=openid")
}

/// The shared store test-suite, unchanged, on the cluster: without and with waiting for a
/// replica, and its checks that hold on a sharded store on the default 16 shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_test_suite_on_a_cluster() {
    let cluster = RedisCluster::start();
    for replicas in [0, 1] {
        let url = cluster.url();
        test_suite::run(|limits| {
            let config = RedisStoreConfig::new(url.clone())
                .prefix(fresh_prefix())
                .op_timeout(OP_TIMEOUT)
                .max_entries(limits.max_entries())
                .max_stored_bytes(limits.max_bytes())
                .wait_replicas(replicas);
            async move { RedisStore::connect(config).await.expect("connect") }
        })
        .await;
    }
    let make = || async {
        let s = store(config(&cluster, &fresh_prefix())).await;
        assert_eq!(s.limits().partitions(), 16);
        s
    };
    test_suite::check_parallel_puts_within_a_share(Arc::new(make().await)).await;
    test_suite::check_parallel_takes(Arc::new(make().await)).await;
    test_suite::check_open_then_complete(make().await).await;
    test_suite::check_parallel_completes(Arc::new(make().await)).await;
    test_suite::check_remember(make().await).await;
}

/// Fills every shard of a 16-shard store with a record.
async fn touch_every_shard(s: &RedisStore, now: SystemTime) -> Vec<StoreKey> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for n in 0.. {
        let k = key(n);
        if seen.insert(shard_of(&k)) {
            s.put(k, later(now), free(), now).await.unwrap();
            keys.push(k);
        }
        if seen.len() == 16 {
            break;
        }
    }
    keys
}

/// The 16 shards land 5 or 6 on each of the 3 masters (their hash tags are salted into the
/// shard's own sixteenth of the slots), and a script never meets CROSSSLOT. The stored requests
/// (the gauge `tower_par_stored_requests`) are counted shard by shard, each `ZCOUNT` on the
/// master that holds the shard, none on a replica, and a redemption takes one off the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_spread_evenly_over_the_masters() {
    let cluster = RedisCluster::start();
    let prefix = fresh_prefix();
    let s = store(config(&cluster, &prefix)).await;
    let now = SystemTime::now();
    let keys = touch_every_shard(&s, now).await;
    let placed = cluster.shard_masters(&prefix);
    assert_eq!(placed.len(), 16, "{placed:?}");
    let mut per_master: HashMap<usize, u32> = HashMap::new();
    for master in placed.values() {
        *per_master.entry(*master).or_default() += 1;
    }
    assert_eq!(per_master.len(), 3, "{per_master:?}");
    assert!(
        per_master.values().all(|&n| (5..=6).contains(&n)),
        "{per_master:?}"
    );

    for node in 0..6 {
        cluster.cli(node, &["CONFIG", "RESETSTAT"]);
    }
    assert_eq!(s.stored_requests(now).await.unwrap(), Some(16));
    for node in 0..6 {
        let shards_held = per_master.get(&node).copied().unwrap_or(0);
        assert_eq!(
            calls(&cluster, node, "zcount"),
            u64::from(shards_held),
            "node {node} (masters: {:?})",
            cluster.masters()
        );
    }
    assert!(s.take(keys[0], now).await.unwrap().is_some());
    assert_eq!(s.stored_requests(now).await.unwrap(), Some(15));
}

/// `calls=` of one command in `INFO commandstats`.
fn calls(cluster: &RedisCluster, node: usize, command: &str) -> u64 {
    cluster
        .info_field(node, "commandstats", &format!("cmdstat_{command}"))
        .and_then(|stats| {
            stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Every script is followed by one `WAIT` on the very node that ran it: on each master the
/// `WAIT` calls equal the script calls, replicas see neither. A `WAIT` routed like any keyless
/// command (to every master, or a random node) would break the equality.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_goes_to_the_master_that_took_the_write() {
    let cluster = RedisCluster::start();
    let s = store(config(&cluster, &fresh_prefix()).wait_replicas(1)).await;
    let now = SystemTime::now();
    // Every script on every master once, so that no NOSCRIPT retry blurs the counts below.
    for n in 0..64 {
        s.put(key(n), later(now), free(), now).await.unwrap();
        assert!(s.open(key(n), now, OP_TIMEOUT).await.unwrap().is_some());
        assert!(s.complete(key(n), now).await.unwrap());
        assert!(s.take(key(n), now).await.unwrap().is_none());
        assert!(s.remember(key(n), now + OP_TIMEOUT, now).await.unwrap());
    }
    for node in 0..6 {
        cluster.cli(node, &["CONFIG", "RESETSTAT"]);
    }
    let operations = 200;
    for n in 1_000..1_000 + operations / 2 {
        s.put(key(n), later(now), free(), now).await.unwrap();
        assert!(s.take(key(n), now).await.unwrap().is_some());
    }
    let masters = cluster.masters();
    let mut scripts = 0;
    for node in 0..6 {
        let (evals, waits) = (
            calls(&cluster, node, "evalsha") + calls(&cluster, node, "eval"),
            calls(&cluster, node, "wait"),
        );
        if masters.contains(&node) {
            assert!(evals > 0, "master {node} ran no script");
            assert_eq!(waits, evals, "master {node}");
        } else {
            assert_eq!((evals, waits), (0, 0), "replica {node}");
        }
        scripts += evals;
    }
    assert_eq!(scripts, u64::from(operations));
}

/// With more replicas required than each master has, nothing runs: every operation is refused
/// (`Unavailable`, within the operation timeout) before it writes anything, so a take burns no record; a store that
/// does not wait still finds every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_replicas_refuse_every_operation_before_it_writes() {
    let cluster = RedisCluster::start();
    let prefix = fresh_prefix();
    let limits = |c: RedisStoreConfig| c.max_entries(4).shards(1);
    let waiting = store(limits(config(&cluster, &prefix)).wait_replicas(2)).await;
    let plain = store(limits(config(&cluster, &prefix))).await;
    let now = SystemTime::now();
    for n in 0..4 {
        plain.put(key(n), later(now), free(), now).await.unwrap();
    }
    let refused = |result: Result<(), StoreError>| match result {
        Err(StoreError::Unavailable(e)) => assert!(e.to_string().contains("NOREPLICAS"), "{e}"),
        other => panic!("{other:?}"),
    };
    let timed =
        |started: Instant| assert!(started.elapsed() < OP_TIMEOUT, "{:?}", started.elapsed());
    for n in 0..4 {
        let started = Instant::now();
        refused(waiting.take(key(n), now).await.map(drop));
        timed(started);
        let started = Instant::now();
        refused(waiting.put(key(10 + n), later(now), free(), now).await);
        timed(started);
        refused(waiting.open(key(n), now, OP_TIMEOUT).await.map(drop));
        refused(waiting.complete(key(n), now).await.map(drop));
        let remember = waiting.remember(key(20 + n), now + OP_TIMEOUT, now).await;
        refused(remember.map(drop));
    }
    // Nothing was taken, opened or stored: the budget of 4 is still full of the first records.
    assert!(matches!(
        plain.put(key(30), later(now), free(), now).await,
        Err(StoreError::Full)
    ));
    for n in 0..4 {
        assert!(plain.take(key(n), now).await.unwrap().is_some(), "key {n}");
    }
}

/// A master killed with SIGKILL. Operations on its shards fail with `Unavailable` within the
/// operation timeout (never another error, never a hang) and the other shards keep working.
/// Without waiting for replicas, service on its shards resumes by itself once its replica is
/// promoted. Waiting for one replica, it resumes once the promoted master has a replica again:
/// the killed node, restarted, which rejoins as a replica. Every record confirmed before the
/// kill is then taken once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_fails_its_shards_closed_until_its_replica_takes_over() {
    let mut cluster = RedisCluster::start();
    let prefix = fresh_prefix();
    let s = store(config(&cluster, &prefix).wait_replicas(1)).await;
    let plain = store(config(&cluster, &prefix)).await;
    let now = SystemTime::now();
    let first = touch_every_shard(&s, now).await;
    let placed = cluster.shard_masters(&prefix);
    let confirmed: Vec<StoreKey> = (10_000..10_400).map(key).collect();
    for k in &confirmed {
        s.put(*k, later(now), free(), now).await.unwrap();
    }
    let victim = cluster.masters()[0];
    let on_victim = |k: &StoreKey| placed[&shard_of(k)] == victim;
    let bounded = |started: Instant| {
        let elapsed = started.elapsed();
        assert!(elapsed < OP_TIMEOUT + SLACK, "{elapsed:?}");
    };

    cluster.kill(victim);
    let killed = Instant::now();
    for k in &first {
        let started = Instant::now();
        let take = s.take(*k, now).await;
        bounded(started);
        if on_victim(k) {
            assert!(matches!(take, Err(StoreError::Unavailable(_))), "{take:?}");
        } else {
            assert!(
                take.unwrap().is_some(),
                "shard {} must keep working",
                shard_of(k)
            );
        }
    }

    // Without waiting, service resumes by itself: a put on the victim's shards succeeds again.
    // (A take would be a poor probe: one that timed out may still run once the replica is
    // promoted, and burn the record it was sent for.)
    let mut victim_keys = (40_000..).map(key).filter(|k| on_victim(k));
    let resumed = loop {
        let k = victim_keys.next().expect("keys");
        let started = Instant::now();
        match plain.put(k, later(now), free(), now).await {
            Ok(()) => break killed.elapsed(),
            Err(StoreError::Unavailable(_)) => {
                bounded(started);
                assert!(
                    killed.elapsed() < Duration::from_secs(20),
                    "no failover in 20 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    eprintln!(
        "without waiting, the killed master's shards served again {resumed:?} after the kill"
    );
    // The promoted master has no replica: waiting for one, its shards refuse, without writing.
    let k = victim_keys.next().expect("keys");
    match s.put(k, later(now), free(), now).await {
        Err(StoreError::Unavailable(e)) => assert!(e.to_string().contains("NOREPLICAS"), "{e}"),
        other => panic!("{other:?}"),
    }

    cluster.restart(victim);
    let restarted = Instant::now();
    cluster.wait_healthy(3);
    assert_eq!(
        cluster.info_field(victim, "replication", "role").as_deref(),
        Some("slave"),
        "the restarted node rejoins as a replica"
    );
    assert!(!cluster.masters().contains(&victim));
    let resumed = loop {
        let k = victim_keys.next().expect("keys");
        match s.put(k, later(now), free(), now).await {
            Ok(()) => break restarted.elapsed(),
            Err(StoreError::Unavailable(_)) if restarted.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("{other:?}"),
        }
    };
    eprintln!("waiting for a replica, they served again {resumed:?} after the restart");
    // Every record confirmed before the kill is on the promoted replica, and takes once.
    for k in &confirmed {
        let taken = s.take(*k, now).await.unwrap_or_else(|e| {
            let replication: Vec<String> = (0..6)
                .map(|i| cluster.cli(i, &["INFO", "replication"]))
                .collect();
            panic!("{e}: {replication:#?}")
        });
        assert!(taken.is_some(), "lost {k:?}");
        assert!(s.take(*k, now).await.unwrap().is_none(), "twice {k:?}");
    }
}

/// `rediss-cluster://` with a private CA (feature `redis-tls`): TLS to every node, replicas
/// confirming over TLS; without the CA, or in clear, no connection.
#[cfg(feature = "redis-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_with_a_private_ca() {
    let cluster = RedisCluster::start_tls();
    let ca = cluster.tls_ca_pem().expect("TLS cluster").to_vec();
    assert!(cluster.url().starts_with("rediss-cluster://"));
    let prefix = fresh_prefix();
    // Up to 48 TLS handshakes (8 connections, 6 nodes) of a debug build on a loaded machine.
    let with_ca = |c: RedisStoreConfig| {
        c.tls_root_certificates(ca.clone())
            .connect_timeout(Duration::from_secs(10))
    };
    let s = store(with_ca(config(&cluster, &prefix)).wait_replicas(1)).await;
    let now = SystemTime::now();
    let keys = touch_every_shard(&s, now).await;
    assert_eq!(cluster.shard_masters(&prefix).len(), 16);
    for k in &keys {
        assert!(s.take(*k, now).await.unwrap().is_some());
    }
    let other = store(with_ca(config(&cluster, &fresh_prefix()))).await;
    test_suite::check_parallel_takes(Arc::new(other)).await;
    // The system roots do not know the test CA; plain TCP does not speak TLS.
    assert!(matches!(
        RedisStore::connect(config(&cluster, "x")).await,
        Err(StoreError::Unavailable(_))
    ));
    let plain = cluster
        .url()
        .replace("rediss-cluster://", "redis-cluster://");
    assert!(matches!(
        RedisStore::connect(RedisStoreConfig::new(plain).op_timeout(OP_TIMEOUT)).await,
        Err(StoreError::Unavailable(_))
    ));
}
