//! Payloads sealed at rest (issue 12, item 2), over real TCP: what a store holds reveals nothing
//! of a pushed request, and a stored record that was altered, cut, moved to another key, given
//! another deadline or written by another version is `400 invalid_request_uri` (never a redirect,
//! never a 5xx), logged as a store integrity error.
//!
//! On a real `redis-server` (`mod redis`, never skipped; see `common/redis_server.rs`) the test
//! reads Redis itself; on the memory store a wrapper store alters what it hands back.

mod common;
#[path = "common/recorder.rs"]
mod recorder;
#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime},
};

use base64::{
    engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
    Engine,
};
use common::*;
use metrics_exporter_prometheus::PrometheusHandle;
use recorder::{assert_scraped, record_on_this_thread};
use tower_par::{
    store::{
        Charge, MemoryStore, ParStore, Record, StoreError, StoreFuture, StoreKey, StoreLimits,
    },
    Consumption, ManualClock, ParLayer,
};

const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The store key of a `request_uri` the layer issued to `client_id`, as the layer derives it.
fn store_key(client_id: &str, request_uri: &str) -> StoreKey {
    let encoded = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .expect("a request_uri of this layer");
    let handle = URL_SAFE_NO_PAD.decode(encoded).expect("base64url handle");
    StoreKey::derive(ISSUER, client_id, &handle)
}

/// Runs `refused` (a read of `request_uri` that must fail) and checks that it was logged as one
/// event (the refusal's own, `tests/logging.rs`): a store integrity error at `ERROR`, with neither
/// the handle nor a pushed value in the whole capture (SEC-06). Returns the event.
async fn assert_logged_as_integrity_error(
    logs: &Logs,
    why: &str,
    request_uri: &str,
    refused: impl std::future::Future<Output = ()>,
) -> String {
    logs.take();
    refused.await;
    let text = logs.take();
    let events = events(&text);
    assert_eq!(
        events.len(),
        1,
        "{why}: exactly one event expected:\n{text}"
    );
    let event = events[0];
    assert!(
        event.contains(" ERROR ") && event.contains("cause=store integrity error: "),
        "{why}: a store integrity error expected: {event}"
    );
    let handle = request_uri.rsplit(':').next().unwrap();
    for secret in [handle, "alice", "bob"] {
        assert!(
            !text.contains(secret),
            "{why}: {secret:?} was logged:\n{text}"
        );
    }
    event.to_owned()
}

/// How a test store alters a record before handing it back (memory store wrapper).
#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// Flip one bit of the sealed payload at this offset (`usize::MAX`: the last byte).
    Flip(usize),
    /// Keep only this many bytes of the sealed payload.
    Truncate(usize),
    /// Push the clear deadline an hour later.
    ExtendDeadline,
    /// Hand back the record stored under another key.
    Swap,
    /// An unsealed compact payload, as the releases before sealing wrote it.
    Unsealed,
    /// The record as it was put, whatever the store holds now (a copy restored from a backup).
    Restored,
}

fn tampered(record: Record, tamper: Tamper, others: &[(StoreKey, Record)]) -> Record {
    let mut payload = record.payload().to_vec();
    match tamper {
        Tamper::Restored => unreachable!("handled by the store"),
        Tamper::Flip(at) => {
            let at = at.min(payload.len() - 1);
            payload[at] ^= 0x20;
        }
        Tamper::Truncate(keep) => payload.truncate(keep),
        Tamper::ExtendDeadline => {
            return Record::new(record.expires_at() + Duration::from_secs(3600), payload)
        }
        Tamper::Swap => {
            let (_, other) = others
                .iter()
                .rev()
                .find(|(_, other)| other.payload() != record.payload())
                .expect("another record to swap in");
            return other.clone();
        }
        // payload::encode(&[("scope", "openid")]): version 1, then length-prefixed fields.
        Tamper::Unsealed => payload = b"\x01\x05scope\x06openid".to_vec(),
    }
    Record::new(record.expires_at(), payload)
}

