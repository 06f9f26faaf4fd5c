//! The Redis [`ParStore`]; the user-facing documentation is on [`RedisStore`].

use std::{
    fmt,
    future::Future,
    sync::{Arc, LazyLock},
    time::{Duration, SystemTime},
};

use ::redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Client, RedisResult, Script,
};

use super::{unix_millis, ParStore, Record, StoreError, StoreFuture, StoreKey};

/// Reads the big-endian `expires_at` milliseconds at the head of a record (see
/// [`Record::to_bytes`]). Shared by the scripts that judge a record's liveness; Lua numbers are
/// doubles, exact for millisecond timestamps (below 2^53).
const LUA_DEADLINE: &str = r"
local function deadline(value, opened)
  if opened then return tonumber(opened) end
  if #value < 8 then return nil end
  local ms = 0
  for i = 1, 8 do ms = ms * 256 + string.byte(value, i) end
  return ms
end
";

/// KEYS: record, opened marker, live set.
/// ARGV: value, now, ttl, deadline (score), max entries ('' = unbounded).
/// Returns 1 stored, 0 a live record is present, 2 full.
const LUA_PUT: &str = r"
local now = tonumber(ARGV[2])
local current = redis.call('GET', KEYS[1])
if current then
  local d = deadline(current, redis.call('GET', KEYS[2]))
  -- Unreadable deadlines count as live: never overwrite what we cannot judge.
  if d == nil or now < d then return 0 end
end
if ARGV[5] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return 2 end
  redis.call('ZADD', KEYS[3], ARGV[4], KEYS[1])
end
if current then redis.call('DEL', KEYS[2]) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
";

/// KEYS: record, opened marker, live set. ARGV: now, capacity tracked ('1'/'0').
/// Removes the record whatever its state; returns it only if it was alive.
const LUA_TAKE: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return false end
local opened = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[2] == '1' then redis.call('ZREM', KEYS[3], KEYS[1]) end
local d = deadline(value, opened)
if d and tonumber(ARGV[1]) < d then return value end
return false
";

/// KEYS: record, opened marker, live set.
/// ARGV: now, window end, window ttl, capacity tracked ('1'/'0').
const LUA_OPEN: &str = r"
local now = tonumber(ARGV[1])
local value = redis.call('GET', KEYS[1])
if not value then return false end
local opened = redis.call('GET', KEYS[2])
local d = deadline(value, opened)
if d == nil or now >= d then return false end
if opened then return value end
-- First open: the window, not expires_at, now bounds the record's life. The record's TTL is
-- set first so that it never outlives the marker: a record without its marker would look
-- unopened and could be opened again.
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '1' then redis.call('ZADD', KEYS[3], 'XX', ARGV[2], KEYS[1]) end
return value
";

/// KEYS: record, opened marker, live set. ARGV: now, capacity tracked ('1'/'0').
/// Returns 1 for the one caller that removes an opened record inside its window.
const LUA_COMPLETE: &str = r"
local opened = redis.call('GET', KEYS[2])
if not opened then return 0 end
local removed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
if ARGV[2] == '1' then redis.call('ZREM', KEYS[3], KEYS[1]) end
local d = tonumber(opened)
if removed == 1 and d and tonumber(ARGV[1]) < d then return 1 end
return 0
";

/// KEYS: memory key. ARGV: until, now, ttl. Returns 1 the first time, 0 on a replay.
const LUA_REMEMBER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local until_ms = tonumber(current)
  if until_ms == nil or tonumber(ARGV[2]) < until_ms then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
";

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(&[LUA_DEADLINE, LUA_PUT].concat()));
static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(&[LUA_DEADLINE, LUA_TAKE].concat()));
static OPEN: LazyLock<Script> = LazyLock::new(|| Script::new(&[LUA_DEADLINE, LUA_OPEN].concat()));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_COMPLETE));
static REMEMBER: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_REMEMBER));

/// How to reach Redis and how to use it; passed to [`RedisStore::connect`].
///
/// ```
/// use std::time::Duration;
/// use tower_par::store::RedisStoreConfig;
///
/// let config = RedisStoreConfig::new("redis://:s3cret@redis.internal:6379/2")
///     .prefix("par:https://as.example.com")
///     .op_timeout(Duration::from_millis(250))
///     .max_entries(1_000_000);
/// // The password never shows in logs.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct RedisStoreConfig {
    url: String,
    prefix: String,
    op_timeout: Duration,
    connect_timeout: Duration,
    max_entries: Option<u64>,
    #[cfg(feature = "redis-tls")]
    tls_root_certificates: Option<Vec<u8>>,
}

