//! The conformance suite every [`ParStore`] backend runs (feature `test-suite`).
//!
//! A backend's integration test calls [`run`](crate::store::test_suite::run) with a constructor,
//! or the `check_*` functions one by one so that a failure names the rule:
//!
//! ```no_run
//! use tower_par::store::{test_suite, MemoryStore};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn conforms() {
//!     // For a networked backend: connect here and empty its key space.
//!     test_suite::run(|limits| async move { MemoryStore::with_limits(limits) }).await;
//! }
//! ```
//!
//! All time is explicit (`now` arguments around one base instant near the real clock, so backends
//! with server-side expiry such as Redis `PXAT` work too); nothing sleeps. Keys carry a random
//! per-check nonce, so a backend that cannot be emptied between runs still passes; the budget
//! checks ask for fresh stores with their own limits. The race checks spawn tokio tasks: run them
//! on a multi-thread runtime to get real parallelism;
//! [`check_races_on_threads`](crate::store::test_suite::check_races_on_threads) races OS threads,
//! whatever the runtime. Every check panics with a message naming the broken rule.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use tokio::{sync::Barrier, task::JoinSet};

use super::{
    unix_millis, Charge, ParStore, Record, Share, StoreError, StoreKey, StoreLimits,
    RECORD_OVERHEAD_BYTES,
};

/// The limits [`run`] asks for in every check that is not about the store-wide limits: room
/// for everything the checks store.
pub const STORE_LIMITS: StoreLimits = StoreLimits::new(1_024, 4 * 1024 * 1024);

/// The limits [`check_capacity_refusal`] and [`check_full_is_not_a_share`] expect: 3 entries,
/// bytes to spare.
pub const SMALL_STORE_LIMITS: StoreLimits = StoreLimits::new(3, 4 * 1024 * 1024);

/// The payload size of the heavy records of [`check_byte_budget`].
const HEAVY_PAYLOAD: usize = 1_000;
const HEAVY_WEIGHT: u64 = HEAVY_PAYLOAD as u64 + RECORD_OVERHEAD_BYTES;

/// The limits [`check_byte_budget`] expects: entries to spare, bytes for three heavy records
/// and one empty one.
pub const BYTE_BUDGET_LIMITS: StoreLimits =
    StoreLimits::new(1_024, 3 * HEAVY_WEIGHT + RECORD_OVERHEAD_BYTES + 100);

/// Runs every check. `make(limits)` must return a fresh, empty store within `limits` (at most
/// `limits.max_entries()` entries weighing at most `limits.max_bytes()`).
pub async fn run<S, F, Fut>(mut make: F)
where
    S: ParStore,
    F: FnMut(StoreLimits) -> Fut,
    Fut: Future<Output = S>,
{
    check_reports_its_limits(make(SMALL_STORE_LIMITS).await, SMALL_STORE_LIMITS).await;
    check_put_then_take(make(STORE_LIMITS).await).await;
    check_take_unknown_key(make(STORE_LIMITS).await).await;
    check_put_existing_key(make(STORE_LIMITS).await).await;
    check_expiry_at_exact_deadline(make(STORE_LIMITS).await).await;
    check_capacity_refusal(make(SMALL_STORE_LIMITS).await).await;
    check_byte_budget(make(BYTE_BUDGET_LIMITS).await).await;
    check_client_share(make(STORE_LIMITS).await).await;
    check_group_share(make(STORE_LIMITS).await).await;
    check_full_is_not_a_share(make(SMALL_STORE_LIMITS).await).await;
    check_shares_are_given_back(make(STORE_LIMITS).await).await;
    check_parallel_puts_within_a_share(Arc::new(make(STORE_LIMITS).await)).await;
    check_parallel_takes(Arc::new(make(STORE_LIMITS).await)).await;
    check_open_then_complete(make(STORE_LIMITS).await).await;
    check_open_after_expiry(make(STORE_LIMITS).await).await;
    check_reopen_after_window(make(STORE_LIMITS).await).await;
    check_complete_without_open(make(STORE_LIMITS).await).await;
    check_parallel_completes(Arc::new(make(STORE_LIMITS).await)).await;
    check_remember(make(STORE_LIMITS).await).await;
    check_parallel_remember(Arc::new(make(STORE_LIMITS).await)).await;
    check_races_on_threads(Arc::new(make(STORE_LIMITS).await)).await;
    check_keys_are_independent(make(STORE_LIMITS).await).await;
    check_payload_round_trip(make(STORE_LIMITS).await).await;
    check_stored_requests(make(STORE_LIMITS).await).await;
}

/// Lifetime of the records the checks push.
const LIFETIME: Duration = Duration::from_secs(60);
/// Retention window of the consumption-at-completion checks.
const WINDOW: Duration = Duration::from_secs(30);
const MS: Duration = Duration::from_millis(1);

/// Fresh keys and the base instant for one check.
struct Fixture {
    t0: SystemTime,
    nonce: [u8; 16],
}

impl Fixture {
    fn new() -> Self {
        let mut nonce = [0; 16];
        if getrandom::fill(&mut nonce).is_err() {
            // Uniqueness per run is all that is needed here, not secrecy.
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            nonce = nanos.to_be_bytes();
        }
        Self {
            // Whole milliseconds, so `t0 + n ms` is exactly what a record stores.
            t0: UNIX_EPOCH + Duration::from_millis(unix_millis(SystemTime::now())),
            nonce,
        }
    }

