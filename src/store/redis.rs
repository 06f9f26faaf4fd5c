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

use super::{
    unix_millis, Charge, ParStore, Record, StoreError, StoreFuture, StoreKey, StoreLimits,
    DEFAULT_MAX_ENTRIES, DEFAULT_MAX_STORED_BYTES, RECORD_OVERHEAD_BYTES,
};

/// The books every script keeps, in the shard of the key it works on (see [`RedisStore`],
/// "Budgets"). KEYS[3] is the shard's `live` sorted set (key hex → deadline), KEYS[4] its
/// `charges` hash (key hex → `weight|owner|group`), KEYS[5] its `usage` hash (`n`/`b` for the
/// shard, `<bucket>:n`/`<bucket>:b` per share bucket). Lua numbers are doubles, exact for
/// millisecond timestamps and byte counts (below 2^53).
const LUA_BOOKS: &str = r"
local LIVE, CHARGES, USAGE = KEYS[3], KEYS[4], KEYS[5]

-- Reads the big-endian `expires_at` milliseconds at the head of a record (Record::to_bytes),
-- or the window's end once opened.
local function deadline(value, opened)
  if opened then return tonumber(opened) end
  if #value < 8 then return nil end
  local ms = 0
  for i = 1, 8 do ms = ms * 256 + string.byte(value, i) end
  return ms
end

local function uncharge(p, w)
  local n = redis.call('HINCRBY', USAGE, p .. 'n', -1)
  redis.call('HINCRBY', USAGE, p .. 'b', -w)
  if n <= 0 then redis.call('HDEL', USAGE, p .. 'n', p .. 'b') end
end

-- Gives back what `member` was charged to, once; a no-op for a member that holds nothing.
local function release(member)
  redis.call('ZREM', LIVE, member)
  local charged = redis.call('HGET', CHARGES, member)
  if not charged then return end
  redis.call('HDEL', CHARGES, member)
  local w, owner, group = string.match(charged, '^(%d+)|(%x*)|(%x*)$')
  w = tonumber(w)
  if not w then return end
  uncharge('', w)
  if owner ~= '' then uncharge(owner .. ':', w) end
  if group ~= '' then uncharge(group .. ':', w) end
end

-- Gives back the charges of members dead by `now`, a bounded number per call.
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', LIVE, '-inf', now, 'LIMIT', 0, 64)
  for i = 1, #dead do release(dead[i]) end
end

local function fits(p, max_n, max_b, w)
  local held = redis.call('HMGET', USAGE, p .. 'n', p .. 'b')
  return (tonumber(held[1]) or 0) < tonumber(max_n)
    and (tonumber(held[2]) or 0) + w <= tonumber(max_b)
end

local function charge(p, w)
  redis.call('HINCRBY', USAGE, p .. 'n', 1)
  redis.call('HINCRBY', USAGE, p .. 'b', w)
end
";

/// KEYS: record, opened marker, live, charges, usage (one shard).
/// ARGV: value, now, ttl, deadline, member, weight, shard max entries, shard max bytes,
/// owner bucket, its max entries, its max bytes, group bucket ('' none), its max entries, bytes.
/// Returns 1 stored, 0 a live record is present, 2 the shard is full, 3 a share is exhausted.
const LUA_PUT: &str = r"
local now = tonumber(ARGV[2])
local current = redis.call('GET', KEYS[1])
if current then
  local d = deadline(current, redis.call('GET', KEYS[2]))
  -- Unreadable deadlines count as live: never overwrite what we cannot judge.
  if d == nil or now < d then return 0 end
end
local member, w = ARGV[5], tonumber(ARGV[6])
release(member)
purge(ARGV[2])
local owner, group = ARGV[9], ARGV[12]
if not fits(owner .. ':', ARGV[10], ARGV[11], w) then return 3 end
if group ~= '' and not fits(group .. ':', ARGV[13], ARGV[14], w) then return 3 end
if not fits('', ARGV[7], ARGV[8], w) then return 2 end
charge('', w)
charge(owner .. ':', w)
if group ~= '' then charge(group .. ':', w) end
redis.call('HSET', CHARGES, member, ARGV[6] .. '|' .. owner .. '|' .. group)
redis.call('ZADD', LIVE, ARGV[4], member)
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
";

/// KEYS: as for put. ARGV: now, member.
/// Removes the record whatever its state and gives its charge back (also when Redis' own expiry
/// removed the record first); returns the record only if it was alive.
const LUA_TAKE: &str = r"
local value = redis.call('GET', KEYS[1])
release(ARGV[2])
if not value then return false end
local opened = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
local d = deadline(value, opened)
if d and tonumber(ARGV[1]) < d then return value end
return false
";

