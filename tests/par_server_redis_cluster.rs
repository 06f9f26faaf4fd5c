//! Two real `par_server` processes on a real Redis Cluster of 3 masters and 3 replicas
//! (issue 14): a handle pushed on one redeems on the other, one code out of 20 parallel
//! redemptions across both, one winner at completion; and a master killed with SIGKILL under
//! load, with and without `--redis-wait-replicas 1`.
//!
//! Uses the `par_server` example binary (see `common/par_server.rs`) and `redis-server` with
//! `redis-cli` (see `common/redis_cluster.rs`); nothing is ever skipped. A failover run takes
//! about 30 s: the one that waits for a replica (the promise) runs with every `cargo test`; the
//! one without waiting (a figure) only with `scripts/failover-test`, which runs both (see
//! `BENCHMARKS.md`, "Redis Cluster failover").
#![cfg(feature = "redis")]

mod common;
#[path = "common/par_server.rs"]
mod par_server;
#[path = "common/redis_cluster.rs"]
mod redis_cluster;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use common::{send_with_new_client, Reply, TestServer, WEB_CB};
use par_server::{par_server_binary, Node};
use redis_cluster::{shard_of, RedisCluster};
use tower_par::store::StoreKey;

/// Both processes serve this issuer, so they derive the same keys under the same prefix.
const ISSUER: &str = "http://par.test";
/// `par_server`'s Redis key prefix for [`ISSUER`] (`CommonFlags::store`).
const PREFIX: &str = "tower-par:http://par.test";

/// Starts `par_server` on the cluster with `args`, and a client for it.
fn node(cluster: &RedisCluster, args: &[&str]) -> (Node, TestServer) {
    let url = cluster.url();
    let mut all = vec![
        "--issuer",
        ISSUER,
        "--store",
        url.as_str(),
        "--lifetime",
        "600",
    ];
    all.extend_from_slice(args);
    // Under a failover every refused request logs an error: keep the test's output readable.
    let node = Node::start_with_stderr(&par_server_binary(), &all, Stdio::null());
    let addr: SocketAddr = node
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    // The client holds no server task: the process is the server.
    let client = TestServer::running(addr, tokio::spawn(async {}));
    (node, client)
}

/// A `303` to `web-app`'s redirect URI with a code and the issuer.
#[track_caller]
fn assert_code(reply: &Reply) {
    assert_eq!(reply.status, 303, "{:?}", reply.body);
    let location = reply.header("location").expect("location");
    assert!(
        location.starts_with(&format!("{WEB_CB}?code=")),
        "{location}"
    );
    assert!(location.contains("iss=http%3A%2F%2Fpar.test"), "{location}");
}

/// 20 parallel redemptions of `uri` split across both processes (with a session cookie when
/// `signed_in`): each answer is a code or `invalid_request_uri`; how many codes.
async fn codes_of_twenty(servers: &Arc<[TestServer; 2]>, uri: &Arc<str>, signed_in: bool) -> usize {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (servers, uri) = (Arc::clone(servers), Arc::clone(uri));
            tokio::spawn(async move {
                let server = &servers[i % 2];
                if signed_in {
                    server.redeem_signed_in("web-app", &uri).await
                } else {
                    server.redeem("web-app", &uri).await
                }
            })
        })
        .collect();
    let mut codes = 0;
    for task in tasks {
        let reply = task.await.expect("task");
        if reply.status == 303 {
            assert_code(&reply);
            codes += 1;
        } else {
            reply.assert_error(400, "invalid_request_uri");
        }
    }
    codes
}