    fn key(&self, name: &str) -> StoreKey {
        self.key_for("suite-client", name)
    }

    fn key_for(&self, client_id: &str, name: &str) -> StoreKey {
        let handle = [&self.nonce[..], name.as_bytes()].concat();
        StoreKey::derive("https://as.test-suite.example", client_id, &handle)
    }

    /// A share bucket of this check (fresh per check, like the keys).
    fn bucket(&self, name: &str) -> StoreKey {
        StoreKey::derive_tagged(
            b"tower-par/test-suite/share",
            "https://as.test-suite.example",
            name,
            &self.nonce,
        )
    }

    /// The charge of the checks that are not about shares: one client, no limits of its own.
    fn charge(&self) -> Charge {
        Charge::new(Share::unlimited(self.bucket("suite-client")))
    }

    /// A charge to `client`'s share of `max_entries` records and `max_bytes` bytes.
    fn share(&self, client: &str, max_entries: u64, max_bytes: u64) -> Charge {
        Charge::new(Share::new(self.bucket(client), max_entries, max_bytes))
    }

    fn record(&self, payload: &'static str) -> Record {
        Record::new(self.t0 + LIFETIME, payload)
    }

    fn deadline(&self) -> SystemTime {
        self.t0 + LIFETIME
    }
}

async fn put_ok<S: ParStore>(
    store: &S,
    key: StoreKey,
    record: Record,
    now: SystemTime,
    what: &str,
) {
    let charge = Charge::new(Share::unlimited(StoreKey::derive_tagged(
        b"tower-par/test-suite/share",
        "https://as.test-suite.example",
        "suite-client",
        b"",
    )));
    put_charged(store, key, record, charge, now, what).await;
}

async fn put_charged<S: ParStore>(
    store: &S,
    key: StoreKey,
    record: Record,
    charge: Charge,
    now: SystemTime,
    what: &str,
) {
    if let Err(e) = store.put(key, record, charge, now).await {
        panic!("{what}: put must succeed, got {e:?}");
    }
}

/// Asserts that a put is refused with `expected` (compared by variant).
async fn put_refused<S: ParStore>(
    store: &S,
    key: StoreKey,
    record: Record,
    charge: Charge,
    now: SystemTime,
    expected: &StoreError,
    what: &str,
) {
    let got = store.put(key, record, charge, now).await;
    let same = matches!(
        (&got, expected),
        (Err(StoreError::Full), StoreError::Full)
            | (Err(StoreError::ShareExhausted), StoreError::ShareExhausted)
            | (Err(StoreError::Exists), StoreError::Exists)
    );
    assert!(
        same,
        "{what}: the put must fail with {expected:?}, got {got:?}"
    );
}

async fn take<S: ParStore>(store: &S, key: StoreKey, now: SystemTime) -> Option<Record> {
    store
        .take(key, now)
        .await
        .unwrap_or_else(|e| panic!("take must not fail: {e:?}"))
}

async fn open<S: ParStore>(store: &S, key: StoreKey, now: SystemTime) -> Option<Record> {
    store
        .open(key, now, WINDOW)
        .await
        .unwrap_or_else(|e| panic!("open must not fail: {e:?}"))
}

async fn complete<S: ParStore>(store: &S, key: StoreKey, now: SystemTime) -> bool {
    store
        .complete(key, now)
        .await
        .unwrap_or_else(|e| panic!("complete must not fail: {e:?}"))
}

async fn remember<S: ParStore>(
    store: &S,
    key: StoreKey,
    until: SystemTime,
    now: SystemTime,
) -> bool {
    store
        .remember(key, until, now)
        .await
        .unwrap_or_else(|e| panic!("remember must not fail: {e:?}"))
}

/// Put then take returns the same record; a second take returns `None` (one-time use,
/// RFC 9126 §7.3).
pub async fn check_put_then_take<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let key = fx.key("once");
    let record = fx.record("scope=openid&state=abc");
    put_ok(&store, key, record.clone(), fx.t0, "put then take").await;
    assert_eq!(
        take(&store, key, fx.t0 + MS).await,
        Some(record),
        "take after put must return the pushed record unchanged"
    );
    assert_eq!(
        take(&store, key, fx.t0 + MS).await,
        None,
        "[URI-03] a second take of the same key must return None (one-time use)"
    );
}

/// A take of a key that was never pushed returns `None`.
pub async fn check_take_unknown_key<S: ParStore>(store: S) {
    let fx = Fixture::new();
    put_ok(
        &store,
        fx.key("present"),
        fx.record("p"),
        fx.t0,
        "unknown key",
    )
    .await;
    assert_eq!(
        take(&store, fx.key("never-pushed"), fx.t0).await,
        None,
        "take of a key that was never pushed must return None"
    );
}

/// A put of a present key is refused with [`StoreError::Exists`] and the original survives.
pub async fn check_put_existing_key<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let key = fx.key("dup");
    let original = fx.record("original");
    put_ok(&store, key, original.clone(), fx.t0, "first put").await;
    let second = store
        .put(key, fx.record("intruder"), fx.charge(), fx.t0 + MS)
        .await;
    assert!(
        matches!(second, Err(StoreError::Exists)),
        "a put of a present key must fail with StoreError::Exists, got {second:?}"
    );
    assert_eq!(
        take(&store, key, fx.t0 + MS).await,
        Some(original),
        "a refused put must not overwrite the original record"
    );
}

