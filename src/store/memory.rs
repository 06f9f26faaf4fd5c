//! The in-memory store: one node, bounded, on `moka::sync::Cache`.
//!
//! The synchronous cache, not `moka::future::Cache`: every transition here is a few calls that
//! never await, and the async cache's per-call machinery (boxed futures, waiter maps) was about
//! a tenth of a push in the profile (rust-notes D1 allows the sync cache when, as here, no
//! `get_with` or blocking listener is used).
//!
//! # Design (why it looks like this)
//!
//! **Every operation on a key holds the key's lock** (one of [`KEY_LOCK_STRIPES`] mutexes, chosen
//! by the key) while it looks at the key's entry (`get`) and makes the change that follows
//! (`insert`, `remove`), so "check the state, then change it" is atomic: of 1,000 concurrent
//! takes exactly one removes the record, of many concurrent `complete`s exactly one wins, of
//! concurrent `remember`s of one id exactly one is first, and an `open` can never resurrect a
//! record that a `complete` just removed (rust-notes D3). moka's own per-key serialisation,
//! `entry(key).and_compute_with(..)`, does the same with a waiter inserted into and removed from
//! a second concurrent table and two allocations for every call: about 2,500 instructions a push
//! and as many a redemption (benches/layer.rs), where an uncontended mutex costs a few dozen.
//! Nothing changes an entry without its key's lock: moka evicts nothing by itself here (below).
//!
//! **Each key holds a small state** ([`Slot`]): `Pushed` (waiting for a strict `take` or a first
//! `open`), `Opened` (consumption at completion: kept until `keep_until`), or `Remembered` (replay
//! memory). The `now` passed in is the only clock: every decision checks the stored deadline
//! against it (tests use a fake clock, D6).
//!
//! **Budgets are exact and never enforced by moka.** moka's default TinyLFU policy silently drops
//! new entries when full (D2), and its `entry_count` is an estimate. So the cache has no size
//! limit at all (and the LRU policy), and the store keeps its own books in a [`Ledger`]: entries
//! and bytes store-wide and per share bucket, counting the values in the cache. A new value needs
//! an admission, reserved atomically against every limit it is charged to (its shares first,
//! then the store) under the key's lock, right before the `insert` that stores it; a transition
//! that keeps the value's charge (open) needs none. Each value carries what it was charged to
//! ([`Charged`]), and whoever removes a value (a take, a completion, a replacement of a dead
//! value, the sweep) gives exactly that back, under the key's lock: the books change only where
//! the cache does. One mutex guards the books, and it is never held while calling moka.
//!
//! **Expiry is the store's, not moka's.** Every value is filed in the books' schedule under the
//! instant it dies ([`Ledger::due`]), when it is stored and again when its deadline moves (an
//! open). Puts sweep what has come due, a few keys at a time ([`SWEEP_BATCH`]): each key
//! is looked at under its lock and removed if its value is dead by `now` (a filing whose value
//! was taken, or lives on under a later filing, is passed over). moka's own expiry (a timer-wheel
//! entry for every value) and its eviction listener (which, once set, makes moka take a key lock
//! of its own, in a third concurrent table, on every insert and removal) are not used: they were
//! about 2,500 instructions a push. Before it refuses a put, the store sweeps everything that is
//! dead by `now`, then refuses with [`StoreError::ShareExhausted`] or [`StoreError::Full`]: a dead
//! record never holds a place that a live one needs.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, SystemTime},
};

use moka::{policy::EvictionPolicy, sync::Cache};

use super::{
    unix_millis, Charge, ParStore, Record, StoreError, StoreFuture, StoreKey, StoreLimits,
    RECORD_OVERHEAD_BYTES,
};

/// Stripes of the key locks (see the module docs): enough that cores working on different keys
/// seldom meet.
const KEY_LOCK_STRIPES: usize = 64;

/// The most keys a put sweeps: the dead come due at about the rate values are stored, so a few
/// per put keep up, and no put pays for a backlog at once.
const SWEEP_BATCH: usize = 8;