/// A memory store that can alter what it hands back, refuse its first puts as full (a partitioned
/// store's full shard), and notes every record it is given.
#[derive(Clone)]
struct TestStore {
    inner: MemoryStore,
    tamper: Arc<Mutex<Option<Tamper>>>,
    refuse_puts: Arc<AtomicU32>,
    puts: Arc<Mutex<Vec<(StoreKey, Record)>>>,
}

impl TestStore {
    fn new() -> Self {
        Self {
            inner: MemoryStore::with_capacity(1_000),
            tamper: Arc::default(),
            refuse_puts: Arc::default(),
            puts: Arc::default(),
        }
    }

    fn set(&self, tamper: Option<Tamper>) {
        *self.tamper.lock().unwrap() = tamper;
    }

    fn alter(&self, key: StoreKey, record: Option<Record>) -> Option<Record> {
        let tamper = *self.tamper.lock().unwrap();
        match (record, tamper) {
            (_, Some(Tamper::Restored)) => self
                .puts
                .lock()
                .unwrap()
                .iter()
                .find(|(put, _)| *put == key)
                .map(|(_, record)| record.clone()),
            (Some(record), Some(tamper)) => {
                Some(tampered(record, tamper, &self.puts.lock().unwrap()))
            }
            (record, _) => record,
        }
    }
}

impl ParStore for TestStore {
    fn limits(&self) -> StoreLimits {
        // Partitioned, so that a push retries a put refused as full under a fresh handle.
        self.inner.limits().with_partitions(3)
    }
    fn put(
        &self,
        key: StoreKey,
        record: Record,
        charge: Charge,
        now: SystemTime,
    ) -> StoreFuture<'_, ()> {
        self.puts.lock().unwrap().push((key, record.clone()));
        let refuse = self
            .refuse_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            return Box::pin(async { Err(StoreError::Full) });
        }
        self.inner.put(key, record, charge, now)
    }
    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        Box::pin(async move { Ok(self.alter(key, self.inner.take(key, now).await?)) })
    }
    fn open(
        &self,
        key: StoreKey,
        now: SystemTime,
        window: Duration,
    ) -> StoreFuture<'_, Option<Record>> {
        Box::pin(async move { Ok(self.alter(key, self.inner.open(key, now, window).await?)) })
    }
    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        self.inner.complete(key, now)
    }
    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        self.inner.remember(key, until, now)
    }
}

/// Every way a record is altered on its way back from the store.
const TAMPERS: [(&str, Tamper); 8] = [
    ("the format byte", Tamper::Flip(0)),
    ("the first sealed byte", Tamper::Flip(1)),
    ("a byte in the middle", Tamper::Flip(40)),
    ("the tag's last byte", Tamper::Flip(usize::MAX)),
    ("a record cut short", Tamper::Truncate(30)),
    ("a deadline pushed back", Tamper::ExtendDeadline),
    ("another key's record", Tamper::Swap),
    ("an unsealed record of an older release", Tamper::Unsealed),
];

/// The test store behind a layer on the test clock, answering with the echo endpoint.
async fn memory_server(store: &TestStore, consumption: Consumption) -> (TestServer, ParLayer) {
    memory_server_on(&ManualClock::new(), store, consumption).await
}

async fn memory_server_on(
    clock: &ManualClock,
    store: &TestStore,
    consumption: Consumption,
) -> (TestServer, ParLayer) {
    let layer = builder(clock)
        .store(store.clone())
        .consumption(consumption)
        .build()
        .unwrap();
    (serve(layer.clone(), InnerMode::Echo).await, layer)
}

/// Asserts the metrics after one round per entry of [`TAMPERS`]: two pushes, and `per_round`.
async fn assert_counted_per_tamper(
    layer: &ParLayer,
    metrics: &PrometheusHandle,
    per_round: &[(&str, f64)],
) {
    let rounds = TAMPERS.len() as f64;
    let pushes = [
        ("tower_par_pushes_total{outcome=\"created\"}", 2.0),
        ("tower_par_push_duration_seconds_count", 2.0),
    ];
    let want: Vec<(&str, f64)> = pushes
        .iter()
        .chain(per_round)
        .map(|(name, count)| (*name, count * rounds))
        .collect();
    assert_scraped(layer, metrics, &want).await;
}