/// KEYS: as for put. ARGV: now, window end, window ttl, member.
const LUA_OPEN: &str = r"
local now = tonumber(ARGV[1])
local value = redis.call('GET', KEYS[1])
if not value then return false end
local opened = redis.call('GET', KEYS[2])
local d = deadline(value, opened)
if d == nil or now >= d then return false end
if opened then return value end
-- First open: the window, not expires_at, now bounds the record's life (and its charge). The
-- record's TTL is set first so that it never outlives the marker: a record without its marker
-- would look unopened and could be opened again.
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', LIVE, 'XX', ARGV[2], ARGV[4])
return value
";

/// KEYS: as for put. ARGV: now, member.
/// Returns 1 for the one caller that removes an opened record inside its window.
const LUA_COMPLETE: &str = r"
local opened = redis.call('GET', KEYS[2])
if not opened then return 0 end
local removed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
release(ARGV[2])
local d = tonumber(opened)
if removed == 1 and d and tonumber(ARGV[1]) < d then return 1 end
return 0
";

/// KEYS: memory key, (unused marker), live, charges, usage. ARGV: until, now, ttl, member,
/// weight, shard max entries, shard max bytes. Returns 1 the first time, 0 on a replay, 2 full.
const LUA_REMEMBER: &str = r"
local now = tonumber(ARGV[2])
local current = redis.call('GET', KEYS[1])
if current then
  local until_ms = tonumber(current)
  if until_ms == nil or now < until_ms then return 0 end
end
local member, w = ARGV[4], tonumber(ARGV[5])
release(member)
purge(ARGV[2])
if not fits('', ARGV[6], ARGV[7], w) then return 2 end
charge('', w)
redis.call('HSET', CHARGES, member, ARGV[5] .. '||')
redis.call('ZADD', LIVE, ARGV[1], member)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
";

fn script(body: &str) -> Script {
    Script::new(&[LUA_BOOKS, body].concat())
}

static PUT: LazyLock<Script> = LazyLock::new(|| script(LUA_PUT));
static TAKE: LazyLock<Script> = LazyLock::new(|| script(LUA_TAKE));
static OPEN: LazyLock<Script> = LazyLock::new(|| script(LUA_OPEN));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| script(LUA_COMPLETE));
static REMEMBER: LazyLock<Script> = LazyLock::new(|| script(LUA_REMEMBER));

/// The most shards [`RedisStoreConfig::shards`] accepts.
const MAX_SHARDS: u32 = 1024;
/// The most shards chosen by default.
const DEFAULT_MAX_SHARDS: u32 = 16;
/// By default, every shard gets at least this many entries of the store-wide limit…
const MIN_SHARD_ENTRIES: u64 = 1024;
/// …and at least this many bytes (eight of the largest pushes, so that a quarter of a shard
/// still takes the largest push).
const MIN_SHARD_BYTES: u64 = 8 * 1024 * 1024;

/// The default number of shards for these limits: 16, fewer when the limits are small.
fn default_shards(max_entries: u64, max_bytes: u64) -> u32 {
    let fitting = (max_entries / MIN_SHARD_ENTRIES).min(max_bytes / MIN_SHARD_BYTES);
    u32::try_from(fitting.clamp(1, u64::from(DEFAULT_MAX_SHARDS))).unwrap_or(1)
}

/// Shard `shard`'s part of `limit` split over `shards`: the parts sum to `limit` exactly.
fn part(limit: u64, shard: u32, shards: u32) -> u64 {
    let (shard, shards) = (u64::from(shard), u64::from(shards));
    limit / shards + u64::from(shard < limit % shards)
}