/// A bounded in-memory [`ParStore`] for single-node deployments, built on `moka::sync::Cache`.
///
/// Holds at most `max_entries` live entries weighing at most `max_bytes` bytes (pushed requests
/// and replay-memory entries together, see [`StoreLimits`]), and keeps every client within the
/// [`Share`](super::Share)s its records are charged to. A push past a limit is refused with
/// [`StoreError::Full`] or [`StoreError::ShareExhausted`] (the layer answers `503` or `429`),
/// never accepted and dropped later. Cloning is cheap and shares the entries.
///
/// Use a shared backend (the Redis store, feature `redis`) when several nodes serve one issuer: a
/// handle pushed to one node must be redeemable on another.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_par::store::{Charge, MemoryStore, ParStore, Record, Share, StoreError, StoreKey, StoreLimits};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::with_limits(StoreLimits::new(2, 1 << 20));
/// let now = SystemTime::now();
/// let record = Record::new(now + Duration::from_secs(60), "scope=openid");
/// let key = |handle: &[u8]| StoreKey::derive("https://as.example.com", "web-app", handle);
/// let bucket = |client: &str| StoreKey::derive_tagged(b"share", "https://as.example.com", client, b"");
/// let web_app = Charge::new(Share::new(bucket("web-app"), 1, 1 << 20));
/// let other = Charge::new(Share::new(bucket("other"), 1, 1 << 20));
///
/// store.put(key(b"one"), record.clone(), web_app, now).await.unwrap();
/// // web-app's share is one record; the store still has room for another client.
/// assert!(matches!(store.put(key(b"two"), record.clone(), web_app, now).await, Err(StoreError::ShareExhausted)));
/// store.put(key(b"three"), record.clone(), other, now).await.unwrap();
/// assert!(matches!(store.put(key(b"four"), record, other, now).await, Err(StoreError::ShareExhausted)));
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<StoreKey, Slot, BuildHasherDefault<DigestHasher>>,
    shared: Arc<Shared>,
}

/// What one key holds: its state, and what it is charged to.
#[derive(Clone)]
struct Slot {
    state: State,
    charged: Charged,
}

#[derive(Clone)]
enum State {
    /// Pushed, never opened: alive while `now < record.expires_at()`.
    Pushed(Record),
    /// Opened for consumption at completion: alive while `now < keep_until_ms`, even past the
    /// record's own `expires_at` (the user may still be logging in).
    Opened { record: Record, keep_until_ms: u64 },
    /// A remembered id (replay memory): alive while `now < until_ms`.
    Remembered { until_ms: u64 },
}

/// What a value is charged to: its weight, one entry, and the share buckets (none for replay
/// memory, which counts store-wide only).
#[derive(Clone, Copy)]
struct Charged {
    weight: u64,
    owner: Option<StoreKey>,
    group: Option<StoreKey>,
}

impl Charged {
    fn record(record: &Record, charge: &Charge) -> Self {
        Self {
            weight: record.weight(),
            owner: Some(*charge.owner().bucket()),
            group: charge.group().map(|g| *g.bucket()),
        }
    }

    const fn remembered() -> Self {
        Self {
            weight: RECORD_OVERHEAD_BYTES,
            owner: None,
            group: None,
        }
    }

    /// A pushed request (charged to a client) rather than a remembered id.
    const fn is_request(&self) -> bool {
        self.owner.is_some()
    }

    fn buckets(&self) -> impl Iterator<Item = &StoreKey> {
        self.owner.iter().chain(self.group.iter())
    }
}

impl Slot {
    /// The first instant (Unix milliseconds, injected clock) at which this entry is dead.
    fn dead_from_ms(&self) -> u64 {
        match &self.state {
            State::Pushed(record) => record.expires_at_millis(),
            State::Opened { keep_until_ms, .. } => *keep_until_ms,
            State::Remembered { until_ms } => *until_ms,
        }
    }

    fn is_dead(&self, now_ms: u64) -> bool {
        now_ms >= self.dead_from_ms()
    }
}

/// Entries and bytes held.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Usage {
    entries: u64,
    bytes: u64,
}

impl Usage {
    fn add(&mut self, weight: u64) {
        self.entries += 1;
        self.bytes = self.bytes.saturating_add(weight);
    }

    /// Saturating: an underflow would read as "full forever"; the books are exact by
    /// construction, so this only guards against a moka behaviour change.
    fn sub(&mut self, weight: u64) {
        self.entries = self.entries.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(weight);
    }
}

/// The store's books: what the cache holds, store-wide and per share bucket (a bucket leaves
/// the map when it holds nothing), and the schedule of deadlines.
#[derive(Default)]
struct Ledger {
    total: Usage,
    /// The pushed requests among `total`'s entries (the rest are remembered ids).
    requests: u64,
    buckets: HashMap<StoreKey, Usage, BuildHasherDefault<DigestHasher>>,
    /// Keys by the instant (Unix milliseconds, injected clock) their value dies: all of a
    /// filing's values are dead once `now` reaches it. A key whose value moves its deadline (an
    /// open) is filed again; a filing whose value left, or lives on under a later filing, is
    /// passed over when it comes due.
    due: BTreeMap<u64, Vec<StoreKey>>,
}

