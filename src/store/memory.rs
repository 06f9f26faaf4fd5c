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
//! (`insert`, `remove`, `invalidate`), so "check the state, then change it" is atomic: of 1,000
//! concurrent takes exactly one removes the record, of many concurrent `complete`s exactly one
//! wins, of concurrent `remember`s of one id exactly one is first, and an `open` can never
//! resurrect a record that a `complete` just removed (rust-notes D3). moka's own per-key
//! serialisation, `entry(key).and_compute_with(..)`, does the same with a waiter inserted into
//! and removed from a second concurrent table and two allocations for every call: about 2,500
//! instructions a push and as many a redemption (benches/layer.rs), where an uncontended mutex
//! costs a few dozen. No operation on the store touches a key without its lock; moka's own
//! evictions (expiry) need none, they only ever remove what is dead.
//!
//! **Each key holds a small state** ([`Slot`]): `Pushed` (waiting for a strict `take` or a first
//! `open`), `Opened` (consumption at completion: kept until `keep_until`), or `Remembered` (replay
//! memory). The `now` passed in is the only clock: every decision re-checks the stored deadline
//! against it, because moka hands out entries that its own timers consider expired (`remove`
//! returns them, D3) and because moka's clock is not the layer's (tests use a fake clock, D6).
//!
//! **Budgets are exact and never enforced by moka.** moka's default TinyLFU policy silently drops
//! new entries when full (D2), and its `entry_count` is an estimate. So the cache uses LRU with
//! `max_capacity` well above the entry limit (moka never evicts a live entry for size), and the
//! store keeps its own books in a [`Ledger`]: entries and bytes store-wide and per share bucket,
//! counting the values physically in the cache plus the admissions still in flight. A new value
//! needs an admission, reserved atomically against every limit it is charged to (its shares
//! first, then the store); a transition that keeps the value's charge (open) needs none. Each
//! value carries what it was charged to ([`Charged`]), so that its removal gives back exactly
//! that.
//!
//! The books are kept by moka's own hooks rather than by the code around the calls, so that they
//! stay exact however a value leaves, and are never counted twice. An admission reserves the
//! new value's charge, in the one lock of the books a put takes, under the key's lock, right
//! before the `insert` that stores the value (the reservation is the value's charge from then
//! on). The [`Expiry`]
//! callbacks, which moka calls synchronously right after it has stored a value, charge the one
//! kind of value stored without an admission, an opened record (same key, same charge as the
//! pushed record it replaces). The eviction listener, which moka calls for every value leaving
//! the cache (taken, completed, replaced, expired), subtracts its charge. Counting replacements
//! on both sides also covers a case moka reports oddly: an entry its timers expired but had not
//! yet evicted is invisible to `get` (seen as absent) yet reported as `Replaced` when
//! overwritten. One mutex guards the books: an admission checks and reserves up to three
//! counters (store, owner, group) as one step, and it is never held while calling moka.
//! Only opening a record counts it twice for an instant (its new state is charged before its old
//! one is given back), which can refuse a concurrent put at a limit but never admit one past it.
//!
//! When an admission is refused, the store first lets moka evict what its timers expired
//! (`run_pending_tasks`; moka's timer wheel evicts on its next tick, about a second after the
//! deadline, and hides expired entries from lookups until then), then, if some entry is known to
//! be dead by `now`, sweeps dead entries
//! (at most once per [`SWEEP_INTERVAL_MS`] of `now`, so a flood of pushes against a full store cannot
//! turn every refusal into a full scan), and only then refuses with [`StoreError::ShareExhausted`]
//! or [`StoreError::Full`].
//!
//! One corner stays conservative: replacing a dead entry under the *same* key asks for an
//! admission of the new value while the dead one still counts (crediting the dead one could race
//! with moka's own eviction of it and over-admit), so at a limit that put waits for the sweep.
//! Handles are random, so only a replayed JWT id can meet it.
//!
//! **moka's per-entry expiry only reclaims memory.** Each value carries its remaining lifetime,
//! computed at write time from the injected `now`, plus [`RECLAIM_GRACE`]: moka must never drop
//! an entry the layer's clock still considers alive, so its timer fires a little late rather than
//! early.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant, SystemTime},
};