/// SEC: what the store hands back must open under the handle, for this key and deadline. Each
/// refusal is counted as a redemption refused with `invalid_request_uri`.
#[tokio::test]
async fn an_altered_record_from_the_memory_store_is_invalid_request_uri() {
    let (metrics, _recording) = record_on_this_thread();
    let logs = Logs::capture();
    let store = TestStore::new();
    let (server, layer) = memory_server(&store, Consumption::Strict).await;
    let mut logged = Vec::new();
    for (what, tamper) in TAMPERS {
        store.set(None);
        let other = server.push_web("login_hint=bob").await.request_uri();
        let uri = server.push_web("login_hint=alice").await.request_uri();
        store.set(Some(tamper));
        let event = assert_logged_as_integrity_error(&logs, what, &uri, async {
            let reply = server.redeem("web-app", &uri).await;
            // assert_error also checks that nothing redirected; the echo endpoint would say 200.
            reply.assert_error(400, "invalid_request_uri");
        })
        .await;
        assert!(
            event.contains("request_uri refused")
                && event.contains("outcome=\"invalid_request_uri\""),
            "{what}: {event}"
        );
        logged.push(event);
        store.set(None);
        // The untouched record of the same client still redeems.
        assert_eq!(server.redeem("web-app", &other).await.status, 200, "{what}");
    }
    assert!(
        logged.iter().any(|event| event.contains("before sealing")),
        "{logged:#?}"
    );
    assert_counted_per_tamper(
        &layer,
        &metrics,
        &[
            ("tower_par_redemptions_total{outcome=\"swapped\"}", 1.0),
            (
                "tower_par_redemptions_total{outcome=\"invalid_request_uri\"}",
                1.0,
            ),
        ],
    )
    .await;
}

/// Consumption at completion reads through the same open: the authorization endpoint and
/// `ParLayer::pushed_request` (a consent page) both refuse an altered record, and the genuine
/// record still completes once (`completed`, then `lost_race`).
#[tokio::test]
async fn an_altered_record_is_refused_at_completion_and_by_pushed_request() {
    let (metrics, _recording) = record_on_this_thread();
    let logs = Logs::capture();
    let store = TestStore::new();
    let (server, par) = memory_server(&store, Consumption::at_completion()).await;
    for (what, tamper) in TAMPERS {
        store.set(None);
        let _other = server.push_web("login_hint=bob").await.request_uri();
        let uri = server.push_web("login_hint=alice").await.request_uri();
        assert!(par.pushed_request("web-app", &uri).await.unwrap().is_some());
        store.set(Some(tamper));
        assert_logged_as_integrity_error(&logs, what, &uri, async {
            server
                .redeem("web-app", &uri)
                .await
                .assert_error(400, "invalid_request_uri");
        })
        .await;
        let event = assert_logged_as_integrity_error(&logs, what, &uri, async {
            assert_eq!(
                par.pushed_request("web-app", &uri).await.unwrap(),
                None,
                "{what}"
            );
        })
        .await;
        assert!(
            event.contains("pushed request not read") && event.contains("client_id=\"web-app\""),
            "{what}: {event}"
        );
        store.set(None);
        let pushed = par.pushed_request("web-app", &uri).await.unwrap();
        assert_eq!(pushed.unwrap().get("login_hint"), Some("alice"), "{what}");
        assert!(par.complete("web-app", &uri).await.unwrap(), "{what}");
        assert!(!par.complete("web-app", &uri).await.unwrap(), "{what}");
    }
    assert_counted_per_tamper(
        &par,
        &metrics,
        &[
            (
                "tower_par_redemptions_total{outcome=\"invalid_request_uri\"}",
                1.0,
            ),
            ("tower_par_completions_total{outcome=\"completed\"}", 1.0),
            ("tower_par_completions_total{outcome=\"lost_race\"}", 1.0),
        ],
    )
    .await;
}