/// A record is alive at `expires_at - 1 ms` and dead at exactly `expires_at`, for `take` and
/// for a first `open` (RFC 9126 §4: an expired `request_uri` is invalid).
pub async fn check_expiry_at_exact_deadline<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let deadline = fx.deadline();
    let keys = ["take-before", "take-at", "open-before", "open-at"].map(|n| fx.key(n));
    for key in keys {
        put_ok(&store, key, fx.record("p"), fx.t0, "expiry").await;
    }
    let [take_before, take_at, open_before, open_at] = keys;
    assert!(
        take(&store, take_before, deadline - MS).await.is_some(),
        "[URI-02] take at expires_at - 1 ms must still return the record"
    );
    assert_eq!(
        take(&store, take_at, deadline).await,
        None,
        "[URI-02] take at exactly expires_at must return None (dead from expires_at on)"
    );
    assert!(
        open(&store, open_before, deadline - MS).await.is_some(),
        "[URI-02] a first open at expires_at - 1 ms must return the record"
    );
    assert_eq!(
        open(&store, open_at, deadline).await,
        None,
        "[URI-02] a first open at exactly expires_at must return None"
    );
}

/// With [`SMALL_STORE_LIMITS`] (3 entries): three puts succeed, the fourth is refused with
/// [`StoreError::Full`] without losing any earlier record, and after a take a put succeeds again.
pub async fn check_capacity_refusal<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(|n| fx.key(n));
    for (key, payload) in [(a, "a"), (b, "b"), (c, "c")] {
        put_ok(
            &store,
            key,
            fx.record(payload),
            fx.t0,
            "capacity: the first three",
        )
        .await;
    }
    let refused = store.put(d, fx.record("d"), fx.charge(), fx.t0).await;
    assert!(
        matches!(refused, Err(StoreError::Full)),
        "the 4th put into a store of capacity 3 must fail with StoreError::Full, got {refused:?}"
    );
    assert_eq!(
        take(&store, a, fx.t0).await,
        Some(fx.record("a")),
        "a refused put must not make an earlier record disappear"
    );
    put_ok(&store, d, fx.record("d"), fx.t0, "capacity: after a take").await;
    let refused = store.put(e, fx.record("e"), fx.charge(), fx.t0).await;
    assert!(
        matches!(refused, Err(StoreError::Full)),
        "the store is full again (b, c, d): the next put must fail with Full, got {refused:?}"
    );
    for (key, payload) in [(b, "b"), (c, "c"), (d, "d")] {
        assert_eq!(
            take(&store, key, fx.t0).await,
            Some(fx.record(payload)),
            "record {payload:?} must survive the refused puts"
        );
    }
    assert_eq!(
        take(&store, e, fx.t0).await,
        None,
        "a refused put must not store the record"
    );
}

/// [`ParStore::limits`] reports the limits the store was made with.
pub async fn check_reports_its_limits<S: ParStore>(store: S, asked: StoreLimits) {
    let limits = store.limits();
    assert_eq!(
        (limits.max_entries(), limits.max_bytes()),
        (asked.max_entries(), asked.max_bytes()),
        "limits() must report the store-wide limits the store was made with"
    );
    assert!(
        limits.partitions() >= 1,
        "a store has at least one partition"
    );
}

/// Heavy records (1,000-byte payloads) under a byte budget of three of them plus one empty
/// record ([`BYTE_BUDGET_LIMITS`]): the fourth heavy one is refused with [`StoreError::Full`]
/// although entries are to spare, an empty record still fits, replay memory weighs
/// [`RECORD_OVERHEAD_BYTES`] too, and a take gives the bytes back.
pub async fn check_byte_budget<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let heavy = Record::new(fx.deadline(), vec![b'!'; HEAVY_PAYLOAD]);
    let [a, b, c, d, light, huge] = ["a", "b", "c", "d", "light", "huge"].map(|n| fx.key(n));
    assert_eq!(heavy.weight(), HEAVY_WEIGHT, "Record::weight");
    let oversized = Record::new(fx.deadline(), vec![0; 8 * HEAVY_PAYLOAD]);
    put_refused(
        &store,
        huge,
        oversized,
        fx.charge(),
        fx.t0,
        &StoreError::Full,
        "a record heavier than the whole byte budget",
    )
    .await;
    for key in [a, b, c] {
        put_ok(
            &store,
            key,
            heavy.clone(),
            fx.t0,
            "bytes: three heavy records",
        )
        .await;
    }
    put_refused(
        &store,
        d,
        heavy.clone(),
        fx.charge(),
        fx.t0,
        &StoreError::Full,
        "a fourth heavy record past the byte budget (entries to spare)",
    )
    .await;
    put_ok(
        &store,
        light,
        fx.record(""),
        fx.t0,
        "bytes: an empty record still fits",
    )
    .await;
    let jti = fx.key("jti");
    let remembered = store.remember(jti, fx.deadline(), fx.t0).await;
    assert!(
        matches!(remembered, Err(StoreError::Full)),
        "a remembered id weighs RECORD_OVERHEAD_BYTES: past the budget it must fail with Full, got {remembered:?}"
    );
    assert_eq!(
        take(&store, a, fx.t0).await,
        Some(heavy.clone()),
        "refused puts must not disturb stored records"
    );
    put_ok(
        &store,
        d,
        heavy.clone(),
        fx.t0,
        "bytes: room again after a take",
    )
    .await;
    assert_eq!(
        take(&store, huge, fx.t0).await,
        None,
        "a refused put must not store the record"
    );
    assert_eq!(
        take(&store, light, fx.t0).await,
        Some(fx.record("")),
        "the light record must be stored"
    );
    assert!(
        remember(&store, jti, fx.deadline(), fx.t0).await,
        "room for a remembered id after a take"
    );
}