/// How to reach Redis and how to use it; passed to [`RedisStore::connect`].
///
/// ```
/// use std::time::Duration;
/// use tower_par::store::RedisStoreConfig;
///
/// let config = RedisStoreConfig::new("redis://:s3cret@redis.internal:6379/2")
///     .prefix("par:https://as.example.com")
///     .op_timeout(Duration::from_millis(250))
///     .max_entries(1_000_000)
///     .max_stored_bytes(512 * 1024 * 1024);
/// // The password never shows in logs.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct RedisStoreConfig {
    url: String,
    prefix: String,
    op_timeout: Duration,
    connect_timeout: Duration,
    max_entries: u64,
    max_stored_bytes: u64,
    shards: Option<u32>,
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
            max_entries: DEFAULT_MAX_ENTRIES,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
            shards: None,
            #[cfg(feature = "redis-tls")]
            tls_root_certificates: None,
        }
    }

    /// The namespace of every key this store writes (`{<prefix>:<shard>}:…`). Give each issuer
    /// or tenant its own prefix when they share a Redis; every node serving one issuer must use
    /// the same. It must not contain `{` or `}` (they delimit Redis Cluster hash tags).
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

    /// The store-wide entry limit: records and remembered ids under this prefix (default
    /// 1,000,000, like the memory store). See [`RedisStore`], "Budgets".
    #[must_use]
    pub fn max_entries(mut self, max: u64) -> Self {
        self.max_entries = max;
        self
    }

    /// The store-wide byte budget: the [`Record::weight`]s of the records (and the weight of the
    /// remembered ids) under this prefix (default 256 MiB, like the memory store). Redis' own
    /// memory for them is about this plus allocator rounding; see [`RedisStore`], "Budgets".
    #[must_use]
    pub fn max_stored_bytes(mut self, max: u64) -> Self {
        self.max_stored_bytes = max;
        self
    }

    /// How many shards the records and their books are spread over (1 to 1,024). Default: 16,
    /// or fewer when the limits are small, so that every shard gets at least 1,024 entries and
    /// 8 MiB. Every node sharing a prefix must use the same number (it is part of every key's
    /// name); so must they use the same limits, from which the default is derived.
    #[must_use]
    pub fn shards(mut self, shards: u32) -> Self {
        self.shards = Some(shards);
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
            .field("max_entries", &self.max_entries)
            .field("max_stored_bytes", &self.max_stored_bytes)
            .field("shards", &self.shards);
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
/// Every key lives in one of N shards (see [`RedisStoreConfig::shards`]), chosen from the store
/// key's digest; all keys of a shard share the hash tag `{<prefix>:<shard>}`, so that every
/// script touches the keys of one Redis Cluster slot only:
///
/// * `{<prefix>:<shard>}:<key hex>`: the record, [`Record::to_bytes`] (its `expires_at`
///   inside), or for [`ParStore::remember`] the `until` deadline in decimal milliseconds.
/// * `{<prefix>:<shard>}:<key hex>:opened`: present once [`ParStore::open`] has started the
///   retention window; holds the window's end in decimal milliseconds.
/// * `{<prefix>:<shard>}:live`: a sorted set of the key hex of every charged entry, scored by
///   its deadline (the window's end once opened).
/// * `{<prefix>:<shard>}:charges`: a hash, key hex → `weight|owner bucket|group bucket` (the
///   share buckets as digests, never a raw `client_id`).
/// * `{<prefix>:<shard>}:usage`: a hash of what the shard holds, `n` (entries) and `b` (bytes),
///   and the same per share bucket (`<bucket hex>:n`, `<bucket hex>:b`).
///
/// # Budgets: sharded, provably never exceeded
///
/// The store-wide limits and each [`Share`](super::Share) of a [`Charge`] are split over the
/// shards: shard *i* of N enforces `limit / N`, plus one for the first `limit % N` shards, so the
/// parts sum to the limit exactly. A put checks and charges its shard's parts (its shares first,
/// then the store's) in the same script that stores the record: the limits are **never
/// exceeded**, across any number of nodes, and nothing a crashed node did can leak, because no
/// count ever lives outside the script that changes it. Take, complete and a put or remember that
/// replaces a dead entry give the charge back in the same script; an entry that died (by the
/// caller's `now`) is given back by the next put or remember in its shard, which releases up to
/// 64 dead members of `live` first, so counts never depend on anyone coming back.
///
/// The price of never crossing a slot: a limit is reached in one shard before the others. The
/// store reports N as [`StoreLimits::partitions`], and the layer tries a push that meets a full
/// shard under a fresh handle (another shard), 3 times in all; a share's refusal is final. With
/// the defaults (16 shards; 62,500 entries and 16 MiB each) random handles fill the shards
/// evenly, so a share is refused within a few percent of its limit; a share smaller than N
/// entries, or a single record heavier than `1/N` of a share's bytes, cannot be reached in full. The default shard count falls with the limits so that every shard keeps at least
/// 1,024 entries and 8 MiB, and small stores (tests, a single tenant) use one shard: exact.
///
/// Redis' own memory for the records is their weights plus allocator rounding: jemalloc's size
/// classes are a quarter apart, so a value just above 1 MiB takes 1.25 MiB. Size `maxmemory` at
/// 1.25 × [`RedisStoreConfig::max_stored_bytes`] plus what else the instance holds.
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
/// * A standalone server (or the primary of a Sentinel setup). The key layout is ready for Redis
///   Cluster (every script touches one slot), but this store connects to one server.
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
    shards: Arc<[ShardKeys]>,
    op_timeout: Duration,
    limits: StoreLimits,
}