/// The deadline is authenticated, so the layer re-checks it after opening: a store that hands
/// back a genuine record past its life (a copy restored from a backup, a store that ignores
/// deadlines) is refused, at the authorization endpoint and at completion.
#[tokio::test]
async fn a_genuine_record_past_its_deadline_is_refused() {
    let logs = Logs::capture();
    for consumption in [Consumption::Strict, Consumption::at_completion()] {
        let clock = ManualClock::new();
        let store = TestStore::new();
        let (server, par) = memory_server_on(&clock, &store, consumption).await;
        let uri = server.push_web("login_hint=alice").await.request_uri();
        let later = server.push_web("login_hint=alice").await.request_uri();
        store.set(Some(Tamper::Restored));
        // Within its life the restored copy is the pushed request (one-time use is the store's).
        assert_eq!(server.redeem("web-app", &uri).await.status, 200);
        let past = match consumption {
            Consumption::AtCompletion { window } => window + Duration::from_secs(60),
            _ => Duration::from_secs(60),
        };
        clock.advance(past);
        let event = assert_logged_as_integrity_error(&logs, "past its deadline", &later, async {
            server
                .redeem("web-app", &later)
                .await
                .assert_error(400, "invalid_request_uri");
        })
        .await;
        assert!(event.contains("past its deadline"), "{event}");
        if matches!(consumption, Consumption::AtCompletion { .. }) {
            assert_logged_as_integrity_error(&logs, "past its deadline", &later, async {
                assert_eq!(par.pushed_request("web-app", &later).await.unwrap(), None);
            })
            .await;
        }
    }
}

/// A key seals one record, ever: a push retried under a fresh handle (a partition refused it as
/// full) seals again under the new handle's key, so no two attempts share a keystream, and the
/// record that was stored opens.
#[tokio::test]
async fn a_retried_push_seals_each_attempt_under_its_own_key() {
    let store = TestStore::new();
    let (server, _) = memory_server(&store, Consumption::Strict).await;
    store.refuse_puts.store(2, Ordering::SeqCst);
    let uri = server.push_web("login_hint=alice").await.request_uri();
    let puts = store.puts.lock().unwrap().clone();
    assert_eq!(puts.len(), 3, "two refused puts, then the stored one");
    let bodies: Vec<&[u8]> = puts
        .iter()
        .map(|(_, record)| {
            let sealed = record.payload();
            &sealed[1..sealed.len() - 16]
        })
        .collect();
    for (i, a) in bodies.iter().enumerate() {
        for b in &bodies[i + 1..] {
            assert_ne!(a, b, "two attempts sealed with one keystream");
        }
    }
    assert_eq!(
        puts[2].0,
        store_key("web-app", &uri),
        "the last attempt's key"
    );
    let echo = server.redeem("web-app", &uri).await.json();
    assert!(pushed_params(&echo).contains(&("login_hint".into(), "alice".into())));
}

/// Distinctive values pushed by the Redis test, each looked for in what Redis holds.
fn distinctive_values() -> Vec<(&'static str, String)> {
    let details: Vec<String> = (0..24)
        .map(|i| {
            format!(
                r#"{{"type":"payment_initiation","locations":["https://bank.example/pay-{i}"],"instructedAmount":{{"currency":"EUR","amount":"{i}23.50"}},"creditorName":"Sealed Merchant Number {i}","creditorAccount":{{"iban":"DE02100100109307118{i:03}"}},"remittanceInformationUnstructured":"Ref Number Merchant {i}"}}"#
            )
        })
        .collect();
    vec![
        ("state", "state-Quokka-7c1e4b-sealed".to_owned()),
        ("login_hint", "alice.sealed+hint@example.org".to_owned()),
        ("nonce", "nonce-Wombat-0S6_WzA2Mj".to_owned()),
        (
            "claims",
            r#"{"id_token":{"acr":{"essential":true,"values":["urn:sealed:acr:gold"]},"email":null}}"#
                .to_owned(),
        ),
        ("authorization_details", format!("[{}]", details.join(","))),
        ("code_challenge", CHALLENGE.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
    ]
}

/// The pieces of a value whose presence would reveal it: the value and its distinctive parts
/// (for the long JSON), at least 8 bytes each.
fn needles(values: &[(&str, String)]) -> Vec<String> {
    let mut needles = Vec::new();
    for (_, value) in values {
        if value.len() >= 8 {
            needles.push(value.clone());
        }
    }
    needles.extend(
        [
            "Sealed Merchant Number 7",
            "DE02100100109307118007",
            "https://bank.example/pay-3",
            "urn:sealed:acr:gold",
            "Quokka",
            "alice.sealed",
        ]
        .map(str::to_owned),
    );
    needles
}

/// Every way a needle could show up in stored bytes: raw, percent-encoded (`%XX` in both cases
/// of hex, and the form encoding with `+`), hex, and base64 (standard and URL-safe) at each of
/// the three alignments a value can have inside a longer encoded string: the characters that
/// depend on the needle's bytes alone.
fn encodings(needle: &str) -> Vec<Vec<u8>> {
    let bytes = needle.as_bytes();
    let upper = enc(needle);
    let lower: String = {
        let mut out = String::new();
        let mut rest = upper.as_str();
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            out.push_str(&rest[at..at + 3].to_ascii_lowercase());
            rest = &rest[at + 3..];
        }
        out.push_str(rest);
        out
    };
    let form: String = form_urlencoded::byte_serialize(bytes).collect();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut all = vec![
        bytes.to_vec(),
        upper.into(),
        lower.into(),
        form.into(),
        hex.into(),
    ];
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            let start = (8 * offset).div_ceil(6);
            let end = 8 * shifted.len() / 6;
            all.push(encoded.as_bytes()[start..end].to_vec());
        }
    }
    all
}