/// The gauge `tower_par_stored_requests` in a scrape of `/metrics` at `url`.
async fn stored_requests_gauge(url: &str) -> u64 {
    let scrape = send_with_new_client(
        http::Request::get(url)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap(),
    )
    .await;
    assert_eq!(scrape.status, 200);
    let text = String::from_utf8_lossy(&scrape.body);
    text.lines()
        .find_map(|line| line.strip_prefix("tower_par_stored_requests "))
        .unwrap_or_else(|| panic!("no tower_par_stored_requests in {text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A handle pushed on one process redeems once, on either; 20 parallel redemptions across both
/// give one code; the stored-requests gauge of one process counts the whole cluster's requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_par_server_processes_on_a_cluster() {
    let cluster = RedisCluster::start();
    let (a_process, a) = node(
        &cluster,
        &["--inner", "redirect", "--metrics", "127.0.0.1:0"],
    );
    let a_metrics = a_process.metrics.clone().expect("a `metrics on` line");
    let (_b, b) = node(&cluster, &["--inner", "redirect"]);

    // Push on A, redeem on B; once only, on both.
    let uri = a.push_web("").await.request_uri();
    assert_code(&b.redeem("web-app", &uri).await);
    for server in [&a, &b] {
        server
            .redeem("web-app", &uri)
            .await
            .assert_error(400, "invalid_request_uri");
    }

    // 20 parallel redemptions split across the processes: one authorization code, each round.
    let servers = Arc::new([a, b]);
    for round in 0..5 {
        let uri: Arc<str> = servers[round % 2].push_web("").await.request_uri().into();
        assert_eq!(
            codes_of_twenty(&servers, &uri, false).await,
            1,
            "round {round}"
        );
    }

    // Every handle so far was redeemed; three more pushed on both processes are what A counts.
    assert_eq!(stored_requests_gauge(&a_metrics).await, 0);
    for server in [&servers[0], &servers[1], &servers[1]] {
        server.push_web("").await.request_uri();
    }
    assert_eq!(stored_requests_gauge(&a_metrics).await, 3);
}

/// Consumption at completion (`--consume completion --inner login`): the login round-trip may
/// reuse the handle on either process, and of 20 parallel completions across both, one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_winner_at_completion_across_two_processes() {
    let cluster = RedisCluster::start();
    let args = ["--inner", "login", "--consume", "completion"];
    let (_a, a) = node(&cluster, &args);
    let (_b, b) = node(&cluster, &args);
    let servers = Arc::new([a, b]);
    for round in 0..5 {
        let uri: Arc<str> = servers[round % 2].push_web("").await.request_uri().into();
        // Not signed in: to the login page, the handle kept (on both processes).
        for server in servers.iter() {
            let login = server.redeem("web-app", &uri).await;
            assert_eq!(login.status, 303, "{:?}", login.body);
            assert!(login
                .header("location")
                .is_some_and(|l| l.starts_with("/login?")));
        }
        assert_eq!(
            codes_of_twenty(&servers, &uri, true).await,
            1,
            "round {round}"
        );
    }
}

/// The store key of a `request_uri` pushed by `web-app` (the layer's derivation).
fn store_key(request_uri: &str) -> StoreKey {
    let encoded = request_uri
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .expect("a request_uri");
    let handle = URL_SAFE_NO_PAD.decode(encoded).expect("base64url handle");
    StoreKey::derive(ISSUER, "web-app", &handle)
}

/// How one answer during the failover is counted: `push 201`, `redeem 400
/// invalid_request_uri`, … Every answer the issue allows; anything else is `unexpected …`.
fn classify(kind: &str, reply: &Reply) -> String {
    let error = || {
        serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|json| json["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let allowed = match (kind, reply.status) {
        ("push", 201) => true,
        ("redeem", 303) => {
            assert_code(reply);
            true
        }
        ("redeem", 400) => error() == "invalid_request_uri",
        (_, 503) => error() == "temporarily_unavailable" && reply.header("retry-after").is_some(),
        _ => false,
    };
    let name = format!("{kind} {} {}", reply.status, error());
    if allowed {
        name.trim_end().to_owned()
    } else {
        format!("unexpected {name}: {:?}", reply.body)
    }
}

/// What the load saw: answers by kind, the handles that got `201`, each redemption's result,
/// and when the failed master's shards answered again.
#[derive(Default)]
struct Seen {
    counts: BTreeMap<String, usize>,
    issued: Vec<String>,
    redeemed: HashMap<String, u16>,
    /// After the kill: the first success on a shard of the killed master.
    resumed: Option<Duration>,
    /// The last refusal (`503`) on any shard.
    last_refusal: Option<Duration>,
}

/// Pushes on both processes until `stop`, recording every answer.
async fn push_load(
    servers: Arc<[TestServer; 2]>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    victim: Arc<dyn Fn(&StoreKey) -> bool + Send + Sync>,
    killed: Arc<Mutex<Option<Instant>>>,
    worker: usize,
) {
    let mut i = worker;
    while !stop.load(Ordering::Relaxed) {
        let sent_after_kill = killed.lock().unwrap().is_some();
        let reply = servers[i % 2].push_web("").await;
        i += 1;
        let since_kill = killed.lock().unwrap().map(|at| at.elapsed());
        let mut seen = seen.lock().unwrap();
        *seen.counts.entry(classify("push", &reply)).or_default() += 1;
        if reply.status == 503 {
            seen.last_refusal = since_kill;
        }
        if reply.status == 201 {
            let uri = reply.request_uri();
            if sent_after_kill && seen.resumed.is_none() && victim(&store_key(&uri)) {
                seen.resumed = since_kill;
            }
            seen.issued.push(uri);
        }
    }
}

/// Redeems handles from `queue` on both processes until `stop` or the queue is empty.
async fn redeem_load(
    servers: Arc<[TestServer; 2]>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    queue: Arc<Mutex<Vec<String>>>,
    victim: Arc<dyn Fn(&StoreKey) -> bool + Send + Sync>,
    killed: Arc<Mutex<Option<Instant>>>,
) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        // A steady trickle, so that the handles last through the failover.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let Some(uri) = queue.lock().unwrap().pop() else {
            break;
        };
        let sent_after_kill = killed.lock().unwrap().is_some();
        let reply = servers[i % 2].redeem("web-app", &uri).await;
        i += 1;
        let since_kill = killed.lock().unwrap().map(|at| at.elapsed());
        let mut seen = seen.lock().unwrap();
        *seen.counts.entry(classify("redeem", &reply)).or_default() += 1;
        if reply.status == 503 {
            seen.last_refusal = since_kill;
        }
        if reply.status == 303
            && sent_after_kill
            && seen.resumed.is_none()
            && victim(&store_key(&uri))
        {
            seen.resumed = since_kill;
        }
        seen.redeemed.insert(uri, reply.status);
    }
}

