//! Where pushed requests live between the push and the redirect.
//!
//! The store is where one-time use is decided, so its contract is small and strict:
//!
//! * [`ParStore::put`] inserts if absent, within budgets (below). A store past a budget refuses
//!   ([`StoreError::Full`], [`StoreError::ShareExhausted`]); it never accepts a record it will
//!   silently drop later, because the client would then hold a `request_uri` that cannot be
//!   redeemed.
//! * [`ParStore::take`] removes and returns a record **atomically**: of any number of concurrent
//!   takes of one key, exactly one gets `Some`. A record whose `expires_at` is not after `now` is
//!   dead, whether or not the backend has evicted it yet.
//! * [`ParStore::open`] and [`ParStore::complete`] implement consumption at completion (FAPI 2.0
//!   §5.3.2.2 note 3): `open` is a non-destructive read that starts the retention window on first
//!   use, `complete` is the atomic final take.
//! * [`ParStore::remember`] is replay memory for JWT `jti`s: it answers `true` exactly once per
//!   key until the given deadline.
//!
//! # Budgets: entries and bytes, store-wide and per share
//!
//! A PAR endpoint faces strangers (a public client needs no secret), so what the store holds is
//! bounded twice over, and every bound counts both **entries** and **bytes**:
//!
//! * **store-wide** ([`ParStore::limits`]): at most `max_entries` entries and `max_bytes` bytes,
//!   records and remembered ids together. Past it: [`StoreError::Full`] (the layer answers `503`).
//! * **per share** (the [`Charge`] passed to [`ParStore::put`]): each record is charged to its
//!   owner's [`Share`] (one bucket per client) and, for a public client, also to the group share
//!   of all public clients. Past either: [`StoreError::ShareExhausted`] (the layer answers `429`).
//!   The layer chooses the limits (by default half of the store per client, a quarter for all
//!   public clients together), so that no single client, and no flood through public clients,
//!   can take the store away from the others.
//!
//! A record weighs [`Record::weight`] bytes: its payload plus [`RECORD_OVERHEAD_BYTES`] for the
//! key, the deadline and the backend's own bookkeeping, so that the byte budget bounds the memory
//! a store really uses, not only its payloads. A remembered id ([`ParStore::remember`]) weighs
//! [`RECORD_OVERHEAD_BYTES`] and counts against the store-wide limits only.
//!
//! The checks are atomic with the insert: of any number of concurrent puts, never more are stored
//! than a budget allows. The store remembers what each record was charged to and gives exactly
//! that back when the record leaves: taken, completed, expired (by the `now` of a later call), or
//! replaced. A store may split its limits into [`StoreLimits::partitions`] independent parts
//! decided by the key (the Redis store shards them so that no script crosses a Redis Cluster
//! slot); a put refused as [`StoreError::Full`] in one part may then fit under another key, and
//! the layer retries such a push under a fresh handle a bounded number of times.
//!
//! Keys are [`StoreKey`]s: SHA-256 digests of the issuer, the client and the handle. A store never
//! sees a live `request_uri` or a secret, and a key derived for one client can never address a
//! record pushed by another, so a wrong `client_id` cannot burn someone else's handle.
//!
//! Payloads are sealed by the layer before they reach a store (AES-256-GCM under a key
//! derived from the handle, bound to the store key and the deadline), so a store never holds a
//! readable pushed parameter either: a dump, a replica or a backup reveals nothing without the
//! live `request_uri`, and a record altered or moved to another key fails to open, which the
//! layer answers with `invalid_request_uri`. Stores treat payloads as opaque bytes.
//!
//! Time is always passed in (`now`), so every backend is tested to the millisecond without
//! sleeping, and the layer's clock is the single source of truth.
//!
//! Every backend runs the one shared test-suite in `test_suite` (feature `test-suite`).

mod memory;
#[cfg(feature = "redis")]
mod redis;
/// The shared conformance test-suite for [`ParStore`] backends.
#[cfg(feature = "test-suite")]
pub mod test_suite;

pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreConfig};

