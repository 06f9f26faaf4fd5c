//! The in-memory store: one node, bounded, on `moka::sync::Cache`.
//!
//! The synchronous cache, not `moka::future::Cache`: every transition here is a short closure
//! that never awaits, and the async cache's per-call machinery (boxed futures, waiter maps) was
//! about a tenth of a push in the profile (rust-notes D1 allows the sync cache when, as here, no
//! `get_with` or blocking listener is used).
//!
//! # Design (why it looks like this)
//!
//! **Every mutation of a key goes through `entry(key).and_compute_with(..)`.** moka runs those
//! calls serially per key, so "check the state, then change it" is atomic: of 1,000 concurrent
//! takes exactly one removes the record, of many concurrent `complete`s exactly one wins, and an
//! `open` can never resurrect a record that a `complete` just removed. A plain `remove` or
//! `insert` would bypass that per-key lock, so none is used (rust-notes D3).
//!
//! **Each key holds a small state** ([`Slot`]): `Pushed` (waiting for a strict `take` or a first
//! `open`), `Opened` (consumption at completion: kept until `keep_until`), or `Remembered` (replay
//! memory). The `now` passed in is the only clock: every decision re-checks the stored deadline
//! against it, because moka hands out entries that its own timers consider expired (`remove`
//! returns them, D3) and because moka's clock is not the layer's (tests use a fake clock, D6).
//!
//! **Capacity is exact and never enforced by moka.** moka's default TinyLFU policy silently drops
//! new entries when full (D2), and its `entry_count` is an estimate. So the cache uses LRU with
//! `max_capacity` well above `capacity` (moka never evicts a live entry for size), and the store
//! keeps its own count in [`Shared::count`]: the number of values physically in the cache plus
//! the admissions still in flight. A new key needs an admission (`count < capacity`, reserved
//! atomically); a transition of a present key (open, replacing a dead entry) needs none because it
//! does not change the number of entries.
//!
//! The count is kept by moka's own hooks rather than by the code around the calls, so that it
//! stays exact when a caller's future is dropped half-way (hyper drops the service future when a
//! client disconnects): the [`Expiry`] callbacks, which moka calls synchronously right after it
//! has stored a value, add one; the eviction listener, which moka calls for every value leaving
//! the cache (taken, completed, replaced, expired), subtracts one; the admission guard gives its
//! reservation back when the operation ends, however it ends. Counting replacements on both sides
//! also covers a case moka reports oddly: an entry its timers expired but had not yet evicted is
//! invisible to `and_compute_with` (seen as absent) yet reported as `Replaced` when overwritten.
//!
//! When the count says full, the store first lets moka evict what its timers expired
//! (`run_pending_tasks`; moka's timer wheel evicts on its next tick, about a second after the
//! deadline, and hides expired entries from lookups until then), then, if some entry is known to
//! be dead by `now`, sweeps dead entries
//! (at most once per [`SWEEP_INTERVAL_MS`] of `now`, so a flood of pushes against a full store cannot
//! turn every refusal into a full scan), and only then refuses with [`StoreError::Full`].
//!
//! One corner stays approximate: an entry under the *same* key that moka has expired but not yet
//! evicted is invisible, so overwriting it asks for an admission it does not need; in a full
//! store that refusal lasts until moka's next tick. Handles are random, so only a replayed JWT id
//! arriving in that second can meet it.
//!
//! **moka's per-entry expiry only reclaims memory.** Each value carries its remaining lifetime,
//! computed at write time from the injected `now`, plus [`RECLAIM_GRACE`]: moka must never drop
//! an entry the layer's clock still considers alive, so its timer fires a little late rather than
//! early.

use std::{
    fmt,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime},
};

use moka::{
    notification::RemovalCause,
    ops::compute::{CompResult, Op},
    policy::EvictionPolicy,
    sync::Cache,
    Expiry,
};

use super::{unix_millis, ParStore, Record, StoreError, StoreFuture, StoreKey};

/// How long after its deadline (by the injected clock) moka may reclaim an entry. Covers the gap
/// between the layer's clock and moka's monotonic one: a `now` read before a slow step, a fake
/// clock in tests, a wall clock stepped back by NTP.
const RECLAIM_GRACE: Duration = Duration::from_secs(10);

