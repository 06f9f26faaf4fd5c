//! Where pushed requests live between the push and the redirect.
//!
//! The store is where one-time use is decided, so its contract is small and strict:
//!
//! * [`ParStore::put`] inserts if absent. A full store answers [`StoreError::Full`]; it never
//!   accepts a record it will silently drop later, because the client would then hold a
//!   `request_uri` that cannot be redeemed.
//! * [`ParStore::take`] removes and returns a record **atomically**: of any number of concurrent
//!   takes of one key, exactly one gets `Some`. A record whose `expires_at` is not after `now` is
//!   dead, whether or not the backend has evicted it yet.
//! * [`ParStore::open`] and [`ParStore::complete`] implement consumption at completion (FAPI 2.0
//!   §5.3.2.2 note 3): `open` is a non-destructive read that starts the retention window on first
//!   use, `complete` is the atomic final take.
//! * [`ParStore::remember`] is replay memory for JWT `jti`s: it answers `true` exactly once per
//!   key until the given deadline.
//!
//! Keys are [`StoreKey`]s: SHA-256 digests of the issuer, the client and the handle. A store never
//! sees a live `request_uri` or a secret, and a key derived for one client can never address a
//! record pushed by another, so a wrong `client_id` cannot burn someone else's handle.
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
/// use tower_par::store::{MemoryStore, ParStore, Record, StoreKey};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemoryStore::with_capacity(1_000);
/// let now = SystemTime::now();
/// let key = StoreKey::derive("https://as.example.com", "web-app", b"handle");
/// let record = Record::new(now + Duration::from_secs(60), "scope=openid");
/// store.put(key, record, now).await.unwrap();
/// assert!(store.take(key, now).await.unwrap().is_some());
/// assert!(store.take(key, now).await.unwrap().is_none()); // once only
/// # }
/// ```
pub trait ParStore: Send + Sync + 'static {
    /// Stores `record` under `key` unless the key is present. Must refuse with
    /// [`StoreError::Full`] rather than accept a record it would drop before `expires_at`.
    fn put(&self, key: StoreKey, record: Record, now: SystemTime) -> StoreFuture<'_, ()>;

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
    /// remembrance is alive (`now < until` of that earlier call). Atomic across callers.
    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool>;
}

impl<T: ParStore + ?Sized> ParStore for std::sync::Arc<T> {
    fn put(&self, key: StoreKey, record: Record, now: SystemTime) -> StoreFuture<'_, ()> {
        (**self).put(key, record, now)
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

/// A stored pushed request: its deadline and its parameters, as the layer encoded them.
///
/// The payload is opaque to stores; [`Record::to_bytes`] and [`Record::from_bytes`] give byte
/// backends a stable encoding. Cloning is cheap (reference counted).
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

/// Why a store could not answer. The layer turns both kinds into
/// `503 temporarily_unavailable`; it never passes an unresolved request through.
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
    /// The store is at capacity; retry later.
    Full,
    /// The key is already present (a put never overwrites).
    Exists,
    /// The backend could not be reached or did not answer in time.
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("the store is full"),
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