use std::{
    fmt,
    future::Future,
    pin::Pin,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The boxed future every [`ParStore`] method returns (the trait stays object safe, so the layer
/// can hold an `Arc<dyn ParStore>`; one allocation per push or redemption is not on a hot path).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A storage backend for pushed authorization requests.
///
/// Implementations must be atomic per key (see the [module docs](crate::store)). Run
/// `tower_par::store::test_suite::run` (feature `test-suite`) against a new backend: it checks
/// every rule below, including races.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_par::store::{Charge, MemoryStore, ParStore, Record, Share, StoreKey};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::with_capacity(1_000);
/// let now = SystemTime::now();
/// let key = StoreKey::derive("https://as.example.com", "web-app", b"handle");
/// let record = Record::new(now + Duration::from_secs(60), "scope=openid");
/// // The client "web-app" may hold 10 records and 1 MiB of the store.
/// let bucket = StoreKey::derive_tagged(b"example/share", "https://as.example.com", "web-app", b"");
/// let charge = Charge::new(Share::new(bucket, 10, 1 << 20));
/// store.put(key, record, charge, now).await.unwrap();
/// assert!(store.take(key, now).await.unwrap().is_some());
/// assert!(store.take(key, now).await.unwrap().is_none()); // once only
/// # }
/// ```
pub trait ParStore: Send + Sync + 'static {
    /// The store-wide limits, which the layer turns its share fractions into numbers with.
    fn limits(&self) -> StoreLimits;

    /// Stores `record` under `key` unless an alive record holds the key ([`StoreError::Exists`]).
    ///
    /// Atomically with the insert, the record's [`Record::weight`] and one entry are charged to
    /// every share of `charge` and to the store-wide limits; a put that does not fit is refused,
    /// never accepted and dropped before `expires_at`: [`StoreError::ShareExhausted`] when a share
    /// is past its limits (checked first), else [`StoreError::Full`] when the store is. The
    /// charge is given back exactly when the record leaves the store (take, complete, expiry by
    /// a later call's `now`, replacement of a dead record).
    fn put(
        &self,
        key: StoreKey,
        record: Record,
        charge: Charge,
        now: SystemTime,
    ) -> StoreFuture<'_, ()>;

    /// Atomically removes and returns the record if it is alive at `now`
    /// (`now < record.expires_at()`); `None` when absent, expired, or already taken.
    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>>;

    /// Non-destructive read for consumption at completion.
    ///
    /// * First open of a record (before its `expires_at`): marks it opened, keeps it until
    ///   `now + window`, returns it.
    /// * Later opens: return it while `now < opened_at + window`.
    /// * Otherwise (absent, never opened and expired, window over, completed): `None`.
    fn open(
        &self,
        key: StoreKey,
        now: SystemTime,
        window: Duration,
    ) -> StoreFuture<'_, Option<Record>>;

    /// Atomic final take for consumption at completion: removes an *opened* record whose window
    /// is still running and returns `true`; exactly one of any number of concurrent calls wins.
    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool>;

    /// Replay memory: returns `true` the first time `key` is seen, `false` while an earlier
    /// remembrance is alive (`now < until` of that earlier call). Atomic across callers. A new
    /// remembrance weighs [`RECORD_OVERHEAD_BYTES`] and one entry against the store-wide limits
    /// (no share): [`StoreError::Full`] when they are reached.
    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool>;

    /// How many pushed requests the store holds at `now` (records put and not yet taken,
    /// completed or dead), for the gauge `tower_par_stored_requests` (feature `metrics`, set by
    /// `ParLayer::update_gauges` once per scrape, never on a request's path). `None`, the
    /// default, for a store that does not count them.
    ///
    /// The memory store's count is exact: the records it holds alive at `now` (it sweeps the
    /// dead first), remembered ids not included. The Redis store counts the entries of its
    /// books that are alive at `now`: pushed requests, plus the JWT ids remembered for replay
    /// (feature `jwt`).
    fn stored_requests(&self, now: SystemTime) -> StoreFuture<'_, Option<u64>> {
        let _ = now;
        Box::pin(std::future::ready(Ok(None)))
    }
}

impl<T: ParStore + ?Sized> ParStore for std::sync::Arc<T> {
    fn limits(&self) -> StoreLimits {
        (**self).limits()
    }
    fn put(
        &self,
        key: StoreKey,
        record: Record,
        charge: Charge,
        now: SystemTime,
    ) -> StoreFuture<'_, ()> {
        (**self).put(key, record, charge, now)
    }
    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        (**self).take(key, now)
    }
    fn open(
        &self,
        key: StoreKey,
        now: SystemTime,
        window: Duration,
    ) -> StoreFuture<'_, Option<Record>> {
        (**self).open(key, now, window)
    }
    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        (**self).complete(key, now)
    }
    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        (**self).remember(key, until, now)
    }
    fn stored_requests(&self, now: SystemTime) -> StoreFuture<'_, Option<u64>> {
        (**self).stored_requests(now)
    }
}