impl RedisStoreConfig {
    /// Default [`RedisStoreConfig::prefix`].
    pub const DEFAULT_PREFIX: &'static str = "tower-par";
    /// Default [`RedisStoreConfig::op_timeout`]: 500 ms.
    pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(500);
    /// Default [`RedisStoreConfig::connect_timeout`]: 1 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

    /// A configuration for the Redis at `url`:
    /// `redis://[[username]:password@]host[:port][/db]`, or `rediss://…` (TLS) when the crate's
    /// `redis-tls` feature is on. The URL is checked by [`RedisStore::connect`].
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            op_timeout: Self::DEFAULT_OP_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            max_entries: None,
            #[cfg(feature = "redis-tls")]
            tls_root_certificates: None,
        }
    }

    /// The namespace of every key this store writes (`<prefix>:…`). Give each issuer or tenant
    /// its own prefix when they share a Redis; every node serving one issuer must use the same.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest any one store operation may take, reconnecting included, before it fails
    /// with [`StoreError::Unavailable`]. Default 500 ms.
    #[must_use]
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The longest one connection attempt may take (at startup and on each reconnection).
    /// Default 1 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Refuse a [`ParStore::put`] with [`StoreError::Full`] while `max` records under this
    /// prefix are alive. Unbounded by default (Redis' `maxmemory` is then the bound, and a full
    /// Redis makes puts fail as [`StoreError::Unavailable`]).
    ///
    /// The count is kept in the sorted set `<prefix>:live`, which costs a few sorted-set
    /// operations per put and a `ZREM` per take. All nodes sharing a prefix must agree on
    /// whether a maximum is set; records stored without one are not counted.
    #[must_use]
    pub fn max_entries(mut self, max: u64) -> Self {
        self.max_entries = Some(max);
        self
    }

    /// For `rediss://` (feature `redis-tls`): trust only the CA certificates in `pem` (one or
    /// more PEM blocks) instead of the system's roots, e.g. for a Redis behind a private CA.
    #[cfg(feature = "redis-tls")]
    #[must_use]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates = Some(pem.into());
        self
    }

    fn client(&self) -> Result<Client, StoreError> {
        #[cfg(feature = "redis-tls")]
        {
            // rustls needs a process-wide crypto provider when the build enables more than one
            // (another dependency may enable aws-lc-rs). Installing fails harmlessly when the
            // application or a concurrent call has installed one already.
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            if let Some(pem) = &self.tls_root_certificates {
                return Client::build_with_tls(
                    self.url.as_str(),
                    ::redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    },
                )
                .map_err(unavailable);
            }
        }
        Client::open(self.url.as_str()).map_err(unavailable)
    }
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RedisStoreConfig");
        d.field("url", &redact_userinfo(&self.url))
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_entries", &self.max_entries);
        #[cfg(feature = "redis-tls")]
        d.field(
            "tls_root_certificates",
            &self.tls_root_certificates.as_ref().map(|_| "…"),
        );
        d.finish()
    }
}

/// The URL without its `user:password@` part, for logs.
fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return "<unparsable URL>".to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &rest[at..]),
        None => url.to_owned(),
    }
}

/// A [`ParStore`] on Redis (feature `redis`): one-time handles that hold across many nodes.
///
/// Cloning is cheap; clones share one multiplexed connection, which reconnects by itself. Needs
/// a Tokio runtime. The `redis` feature needs Rust 1.88 (the `redis` crate's MSRV).
///
/// ```no_run
/// use std::{sync::Arc, time::Duration};
/// use tower_par::store::{ParStore, RedisStore, RedisStoreConfig};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RedisStoreConfig::new("redis://127.0.0.1:6379/0")
///     .prefix("par:https://as.example.com")
///     .op_timeout(Duration::from_millis(300));
/// let store: Arc<dyn ParStore> = Arc::new(RedisStore::connect(config).await?);
/// # Ok(()) }
/// ```
///
/// Every operation is one Lua script, so each is atomic on the Redis server: of any number of
/// concurrent takes of one key, across any number of nodes, exactly one gets the record (the
/// take script reads and deletes in one step, like `GETDEL`).
///
/// # Layout in Redis
///
/// * `<prefix>:<key hex>`: the record, [`Record::to_bytes`] (its `expires_at` inside), or for
///   [`ParStore::remember`] the `until` deadline in decimal milliseconds.
/// * `<prefix>:<key hex>:opened`: present once [`ParStore::open`] has started the retention
///   window; holds the window's end in decimal milliseconds.
/// * `<prefix>:live`: only with [`RedisStoreConfig::max_entries`]; a sorted set of the live
///   records scored by their deadline, which is how capacity is counted.
///
/// # Time
///
/// Liveness is decided by the `now` each call passes in (the layer's clock), never by Redis'
/// clock: a record whose deadline is not after `now` is dead even while Redis still holds it.
/// Redis' own expiry only reclaims memory. It is set as a *relative* TTL (`PX deadline - now`)
/// rather than an absolute `PXAT`, so a clock difference between a node and the Redis host
/// cannot make Redis drop a live record early or keep a dead one long.
///
/// # Requirements on the Redis server
///
/// * A standalone server (or the primary of a Sentinel setup); Redis Cluster is not supported,
///   because the scripts touch a record and the shared `live` set in one call.
/// * `maxmemory-policy noeviction` (the default). Under any `allkeys-*` or `volatile-*` policy
///   Redis may evict live records when memory runs short, and a client would then hold a
///   `request_uri` that cannot be redeemed. With `noeviction` a full Redis fails the write, which
///   the store reports as [`StoreError::Unavailable`].
/// * Replication is asynchronous: after a failover, a record taken on the old primary can
///   reappear on the new one, and a fresh push can be lost. Where that matters, run a single
///   primary without automatic failover.
/// * Tested with Redis 7.0; the scripts use only commands of Redis 3.2 and later.
///
/// # Failing closed
///
/// Every Redis error, and every operation that does not finish within
/// [`RedisStoreConfig::op_timeout`], is [`StoreError::Unavailable`]. A timed-out `take` may
/// still have removed the record on the server; the handle is then burnt, which is the safe
/// side. The connection reconnects in the background, so the store recovers by itself when Redis
/// comes back.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    live_key: Arc<str>,
    op_timeout: Duration,
    max_entries: Option<u64>,
}