/// The names of one shard's keys.
#[derive(Debug)]
struct ShardKeys {
    /// `{<prefix>:<shard>}`, the hash tag every key of the shard starts with.
    tag: String,
    live: String,
    charges: String,
    usage: String,
}

/// The keys one operation touches, all in one shard.
struct Keys<'a> {
    shard_index: u32,
    shard: &'a ShardKeys,
    member: String,
    record: String,
}

impl RedisStore {
    /// Connects to Redis and checks that it answers.
    ///
    /// Fails with [`StoreError::Unavailable`] when the URL is invalid (or asks for TLS without
    /// the `redis-tls` feature), the prefix or shard count is invalid, or Redis cannot be reached
    /// within the connect timeout, so that a misconfiguration shows at startup. Once connected,
    /// outages are survived: operations fail with [`StoreError::Unavailable`] and the store
    /// recovers when Redis is back. To start while Redis may be down, use
    /// [`RedisStore::connect_lazy`].
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
    /// Fails only for an invalid URL, prefix or shard count, or when called outside a Tokio
    /// runtime.
    pub fn connect_lazy(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let client = config.client()?;
        if config.prefix.contains(['{', '}']) {
            return Err(StoreError::Unavailable(
                format!(
                    "the Redis key prefix {:?} must not contain braces (Redis Cluster hash tags)",
                    config.prefix
                )
                .into(),
            ));
        }
        let shards = config
            .shards
            .unwrap_or_else(|| default_shards(config.max_entries, config.max_stored_bytes));
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(StoreError::Unavailable(
                format!("the shard count must be 1-{MAX_SHARDS}, got {shards}").into(),
            ));
        }
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
        let shard_keys = (0..shards)
            .map(|shard| {
                let tag = format!("{{{}:{shard}}}", config.prefix);
                ShardKeys {
                    live: format!("{tag}:live"),
                    charges: format!("{tag}:charges"),
                    usage: format!("{tag}:usage"),
                    tag,
                }
            })
            .collect();
        Ok(Self {
            conn,
            prefix: config.prefix.into(),
            shards: shard_keys,
            op_timeout: config.op_timeout,
            limits: StoreLimits::new(config.max_entries, config.max_stored_bytes)
                .with_partitions(shards),
        })
    }

    fn keys(&self, key: &StoreKey) -> Keys<'_> {
        let digest = key.as_bytes();
        let tail = u32::from_be_bytes([digest[28], digest[29], digest[30], digest[31]]);
        let shard_index = tail % self.limits.partitions();
        let shard = &self.shards[shard_index as usize];
        let member = key.to_hex();
        Keys {
            shard_index,
            record: format!("{}:{member}", shard.tag),
            member,
            shard,
        }
    }

    /// `limit`'s part in the shard of `keys`.
    fn part(&self, limit: u64, keys: &Keys<'_>) -> u64 {
        part(limit, keys.shard_index, self.limits.partitions())
    }
}