use moka::{notification::RemovalCause, policy::EvictionPolicy, sync::Cache, Expiry};

use super::{
    unix_millis, Charge, ParStore, Record, StoreError, StoreFuture, StoreKey, StoreLimits,
    RECORD_OVERHEAD_BYTES,
};

/// How long after its deadline (by the injected clock) moka may reclaim an entry. Covers the gap
/// between the layer's clock and moka's monotonic one: a `now` read before a slow step, a fake
/// clock in tests, a wall clock stepped back by NTP.
const RECLAIM_GRACE: Duration = Duration::from_secs(10);

/// Minimum distance, in `now` milliseconds, between two sweeps for dead entries.
const SWEEP_INTERVAL_MS: u64 = 1_000;

/// Stripes of the key locks (see the module docs): enough that cores working on different keys
/// seldom meet.
const KEY_LOCK_STRIPES: usize = 64;

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
    reclaim_grace: Duration,
}

/// What one key holds: its state, what it is charged to, and when moka may reclaim it.
#[derive(Clone)]
struct Slot {
    state: State,
    charged: Charged,
    reclaim_after: Duration,
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

/// The store's books: what the cache holds plus the admissions in flight, store-wide and per
/// share bucket. A bucket leaves the map when it holds nothing.
#[derive(Default)]
struct Ledger {
    total: Usage,
    /// The pushed requests among `total`'s entries (the rest are remembered ids).
    requests: u64,
    buckets: HashMap<StoreKey, Usage, BuildHasherDefault<DigestHasher>>,
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

/// State shared by the store handles and moka's hooks.
struct Shared {
    limits: StoreLimits,
    ledger: Mutex<Ledger>,
    /// Each operation on a key holds the lock of the key's stripe (see the module docs).
    key_locks: [Mutex<()>; KEY_LOCK_STRIPES],
    /// A lower bound of the earliest `dead_from_ms` of any stored value, or `u64::MAX`; a sweep
    /// is only worth running once `now` has reached it.
    sweep_from_ms: AtomicU64,
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

    /// Reserves room for one new value charged as `charged`, against every limit of `charge`
    /// and the store's: from here on the books count it. Called under the key's lock, right
    /// before the `insert` that stores the value.
    fn admit(&self, charged: &Charged, charge: Option<&Charge>) -> Result<(), StoreError> {
        let mut ledger = self.ledger();
        ledger.check(&self.limits, charged.weight, charge)?;
        ledger.add(charged);
        Ok(())
    }

    fn would_admit(&self, weight: u64, charge: Option<&Charge>) -> bool {
        self.ledger().check(&self.limits, weight, charge).is_ok()
    }

    /// Called by moka right after it stored `slot`: a value stored by a put or a remember was
    /// charged by its admission; an opened record, stored in place of the pushed one without an
    /// admission, is charged now (moka's listener gives the pushed one's charge back).
    fn stored(&self, slot: &Slot) {
        if matches!(slot.state, State::Opened { .. }) {
            self.ledger().add(&slot.charged);
        }
        self.sweep_from_ms
            .fetch_min(slot.dead_from_ms(), Ordering::AcqRel);
    }

    /// Called for every value that leaves the cache.
    fn released(&self, slot: &Slot) {
        self.ledger().sub(&slot.charged);
    }
}

/// moka's per-entry expiry. Also the hook that charges opened records (see the module docs):
/// moka calls exactly one of these two methods for each value it stores, synchronously after
/// storing.
struct Reclaim(Arc<Shared>);

impl Expiry<StoreKey, Slot> for Reclaim {
    fn expire_after_create(&self, _key: &StoreKey, slot: &Slot, _at: Instant) -> Option<Duration> {
        self.0.stored(slot);
        Some(slot.reclaim_after)
    }

    fn expire_after_update(
        &self,
        _key: &StoreKey,
        slot: &Slot,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        self.0.stored(slot);
        Some(slot.reclaim_after)
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
        Self::build(limits, RECLAIM_GRACE)
    }