/// One client's share (2 records; then 2 heavy records' bytes): the third put is refused with
/// [`StoreError::ShareExhausted`] (not Full: the store has room), another client's put is
/// stored, and a take gives the client its place back.
pub async fn check_client_share<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let mine = fx.share("client-a", 2, u64::MAX);
    let theirs = fx.share("client-b", 2, u64::MAX);
    let [a1, a2, a3, b1] = ["a1", "a2", "a3", "b1"].map(|n| fx.key(n));
    put_charged(&store, a1, fx.record("a1"), mine, fx.t0, "share: first").await;
    put_charged(&store, a2, fx.record("a2"), mine, fx.t0, "share: second").await;
    put_refused(
        &store,
        a3,
        fx.record("a3"),
        mine,
        fx.t0,
        &StoreError::ShareExhausted,
        "[PAR-05] a third record past a share of two",
    )
    .await;
    put_charged(
        &store,
        b1,
        fx.record("b1"),
        theirs,
        fx.t0,
        "share: another client is not held back",
    )
    .await;
    assert!(take(&store, a1, fx.t0).await.is_some(), "a1 must be stored");
    put_charged(
        &store,
        a3,
        fx.record("a3"),
        mine,
        fx.t0,
        "share: after a take",
    )
    .await;
    assert_eq!(take(&store, a3, fx.t0).await, Some(fx.record("a3")));

    // A share in bytes: two heavy records, whatever the entries.
    let heavy = Record::new(fx.deadline(), vec![b'~'; HEAVY_PAYLOAD]);
    let by_bytes = fx.share("client-c", 100, 2 * HEAVY_WEIGHT);
    let [c1, c2, c3] = ["c1", "c2", "c3"].map(|n| fx.key(n));
    put_charged(
        &store,
        c1,
        heavy.clone(),
        by_bytes,
        fx.t0,
        "byte share: first",
    )
    .await;
    put_charged(
        &store,
        c2,
        heavy.clone(),
        by_bytes,
        fx.t0,
        "byte share: second",
    )
    .await;
    put_refused(
        &store,
        c3,
        fx.record(""),
        by_bytes,
        fx.t0,
        &StoreError::ShareExhausted,
        "[PAR-05] a record past a share's bytes (entries to spare)",
    )
    .await;
    assert!(take(&store, c2, fx.t0).await.is_some(), "c2 must be stored");
    put_charged(
        &store,
        c3,
        heavy,
        by_bytes,
        fx.t0,
        "byte share: after a take",
    )
    .await;
}

/// A group share (3 records) over two clients' own shares (10 each): together they get three,
/// then both are refused with [`StoreError::ShareExhausted`]; a client outside the group is not
/// held back; a take in the group makes room for either member.
pub async fn check_group_share<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let group = Share::new(fx.bucket("public-clients"), 3, u64::MAX);
    let a = fx.share("public-a", 10, u64::MAX).with_group(group);
    let b = fx.share("public-b", 10, u64::MAX).with_group(group);
    let outsider = fx.share("confidential", 10, u64::MAX);
    let keys = ["a1", "a2", "b1", "a3", "b2", "c1", "b3"].map(|n| fx.key(n));
    let [a1, a2, b1, a3, b2, c1, b3] = keys;
    put_charged(&store, a1, fx.record("a1"), a, fx.t0, "group: a1").await;
    put_charged(&store, a2, fx.record("a2"), a, fx.t0, "group: a2").await;
    put_charged(&store, b1, fx.record("b1"), b, fx.t0, "group: b1").await;
    for (key, charge, who) in [(a3, a, "a"), (b2, b, "b")] {
        put_refused(
            &store,
            key,
            fx.record("x"),
            charge,
            fx.t0,
            &StoreError::ShareExhausted,
            &format!("the group's share is exhausted for member {who}"),
        )
        .await;
    }
    put_charged(
        &store,
        c1,
        fx.record("c1"),
        outsider,
        fx.t0,
        "group: a client outside the group",
    )
    .await;
    assert!(take(&store, a1, fx.t0).await.is_some(), "a1 must be stored");
    put_charged(
        &store,
        b3,
        fx.record("b3"),
        b,
        fx.t0,
        "group: room after a take",
    )
    .await;
}