/// A store key: SHA-256 over a domain tag, the issuer, the client id and a handle (or a `jti`).
///
/// Deriving keys this way binds every record to its issuer and client, and keeps live handles out
/// of the store.
///
/// ```
/// use tower_par::store::StoreKey;
///
/// let a = StoreKey::derive("https://as.example.com", "web-app", b"handle");
/// let b = StoreKey::derive("https://as.example.com", "other-app", b"handle");
/// assert_ne!(a, b, "the same handle addresses nothing for another client");
/// assert_eq!(a.to_hex().len(), 64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StoreKey([u8; 32]);

impl std::hash::Hash for StoreKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The key is a SHA-256 digest: eight of its bytes are as good a hash as any.
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(prefix));
    }
}

impl StoreKey {
    /// Derives the key of a pushed request from the issuer, the client id and the raw handle.
    #[must_use]
    pub fn derive(issuer: &str, client_id: &str, handle: &[u8]) -> Self {
        Self::derive_tagged(b"tower-par/request_uri/v1", issuer, client_id, handle)
    }

    /// Derives a key in another domain (`tag`), e.g. for replay memory of JWT `jti`s, so that
    /// keys of different kinds can never collide.
    #[must_use]
    pub fn derive_tagged(tag: &[u8], issuer: &str, client_id: &str, id: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        for part in [tag, issuer.as_bytes(), client_id.as_bytes(), id] {
            // Length prefixes keep ("ab","c") and ("a","bc") apart.
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Self(hasher.finalize().into())
    }

    /// Wraps raw digest bytes (for backends that read keys back).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the digest, for text-keyed backends such as Redis.
    #[must_use]
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        }
        out
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines; the key is not a secret but needs no more.
        write!(f, "StoreKey({}…)", &self.to_hex()[..12])
    }
}

/// Default store-wide entry limit: 1,000,000 records and remembered ids together.
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

/// Default byte budget of a store: 256 MiB of [`Record::weight`]s.
///
/// With the default share of half the store per client, one client may hold 128 MiB: 127 pushes
/// of the largest body (1 MiB), or about 160,000 typical 300-byte requests. The byte budget binds
/// before [`DEFAULT_MAX_ENTRIES`] does for requests above about 270 bytes.
pub const DEFAULT_MAX_STORED_BYTES: u64 = 256 * 1024 * 1024;

/// What a record weighs against byte budgets on top of its payload, and what a remembered id
/// weighs: the key, the deadline, and the backend's per-entry bookkeeping.
///
/// Measured: the memory store spends about 500 bytes per entry beyond the payload (moka's entry
/// and hash-table slots, its filing in the store's expiry schedule, allocator overhead); the
/// Redis store a little less (the record key, its sorted-set member and its charge).
pub const RECORD_OVERHEAD_BYTES: u64 = 512;

/// A store's store-wide limits: entries and bytes (see the [module docs](crate::store)).
///
/// ```
/// use tower_par::store::{StoreLimits, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_STORED_BYTES};
///
/// let limits = StoreLimits::default();
/// assert_eq!(limits.max_entries(), DEFAULT_MAX_ENTRIES);
/// assert_eq!(limits.max_bytes(), 256 * 1024 * 1024);
/// assert_eq!(limits.partitions(), 1);
/// assert_eq!(StoreLimits::new(10, 4096).with_partitions(0).partitions(), 1);
/// assert!(StoreLimits::new(10, 4096).admits(9, 0, 4096));
/// assert!(!StoreLimits::new(10, 4096).admits(10, 0, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreLimits {
    max_entries: u64,
    max_bytes: u64,
    partitions: u32,
}

impl StoreLimits {
    /// At most `max_entries` entries weighing at most `max_bytes` bytes, in one partition.
    #[must_use]
    pub const fn new(max_entries: u64, max_bytes: u64) -> Self {
        Self {
            max_entries,
            max_bytes,
            partitions: 1,
        }
    }

    /// The limits are split over `partitions` independent parts (at least 1), each deciding the
    /// puts of the keys that fall into it. A refused put may then fit under another key.
    #[must_use]
    pub const fn with_partitions(mut self, partitions: u32) -> Self {
        self.partitions = if partitions == 0 { 1 } else { partitions };
        self
    }