/// Redeems each handle once over 16 connections; the statuses.
async fn redeem_all(servers: &Arc<[TestServer; 2]>, uris: &[String]) -> Vec<u16> {
    let queue = Arc::new(Mutex::new(
        uris.iter().cloned().enumerate().collect::<Vec<_>>(),
    ));
    let statuses = Arc::new(Mutex::new(vec![0u16; uris.len()]));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (servers, queue, statuses) = (
                Arc::clone(servers),
                Arc::clone(&queue),
                Arc::clone(&statuses),
            );
            tokio::spawn(async move {
                loop {
                    let Some((i, uri)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let reply = servers[i % 2].redeem("web-app", &uri).await;
                    match reply.status {
                        303 => assert_code(&reply),
                        400 => reply.assert_error(400, "invalid_request_uri"),
                        other => panic!("after the failover: {other} {:?}", reply.body),
                    }
                    statuses.lock().unwrap()[i] = reply.status;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("redeemer");
    }
    Arc::try_unwrap(statuses).unwrap().into_inner().unwrap()
}

/// Pushes `n` handles over 16 connections; the ones that got `201`.
async fn push_many(servers: &Arc<[TestServer; 2]>, n: usize) -> Vec<String> {
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let servers = Arc::clone(servers);
            tokio::spawn(async move {
                let mut issued = Vec::new();
                for i in (w..n).step_by(16) {
                    let reply = servers[i % 2].push_web("").await;
                    assert!(matches!(reply.status, 201 | 503), "{:?}", reply.body);
                    if reply.status == 201 {
                        issued.push(reply.request_uri());
                    }
                }
                issued
            })
        })
        .collect();
    let mut issued = Vec::new();
    for worker in workers {
        issued.extend(worker.await.expect("pusher"));
    }
    issued
}

/// The failover run of the issue: 4,400 handles pushed before, a steady push and redeem load
/// through a `kill -9` of one master (its replica cut off for the second before), the killed
/// node restarted 6 s later (it must rejoin as a replica, nothing else changing), then every
/// handle that got `201` redeemed.
async fn failover_under_load(wait_replicas: u32) -> String {
    let mut cluster = RedisCluster::start();
    let replicas = wait_replicas.to_string();
    let args = [
        "--inner",
        "redirect",
        "--redis-wait-replicas",
        replicas.as_str(),
    ];
    let (_a, a) = node(&cluster, &args);
    let (_b, b) = node(&cluster, &args);
    let servers = Arc::new([a, b]);

    let mut issued = push_many(&servers, 2_400).await;
    let to_redeem = push_many(&servers, 2_000).await;
    let placed = cluster.shard_masters(PREFIX);
    assert_eq!(placed.len(), 16, "every shard holds handles: {placed:?}");
    let masters_before = cluster.masters();
    let victim = masters_before[0];
    let on_victim: Arc<dyn Fn(&StoreKey) -> bool + Send + Sync> =
        Arc::new(move |key: &StoreKey| placed[&shard_of(key)] == victim);
    let before = issued.len();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(Mutex::new(None));
    let queue = Arc::new(Mutex::new(to_redeem.clone()));
    let mut load = Vec::new();
    for worker in 0..6 {
        load.push(tokio::spawn(push_load(
            Arc::clone(&servers),
            Arc::clone(&seen),
            Arc::clone(&stop),
            Arc::clone(&on_victim),
            Arc::clone(&killed),
            worker,
        )));
    }
    for _ in 0..2 {
        load.push(tokio::spawn(redeem_load(
            Arc::clone(&servers),
            Arc::clone(&seen),
            Arc::clone(&stop),
            Arc::clone(&queue),
            Arc::clone(&on_victim),
            Arc::clone(&killed),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // For the second before the master dies, its replica is cut off (frozen, its link closed
    // by the master), as a replica behind a network fault is: what the master acknowledges
    // meanwhile is on no replica when it dies.
    let replica = cluster.replica_of(victim);
    cluster.pause(replica);
    cluster.cli(victim, &["CLIENT", "KILL", "TYPE", "replica"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.kill(victim);
    cluster.resume(replica);
    let kill = Instant::now();
    *killed.lock().unwrap() = Some(kill);
    // The cluster promotes the replica (about 2-3 s here); 6 s after the kill the killed node
    // comes back, as an operator or orchestrator would bring it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    cluster.restart(victim);
    let restart = kill.elapsed();
    while kill.elapsed() < Duration::from_secs(30) {
        let resumed = seen.lock().unwrap().resumed;
        if resumed.is_some_and(|at| kill.elapsed() > at + Duration::from_secs(2))
            && kill.elapsed() > restart + Duration::from_secs(2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in load {
        worker.await.expect("load worker");
    }
    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();

    // The killed node rejoined as a replica; the other masters are as they were.
    cluster.wait_healthy(3);
    let masters_after = cluster.masters();
    assert_eq!(
        cluster.info_field(victim, "replication", "role").as_deref(),
        Some("slave")
    );
    assert!(!masters_after.contains(&victim));
    for master in &masters_before[1..] {
        assert!(masters_after.contains(master), "{masters_after:?}");
    }

    let unexpected: Vec<_> = seen
        .counts
        .keys()
        .filter(|k| k.starts_with("unexpected"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");

    // Every handle that got 201 redeems, once.
    issued.extend(seen.issued.iter().cloned());
    let first = redeem_all(&servers, &issued).await;
    let lost = first.iter().filter(|&&s| s == 400).count();
    let again = redeem_all(&servers, &issued).await;
    assert!(again.iter().all(|&s| s == 400), "a handle redeemed twice");
    // The handles redeemed through the failover: a 303 then is never followed by another.
    let tried: Vec<String> = to_redeem
        .iter()
        .filter(|uri| seen.redeemed.contains_key(*uri))
        .cloned()
        .collect();
    let after = redeem_all(&servers, &tried).await;
    let (mut second_codes, mut burnt, mut recovered) = (0, 0, 0);
    for (uri, status) in tried.iter().zip(&after) {
        match (seen.redeemed[uri], status) {
            (303, 303) => second_codes += 1,
            (503, 400) => burnt += 1,
            (503, 303) => recovered += 1,
            _ => {}
        }
    }
    let untried: Vec<String> = to_redeem
        .iter()
        .filter(|uri| !seen.redeemed.contains_key(*uri))
        .cloned()
        .collect();
    let untried_lost = redeem_all(&servers, &untried)
        .await
        .iter()
        .filter(|&&s| s == 400)
        .count();

    let report = format!(
        "--redis-wait-replicas {wait_replicas}: {before} handles pushed before the kill, {} during the \
         load; answers during the load {:?}; the killed master's shards answered again {:?} after \
         the kill (restarted at {restart:?}), last 503 at {:?}; handles that got 201 and did not \
         redeem: {lost} of {}; of the {} redeemed during the failover: {second_codes} redeemed a \
         second time, {burnt} refused with 503 and then burnt, {recovered} refused with 503 and \
         redeemed later; of the {} never redeemed before: {untried_lost} lost",
        seen.issued.len(),
        seen.counts,
        seen.resumed,
        seen.last_refusal,
        issued.len(),
        tried.len(),
        untried.len(),
    );
    eprintln!("{report}");
    if wait_replicas > 0 {
        assert_eq!(lost + untried_lost, 0, "{report}");
        assert_eq!(second_codes, 0, "{report}");
    }
    report
}

/// Runs one failover at a time: each starts six Redis servers and two `par_server`s.
static ONE_FAILOVER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `--redis-wait-replicas 1`: not one handle that got `201` is lost, not one is redeemed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_under_load_loses_nothing_when_waiting_for_a_replica() {
    let _one = ONE_FAILOVER_AT_A_TIME.lock().await;
    failover_under_load(1).await;
}

/// Without waiting: the same run reports how many handles were lost or redeemed twice (a
/// figure, not a failure; not in the default run, which it would lengthen by 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure, not a check; run by scripts/failover-test"]
async fn failover_under_load_without_waiting_reports_losses() {
    let _one = ONE_FAILOVER_AT_A_TIME.lock().await;
    failover_under_load(0).await;
}