/// With [`SMALL_STORE_LIMITS`] (3 entries) and shares of 2: a client within its share meets a
/// full store ([`StoreError::Full`]); a client past its share is told so
/// ([`StoreError::ShareExhausted`], checked first) even when the store is full too.
pub async fn check_full_is_not_a_share<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let a = fx.share("client-a", 2, u64::MAX);
    let b = fx.share("client-b", 2, u64::MAX);
    let [a1, a2, a3, b1, b2] = ["a1", "a2", "a3", "b1", "b2"].map(|n| fx.key(n));
    put_charged(&store, a1, fx.record("a1"), a, fx.t0, "full: a1").await;
    put_charged(&store, a2, fx.record("a2"), a, fx.t0, "full: a2").await;
    put_charged(&store, b1, fx.record("b1"), b, fx.t0, "full: b1").await;
    put_refused(
        &store,
        b2,
        fx.record("b2"),
        b,
        fx.t0,
        &StoreError::Full,
        "a client within its share, the store full",
    )
    .await;
    put_refused(
        &store,
        a3,
        fx.record("a3"),
        a,
        fx.t0,
        &StoreError::ShareExhausted,
        "a client past its share, the store full as well",
    )
    .await;
}

/// A share of one record is given back exactly when the record leaves: taken, completed, dead by
/// `now` (never opened, or its window over), or replaced under the same key (the replacement is
/// charged once).
pub async fn check_shares_are_given_back<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let one = fx.share("client", 1, u64::MAX);
    let at = |secs| fx.t0 + Duration::from_secs(secs);
    let until = |secs, payload| Record::new(at(secs), payload);
    let [k1, k2, k3, k4, k5, k6] = ["k1", "k2", "k3", "k4", "k5", "k6"].map(|n| fx.key(n));
    let store = &store;
    let refused = |key, now, what| async move {
        put_refused(
            store,
            key,
            Record::new(now + LIFETIME, "x"),
            one,
            now,
            &StoreError::ShareExhausted,
            what,
        )
        .await;
    };

    put_charged(store, k1, until(60, "k1"), one, at(0), "given back: k1").await;
    refused(k2, at(0), "a share of one, held by k1").await;
    assert!(take(store, k1, at(0)).await.is_some(), "k1 must be stored");
    put_charged(
        store,
        k2,
        until(60, "k2"),
        one,
        at(0),
        "[take] gives the share back",
    )
    .await;

    assert!(open(store, k2, at(1)).await.is_some(), "open k2");
    refused(k3, at(1), "an opened record keeps its share").await;
    assert!(complete(store, k2, at(2)).await, "complete k2");
    put_charged(
        store,
        k3,
        until(10, "k3"),
        one,
        at(2),
        "[complete] gives the share back",
    )
    .await;

    put_charged(
        store,
        k4,
        until(100, "k4"),
        one,
        at(10),
        "[expiry] gives the share back",
    )
    .await;

    assert!(
        open(store, k4, at(20)).await.is_some(),
        "open k4 (window 30 s)"
    );
    refused(
        k5,
        at(49),
        "an opened record keeps its share for its window",
    )
    .await;
    put_charged(
        store,
        k5,
        until(60, "k5"),
        one,
        at(50),
        "[window end] gives the share back",
    )
    .await;

    put_charged(
        store,
        k5,
        until(300, "k5 again"),
        one,
        at(70),
        "a dead record is replaced",
    )
    .await;
    refused(k6, at(70), "the replacement holds the share once").await;
    assert_eq!(
        take(store, k5, at(70)).await,
        Some(until(300, "k5 again")),
        "the replacement is stored"
    );
    put_charged(
        store,
        k6,
        until(300, "k6"),
        one,
        at(70),
        "and gives it back when taken",
    )
    .await;
}

/// 200 concurrent puts of distinct keys against a share of 50: never more than 50 are stored
/// (exactly 50 on a store of one partition), every refusal is [`StoreError::ShareExhausted`],
/// and exactly the accepted records can be taken (no handle lost, none stored unannounced).
pub async fn check_parallel_puts_within_a_share<S: ParStore>(store: Arc<S>) {
    const SHARE: u64 = 50;
    let fx = Arc::new(Fixture::new());
    let charge = fx.share("flooding-client", SHARE, u64::MAX);
    let partitions = store.limits().partitions();
    let barrier = Arc::new(Barrier::new(200));
    let mut tasks = JoinSet::new();
    for i in 0..200u32 {
        let (store, fx, barrier) = (Arc::clone(&store), Arc::clone(&fx), Arc::clone(&barrier));
        tasks.spawn(async move {
            let key = fx.key(&format!("flood-{i}"));
            barrier.wait().await;
            (key, store.put(key, fx.record("p"), charge, fx.t0).await)
        });
    }
    let mut stored = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (key, result) = joined.unwrap_or_else(|e| panic!("a racing task failed: {e}"));
        match result {
            Ok(()) => stored.push(key),
            Err(StoreError::ShareExhausted) => {}
            Err(e) => panic!("a refused put must be ShareExhausted, got {e:?}"),
        }
    }
    let accepted = stored.len() as u64;
    assert!(
        accepted <= SHARE,
        "[PAR-05] {accepted} of 200 concurrent puts were stored against a share of {SHARE}"
    );
    if partitions == 1 {
        assert_eq!(
            accepted, SHARE,
            "one partition: the share must fill exactly"
        );
    }
    let mut taken = 0;
    for i in 0..200u32 {
        taken += usize::from(
            take(&*store, fx.key(&format!("flood-{i}")), fx.t0)
                .await
                .is_some(),
        );
    }
    assert_eq!(
        taken,
        stored.len(),
        "exactly the accepted puts must be stored"
    );
}