    fn build(limits: StoreLimits, reclaim_grace: Duration) -> Self {
        let limits = StoreLimits::new(limits.max_entries(), limits.max_bytes());
        let shared = Arc::new(Shared {
            limits,
            ledger: Mutex::new(Ledger::default()),
            key_locks: std::array::from_fn(|_| Mutex::new(())),
            sweep_from_ms: AtomicU64::new(u64::MAX),
        });
        let listener = Arc::clone(&shared);
        let capacity = limits.max_entries();
        let cache = Cache::builder()
            // Headroom: moka's size bookkeeping lags behind the exact count; it must never be
            // the one that decides (it would evict a live request).
            .max_capacity(capacity.saturating_add(capacity / 4).saturating_add(64))
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(Reclaim(Arc::clone(&shared)))
            .eviction_listener(move |_key, slot: Slot, _cause: RemovalCause| {
                listener.released(&slot);
            })
            .build_with_hasher(BuildHasherDefault::default());
        Self {
            cache,
            shared,
            reclaim_grace,
        }
    }

    fn reclaim_after(&self, dead_from_ms: u64, now_ms: u64) -> Duration {
        Duration::from_millis(dead_from_ms.saturating_sub(now_ms))
            .saturating_add(self.reclaim_grace)
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
        let mut retried = false;
        loop {
            let refusal = {
                let _key = self.shared.lock(&key);
                match self.cache.get(&key) {
                    Some(current) if !current.is_dead(now_ms) => return Ok(false),
                    // New, or replacing a dead entry (which keeps its charge until moka's
                    // listener gives it back, so the admission is conservative).
                    _ => match self.shared.admit(&slot.charged, charge) {
                        Ok(()) => {
                            self.cache.insert(key, slot.clone());
                            return Ok(true);
                        }
                        Err(refusal) => refusal,
                    },
                }
            };
            if retried {
                // The layer logs the refusal it answers, once (`crate::outcome`).
                return Err(refusal);
            }
            retried = true;
            self.make_room(slot.charged.weight, charge, now_ms);
        }
    }

    /// Frees what can be freed before a refusal: entries moka's timers expired, then (at most
    /// once per [`SWEEP_INTERVAL_MS`]) entries that are dead by `now`.
    fn make_room(&self, weight: u64, charge: Option<&Charge>, now_ms: u64) {
        self.cache.run_pending_tasks();
        if self.shared.would_admit(weight, charge) {
            return;
        }
        let bound = self.shared.sweep_from_ms.load(Ordering::Acquire);
        // Only one sweeper at a time: the winner parks the bound at "never" while it scans;
        // values stored meanwhile lower it again through `Shared::stored`.
        if now_ms < bound
            || self
                .shared
                .sweep_from_ms
                .compare_exchange(bound, u64::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let mut next = u64::MAX;
        let mut dead = Vec::new();
        for (key, slot) in self.cache.iter() {
            if slot.is_dead(now_ms) {
                dead.push(*key);
            } else {
                next = next.min(slot.dead_from_ms());
            }
        }
        for key in dead {
            let _key = self.shared.lock(&key);
            if self
                .cache
                .get(&key)
                .is_some_and(|slot| slot.is_dead(now_ms))
            {
                self.cache.invalidate(&key);
            }
        }
        let not_before = now_ms.saturating_add(SWEEP_INTERVAL_MS);
        self.shared
            .sweep_from_ms
            .fetch_min(next.max(not_before), Ordering::AcqRel);
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
        let now_ms = unix_millis(now);
        let slot = Slot {
            reclaim_after: self.reclaim_after(record.expires_at_millis(), now_ms),
            charged: Charged::record(&record, &charge),
            state: State::Pushed(record),
        };
        let put = match self.insert(key, slot, Some(&charge), now_ms) {
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
        let now_ms = unix_millis(now);
        let taken = {
            let _key = self.shared.lock(&key);
            match self.cache.get(&key) {
                // Dead entries of any kind go too: they only hold memory.
                Some(Slot {
                    state: State::Pushed(_),
                    ..
                }) => self.cache.remove(&key),
                Some(slot) if slot.is_dead(now_ms) => self.cache.remove(&key),
                _ => None,
            }
        };
        // Re-check what was removed (D3): a dead record is removed but not handed out.
        let record = match taken.map(|slot| slot.state) {
            Some(State::Pushed(record)) if record.is_alive(now) => Some(record),
            _ => None,
        };
        Box::pin(std::future::ready(Ok(record)))
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
        let opened = {
            let _key = self.shared.lock(&key);
            match self.cache.get(&key) {
                Some(slot) if slot.is_dead(now_ms) => {
                    self.cache.invalidate(&key);
                    None
                }
                // First open: start the window. Same key and same charge: no admission.
                Some(Slot {
                    state: State::Pushed(record),
                    charged,
                    ..
                }) => {
                    self.cache.insert(
                        key,
                        Slot {
                            state: State::Opened {
                                record: record.clone(),
                                keep_until_ms,
                            },
                            charged,
                            reclaim_after: self.reclaim_after(keep_until_ms, now_ms),
                        },
                    );
                    (now_ms < keep_until_ms).then_some(record)
                }
                Some(Slot {
                    state:
                        State::Opened {
                            record,
                            keep_until_ms,
                        },
                    ..
                }) if now_ms < keep_until_ms => Some(record),
                _ => None,
            }
        };
        Box::pin(std::future::ready(Ok(opened)))
    }

    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        let now_ms = unix_millis(now);
        let removed = {
            let _key = self.shared.lock(&key);
            match self.cache.get(&key) {
                Some(slot)
                    if slot.is_dead(now_ms) || matches!(slot.state, State::Opened { .. }) =>
                {
                    self.cache.remove(&key)
                }
                _ => None,
            }
        };
        let completed = matches!(
            removed.map(|slot| slot.state),
            Some(State::Opened { keep_until_ms, .. }) if now_ms < keep_until_ms
        );
        Box::pin(std::future::ready(Ok(completed)))
    }

    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        let now_ms = unix_millis(now);
        let until_ms = unix_millis(until);
        let slot = Slot {
            state: State::Remembered { until_ms },
            charged: Charged::remembered(),
            reclaim_after: self.reclaim_after(until_ms, now_ms),
        };
        Box::pin(std::future::ready(self.insert(key, slot, None, now_ms)))
    }