/// Minimum distance, in `now` milliseconds, between two sweeps for dead entries.
const SWEEP_INTERVAL_MS: u64 = 1_000;

/// A bounded in-memory [`ParStore`] for single-node deployments, built on `moka::sync::Cache`.
///
/// Holds at most `capacity` live entries (pushed requests and replay-memory entries together);
/// a push into a full store is refused with [`StoreError::Full`] (the layer answers `503`), never
/// accepted and dropped later. Cloning is cheap and shares the entries.
///
/// Use a shared backend (the Redis store, feature `redis`) when several nodes serve one issuer: a
/// handle pushed to one node must be redeemable on another.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_par::store::{MemoryStore, ParStore, Record, StoreError, StoreKey};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::with_capacity(1);
/// let now = SystemTime::now();
/// let record = Record::new(now + Duration::from_secs(60), "scope=openid");
/// let first = StoreKey::derive("https://as.example.com", "web-app", b"one");
/// let second = StoreKey::derive("https://as.example.com", "web-app", b"two");
/// store.put(first, record.clone(), now).await.unwrap();
/// assert!(matches!(store.put(second, record, now).await, Err(StoreError::Full)));
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<StoreKey, Slot, BuildHasherDefault<DigestHasher>>,
    shared: Arc<Shared>,
    reclaim_grace: Duration,
}

/// What one key holds.
#[derive(Clone)]
enum Slot {
    /// Pushed, never opened: alive while `now < record.expires_at()`.
    Pushed {
        record: Record,
        reclaim_after: Duration,
    },
    /// Opened for consumption at completion: alive while `now < keep_until_ms`, even past the
    /// record's own `expires_at` (the user may still be logging in).
    Opened {
        record: Record,
        keep_until_ms: u64,
        reclaim_after: Duration,
    },
    /// A remembered id (replay memory): alive while `now < until_ms`.
    Remembered {
        until_ms: u64,
        reclaim_after: Duration,
    },
}

impl Slot {
    /// The first instant (Unix milliseconds, injected clock) at which this entry is dead.
    fn dead_from_ms(&self) -> u64 {
        match self {
            Self::Pushed { record, .. } => record.expires_at_millis(),
            Self::Opened { keep_until_ms, .. } => *keep_until_ms,
            Self::Remembered { until_ms, .. } => *until_ms,
        }
    }

    fn is_dead(&self, now_ms: u64) -> bool {
        now_ms >= self.dead_from_ms()
    }

    /// How long moka should keep the value (memory reclamation only).
    fn reclaim_after(&self) -> Duration {
        match self {
            Self::Pushed { reclaim_after, .. }
            | Self::Opened { reclaim_after, .. }
            | Self::Remembered { reclaim_after, .. } => *reclaim_after,
        }
    }
}

/// State shared by the store handles and moka's hooks.
struct Shared {
    capacity: u64,
    /// Values physically in the cache plus admissions in flight (see the module docs).
    count: AtomicU64,
    /// A lower bound of the earliest `dead_from_ms` of any stored value, or `u64::MAX`; a sweep
    /// is only worth running once `now` has reached it.
    sweep_from_ms: AtomicU64,
}

impl Shared {
    /// Reserves room for one new entry; `None` when `capacity` entries exist (or are admitted).
    fn admit(self: &Arc<Self>) -> Option<Admission> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < self.capacity).then_some(count + 1)
            })
            .ok()
            .map(|_| Admission(Arc::clone(self)))
    }

    fn is_full(&self) -> bool {
        self.count.load(Ordering::Acquire) >= self.capacity
    }

    /// Called by moka right after it stored `slot`.
    fn stored(&self, slot: &Slot) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.sweep_from_ms
            .fetch_min(slot.dead_from_ms(), Ordering::AcqRel);
    }

    /// Called for every value that leaves the cache, and when an admission ends.
    fn release(&self) {
        // Saturating: an underflow would wrap to "full forever"; the count is exact by
        // construction, so this only guards against a moka behaviour change.
        let _ = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                Some(count.saturating_sub(1))
            });
    }
}