/// Spawns `n` tasks that start together and run `op`; returns their results.
async fn race<S, T, F, Fut>(store: Arc<S>, n: usize, op: F) -> Vec<T>
where
    S: ParStore,
    T: Send + 'static,
    F: Fn(Arc<S>) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let barrier = Arc::clone(&barrier);
        let fut = op(Arc::clone(&store));
        tasks.spawn(async move {
            barrier.wait().await;
            fut.await
        });
    }
    let mut results = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.unwrap_or_else(|e| panic!("a racing task failed: {e}")));
    }
    results
}

/// 1,000 concurrent takes of one key: exactly one gets the record (one-time use).
pub async fn check_parallel_takes<S: ParStore>(store: Arc<S>) {
    let fx = Fixture::new();
    let key = fx.key("contended");
    let now = fx.t0;
    put_ok(&*store, key, fx.record("p"), now, "parallel takes").await;
    let results = race(store, 1_000, |store| async move {
        store
            .take(key, now)
            .await
            .unwrap_or_else(|e| panic!("take must not fail: {e:?}"))
    })
    .await;
    let winners = results.iter().filter(|r| r.is_some()).count();
    assert_eq!(
        winners, 1,
        "[URI-03] exactly one of 1,000 concurrent takes must get the record, {winners} did"
    );
}

/// Consumption at completion: two opens within the window return the record, `complete` wins
/// once, and afterwards neither `open` nor `complete` succeeds (FAPI 2.0 §5.3.2.2 note 3).
pub async fn check_open_then_complete<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let key = fx.key("completion");
    let record = fx.record("scope=openid");
    put_ok(&store, key, record.clone(), fx.t0, "open/complete").await;
    let t = |secs| fx.t0 + Duration::from_secs(secs);
    assert_eq!(
        open(&store, key, t(1)).await,
        Some(record.clone()),
        "[URI-04] the first open must return the record"
    );
    assert_eq!(
        open(&store, key, t(10)).await,
        Some(record),
        "[URI-04] a second open within the window must return the record again (page reload)"
    );
    assert!(
        complete(&store, key, t(11)).await,
        "[URI-04] complete within the window must succeed"
    );
    assert!(
        !complete(&store, key, t(12)).await,
        "[URI-03] a second complete must fail"
    );
    assert_eq!(
        open(&store, key, t(12)).await,
        None,
        "[URI-03] open after complete must return None"
    );
}

/// A first `open` at or after `expires_at` returns `None`, and does not revive the record.
pub async fn check_open_after_expiry<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let key = fx.key("late-open");
    put_ok(&store, key, fx.record("p"), fx.t0, "open after expiry").await;
    assert_eq!(
        open(&store, key, fx.deadline()).await,
        None,
        "[URI-02] a first open at expires_at (never opened before) must return None"
    );
    assert!(
        !complete(&store, key, fx.deadline()).await,
        "[URI-02] complete of an expired, never opened record must fail"
    );
    assert_eq!(
        take(&store, key, fx.deadline()).await,
        None,
        "[URI-02] an expired record must stay dead"
    );
}

/// The window runs from the first open: opens succeed until `opened_at + window - 1 ms`, even
/// past the record's `expires_at`, and fail from `opened_at + window` on.
pub async fn check_reopen_after_window<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let early = fx.key("opened-early");
    let late = fx.key("opened-late");
    put_ok(&store, early, fx.record("early"), fx.t0, "reopen").await;
    put_ok(&store, late, fx.record("late"), fx.t0, "reopen").await;

    let opened_at = fx.t0 + Duration::from_secs(1);
    assert!(
        open(&store, early, opened_at).await.is_some(),
        "first open must succeed"
    );
    assert!(
        open(&store, early, opened_at + WINDOW - MS).await.is_some(),
        "[URI-04] an open at opened_at + window - 1 ms must still return the record"
    );
    assert_eq!(
        open(&store, early, opened_at + WINDOW).await,
        None,
        "[URI-04] an open at opened_at + window must return None (window over)"
    );
    assert!(
        !complete(&store, early, opened_at + WINDOW).await,
        "[URI-04] complete after the window must fail"
    );

    // Opened shortly before expires_at: the window, not expires_at, now decides.
    let opened_at = fx.deadline() - Duration::from_secs(1);
    assert!(
        open(&store, late, opened_at).await.is_some(),
        "first open must succeed"
    );
    assert!(
        open(&store, late, fx.deadline() + Duration::from_secs(5))
            .await
            .is_some(),
        "[URI-04] an opened record must stay available for its window, past expires_at"
    );
    assert!(
        complete(&store, late, fx.deadline() + Duration::from_secs(5)).await,
        "[URI-04] complete within the window must succeed past expires_at"
    );
}

/// `complete` of a record that was never opened fails and leaves the record usable.
pub async fn check_complete_without_open<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let key = fx.key("unopened");
    put_ok(&store, key, fx.record("p"), fx.t0, "complete without open").await;
    assert!(
        !complete(&store, key, fx.t0).await,
        "complete of a record that was never opened must fail"
    );
    assert!(
        !complete(&store, fx.key("absent"), fx.t0).await,
        "complete of an unknown key must fail"
    );
    assert!(
        open(&store, key, fx.t0).await.is_some(),
        "a failed complete must not consume the record"
    );
    assert!(
        complete(&store, key, fx.t0).await,
        "complete after open must succeed"
    );
}