/// The needles found in `haystack`, with the encoding that found them.
fn revealed(haystack: &[u8], needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for needle in needles {
        for (i, encoded) in encodings(needle).iter().enumerate() {
            if haystack
                .windows(encoded.len())
                .any(|w| w == encoded.as_slice())
            {
                found.push(format!("{needle:?} (encoding #{i})"));
            }
        }
    }
    found
}

#[test]
fn the_search_finds_every_encoding_of_a_needle() {
    // A search that cannot find anything would pass any dump.
    let needles = vec!["alice.sealed+hint@example.org".to_owned()];
    let needle = needles[0].as_bytes();
    let mut haystacks: Vec<Vec<u8>> = vec![
        [&b"xx"[..], needle, &b"yy"[..]].concat(),
        format!("state={}&x=1", enc(&needles[0])).into_bytes(),
        format!(
            "a={}",
            form_urlencoded::byte_serialize(needle).collect::<String>()
        )
        .into_bytes(),
    ];
    for prefix in 0..3 {
        let embedded = [&b"abc"[..prefix], needle, &b"tail"[..]].concat();
        haystacks.push(STANDARD_NO_PAD.encode(&embedded).into_bytes());
        haystacks.push(URL_SAFE_NO_PAD.encode(&embedded).into_bytes());
    }
    for haystack in haystacks {
        assert!(
            !revealed(&haystack, &needles).is_empty(),
            "{}",
            String::from_utf8_lossy(&haystack)
        );
    }
    assert!(revealed(b"nothing to see here", &needles).is_empty());
}

#[cfg(feature = "redis")]
mod on_redis {
    use std::{
        io::{Read, Write},
        net::TcpStream,
        time::Duration,
    };

    use ::redis::aio::MultiplexedConnection;
    use tower_par::{
        store::{RedisStore, RedisStoreConfig},
        Consumption, ManualClock,
    };

    use super::{
        common::*,
        redis_server::{self, RedisServer},
        *,
    };

    struct Node {
        redis: RedisServer,
        prefix: String,
        server: TestServer,
        raw: MultiplexedConnection,
    }