/// One reserved place; given back when the operation ends. If the operation stored a new entry,
/// moka's [`Expiry`] hook has counted it by then, so the entry keeps its place.
struct Admission(Arc<Shared>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// moka's per-entry expiry. Also the hook that counts stored values (see the module docs): moka
/// calls exactly one of these two methods for each value it stores, synchronously after storing.
struct Reclaim(Arc<Shared>);

impl Expiry<StoreKey, Slot> for Reclaim {
    fn expire_after_create(&self, _key: &StoreKey, slot: &Slot, _at: Instant) -> Option<Duration> {
        self.0.stored(slot);
        Some(slot.reclaim_after())
    }

    fn expire_after_update(
        &self,
        _key: &StoreKey,
        slot: &Slot,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        self.0.stored(slot);
        Some(slot.reclaim_after())
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

/// Outcome of an insert-if-absent-or-dead (`put`, `remember`).
enum Insert {
    Stored,
    Present,
    Full,
}

impl MemoryStore {
    /// A store that holds at most `capacity` live entries (pushed requests and remembered ids
    /// together). Size it as at least peak pushes per second × request lifetime, plus JWT ids
    /// remembered over their lifetime, with a safety factor.
    #[must_use]
    pub fn with_capacity(capacity: u64) -> Self {
        Self::build(capacity, RECLAIM_GRACE)
    }

    fn build(capacity: u64, reclaim_grace: Duration) -> Self {
        let shared = Arc::new(Shared {
            capacity,
            count: AtomicU64::new(0),
            sweep_from_ms: AtomicU64::new(u64::MAX),
        });
        let listener = Arc::clone(&shared);
        let cache = Cache::builder()
            // Headroom: moka's size bookkeeping lags behind the exact count; it must never be
            // the one that decides (it would evict a live request).
            .max_capacity(capacity.saturating_add(capacity / 4).saturating_add(64))
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(Reclaim(Arc::clone(&shared)))
            .eviction_listener(move |_key, _slot, _cause: RemovalCause| listener.release())
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

    /// Stores `slot` unless an alive entry holds `key`; admits new keys against the capacity.
    fn insert(&self, key: StoreKey, slot: Slot, now_ms: u64) -> Insert {
        let mut retried = false;
        loop {
            let mut admission = None;
            let candidate = slot.clone();
            let result = self.cache.entry(key).and_compute_with(|current| {
                match current {
                    Some(entry) if !entry.value().is_dead(now_ms) => Op::Nop,
                    // A dead entry is replaced in place: the number of entries is unchanged.
                    Some(_) => Op::Put(candidate),
                    None => match self.shared.admit() {
                        Some(reserved) => {
                            admission = Some(reserved);
                            Op::Put(candidate)
                        }
                        None => Op::Nop,
                    },
                }
            });
            drop(admission);
            match result {
                CompResult::Inserted(_) | CompResult::ReplacedWith(_) => return Insert::Stored,
                CompResult::Unchanged(_) => return Insert::Present,
                // `StillNone` only comes from a refused admission (`Remove` is never asked for).
                CompResult::StillNone(_) | CompResult::Removed(_) => {
                    if retried {
                        tracing::warn!(
                            capacity = self.shared.capacity,
                            "memory store full, refusing an entry"
                        );
                        return Insert::Full;
                    }
                    retried = true;
                    self.make_room(now_ms);
                }
            }
        }
    }

    /// Frees what can be freed before a refusal: entries moka's timers expired, then (at most
    /// once per [`SWEEP_INTERVAL_MS`]) entries that are dead by `now`.
    fn make_room(&self, now_ms: u64) {
        self.cache.run_pending_tasks();
        if !self.shared.is_full() {
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
            self.cache
                .entry(key)
                .and_compute_with(|current| match current {
                    Some(entry) if entry.value().is_dead(now_ms) => Op::Remove,
                    _ => Op::Nop,
                });
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
        f.debug_struct("MemoryStore")
            .field("capacity", &self.shared.capacity)
            .field("entries", &self.shared.count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ParStore for MemoryStore {
    fn put(&self, key: StoreKey, record: Record, now: SystemTime) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let now_ms = unix_millis(now);
            let reclaim_after = self.reclaim_after(record.expires_at_millis(), now_ms);
            let slot = Slot::Pushed {
                record,
                reclaim_after,
            };
            match self.insert(key, slot, now_ms) {
                Insert::Stored => Ok(()),
                Insert::Present => Err(StoreError::Exists),
                Insert::Full => Err(StoreError::Full),
            }
        })
    }

    /// Strict one-time use. Removes a pushed record that was never opened; an opened record
    /// (consumption at completion) is only ever consumed by [`ParStore::complete`], so `take`
    /// answers `None` for it and leaves it. The layer uses one mode per deployment, never both
    /// on one key.
    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        Box::pin(async move {
            let now_ms = unix_millis(now);
            let result = self.cache.entry(key).and_compute_with(|current| {
                match current.as_ref().map(moka::Entry::value) {
                    // Dead entries of any kind go too: they only hold memory.
                    Some(Slot::Pushed { .. }) => Op::Remove,
                    Some(slot) if slot.is_dead(now_ms) => Op::Remove,
                    _ => Op::Nop,
                }
            });
            // Re-check what was removed (D3): a dead record is removed but not handed out.
            Ok(match result {
                CompResult::Removed(entry) => match entry.into_value() {
                    Slot::Pushed { record, .. } if record.is_alive(now) => Some(record),
                    _ => None,
                },
                _ => None,
            })
        })
    }

    fn open(
        &self,
        key: StoreKey,
        now: SystemTime,
        window: Duration,
    ) -> StoreFuture<'_, Option<Record>> {
        Box::pin(async move {
            let now_ms = unix_millis(now);
            let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
            let keep_until_ms = now_ms.saturating_add(window_ms);
            let reclaim_after = self.reclaim_after(keep_until_ms, now_ms);
            let result = self.cache.entry(key).and_compute_with(|current| {
                match current.map(moka::Entry::into_value) {
                    Some(slot) if slot.is_dead(now_ms) => Op::Remove,
                    // First open: start the window. Same key, so no admission needed.
                    Some(Slot::Pushed { record, .. }) => Op::Put(Slot::Opened {
                        record,
                        keep_until_ms,
                        reclaim_after,
                    }),
                    _ => Op::Nop,
                }
            });
            Ok(match result {
                CompResult::ReplacedWith(entry) | CompResult::Unchanged(entry) => {
                    match entry.into_value() {
                        Slot::Opened {
                            record,
                            keep_until_ms,
                            ..
                        } if now_ms < keep_until_ms => Some(record),
                        _ => None,
                    }
                }
                _ => None,
            })
        })
    }

    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let now_ms = unix_millis(now);
            let result = self.cache.entry(key).and_compute_with(|current| {
                match current.as_ref().map(moka::Entry::value) {
                    Some(slot) if slot.is_dead(now_ms) => Op::Remove,
                    Some(Slot::Opened { .. }) => Op::Remove,
                    _ => Op::Nop,
                }
            });
            Ok(match result {
                CompResult::Removed(entry) => matches!(
                    entry.into_value(),
                    Slot::Opened { keep_until_ms, .. } if now_ms < keep_until_ms
                ),
                _ => false,
            })
        })
    }

    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let now_ms = unix_millis(now);
            let until_ms = unix_millis(until);
            let slot = Slot::Remembered {
                until_ms,
                reclaim_after: self.reclaim_after(until_ms, now_ms),
            };
            match self.insert(key, slot, now_ms) {
                Insert::Stored => Ok(true),
                Insert::Present => Ok(false),
                Insert::Full => Err(StoreError::Full),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> SystemTime {
        // Whole milliseconds, so that `t0 + n ms` is exactly what the records store.
        SystemTime::UNIX_EPOCH + Duration::from_millis(unix_millis(SystemTime::now()))
    }

    fn key(n: u32) -> StoreKey {
        StoreKey::derive("https://as.example", "client", &n.to_be_bytes())
    }

    fn count(store: &MemoryStore) -> u64 {
        store.shared.count.load(Ordering::Acquire)
    }

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn count_returns_to_zero_after_takes_and_completes() {
        let store = MemoryStore::with_capacity(10);
        let now = t0();
        for n in 0..4 {
            store
                .put(key(n), Record::new(now + MIN, "p"), now)
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

    #[tokio::test]
    async fn capacity_n_accepts_n_refuses_the_next_and_recovers_after_a_take() {
        let store = MemoryStore::with_capacity(5);
        let now = t0();
        for n in 0..4 {
            store
                .put(key(n), Record::new(now + MIN, "p"), now)
                .await
                .unwrap();
        }
        // Replay memory shares the capacity.
        assert!(store.remember(key(100), now + MIN, now).await.unwrap());
        assert!(matches!(
            store.put(key(4), Record::new(now + MIN, "p"), now).await,
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
            .put(key(4), Record::new(now + MIN, "p"), now)
            .await
            .unwrap();
        assert_eq!(count(&store), 5);
    }

    #[tokio::test]
    async fn capacity_zero_refuses_everything() {
        let store = MemoryStore::with_capacity(0);
        let now = t0();
        assert!(matches!(
            store.put(key(0), Record::new(now + MIN, "p"), now).await,
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
            .put(key(0), Record::new(now + short, "p"), now)
            .await
            .unwrap();
        assert!(store.remember(key(1), now + short, now).await.unwrap());
        // moka's timers have not fired (real time barely moved), but `now` says both are dead.
        let later = now + Duration::from_secs(2);
        store
            .put(key(2), Record::new(later + MIN, "p"), later)
            .await
            .unwrap();
        store
            .put(key(3), Record::new(later + MIN, "p"), later)
            .await
            .unwrap();
        assert_eq!(count(&store), 2);
        assert!(matches!(
            store
                .put(key(4), Record::new(later + MIN, "p"), later)
                .await,
            Err(StoreError::Full)
        ));
    }

    #[tokio::test]
    async fn a_dead_entry_under_the_same_key_is_replaced() {
        let store = MemoryStore::with_capacity(1);
        let now = t0();
        store
            .put(key(0), Record::new(now + MIN, "old"), now)
            .await
            .unwrap();
        let later = now + MIN;
        store
            .put(key(0), Record::new(later + MIN, "new"), later)
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
            .put(key(0), Record::new(now + MIN, "p"), now)
            .await
            .unwrap();
        assert!(store.open(key(0), now, MIN).await.unwrap().is_some());
        assert!(store.take(key(0), now).await.unwrap().is_none());
        assert!(store.complete(key(0), now).await.unwrap());
    }

    /// moka's own timers (real time): an entry moka expired but has not evicted yet (invisible
    /// to `and_compute_with`, yet reported as `Replaced` when overwritten) is not counted twice,
    /// and evicted entries give their place back. moka evicts on its timer wheel's next tick
    /// (about a second), hence the bounded polling.
    #[tokio::test]
    async fn moka_expiry_frees_capacity_without_leaking_the_count() {
        let store = MemoryStore::build(3, Duration::ZERO);
        let now = t0();
        let soon = Duration::from_millis(30);
        store
            .put(key(0), Record::new(now + soon, "p"), now)
            .await
            .unwrap();
        store
            .put(key(1), Record::new(now + soon, "p"), now)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let later = now + Duration::from_millis(80);
        store
            .put(key(0), Record::new(later + MIN, "new"), later)
            .await
            .unwrap();
        assert_eq!(
            count(&store),
            2,
            "key(0) replaced in place, key(1) not yet evicted"
        );
        store
            .put(key(2), Record::new(later + MIN, "p"), later)
            .await
            .unwrap();

        let mut admitted = false;
        for _ in 0..40 {
            match store
                .put(key(3), Record::new(later + MIN, "p"), later)
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

    #[test]
    fn debug_shows_no_entries() {
        let store = MemoryStore::with_capacity(7);
        let text = format!("{store:?}");
        assert!(
            text.starts_with("MemoryStore { capacity: 7, entries: 0"),
            "{text}"
        );
    }
}