/// 200 concurrent completes of one opened record: exactly one succeeds.
pub async fn check_parallel_completes<S: ParStore>(store: Arc<S>) {
    let fx = Fixture::new();
    let key = fx.key("contended-completion");
    let now = fx.t0 + Duration::from_secs(1);
    put_ok(&*store, key, fx.record("p"), fx.t0, "parallel completes").await;
    assert!(open(&*store, key, now).await.is_some(), "open must succeed");
    let results = race(store, 200, |store| async move {
        store
            .complete(key, now)
            .await
            .unwrap_or_else(|e| panic!("complete must not fail: {e:?}"))
    })
    .await;
    let winners = results.iter().filter(|won| **won).count();
    assert_eq!(
        winners, 1,
        "[URI-03] exactly one of 200 concurrent completes must succeed, {winners} did"
    );
}

/// Replay memory: `true` the first time, `false` while remembered, `true` again once `until` has
/// passed (and then remembered again).
pub async fn check_remember<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let key = fx.key("jti");
    let until = fx.t0 + LIFETIME;
    assert!(
        remember(&store, key, until, fx.t0).await,
        "the first remember of an id must return true"
    );
    assert!(
        !remember(&store, key, until + LIFETIME, fx.t0 + MS).await,
        "a second remember before `until` must return false (replay)"
    );
    assert!(
        !remember(&store, key, until + LIFETIME, until - MS).await,
        "remember at until - 1 ms must still return false"
    );
    assert!(
        remember(&store, key, until + LIFETIME, until).await,
        "remember at exactly `until` must return true (the earlier remembrance is over)"
    );
    assert!(
        !remember(&store, key, until + LIFETIME, until + MS).await,
        "the renewed remembrance must be in force"
    );
}

/// 1,000 concurrent remembers of one id: exactly one returns `true`.
pub async fn check_parallel_remember<S: ParStore>(store: Arc<S>) {
    let fx = Fixture::new();
    let key = fx.key("contended-jti");
    let (now, until) = (fx.t0, fx.t0 + LIFETIME);
    let results = race(store, 1_000, |store| async move {
        store
            .remember(key, until, now)
            .await
            .unwrap_or_else(|e| panic!("remember must not fail: {e:?}"))
    })
    .await;
    let firsts = results.iter().filter(|first| **first).count();
    assert_eq!(
        firsts, 1,
        "exactly one of 1,000 concurrent remembers of one id must return true, {firsts} did"
    );
}

/// Rounds of [`check_races_on_threads`], and the threads that race in each.
const THREAD_ROUNDS: usize = 100;
const RACING_THREADS: usize = 4;