impl Ledger {
    fn add(&mut self, charged: &Charged) {
        self.total.add(charged.weight);
        self.requests += u64::from(charged.is_request());
        for bucket in charged.buckets() {
            self.buckets.entry(*bucket).or_default().add(charged.weight);
        }
    }

    fn sub(&mut self, charged: &Charged) {
        self.total.sub(charged.weight);
        self.requests = self
            .requests
            .saturating_sub(u64::from(charged.is_request()));
        for bucket in charged.buckets() {
            if let Some(usage) = self.buckets.get_mut(bucket) {
                usage.sub(charged.weight);
                if usage.entries == 0 {
                    self.buckets.remove(bucket);
                }
            }
        }
    }

    /// Whether one more value of `weight` fits every share of `charge`, then the store.
    fn check(
        &self,
        limits: &StoreLimits,
        weight: u64,
        charge: Option<&Charge>,
    ) -> Result<(), StoreError> {
        for share in charge.into_iter().flat_map(Charge::shares) {
            let used = self
                .buckets
                .get(share.bucket())
                .copied()
                .unwrap_or_default();
            if !share.admits(used.entries, used.bytes, weight) {
                return Err(StoreError::ShareExhausted);
            }
        }
        if limits.admits(self.total.entries, self.total.bytes, weight) {
            Ok(())
        } else {
            Err(StoreError::Full)
        }
    }
}

impl Ledger {
    /// Files `key` under the instant its value is dead from.
    fn file(&mut self, key: StoreKey, dead_from_ms: u64) {
        self.due.entry(dead_from_ms).or_default().push(key);
    }

    /// The first instant at which something filed is dead (`u64::MAX`: nothing filed).
    fn next_due_ms(&self) -> u64 {
        self.due.first_key_value().map_or(u64::MAX, |(at, _)| *at)
    }

    /// Takes out up to `most` keys filed under instants that `now_ms` has reached.
    fn take_due(&mut self, now_ms: u64, most: usize, out: &mut Vec<StoreKey>) {
        while out.len() < most {
            let Some(mut entry) = self.due.first_entry() else {
                return;
            };
            if *entry.key() > now_ms {
                return;
            }
            let keys = entry.get_mut();
            let take = keys.len().min(most - out.len());
            out.extend(keys.drain(keys.len() - take..));
            if keys.is_empty() {
                entry.remove();
            }
        }
    }
}

/// State shared by the store handles.
struct Shared {
    limits: StoreLimits,
    ledger: Mutex<Ledger>,
    /// Each operation on a key holds the lock of the key's stripe (see the module docs).
    key_locks: [Mutex<()>; KEY_LOCK_STRIPES],
    /// At most [`Ledger::next_due_ms`] (both change under the books' lock): a put reads it,
    /// without that lock, to learn that there is nothing to sweep.
    next_due_ms: AtomicU64,
}

impl Shared {
    /// The lock of `key`'s stripe, held for one operation on the key: a look at its entry and
    /// the change that follows are then one step for every other operation on it.
    fn lock(&self, key: &StoreKey) -> MutexGuard<'_, ()> {
        let stripe = usize::from(key.as_bytes()[31]) % KEY_LOCK_STRIPES;
        // Nothing is guarded but the sequence of moka calls: a panic leaves nothing to repair.
        self.key_locks[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The books. A panic while they were held cannot leave them half-updated (every update is
    /// a few additions), so a poisoned lock is used as it is.
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves room for a new value under `key`, charged as `charged`, against every limit of
    /// `charge` and the store's, and files it for the sweep: from here on the books count it.
    /// Called under the key's lock, right before the `insert` that stores the value.
    fn admit(&self, key: StoreKey, slot: &Slot, charge: Option<&Charge>) -> Result<(), StoreError> {
        let mut ledger = self.ledger();
        ledger.check(&self.limits, slot.charged.weight, charge)?;
        ledger.add(&slot.charged);
        self.file(&mut ledger, key, slot.dead_from_ms());
        Ok(())
    }

    fn file(&self, ledger: &mut Ledger, key: StoreKey, dead_from_ms: u64) {
        ledger.file(key, dead_from_ms);
        self.next_due_ms.fetch_min(dead_from_ms, Ordering::Relaxed);
    }

    fn would_admit(&self, weight: u64, charge: Option<&Charge>) -> bool {
        self.ledger().check(&self.limits, weight, charge).is_ok()
    }

    /// Gives back the charge of a value that left the cache.
    fn release(&self, charged: &Charged) {
        self.ledger().sub(charged);
    }
}

/// Keys are SHA-256 digests already: hashing them again with SipHash was a tenth of a push
/// (benches/layer.rs profile). This hasher keeps the digest's first eight bytes, which
/// `StoreKey`'s `Hash` feeds it.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if `StoreKey`'s `Hash` changes; stay correct, if slower.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, digest_prefix: u64) {
        self.0 = digest_prefix;
    }
}