impl RedisStore {
    /// Connects to Redis and checks that it answers.
    ///
    /// Fails with [`StoreError::Unavailable`] when the URL is invalid (or asks for TLS without
    /// the `redis-tls` feature) or Redis cannot be reached within the connect timeout, so that a
    /// misconfiguration shows at startup. Once connected, outages are survived: operations fail
    /// with [`StoreError::Unavailable`] and the store recovers when Redis is back. To start while
    /// Redis may be down, use [`RedisStore::connect_lazy`].
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let connect_timeout = config.connect_timeout;
        let client = config.client()?;
        // One direct attempt gives a prompt and specific error ("connection refused", "auth
        // failed"); the manager would retry with backoff for seconds before giving up.
        run(connect_timeout, async {
            let mut probe = client.get_multiplexed_async_connection().await?;
            ::redis::cmd("PING").query_async::<()>(&mut probe).await
        })
        .await?;
        let store = Self::connect_lazy(config)?;
        let mut conn = store.conn.clone();
        run(connect_timeout, async move {
            ::redis::cmd("PING").query_async::<()>(&mut conn).await
        })
        .await?;
        Ok(store)
    }

    /// Creates the store without contacting Redis: the first operations connect, and fail with
    /// [`StoreError::Unavailable`] until Redis answers.
    ///
    /// Fails only for an invalid URL, or when called outside a Tokio runtime.
    pub fn connect_lazy(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let client = config.client()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Unavailable(
                "RedisStore must be created inside a Tokio runtime".into(),
            ));
        }
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.op_timeout))
            // Cap the reconnection backoff so that a returning Redis is noticed within about a
            // second; the default grows to several seconds.
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(1_000));
        let conn =
            ConnectionManager::new_lazy_with_config(client, manager_config).map_err(unavailable)?;
        Ok(Self {
            conn,
            live_key: format!("{}:live", config.prefix).into(),
            prefix: config.prefix.into(),
            op_timeout: config.op_timeout,
            max_entries: config.max_entries,
        })
    }

    fn record_key(&self, key: &StoreKey) -> String {
        format!("{}:{}", self.prefix, key.to_hex())
    }

    fn opened_key(&self, key: &StoreKey) -> String {
        format!("{}:{}:opened", self.prefix, key.to_hex())
    }

    fn tracks_capacity(&self) -> &'static str {
        if self.max_entries.is_some() {
            "1"
        } else {
            "0"
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

/// Milliseconds from `now` to `deadline`, at least 1: Redis refuses a TTL of 0, and a record
/// that is already dead is judged by its deadline anyway.
fn ttl_millis(deadline_ms: u64, now_ms: u64) -> u64 {
    deadline_ms.saturating_sub(now_ms).max(1)
}

fn unavailable(e: ::redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// An operation that outlived [`RedisStoreConfig::op_timeout`].
#[derive(Debug)]
struct TimedOut(Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis did not answer within {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// Runs one Redis round trip under the deadline, mapping every failure to `Unavailable`.
async fn run<T>(
    timeout: Duration,
    op: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(_) => Err(StoreError::Unavailable(Box::new(TimedOut(timeout)))),
    }
}

/// Decodes a record read back from Redis; a value we did not write is a backend fault.
fn decode(bytes: Option<Vec<u8>>) -> Result<Option<Record>, StoreError> {
    bytes
        .map(|b| {
            Record::from_vec(b)
                .ok_or_else(|| StoreError::Unavailable("malformed record in Redis".into()))
        })
        .transpose()
}

impl ParStore for RedisStore {
    fn put(&self, key: StoreKey, record: Record, now: SystemTime) -> StoreFuture<'_, ()> {
        let now_ms = unix_millis(now);
        let deadline_ms = record.expires_at_millis();
        let ttl_ms = ttl_millis(deadline_ms, now_ms);
        let value = record.to_bytes();
        let record_key = self.record_key(&key);
        let mut invocation = PUT.prepare_invoke();
        invocation
            .key(&record_key)
            .key(self.opened_key(&key))
            .key(&*self.live_key)
            .arg(&value)
            .arg(now_ms)
            .arg(ttl_ms)
            .arg(deadline_ms)
            .arg(self.max_entries.map(|m| m.to_string()).unwrap_or_default());
        let mut conn = self.conn.clone();
        let counted = self.max_entries.is_some();
        Box::pin(async move {
            let outcome = run(self.op_timeout, async move {
                if !counted {
                    // Common path: the key is new (a fresh random handle), and a plain
                    // `SET NX` is a third of a script's cost on the server. Only when the key
                    // is present does the script decide whether that record is dead and may be
                    // replaced; it re-reads the state, so the two steps stay linearizable.
                    let stored: Option<String> = ::redis::cmd("SET")
                        .arg(&record_key)
                        .arg(&value)
                        .arg("PX")
                        .arg(ttl_ms)
                        .arg("NX")
                        .query_async(&mut conn)
                        .await?;
                    if stored.is_some() {
                        return Ok(1);
                    }
                }
                invocation.invoke_async::<i64>(&mut conn).await
            })
            .await?;
            match outcome {
                1 => Ok(()),
                0 => Err(StoreError::Exists),
                _ => Err(StoreError::Full),
            }
        })
    }

    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        let mut invocation = TAKE.prepare_invoke();
        invocation
            .key(self.record_key(&key))
            .key(self.opened_key(&key))
            .key(&*self.live_key)
            .arg(unix_millis(now))
            .arg(self.tracks_capacity());
        let mut conn = self.conn.clone();
        Box::pin(
            async move { decode(run(self.op_timeout, invocation.invoke_async(&mut conn)).await?) },
        )
    }

    fn open(
        &self,
        key: StoreKey,
        now: SystemTime,
        window: Duration,
    ) -> StoreFuture<'_, Option<Record>> {
        let now_ms = unix_millis(now);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let until_ms = now_ms.saturating_add(window_ms);
        let mut invocation = OPEN.prepare_invoke();
        invocation
            .key(self.record_key(&key))
            .key(self.opened_key(&key))
            .key(&*self.live_key)
            .arg(now_ms)
            .arg(until_ms)
            .arg(ttl_millis(until_ms, now_ms))
            .arg(self.tracks_capacity());
        let mut conn = self.conn.clone();
        Box::pin(
            async move { decode(run(self.op_timeout, invocation.invoke_async(&mut conn)).await?) },
        )
    }

    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        let mut invocation = COMPLETE.prepare_invoke();
        invocation
            .key(self.record_key(&key))
            .key(self.opened_key(&key))
            .key(&*self.live_key)
            .arg(unix_millis(now))
            .arg(self.tracks_capacity());
        let mut conn = self.conn.clone();
        Box::pin(async move { run(self.op_timeout, invocation.invoke_async(&mut conn)).await })
    }

    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        let now_ms = unix_millis(now);
        let until_ms = unix_millis(until);
        let mut invocation = REMEMBER.prepare_invoke();
        invocation
            .key(self.record_key(&key))
            .arg(until_ms)
            .arg(now_ms)
            .arg(ttl_millis(until_ms, now_ms));
        let mut conn = self.conn.clone();
        Box::pin(async move { run(self.op_timeout, invocation.invoke_async(&mut conn)).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_credentials() {
        for (url, shown) in [
            ("redis://:pw@h:6379/1", "redis://***@h:6379/1"),
            ("rediss://user:pw@h/0", "rediss://***@h/0"),
            ("redis://h:6379/0", "redis://h:6379/0"),
            ("redis://h/0?x=a@b", "redis://h/0?x=a@b"),
            ("nonsense:pw", "<unparsable URL>"),
        ] {
            assert_eq!(redact_userinfo(url), shown, "{url}");
        }
        let config = RedisStoreConfig::new("redis://u:hunter2@h/0");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn ttl_is_never_zero() {
        assert_eq!(ttl_millis(1_000, 400), 600);
        assert_eq!(ttl_millis(1_000, 1_000), 1);
        assert_eq!(ttl_millis(1_000, 5_000), 1);
    }
}