/// The races of [`check_parallel_takes`], [`check_parallel_completes`] and
/// [`check_parallel_remember`] between OS threads, each driving the store from a runtime of its
/// own, released together by a barrier, round after round. Tasks of one runtime seldom run at the
/// same instant (on two worker threads they barely overlap), so a backend whose operations are
/// not one step each can pass the task races; threads released together overlap in most rounds.
/// In every round each thread remembers the round's id, takes the round's record, then opens and
/// completes another; exactly one thread may win each of the three.
///
/// The store is shared with the threads' runtimes: a networked backend's connections must work
/// from any runtime while the caller's keeps running (the threads are joined on a blocking task).
pub async fn check_races_on_threads<S: ParStore>(store: Arc<S>) {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let fx = Fixture::new();
    let now = fx.t0 + Duration::from_secs(1);
    let keys: Vec<_> = (0..THREAD_ROUNDS)
        .map(|round| {
            (
                fx.key(&format!("threads-jti-{round}")),
                fx.key(&format!("threads-take-{round}")),
                fx.key(&format!("threads-complete-{round}")),
            )
        })
        .collect();
    for &(_, taken, completed) in &keys {
        put_ok(&*store, taken, fx.record("t"), fx.t0, "races on threads").await;
        put_ok(
            &*store,
            completed,
            fx.record("c"),
            fx.t0,
            "races on threads",
        )
        .await;
    }
    let until = fx.deadline();
    let wins = tokio::task::spawn_blocking(move || {
        let wins: Vec<[AtomicUsize; 3]> = (0..THREAD_ROUNDS).map(|_| Default::default()).collect();
        let barrier = std::sync::Barrier::new(RACING_THREADS);
        std::thread::scope(|scope| {
            for _ in 0..RACING_THREADS {
                scope.spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for a racing thread");
                    for (round, &(jti, taken, completed)) in keys.iter().enumerate() {
                        barrier.wait();
                        let won = runtime.block_on(async {
                            [
                                remember(&*store, jti, until, now).await,
                                take(&*store, taken, now).await.is_some(),
                                open(&*store, completed, now).await.is_some()
                                    && complete(&*store, completed, now).await,
                            ]
                        });
                        for (count, won) in wins[round].iter().zip(won) {
                            count.fetch_add(usize::from(won), Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        wins
    })
    .await
    .unwrap_or_else(|e| panic!("a racing thread failed: {e}"));
    for (round, counts) in wins.iter().enumerate() {
        let [firsts, takes, completions] = counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        assert_eq!(
            firsts, 1,
            "round {round}: exactly one of {RACING_THREADS} threads remembering one id at once must get true, {firsts} did"
        );
        assert_eq!(
            takes, 1,
            "[URI-03] round {round}: exactly one of {RACING_THREADS} threads taking one record at once must get it, {takes} did"
        );
        assert_eq!(
            completions, 1,
            "[URI-03] round {round}: exactly one of {RACING_THREADS} threads completing one record at once must succeed, {completions} did"
        );
    }
}

/// Records under different keys do not affect each other; in particular the same handle under
/// another client's key is a different record (RFC 9126 §2.2: a `request_uri` is bound to its
/// client).
pub async fn check_keys_are_independent<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let one = fx.key("one");
    let two = fx.key("two");
    let other_client = fx.key_for("another-client", "one");
    let jti = fx.key("jti-next-door");
    let short = Record::new(fx.t0 + Duration::from_secs(5), "short");
    put_ok(&store, one, fx.record("one"), fx.t0, "independent keys").await;
    put_ok(&store, two, short.clone(), fx.t0, "independent keys").await;
    assert!(
        remember(&store, jti, fx.t0 + LIFETIME, fx.t0).await,
        "remember must succeed"
    );

    assert_eq!(
        take(&store, other_client, fx.t0).await,
        None,
        "[URI-01] the same handle under another client's key must not find the record"
    );
    assert_eq!(
        take(&store, one, fx.t0).await,
        Some(fx.record("one")),
        "[URI-01] a take under the wrong client's key must not burn the record"
    );
    assert_eq!(
        take(&store, two, fx.t0).await,
        Some(short),
        "taking one key must leave another key's record in place"
    );
    assert!(
        open(&store, fx.key("three"), fx.t0).await.is_none(),
        "open of an unknown key must return None"
    );
    assert!(
        !remember(&store, jti, fx.t0 + LIFETIME, fx.t0).await,
        "takes of other keys must not clear a remembered id"
    );
}

/// Payloads round-trip byte-exactly, with their `expires_at`: empty, non-ASCII and binary.
pub async fn check_payload_round_trip<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let all_bytes: Vec<u8> = (0..=255).collect();
    let payloads = [
        ("empty", Bytes::new()),
        (
            "non-ascii",
            Bytes::from("scope=openid&claims=%7B%7D&login_hint=J\u{fc}rgen \u{1f600} \u{2713}"),
        ),
        ("binary", Bytes::from(all_bytes)),
        ("nul", Bytes::from_static(b"\0\0a\0")),
    ];
    let odd_deadline = fx.t0 + Duration::from_millis(59_999);
    for (name, payload) in &payloads {
        let record = Record::new(odd_deadline, payload.clone());
        put_ok(&store, fx.key(name), record, fx.t0, "round trip").await;
    }
    for (name, payload) in &payloads {
        let back = take(&store, fx.key(name), fx.t0)
            .await
            .unwrap_or_else(|| panic!("the {name} record must be stored"));
        assert_eq!(
            back.payload(),
            payload,
            "the {name} payload must round-trip byte-exactly"
        );
        assert_eq!(
            back.expires_at(),
            odd_deadline,
            "the {name} record's expires_at must round-trip to the millisecond"
        );
    }
    // The opened state must keep the payload too.
    let key = fx.key("opened");
    let record = Record::new(odd_deadline, payloads[1].1.clone());
    put_ok(&store, key, record.clone(), fx.t0, "round trip").await;
    assert_eq!(
        open(&store, key, fx.t0).await,
        Some(record),
        "open must return the payload byte-exactly"
    );
}

/// [`ParStore::stored_requests`], for a store that counts (`Some`): a put adds one, a take or a
/// completion removes it, an open keeps it, a refused put adds nothing. Skipped for `None`.
pub async fn check_stored_requests<S: ParStore>(store: S) {
    let fx = Fixture::new();
    let Some(before) = stored_requests(&store, fx.t0).await else {
        return;
    };
    let (a, b, c) = (fx.key("a"), fx.key("b"), fx.key("c"));
    for key in [a, b, c] {
        put_ok(&store, key, fx.record("p"), fx.t0, "stored requests").await;
    }
    assert_eq!(
        stored_requests(&store, fx.t0).await,
        Some(before + 3),
        "three puts count"
    );
    let charge = Charge::new(Share::unlimited(fx.bucket("suite-client")));
    put_refused(
        &store,
        a,
        fx.record("again"),
        charge,
        fx.t0,
        &StoreError::Exists,
        "stored requests",
    )
    .await;
    assert!(take(&store, a, fx.t0).await.is_some());
    assert_eq!(
        stored_requests(&store, fx.t0).await,
        Some(before + 2),
        "a take removes one"
    );
    assert!(open(&store, b, fx.t0).await.is_some());
    assert_eq!(
        stored_requests(&store, fx.t0).await,
        Some(before + 2),
        "an open keeps it"
    );
    assert!(complete(&store, b, fx.t0).await);
    assert_eq!(
        stored_requests(&store, fx.t0).await,
        Some(before + 1),
        "a completion removes one"
    );
}

async fn stored_requests<S: ParStore>(store: &S, now: SystemTime) -> Option<u64> {
    store
        .stored_requests(now)
        .await
        .unwrap_or_else(|e| panic!("stored_requests must not fail: {e:?}"))
}