    /// The most entries (records and remembered ids) the store holds.
    #[must_use]
    pub const fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// The most bytes ([`Record::weight`]s) the store holds.
    #[must_use]
    pub const fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// How many independent parts the limits are split over (1: one exact count).
    #[must_use]
    pub const fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Whether a value of `weight` bytes fits next to `entries` entries of `bytes` bytes.
    #[must_use]
    pub const fn admits(&self, entries: u64, bytes: u64, weight: u64) -> bool {
        fits(entries, bytes, weight, self.max_entries, self.max_bytes)
    }
}

/// One more entry of `weight` bytes next to `entries` of `bytes`, within both maximums.
const fn fits(entries: u64, bytes: u64, weight: u64, max_entries: u64, max_bytes: u64) -> bool {
    entries < max_entries && bytes.saturating_add(weight) <= max_bytes
}

impl Default for StoreLimits {
    /// [`DEFAULT_MAX_ENTRIES`] and [`DEFAULT_MAX_STORED_BYTES`], one partition.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES, DEFAULT_MAX_STORED_BYTES)
    }
}

/// One bucket of the store that records are charged to, with its limits: at most `max_entries`
/// records weighing at most `max_bytes` bytes at a time.
///
/// The bucket is named by a digest ([`StoreKey`]), so that a backend never holds a raw
/// `client_id`. The layer uses one bucket per client, and one for all public clients together.
///
/// ```
/// use tower_par::store::{Share, StoreKey};
///
/// let bucket = StoreKey::derive_tagged(b"example/share", "https://as.example.com", "spa", b"");
/// let share = Share::new(bucket, 2, 10_000);
/// assert!(share.admits(1, 5_000, 5_000));
/// assert!(!share.admits(2, 0, 1), "two entries held already");
/// assert!(!share.admits(0, 5_000, 5_001), "one byte too many");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    bucket: StoreKey,
    max_entries: u64,
    max_bytes: u64,
}

impl Share {
    /// The bucket `bucket` with its limits.
    #[must_use]
    pub const fn new(bucket: StoreKey, max_entries: u64, max_bytes: u64) -> Self {
        Self {
            bucket,
            max_entries,
            max_bytes,
        }
    }

    /// A bucket without limits (counted, never refused).
    #[must_use]
    pub const fn unlimited(bucket: StoreKey) -> Self {
        Self::new(bucket, u64::MAX, u64::MAX)
    }

    /// The bucket's name.
    #[must_use]
    pub const fn bucket(&self) -> &StoreKey {
        &self.bucket
    }

    /// The most records the bucket may hold.
    #[must_use]
    pub const fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// The most bytes ([`Record::weight`]s) the bucket may hold.
    #[must_use]
    pub const fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether a record of `weight` bytes fits next to `entries` records of `bytes` bytes.
    #[must_use]
    pub const fn admits(&self, entries: u64, bytes: u64, weight: u64) -> bool {
        fits(entries, bytes, weight, self.max_entries, self.max_bytes)
    }
}

/// What a pushed record is charged to: its owner's [`Share`] and, for a public client, the
/// [`Share`] of all public clients together. Passed to [`ParStore::put`].
///
/// ```
/// use tower_par::store::{Charge, Share, StoreKey};
///
/// let bucket = |name: &str| StoreKey::derive_tagged(b"example/share", "https://as", name, b"");
/// let charge = Charge::new(Share::new(bucket("spa"), 10, 1 << 20))
///     .with_group(Share::new(bucket("public"), 20, 2 << 20));
/// assert_eq!(charge.shares().count(), 2);
/// assert_eq!(charge.owner().max_entries(), 10);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    owner: Share,
    group: Option<Share>,
}

impl Charge {
    /// A record charged to `owner` only.
    #[must_use]
    pub const fn new(owner: Share) -> Self {
        Self { owner, group: None }
    }

    /// Also charges the record to `group` (the public clients' combined share).
    #[must_use]
    pub const fn with_group(mut self, group: Share) -> Self {
        self.group = Some(group);
        self
    }

    /// The owner's share.
    #[must_use]
    pub const fn owner(&self) -> &Share {
        &self.owner
    }

    /// The group's share, if any.
    #[must_use]
    pub const fn group(&self) -> Option<&Share> {
        self.group.as_ref()
    }

    /// Every share the record is charged to: the owner's, then the group's.
    pub fn shares(&self) -> impl Iterator<Item = &Share> {
        std::iter::once(&self.owner).chain(self.group.as_ref())
    }
}