    /// Exact: the records the books hold (admissions in flight included, remembered ids not).
    fn stored_requests(&self, _now: SystemTime) -> StoreFuture<'_, Option<u64>> {
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
        // moka's timers have not fired (real time barely moved), but `now` says both are dead.
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

    /// moka's own timers (real time): an entry moka expired but has not evicted yet (invisible
    /// to `get`, yet reported as `Replaced` when overwritten) is not counted twice,
    /// and evicted entries give their place back. moka evicts on its timer wheel's next tick
    /// (about a second), hence the bounded polling.
    #[tokio::test]
    async fn moka_expiry_frees_capacity_without_leaking_the_count() {
        let store = MemoryStore::build(StoreLimits::new(3, u64::MAX), Duration::ZERO);
        let now = t0();
        let soon = Duration::from_millis(30);
        store
            .put(key(0), Record::new(now + soon, "p"), unlimited(), now)
            .await
            .unwrap();
        store
            .put(key(1), Record::new(now + soon, "p"), unlimited(), now)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let later = now + Duration::from_millis(80);
        store
            .put(key(0), Record::new(later + MIN, "new"), unlimited(), later)
            .await
            .unwrap();
        assert_eq!(
            count(&store),
            2,
            "key(0) replaced in place, key(1) not yet evicted"
        );
        store
            .put(key(2), Record::new(later + MIN, "p"), unlimited(), later)
            .await
            .unwrap();

        let mut admitted = false;
        for _ in 0..40 {
            match store
                .put(key(3), Record::new(later + MIN, "p"), unlimited(), later)
                .await
            {
                Ok(()) => {
                    admitted = true;
                    break;
                }
                Err(StoreError::Full) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert!(admitted, "moka's eviction of key(1) must free its place");
        assert_eq!(count(&store), 3);
        assert_eq!(
            store
                .take(key(0), later)
                .await
                .unwrap()
                .unwrap()
                .payload()
                .as_ref(),
            b"new"
        );
        assert!(store.take(key(2), later).await.unwrap().is_some());
        assert!(store.take(key(3), later).await.unwrap().is_some());
        assert_eq!(count(&store), 0);
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