    async fn node(consumption: Consumption, mode: InnerMode) -> Node {
        let redis = RedisServer::start();
        let prefix = redis_server::fresh_prefix("sealed");
        let config = RedisStoreConfig::new(redis.url())
            .prefix(prefix.as_str())
            .op_timeout(Duration::from_secs(2));
        let store = RedisStore::connect(config).await.expect("connect");
        let layer = builder(&ManualClock::new())
            .store(store)
            .consumption(consumption)
            .build()
            .unwrap();
        let server = serve(layer, mode).await;
        let raw = ::redis::Client::open(redis.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        Node {
            redis,
            prefix,
            server,
            raw,
        }
    }

    impl Node {
        /// The Redis key of the record behind a `request_uri`.
        async fn record_key(&self, client_id: &str, request_uri: &str) -> String {
            let hex = store_key(client_id, request_uri).to_hex();
            let mut raw = self.raw.clone();
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(format!("{{{}:*}}:{hex}", self.prefix))
                .query_async(&mut raw)
                .await
                .expect("KEYS");
            assert_eq!(keys.len(), 1, "{keys:?}");
            keys[0].clone()
        }

        async fn get(&self, key: &str) -> Vec<u8> {
            let mut raw = self.raw.clone();
            ::redis::cmd("GET")
                .arg(key)
                .query_async(&mut raw)
                .await
                .expect("GET")
        }

        /// Overwrites a value, keeping its TTL (as an attacker with write access would).
        async fn set(&self, key: &str, value: &[u8]) {
            let mut raw = self.raw.clone();
            ::redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("KEEPTTL")
                .query_async::<()>(&mut raw)
                .await
                .expect("SET");
        }

        /// Every key Redis holds and every value, read by type, and each key's `DUMP`.
        async fn dump(&self) -> (usize, Vec<u8>) {
            let mut raw = self.raw.clone();
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut raw)
                    .await
                    .expect("SCAN");
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            let mut haystack = Vec::new();
            for key in &keys {
                haystack.extend_from_slice(key);
                haystack.push(b'\n');
                let kind: String = ::redis::cmd("TYPE")
                    .arg(key)
                    .query_async(&mut raw)
                    .await
                    .expect("TYPE");
                let values: Vec<Vec<u8>> = match kind.as_str() {
                    "string" => vec![::redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut raw)
                        .await
                        .expect("GET")],
                    "hash" => ::redis::cmd("HGETALL")
                        .arg(key)
                        .query_async(&mut raw)
                        .await
                        .expect("HGETALL"),
                    "zset" => ::redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query_async(&mut raw)
                        .await
                        .expect("ZRANGE"),
                    other => panic!("the store wrote a {other} at {key:?}"),
                };
                let dumped: Vec<u8> = ::redis::cmd("DUMP")
                    .arg(key)
                    .query_async(&mut raw)
                    .await
                    .expect("DUMP");
                for value in values.into_iter().chain([dumped]) {
                    haystack.extend_from_slice(&value);
                    haystack.push(b'\n');
                }
            }
            (keys.len(), haystack)
        }
    }

    /// A `MONITOR` session on its own connection: every command Redis executes, as text.
    struct Monitor {
        stream: TcpStream,
    }

    impl Monitor {
        fn start(port: u16) -> Self {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            stream.write_all(b"MONITOR\r\n").expect("MONITOR");
            let mut ok = [0u8; 5];
            stream.read_exact(&mut ok).expect("+OK");
            assert_eq!(&ok, b"+OK\r\n");
            Self { stream }
        }

        /// What it saw until it stayed quiet for a moment.
        fn read(mut self) -> Vec<u8> {
            self.stream
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 65536];
            while let Ok(n) = self.stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            seen
        }
    }

    /// SEC: a dump of Redis (and a `MONITOR` session) reveals no pushed value, in any encoding;
    /// the records still redeem.
    #[tokio::test]
    async fn a_redis_dump_reveals_nothing_that_was_pushed() {
        let node = node(Consumption::at_completion(), InnerMode::Login).await;
        let monitor = Monitor::start(node.redis.port());
        let values = distinctive_values();
        let form: String = values
            .iter()
            .map(|(name, value)| format!("{name}={}", enc(value)))
            .collect::<Vec<_>>()
            .join("&");
        let first = node
            .server
            .push(
                Some("web-app:web-app-secret"),
                &format!("response_type=code&redirect_uri={}&{form}", enc(WEB_CB)),
            )
            .await
            .request_uri();
        let second = node.server.push_post(&form).await.request_uri();
        let spa = node
            .server
            .push(None, &format!("client_id=spa&response_type=code&{form}"))
            .await
            .request_uri();
        // One opened record (its window marker is stored too), two untouched.
        let login = node.server.redeem("web-app", &first).await;
        assert_eq!(login.status, 303, "{:?}", login.body);

        let (keys, haystack) = node.dump().await;
        let needles = needles(&values);
        // Three records, one window marker, a shard's books (live, charges, usage).
        assert!(keys >= 7, "{keys} keys");
        assert!(
            haystack.len() > 3 * 4096,
            "the dump holds the sealed payloads"
        );
        assert_eq!(revealed(&haystack, &needles), Vec::<String>::new());
        let monitored = monitor.read();
        assert!(
            monitored
                .to_ascii_lowercase()
                .windows(7)
                .any(|w| w == b"evalsha"),
            "MONITOR saw the store's scripts: {}",
            String::from_utf8_lossy(&monitored)
        );
        assert_eq!(revealed(&monitored, &needles), Vec::<String>::new());

        // What was sealed comes back whole to the holder of each request_uri.
        let done = node.server.redeem_signed_in("web-app", &first).await;
        let location = done.header("location").expect("a code redirect");
        assert!(
            location.contains("state=state-Quokka-7c1e4b-sealed"),
            "{location}"
        );
        for (client_id, uri) in [("post-app", &second), ("spa", &spa)] {
            let done = node.server.redeem_signed_in(client_id, uri).await;
            assert_eq!(done.status, 303, "{client_id}: {:?}", done.body);
        }
    }

    /// A change an attacker with write access makes to a stored value.
    type Alteration = fn(&mut Vec<u8>);

    /// SEC: a record altered in Redis, cut short, or given a later deadline is
    /// `400 invalid_request_uri`, logged as a store integrity error.
    #[tokio::test]
    async fn a_record_altered_in_redis_is_invalid_request_uri() {
        let logs = Logs::capture();
        let node = node(Consumption::Strict, InnerMode::Echo).await;
        // A stored value is 8 bytes of deadline (clear), then the sealed payload.
        let cases: [(&str, Alteration); 6] = [
            ("a flipped payload byte", |v| v[20] ^= 1),
            ("a flipped tag byte", |v| *v.last_mut().unwrap() ^= 0x80),
            ("a flipped format byte", |v| v[8] ^= 1),
            ("a deadline an hour later", |v| {
                let deadline = u64::from_be_bytes(v[..8].try_into().unwrap());
                v[..8].copy_from_slice(&(deadline + 3_600_000).to_be_bytes());
            }),
            ("the last byte cut", |v| {
                v.pop();
            }),
            ("cut in the middle", |v| v.truncate(v.len() / 2)),
        ];
        for (what, alter) in cases {
            let uri = node.server.push_web("login_hint=alice").await.request_uri();
            let key = node.record_key("web-app", &uri).await;
            let mut value = node.get(&key).await;
            alter(&mut value);
            node.set(&key, &value).await;
            assert_logged_as_integrity_error(&logs, what, &uri, async {
                let reply = node.server.redeem("web-app", &uri).await;
                reply.assert_error(400, "invalid_request_uri");
            })
            .await;
        }
        // Untouched, the same push redeems.
        let uri = node.server.push_web("login_hint=alice").await.request_uri();
        assert_eq!(node.server.redeem("web-app", &uri).await.status, 200);
    }

    /// SEC: records swapped between two keys (the same client's) both fail to open.
    #[tokio::test]
    async fn records_swapped_between_keys_in_redis_are_both_refused() {
        let logs = Logs::capture();
        let node = node(Consumption::Strict, InnerMode::Echo).await;
        let a = node.server.push_web("login_hint=a").await.request_uri();
        let b = node.server.push_web("login_hint=b").await.request_uri();
        let (key_a, key_b) = (
            node.record_key("web-app", &a).await,
            node.record_key("web-app", &b).await,
        );
        let (value_a, value_b) = (node.get(&key_a).await, node.get(&key_b).await);
        node.set(&key_a, &value_b).await;
        node.set(&key_b, &value_a).await;
        for uri in [&a, &b] {
            assert_logged_as_integrity_error(&logs, "a swapped record", uri, async {
                node.server
                    .redeem("web-app", uri)
                    .await
                    .assert_error(400, "invalid_request_uri");
            })
            .await;
        }
    }
}