impl MemoryStore {
    /// A store that holds at most `capacity` live entries (pushed requests and remembered ids
    /// together) weighing at most [`DEFAULT_MAX_STORED_BYTES`](super::DEFAULT_MAX_STORED_BYTES).
    /// Size it as at least peak pushes per second × request lifetime, plus JWT ids remembered
    /// over their lifetime, with a safety factor.
    #[must_use]
    pub fn with_capacity(capacity: u64) -> Self {
        Self::with_limits(StoreLimits::new(capacity, super::DEFAULT_MAX_STORED_BYTES))
    }

    /// A store within `limits` (entries and bytes; its partitions are ignored: this store keeps
    /// one exact count).
    #[must_use]
    pub fn with_limits(limits: StoreLimits) -> Self {
        let limits = StoreLimits::new(limits.max_entries(), limits.max_bytes());
        let shared = Arc::new(Shared {
            limits,
            ledger: Mutex::new(Ledger::default()),
            key_locks: std::array::from_fn(|_| Mutex::new(())),
            next_due_ms: AtomicU64::new(u64::MAX),
        });
        // No size limit, no expiry, no listener: the books bound the cache, and the sweep
        // removes the dead (see the module docs).
        let cache = Cache::builder()
            .eviction_policy(EvictionPolicy::lru())
            .build_with_hasher(BuildHasherDefault::default());
        Self { cache, shared }
    }

    /// Stores `slot` unless an alive entry holds `key` (`Ok(false)`); admits it against the
    /// store's limits and the shares of `charge`.
    fn insert(
        &self,
        key: StoreKey,
        slot: Slot,
        charge: Option<&Charge>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.sweep(now_ms, SWEEP_BATCH);
        let mut retried = false;
        loop {
            let refusal = {
                let _key = self.shared.lock(&key);
                let current = self.cache.get(&key);
                if current.as_ref().is_some_and(|slot| !slot.is_dead(now_ms)) {
                    return Ok(false);
                }
                // New, or replacing a dead entry, which keeps its charge until it is replaced:
                // the admission is conservative.
                match self.shared.admit(key, &slot, charge) {
                    Ok(()) => {
                        self.cache.insert(key, slot);
                        if let Some(dead) = current {
                            self.shared.release(&dead.charged);
                        }
                        return Ok(true);
                    }
                    Err(refusal) => refusal,
                }
            };
            if retried {
                // The layer logs the refusal it answers, once (`crate::outcome`).
                return Err(refusal);
            }
            retried = true;
            // Before a refusal: everything dead by `now`.
            if !self.shared.would_admit(slot.charged.weight, charge) {
                self.sweep(now_ms, usize::MAX);
            }
        }
    }

    /// Removes up to `most` entries among those filed as dead by `now_ms`, and gives back their
    /// charges.
    fn sweep(&self, now_ms: u64, most: usize) {
        if now_ms < self.shared.next_due_ms.load(Ordering::Relaxed) {
            return;
        }
        let mut due = Vec::new();
        {
            let mut ledger = self.shared.ledger();
            ledger.take_due(now_ms, most, &mut due);
            self.shared
                .next_due_ms
                .store(ledger.next_due_ms(), Ordering::Relaxed);
        }
        for key in due {
            let _key = self.shared.lock(&key);
            // Passed over: a value taken already, or alive under a later filing.
            if let Some(slot) = self.cache.get(&key).filter(|slot| slot.is_dead(now_ms)) {
                self.remove(&key, &slot.charged);
            }
        }
    }

    /// Removes `key`'s entry, which its lock holder saw charged as `charged`, and gives that
    /// back.
    fn remove(&self, key: &StoreKey, charged: &Charged) {
        self.cache.invalidate(key);
        self.shared.release(charged);
    }