impl Keys<'_> {
    /// KEYS of every script: record, opened marker, live, charges, usage.
    fn invocation<'s>(&self, script: &'s Script) -> ::redis::ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&self.record)
            .key(format!("{}:opened", self.record))
            .key(&self.shard.live)
            .key(&self.shard.charges)
            .key(&self.shard.usage);
        invocation
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("limits", &self.limits)
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
    fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn put(
        &self,
        key: StoreKey,
        record: Record,
        charge: Charge,
        now: SystemTime,
    ) -> StoreFuture<'_, ()> {
        let now_ms = unix_millis(now);
        let deadline_ms = record.expires_at_millis();
        let keys = self.keys(&key);
        let mut invocation = keys.invocation(&PUT);
        invocation
            .arg(record.to_bytes())
            .arg(now_ms)
            .arg(ttl_millis(deadline_ms, now_ms))
            .arg(deadline_ms)
            .arg(&keys.member)
            .arg(record.weight())
            .arg(self.part(self.limits.max_entries(), &keys))
            .arg(self.part(self.limits.max_bytes(), &keys));
        for share in [Some(charge.owner()), charge.group()] {
            match share {
                Some(share) => invocation
                    .arg(share.bucket().to_hex())
                    .arg(self.part(share.max_entries(), &keys))
                    .arg(self.part(share.max_bytes(), &keys)),
                None => invocation.arg("").arg(0).arg(0),
            };
        }
        let mut conn = self.conn.clone();
        Box::pin(async move {
            match run(self.op_timeout, invocation.invoke_async::<i64>(&mut conn)).await? {
                1 => Ok(()),
                0 => Err(StoreError::Exists),
                3 => Err(StoreError::ShareExhausted),
                _ => Err(StoreError::Full),
            }
        })
    }

    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        let keys = self.keys(&key);
        let mut invocation = keys.invocation(&TAKE);
        invocation.arg(unix_millis(now)).arg(&keys.member);
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
        let keys = self.keys(&key);
        let mut invocation = keys.invocation(&OPEN);
        invocation
            .arg(now_ms)
            .arg(until_ms)
            .arg(ttl_millis(until_ms, now_ms))
            .arg(&keys.member);
        let mut conn = self.conn.clone();
        Box::pin(
            async move { decode(run(self.op_timeout, invocation.invoke_async(&mut conn)).await?) },
        )
    }

    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        let keys = self.keys(&key);
        let mut invocation = keys.invocation(&COMPLETE);
        invocation.arg(unix_millis(now)).arg(&keys.member);
        let mut conn = self.conn.clone();
        Box::pin(async move { run(self.op_timeout, invocation.invoke_async(&mut conn)).await })
    }

    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        let now_ms = unix_millis(now);
        let until_ms = unix_millis(until);
        let keys = self.keys(&key);
        let mut invocation = keys.invocation(&REMEMBER);
        invocation
            .arg(until_ms)
            .arg(now_ms)
            .arg(ttl_millis(until_ms, now_ms))
            .arg(&keys.member)
            .arg(RECORD_OVERHEAD_BYTES)
            .arg(self.part(self.limits.max_entries(), &keys))
            .arg(self.part(self.limits.max_bytes(), &keys));
        let mut conn = self.conn.clone();
        Box::pin(async move {
            match run(self.op_timeout, invocation.invoke_async::<i64>(&mut conn)).await? {
                1 => Ok(true),
                0 => Ok(false),
                _ => Err(StoreError::Full),
            }
        })
    }

    /// The members of every shard's `live` set alive at `now` (`ZCOUNT`, one shard at a time,
    /// so that no command crosses a slot): pushed requests and remembered JWT ids.
    fn stored_requests(&self, now: SystemTime) -> StoreFuture<'_, Option<u64>> {
        let after_now = format!("({}", unix_millis(now));
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let mut alive = 0u64;
            for shard in self.shards.iter() {
                let mut zcount = ::redis::cmd("ZCOUNT");
                zcount.arg(&shard.live).arg(&after_now).arg("+inf");
                alive += run(self.op_timeout, zcount.query_async::<u64>(&mut conn)).await?;
            }
            Ok(Some(alive))
        })
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
    fn shard_parts_sum_to_the_limit() {
        for (limit, shards) in [
            (0, 1),
            (3, 16),
            (1_000_000, 16),
            (64 << 20, 16),
            (u64::MAX, 7),
        ] {
            let parts: Vec<u64> = (0..shards).map(|i| part(limit, i, shards)).collect();
            assert_eq!(
                parts.iter().fold(0u64, |a, p| a.wrapping_add(*p)),
                limit,
                "{limit} over {shards}"
            );
            let (min, max) = (parts.iter().min(), parts.iter().max());
            assert!(max.unwrap() - min.unwrap() <= 1, "{limit} over {shards}");
        }
    }

    #[test]
    fn default_shards_keep_every_shard_big_enough() {
        assert_eq!(
            default_shards(DEFAULT_MAX_ENTRIES, DEFAULT_MAX_STORED_BYTES),
            16
        );
        assert_eq!(default_shards(3, DEFAULT_MAX_STORED_BYTES), 1);
        assert_eq!(default_shards(1_000_000, 64 << 20), 8);
        assert_eq!(default_shards(u64::MAX, u64::MAX), 16);
        assert_eq!(default_shards(0, 0), 1);
    }

    #[test]
    fn ttl_is_never_zero() {
        assert_eq!(ttl_millis(1_000, 400), 600);
        assert_eq!(ttl_millis(1_000, 1_000), 1);
        assert_eq!(ttl_millis(1_000, 5_000), 1);
    }
}