/// A stored pushed request: its deadline and its parameters, as the layer sealed them.
///
/// The payload is opaque to stores: ciphertext that only the live `request_uri` opens. The
/// deadline stays in clear, for the store to judge liveness, and the seal authenticates it.
/// [`Record::to_bytes`] and [`Record::from_bytes`] give byte backends a stable encoding. Cloning
/// is cheap (reference counted).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tower_par::store::Record;
///
/// let record = Record::new(UNIX_EPOCH + Duration::from_secs(60), "scope=openid");
/// assert!(record.is_alive(UNIX_EPOCH + Duration::from_millis(59_999)));
/// assert!(!record.is_alive(UNIX_EPOCH + Duration::from_secs(60)));
/// assert_eq!(Record::from_vec(record.to_bytes()), Some(record.clone()));
/// assert_eq!(Record::from_bytes(&record.to_bytes()), Some(record));
/// assert_eq!(Record::from_vec(vec![0; 7]), None);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    expires_at_ms: u64,
    payload: Bytes,
}

impl Record {
    /// A record that is dead from `expires_at` on.
    #[must_use]
    pub fn new(expires_at: SystemTime, payload: impl Into<Bytes>) -> Self {
        Self {
            expires_at_ms: unix_millis(expires_at),
            payload: payload.into(),
        }
    }

    /// The deadline: the record is dead when `now >= expires_at`.
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.expires_at_ms)
    }

    /// The deadline in milliseconds since the Unix epoch (what Redis' `PXAT` takes).
    #[must_use]
    pub const fn expires_at_millis(&self) -> u64 {
        self.expires_at_ms
    }

    /// Whether the record is alive at `now`.
    #[must_use]
    pub fn is_alive(&self, now: SystemTime) -> bool {
        unix_millis(now) < self.expires_at_ms
    }

    /// The encoded parameters.
    #[must_use]
    pub const fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// What the record weighs against byte budgets: the payload plus [`RECORD_OVERHEAD_BYTES`].
    ///
    /// ```
    /// use std::time::UNIX_EPOCH;
    /// use tower_par::store::{Record, RECORD_OVERHEAD_BYTES};
    ///
    /// assert_eq!(Record::new(UNIX_EPOCH, "abc").weight(), 3 + RECORD_OVERHEAD_BYTES);
    /// ```
    #[must_use]
    pub fn weight(&self) -> u64 {
        (self.payload.len() as u64).saturating_add(RECORD_OVERHEAD_BYTES)
    }

    /// Encodes the record as bytes: 8 bytes big-endian `expires_at` milliseconds, then the payload.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.payload.len());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decodes what [`Record::to_bytes`] produced, keeping the buffer (no copy of the payload);
    /// `None` for anything shorter than 8 bytes.
    #[must_use]
    pub fn from_vec(bytes: Vec<u8>) -> Option<Self> {
        let head: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        Some(Self {
            expires_at_ms: u64::from_be_bytes(head),
            payload: Bytes::from(bytes).slice(8..),
        })
    }

    /// Decodes what [`Record::to_bytes`] produced; `None` for anything shorter than 8 bytes.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (head, payload) = bytes.split_first_chunk::<8>()?;
        Some(Self {
            expires_at_ms: u64::from_be_bytes(*head),
            payload: Bytes::copy_from_slice(payload),
        })
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload can carry personal data (RFC 9126 §8): never print it.
        f.debug_struct("Record")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Why a store could not answer. The layer answers `429 temporarily_unavailable` for
/// [`StoreError::ShareExhausted`] and `503 temporarily_unavailable` for the others; it never
/// passes an unresolved request through.
///
/// ```
/// use tower_par::store::StoreError;
///
/// let err = StoreError::Unavailable("connection refused".into());
/// assert_eq!(err.to_string(), "the store is unavailable: connection refused");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The store-wide limits (entries or bytes) are reached; retry later.
    Full,
    /// A share the record is charged to (its client's, or the public clients') is past its
    /// limits; the store itself may have room for others.
    ShareExhausted,
    /// The key is already present (a put never overwrites).
    Exists,
    /// The backend could not be reached or did not answer in time.
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("the store is full"),
            Self::ShareExhausted => f.write_str("a share of the store is exhausted"),
            Self::Exists => f.write_str("the key is already stored"),
            Self::Unavailable(e) => write!(f, "the store is unavailable: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Milliseconds since the Unix epoch, saturating (a clock before 1970 reads as 0).
#[must_use]
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