    /// Runs `alive` on `key`'s entry under the key's lock, if it holds one alive at `now_ms`;
    /// a dead one is removed (it only holds memory: a dead record is never handed out, D3).
    fn with_live_entry<T>(
        &self,
        key: &StoreKey,
        now_ms: u64,
        alive: impl FnOnce(Slot) -> Option<T>,
    ) -> Option<T> {
        let _key = self.shared.lock(key);
        let slot = self.cache.get(key)?;
        if slot.is_dead(now_ms) {
            self.remove(key, &slot.charged);
            return None;
        }
        alive(slot)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the entries: records can carry personal data (RFC 9126 §8).
        let (total, buckets) = {
            let ledger = self.shared.ledger();
            (ledger.total, ledger.buckets.len())
        };
        f.debug_struct("MemoryStore")
            .field("max_entries", &self.shared.limits.max_entries())
            .field("max_bytes", &self.shared.limits.max_bytes())
            .field("entries", &total.entries)
            .field("bytes", &total.bytes)
            .field("share_buckets", &buckets)
            .finish_non_exhaustive()
    }
}

impl ParStore for MemoryStore {
    fn limits(&self) -> StoreLimits {
        self.shared.limits
    }

    fn put(
        &self,
        key: StoreKey,
        record: Record,
        charge: Charge,
        now: SystemTime,
    ) -> StoreFuture<'_, ()> {
        let slot = Slot {
            charged: Charged::record(&record, &charge),
            state: State::Pushed(record),
        };
        let put = match self.insert(key, slot, Some(&charge), unix_millis(now)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Exists),
            Err(refusal) => Err(refusal),
        };
        Box::pin(std::future::ready(put))
    }

    /// Strict one-time use. Removes a pushed record that was never opened; an opened record
    /// (consumption at completion) is only ever consumed by [`ParStore::complete`], so `take`
    /// answers `None` for it and leaves it. The layer uses one mode per deployment, never both
    /// on one key.
    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        let taken = self.with_live_entry(&key, unix_millis(now), |slot| match slot.state {
            State::Pushed(record) => {
                self.remove(&key, &slot.charged);
                Some(record)
            }
            _ => None,
        });
        Box::pin(std::future::ready(Ok(taken)))
    }

    fn open(
        &self,
        key: StoreKey,
        now: SystemTime,
        window: Duration,
    ) -> StoreFuture<'_, Option<Record>> {
        let now_ms = unix_millis(now);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let keep_until_ms = now_ms.saturating_add(window_ms);
        let opened = self.with_live_entry(&key, now_ms, |slot| match slot.state {
            // First open: start the window. Same key and same charge: no admission; filed again
            // for its new deadline.
            State::Pushed(record) => {
                let state = State::Opened {
                    record: record.clone(),
                    keep_until_ms,
                };
                let charged = slot.charged;
                self.cache.insert(key, Slot { state, charged });
                let mut ledger = self.shared.ledger();
                self.shared.file(&mut ledger, key, keep_until_ms);
                drop(ledger);
                (now_ms < keep_until_ms).then_some(record)
            }
            State::Opened { record, .. } => Some(record),
            State::Remembered { .. } => None,
        });
        Box::pin(std::future::ready(Ok(opened)))
    }

    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        let completed = self.with_live_entry(&key, unix_millis(now), |slot| match slot.state {
            State::Opened { .. } => {
                self.remove(&key, &slot.charged);
                Some(())
            }
            _ => None,
        });
        Box::pin(std::future::ready(Ok(completed.is_some())))
    }

    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        let slot = Slot {
            state: State::Remembered {
                until_ms: unix_millis(until),
            },
            charged: Charged::remembered(),
        };
        Box::pin(std::future::ready(self.insert(
            key,
            slot,
            None,
            unix_millis(now),
        )))
    }

    /// Exact: the records the books hold and alive at `now` (remembered ids not included).
    fn stored_requests(&self, now: SystemTime) -> StoreFuture<'_, Option<u64>> {
        self.sweep(unix_millis(now), usize::MAX);
        let requests = self.shared.ledger().requests;
        Box::pin(std::future::ready(Ok(Some(requests))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Share;

    fn t0() -> SystemTime {
        // Whole milliseconds, so that `t0 + n ms` is exactly what the records store.
        SystemTime::UNIX_EPOCH + Duration::from_millis(unix_millis(SystemTime::now()))
    }

    impl MemoryStore {
        /// The books against the cache at `now`: every entry counted once, nothing else.
        fn ledger_is_consistent(&self, now: SystemTime) -> bool {
            let _ = now;
            self.cache.run_pending_tasks();
            let mut expected = Ledger::default();
            for (_, slot) in self.cache.iter() {
                expected.add(&slot.charged);
            }
            let ledger = self.shared.ledger();
            ledger.total == expected.total
                && ledger.requests == expected.requests
                && ledger.buckets == expected.buckets
        }
    }

    fn key(n: u32) -> StoreKey {
        StoreKey::derive("https://as.example", "client", &n.to_be_bytes())
    }

    fn count(store: &MemoryStore) -> u64 {
        store.shared.ledger().total.entries
    }

    fn bucket(name: &str) -> StoreKey {
        StoreKey::derive_tagged(b"test/share", "https://as.example", name, b"")
    }

    fn unlimited() -> Charge {
        Charge::new(Share::unlimited(bucket("client")))
    }

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn count_returns_to_zero_after_takes_and_completes() {
        let store = MemoryStore::with_capacity(10);
        let now = t0();
        for n in 0..4 {
            store
                .put(key(n), Record::new(now + MIN, "p"), unlimited(), now)
                .await
                .unwrap();
        }
        assert_eq!(count(&store), 4);
        assert!(store.take(key(0), now).await.unwrap().is_some());
        assert!(store.take(key(1), now).await.unwrap().is_some());
        assert!(store.open(key(2), now, MIN).await.unwrap().is_some());
        assert_eq!(count(&store), 2, "opening replaces the entry in place");
        assert!(store.complete(key(2), now).await.unwrap());
        // A dead record is removed by `take` without being handed out.
        assert!(store.take(key(3), now + MIN).await.unwrap().is_none());
        assert_eq!(count(&store), 0);
        store.cache.run_pending_tasks();
        assert_eq!(store.cache.entry_count(), 0);
    }

    /// The books (store-wide and per bucket, entries and bytes) return to zero, and buckets
    /// leave the map, whichever way the values leave: take, complete, a dead record replaced
    /// under its key, a dead remembered id renewed. (Sweeps: `entries_dead_by_the_injected_clock…`.)
    #[tokio::test]
    async fn books_return_to_zero_whichever_way_values_leave() {
        let store = MemoryStore::with_limits(StoreLimits::new(4, 1 << 20));
        let now = t0();
        let group = Share::new(bucket("public"), 3, 1 << 20);
        let spa = Charge::new(Share::new(bucket("spa"), 3, 1 << 20)).with_group(group);
        let web = Charge::new(Share::new(bucket("web"), 3, 1 << 20));
        let record = |payload: &'static str| Record::new(now + MIN, payload);
        store.put(key(0), record("a"), spa, now).await.unwrap();
        store.put(key(1), record("bb"), spa, now).await.unwrap();
        store.put(key(2), record("ccc"), web, now).await.unwrap();
        assert!(store.remember(key(3), now + MIN, now).await.unwrap());
        let books = |store: &MemoryStore| {
            let ledger = store.shared.ledger();
            let usage = |name: &str| ledger.buckets.get(&bucket(name)).copied();
            (ledger.total, usage("spa"), usage("public"), usage("web"))
        };
        let w = RECORD_OVERHEAD_BYTES;
        let used = |entries, bytes| Some(Usage { entries, bytes });
        assert_eq!(
            books(&store),
            (
                Usage {
                    entries: 4,
                    bytes: 6 + 4 * w
                },
                used(2, 3 + 2 * w),
                used(2, 3 + 2 * w),
                used(1, 3 + w)
            )
        );

        assert!(store.take(key(0), now).await.unwrap().is_some());
        assert!(store.open(key(1), now, MIN).await.unwrap().is_some());
        assert_eq!(books(&store).1, used(1, 2 + w), "opening keeps the charge");
        assert!(store.complete(key(1), now).await.unwrap());
        assert_eq!(books(&store).1, None, "an empty bucket leaves the map");
        assert_eq!(books(&store).2, None);

        // key(2) and the remembered id are dead a minute later: a put or a remember under the
        // same key replaces them, and they give their charge back.
        let later = now + MIN;
        store
            .put(key(2), Record::new(later + MIN, "dddd"), web, later)
            .await
            .unwrap();
        assert_eq!(
            books(&store).3,
            used(1, 4 + w),
            "the replacement, charged once"
        );
        assert!(store.remember(key(3), later + MIN, later).await.unwrap());
        assert_eq!(
            books(&store).0,
            Usage {
                entries: 2,
                bytes: 4 + 2 * w
            }
        );
        assert!(store.take(key(2), later).await.unwrap().is_some());
        let (total, ..) = books(&store);
        assert_eq!(
            total,
            Usage {
                entries: 1,
                bytes: w
            },
            "the remembered id"
        );
        assert!(store.shared.ledger().buckets.is_empty());
    }

    #[tokio::test]
    async fn capacity_n_accepts_n_refuses_the_next_and_recovers_after_a_take() {
        let store = MemoryStore::with_capacity(5);
        let now = t0();
        for n in 0..4 {
            store
                .put(key(n), Record::new(now + MIN, "p"), unlimited(), now)
                .await
                .unwrap();
        }
        // Replay memory shares the capacity.
        assert!(store.remember(key(100), now + MIN, now).await.unwrap());
        assert!(matches!(
            store
                .put(key(4), Record::new(now + MIN, "p"), unlimited(), now)
                .await,
            Err(StoreError::Full)
        ));
        assert!(matches!(
            store.remember(key(101), now + MIN, now).await,
            Err(StoreError::Full)
        ));
        // A refused admission is given back, and opening at full capacity needs none.
        assert_eq!(count(&store), 5);
        assert!(store.open(key(0), now, MIN).await.unwrap().is_some());
        assert!(store.take(key(1), now).await.unwrap().is_some());
        store
            .put(key(4), Record::new(now + MIN, "p"), unlimited(), now)
            .await
            .unwrap();
        assert_eq!(count(&store), 5);
    }

    #[tokio::test]
    async fn capacity_zero_refuses_everything() {
        let store = MemoryStore::with_capacity(0);
        let now = t0();
        assert!(matches!(
            store
                .put(key(0), Record::new(now + MIN, "p"), unlimited(), now)
                .await,
            Err(StoreError::Full)
        ));
        assert_eq!(count(&store), 0);
    }

    #[tokio::test]
    async fn entries_dead_by_the_injected_clock_do_not_hold_capacity() {
        let store = MemoryStore::with_capacity(2);
        let now = t0();
        let short = Duration::from_secs(1);
        store
            .put(key(0), Record::new(now + short, "p"), unlimited(), now)
            .await
            .unwrap();
        assert!(store.remember(key(1), now + short, now).await.unwrap());
        // Real time barely moved, but `now` says both are dead.
        let later = now + Duration::from_secs(2);
        store
            .put(key(2), Record::new(later + MIN, "p"), unlimited(), later)
            .await
            .unwrap();
        store
            .put(key(3), Record::new(later + MIN, "p"), unlimited(), later)
            .await
            .unwrap();
        assert_eq!(count(&store), 2);
        assert!(matches!(
            store
                .put(key(4), Record::new(later + MIN, "p"), unlimited(), later)
                .await,
            Err(StoreError::Full)
        ));
    }

    #[tokio::test]
    async fn a_dead_entry_under_the_same_key_is_replaced() {
        let store = MemoryStore::with_capacity(1);
        let now = t0();
        store
            .put(key(0), Record::new(now + MIN, "old"), unlimited(), now)
            .await
            .unwrap();
        let later = now + MIN;
        store
            .put(key(0), Record::new(later + MIN, "new"), unlimited(), later)
            .await
            .unwrap();
        assert_eq!(count(&store), 1);
        let record = store.take(key(0), later).await.unwrap().unwrap();
        assert_eq!(record.payload().as_ref(), b"new");
        assert_eq!(count(&store), 0);
    }

    #[tokio::test]
    async fn take_leaves_an_opened_record_to_complete() {
        let store = MemoryStore::with_capacity(1);
        let now = t0();
        store
            .put(key(0), Record::new(now + MIN, "p"), unlimited(), now)
            .await
            .unwrap();
        assert!(store.open(key(0), now, MIN).await.unwrap().is_some());
        assert!(store.take(key(0), now).await.unwrap().is_none());
        assert!(store.complete(key(0), now).await.unwrap());
    }

    /// Entries in the cache (moka's count, after its pending work).
    fn cached(store: &MemoryStore) -> u64 {
        store.cache.run_pending_tasks();
        store.cache.entry_count()
    }

    /// The store's own expiry: puts sweep what is dead by their `now`, a few keys each, and give
    /// the charges back; a record taken already, or opened (and so filed again for its window),
    /// is passed over when its first deadline comes.
    #[tokio::test]
    async fn later_puts_sweep_the_dead_and_pass_over_the_rest() {
        let store = MemoryStore::with_capacity(100);
        let now = t0();
        let soon = Duration::from_millis(30);
        let dying = SWEEP_BATCH as u32 * 2 + 3;
        for n in 0..dying {
            store
                .put(key(n), Record::new(now + soon, "p"), unlimited(), now)
                .await
                .unwrap();
        }
        // Two of them leave before their deadline: one taken, one opened for a minute.
        assert!(store.take(key(0), now).await.unwrap().is_some());
        assert!(store.open(key(1), now, MIN).await.unwrap().is_some());
        assert_eq!(
            (count(&store), cached(&store)),
            (u64::from(dying) - 1, u64::from(dying) - 1)
        );

        let later = now + Duration::from_millis(80);
        let mut n = 1000;
        while cached(&store) > 1 + u64::from(n - 1000) {
            assert!(n < 1000 + dying, "each put sweeps up to SWEEP_BATCH keys");
            store
                .put(key(n), Record::new(later + MIN, "p"), unlimited(), later)
                .await
                .unwrap();
            n += 1;
        }
        // The opened record lives on; the books count it and the new records, nothing dead.
        assert_eq!(count(&store), 1 + u64::from(n - 1000));
        assert!(store.complete(key(1), later).await.unwrap());
        assert!(store.ledger_is_consistent(later));
    }

    /// At its limit, a put sweeps everything dead by its `now` before it refuses, to the
    /// millisecond: not a second late, not before.
    #[tokio::test]
    async fn a_full_store_sweeps_every_dead_entry_before_it_refuses() {
        let store = MemoryStore::with_capacity(SWEEP_BATCH as u64 * 3);
        let now = t0();
        for n in 0..SWEEP_BATCH as u32 * 3 {
            let dies = now + Duration::from_millis(u64::from(n % 3) + 1);
            store
                .put(key(n), Record::new(dies, "p"), unlimited(), now)
                .await
                .unwrap();
        }
        let full = |at: Duration| {
            let store = &store;
            async move {
                store
                    .put(
                        key(9_999),
                        Record::new(now + MIN, "p"),
                        unlimited(),
                        now + at,
                    )
                    .await
            }
        };
        assert!(matches!(full(Duration::ZERO).await, Err(StoreError::Full)));
        // At +1 ms a third are dead: the put sweeps them all, not a batch, and is admitted.
        full(Duration::from_millis(1)).await.unwrap();
        assert_eq!(count(&store), SWEEP_BATCH as u64 * 2 + 1);
        assert!(store.ledger_is_consistent(now + Duration::from_millis(1)));
    }

    /// The key locks make a look at an entry and the change that follows one step: without them
    /// two threads could both find a jti free and both remember it first, or one could open a
    /// record (putting it back as opened) that another had just completed, which then completes
    /// twice. Threads rather than tasks, so that the steps really overlap.
    #[test]
    fn operations_on_one_key_are_one_step_each() {
        use futures_util::FutureExt as _;
        const THREADS: usize = 4;
        const ROUNDS: u32 = 400;
        let store = MemoryStore::with_capacity(u64::from(ROUNDS) * 4);
        let now = t0();
        let ready = |fut: StoreFuture<'_, bool>| {
            fut.now_or_never()
                .expect("the memory store answers at once")
                .expect("and does not fail")
        };
        for round in 0..ROUNDS {
            let (jti, request) = (key(1_000_000 + round), key(round));
            store
                .put(request, Record::new(now + MIN, "p"), unlimited(), now)
                .now_or_never()
                .unwrap()
                .unwrap();
            let barrier = std::sync::Barrier::new(THREADS);
            let (firsts, completions) = (AtomicU64::new(0), AtomicU64::new(0));
            std::thread::scope(|scope| {
                for _ in 0..THREADS {
                    scope.spawn(|| {
                        barrier.wait();
                        let first = ready(store.remember(jti, now + MIN, now));
                        firsts.fetch_add(u64::from(first), Ordering::Relaxed);
                        // Every user's flow opens the record, then completes it.
                        let _ = store.open(request, now, MIN).now_or_never().unwrap();
                        let completed = ready(store.complete(request, now));
                        completions.fetch_add(u64::from(completed), Ordering::Relaxed);
                    });
                }
            });
            assert_eq!(firsts.into_inner(), 1, "round {round}: one first remember");
            assert_eq!(completions.into_inner(), 1, "round {round}: one completion");
        }
        assert_eq!(count(&store), u64::from(ROUNDS), "the remembered ids only");
    }

    #[test]
    fn debug_shows_no_entries() {
        let store = MemoryStore::with_limits(StoreLimits::new(7, 4096));
        let text = format!("{store:?}");
        assert!(
            text.starts_with(
                "MemoryStore { max_entries: 7, max_bytes: 4096, entries: 0, bytes: 0, share_buckets: 0"
            ),
            "{text}"
        );
    }
}
