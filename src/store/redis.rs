//! The Redis [`ParStore`]; the user-facing documentation is on [`RedisStore`].

use std::{
    fmt,
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, LazyLock,
    },
    time::{Duration, SystemTime},
};

use ::redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
    cmd, from_redis_value, pipe, Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError,
    RedisFuture, RedisResult, Script, ServerErrorKind, ToRedisArgs, Value,
};

use super::{
    unix_millis, Charge, ParStore, Record, StoreError, StoreFuture, StoreKey, StoreLimits,
    DEFAULT_MAX_ENTRIES, DEFAULT_MAX_STORED_BYTES, RECORD_OVERHEAD_BYTES,
};

/// The books every script keeps, in the shard of the key it works on (see [`RedisStore`],
/// "Budgets"). KEYS[3] is the shard's `live` sorted set (key hex → deadline), KEYS[4] its
/// `charges` hash (key hex → `weight|owner|group`), KEYS[5] its `usage` hash (`n`/`b` for the
/// shard, `<bucket>:n`/`<bucket>:b` per share bucket). Lua numbers are doubles, exact for
/// millisecond timestamps and byte counts (below 2^53). It ends with the replicas check every
/// script starts with.
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

-- The last ARGV of every script: how many replicas the WAIT after it waits for. Unless that
-- many are online (and acknowledged within 3 s), refuse before writing anything: their WAIT
-- would fail anyway, and a take would burn its record on the way to that failure.
do
  local needed = tonumber(ARGV[#ARGV])
  if needed > 0 then
    local online = 0
    local info = redis.call('INFO', 'replication')
    -- Redis may print lag=-1 (an acknowledgement newer than its cached clock): fresh too.
    for lag in string.gmatch(info, 'state=online,offset=%d+,lag=(%-?%d+)') do
      if tonumber(lag) <= 3 then online = online + 1 end
    end
    if online < needed then
      return redis.error_reply('NOREPLICAS ' .. online .. ' of ' .. needed .. ' replicas online')
    end
  end
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

/// A script: its source, sent with `EVAL` when a server does not know it yet, and its SHA-1, sent
/// with `EVALSHA` otherwise.
struct Lua {
    code: String,
    hash: String,
}

impl Lua {
    fn new(body: &str) -> Self {
        let code = [LUA_BOOKS, body].concat();
        let hash = Script::new(&code).get_hash().to_owned();
        Self { code, hash }
    }
}

static PUT: LazyLock<Lua> = LazyLock::new(|| Lua::new(LUA_PUT));
static TAKE: LazyLock<Lua> = LazyLock::new(|| Lua::new(LUA_TAKE));
static OPEN: LazyLock<Lua> = LazyLock::new(|| Lua::new(LUA_OPEN));
static COMPLETE: LazyLock<Lua> = LazyLock::new(|| Lua::new(LUA_COMPLETE));
static REMEMBER: LazyLock<Lua> = LazyLock::new(|| Lua::new(LUA_REMEMBER));

/// The most shards [`RedisStoreConfig::shards`] accepts.
const MAX_SHARDS: u32 = 1024;
/// The most shards chosen by default.
const DEFAULT_MAX_SHARDS: u32 = 16;
/// By default, every shard gets at least this many entries of the store-wide limit…
const MIN_SHARD_ENTRIES: u64 = 1024;
/// …and at least this many bytes (eight of the largest pushes, so that a quarter of a shard
/// still takes the largest push).
const MIN_SHARD_BYTES: u64 = 8 * 1024 * 1024;
/// Redis Cluster's hash slots.
const CLUSTER_SLOTS: u32 = 16_384;
/// Connections per store when writes wait for replicas (one otherwise): `WAIT` holds its
/// connection until the replicas answer, so one connection would let one write through per
/// replication round trip.
const WAITING_CONNECTIONS: usize = 8;

/// How many connections a store keeps (see [`WAITING_CONNECTIONS`]).
fn pool_size(wait: Option<Wait>) -> usize {
    if wait.is_some() {
        WAITING_CONNECTIONS
    } else {
        1
    }
}

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

/// The Redis Cluster slot of a hash tag's content (CRC16/XMODEM, as Redis computes it).
fn slot_of(tag: &str) -> u32 {
    u32::from(crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes())) % CLUSTER_SLOTS
}

/// The hash tag of shard `shard` of `shards`: `{<prefix>:<shard>:<salt>}`, with the smallest salt
/// that puts the tag in the shard's own `1/shards` of the slot space. The shards are then spread
/// evenly over the slots, and so over the masters of a cluster (each owns a range of slots),
/// where hashing `<prefix>:<shard>` alone would heap several shards on one master.
fn shard_tag(prefix: &str, shard: u32, shards: u32) -> String {
    let first = shard * CLUSTER_SLOTS / shards;
    let end = (shard + 1) * CLUSTER_SLOTS / shards;
    // At least 16 slots a shard: a salt fits with odds of 1 in 1,024 or better per try, so the
    // bound is never reached (the unsalted tag would still be correct, only less even).
    (0..1u32 << 20)
        .map(|salt| format!("{prefix}:{shard}:{salt}"))
        .find(|tag| (first..end).contains(&slot_of(tag)))
        .map_or_else(
            || format!("{{{prefix}:{shard}}}"),
            |tag| format!("{{{tag}}}"),
        )
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
///
/// // A Redis Cluster, found through any of its nodes; every write waits for one replica.
/// let cluster = RedisStoreConfig::new("redis-cluster://10.0.0.1:6379,10.0.0.2:6379")
///     .wait_replicas(1);
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
    wait_replicas: u32,
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
    ///
    /// * one server: `redis://[[username]:password@]host[:port][/db]`, or `rediss://…` (TLS)
    ///   when the crate's `redis-tls` feature is on;
    /// * a Redis Cluster: `redis-cluster://[[username]:password@]host:port[,host:port…]`, any
    ///   of its nodes (the client learns the others and follows the cluster's changes from
    ///   them), or `rediss-cluster://…` with `redis-tls`.
    ///
    /// The URL is checked by [`RedisStore::connect`].
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
            wait_replicas: 0,
            #[cfg(feature = "redis-tls")]
            tls_root_certificates: None,
        }
    }

    /// The namespace of every key this store writes (`{<prefix>:<shard>:<salt>}:…`). Give each
    /// issuer or tenant its own prefix when they share a Redis; every node serving one issuer
    /// must use the same. It must not contain `{` or `}` (they delimit Redis Cluster hash tags).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest any one store operation may take, reconnecting, redirections and waiting for
    /// replicas included, before it fails with [`StoreError::Unavailable`]. Default 500 ms.
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

    /// How many replicas must hold every write before the store reports it done (default 0:
    /// Redis' asynchronous replication, no waiting). See [`RedisStore`], "Durability".
    ///
    /// After each write the store sends `WAIT replicas timeout` to the master that took the
    /// write, on the same connection, with a third of [`RedisStoreConfig::op_timeout`] as the
    /// timeout. A write the replicas did not confirm in time fails with
    /// [`StoreError::Unavailable`]: a push is then refused (its record is deleted), a redemption
    /// or completion hands out nothing. With fewer replicas online, every operation is refused
    /// before it writes.
    #[must_use]
    pub fn wait_replicas(mut self, replicas: u32) -> Self {
        self.wait_replicas = replicas;
        self
    }

    /// For `rediss://` and `rediss-cluster://` (feature `redis-tls`): trust only the CA
    /// certificates in `pem` (one or more PEM blocks) instead of the system's roots, e.g. for a
    /// Redis behind a private CA.
    #[cfg(feature = "redis-tls")]
    #[must_use]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates = Some(pem.into());
        self
    }

    #[cfg(feature = "redis-tls")]
    fn tls_certificates(&self) -> Option<::redis::TlsCertificates> {
        // rustls needs a process-wide crypto provider when the build enables more than one
        // (another dependency may enable aws-lc-rs). Installing fails harmlessly when the
        // application or a concurrent call has installed one already.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        self.tls_root_certificates
            .as_ref()
            .map(|pem| ::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            })
    }

    /// The client of one server; `None` for a Redis Cluster URL.
    fn single_client(&self) -> Result<Option<Client>, StoreError> {
        if cluster_seeds(&self.url).is_some() {
            return Ok(None);
        }
        #[cfg(feature = "redis-tls")]
        if let Some(certificates) = self.tls_certificates() {
            return Client::build_with_tls(self.url.as_str(), certificates)
                .map(Some)
                .map_err(unavailable);
        }
        Client::open(self.url.as_str())
            .map(Some)
            .map_err(unavailable)
    }

    /// The client of a Redis Cluster URL.
    fn cluster_client(&self) -> Result<ClusterClient, StoreError> {
        let seeds = cluster_seeds(&self.url)
            .unwrap_or(Err("not a Redis Cluster URL"))
            .map_err(|problem| {
                StoreError::Unavailable(format!("{}: {problem}", redact_userinfo(&self.url)).into())
            })?;
        let builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.op_timeout)
            // redis-rs waits at least 1.28 s before retrying by default, past every operation's
            // deadline; short waits let a request find a promoted replica within its deadline.
            .min_retry_wait(10)
            .max_retry_wait(100);
        #[cfg(feature = "redis-tls")]
        let builder = match self.tls_certificates() {
            Some(certificates) => builder.certs(certificates),
            None => builder,
        };
        builder.build().map_err(unavailable)
    }

    /// `count` connections to the URL's server or cluster, none of them made yet.
    fn connections(&self, count: usize) -> Result<Arc<[Connection]>, StoreError> {
        if let Some(client) = self.single_client()? {
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.op_timeout))
                // Cap the reconnection backoff so that a returning Redis is noticed within about
                // a second; the default grows to several seconds.
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(1_000));
            return (0..count)
                .map(|_| {
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                        .map(Connection::Single)
                        .map_err(unavailable)
                })
                .collect();
        }
        let client = self.cluster_client()?;
        Ok((0..count)
            .map(|_| {
                Connection::Cluster(
                    client.get_pending_async_connection_with_config(self.cluster_config()),
                )
            })
            .collect())
    }

    /// The timeouts of a cluster connection.
    fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.op_timeout)
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
            .field("shards", &self.shards)
            .field("wait_replicas", &self.wait_replicas);
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

/// The seed nodes of `redis-cluster://[userinfo@]host:port[,host:port…][/]` as `redis://` URLs
/// (`rediss://` for `rediss-cluster://`), each with the user info; `None` for another scheme.
fn cluster_seeds(url: &str) -> Option<Result<Vec<String>, &'static str>> {
    let (scheme, rest) = [
        ("redis", "redis-cluster://"),
        ("rediss", "rediss-cluster://"),
    ]
    .into_iter()
    .find_map(|(scheme, prefix)| Some((scheme, url.strip_prefix(prefix)?)))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (userinfo, hosts) = rest
        .rfind('@')
        .map_or(("", rest), |at| rest.split_at(at + 1));
    if hosts.contains(['/', '?', '#']) {
        return Some(Err(
            "a Redis Cluster URL names nodes only (host:port,host:port…): a cluster has no database number or options",
        ));
    }
    let seeds: Vec<String> = hosts
        .split(',')
        .map(|host| format!("{scheme}://{userinfo}{host}/"))
        .collect();
    if hosts.split(',').any(str::is_empty) {
        return Some(Err("a node of the Redis Cluster URL is empty"));
    }
    Some(Ok(seeds))
}

/// The way to Redis: one server, or a Redis Cluster (the client follows `MOVED` and `ASK`,
/// refreshes its map of the slots, and reconnects by itself).
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, command: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(command),
            Self::Cluster(conn) => conn.req_packed_command(command),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A [`ParStore`] on Redis (feature `redis`): one-time handles that hold across many nodes, on
/// one Redis or on a Redis Cluster.
///
/// Cloning is cheap; clones share their connections, which reconnect by themselves. Needs a
/// Tokio runtime. The `redis` feature needs Rust 1.88 (the `redis` crate's MSRV).
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
///
/// // A Redis Cluster: the seeds are any of its nodes; every write waits for one replica.
/// let config = RedisStoreConfig::new("redis-cluster://10.0.0.1:6379,10.0.0.2:6379")
///     .prefix("par:https://as.example.com")
///     .wait_replicas(1);
/// let clustered: Arc<dyn ParStore> = Arc::new(RedisStore::connect(config).await?);
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
/// key's digest; all keys of a shard share one hash tag, `{<prefix>:<shard>:<salt>}`, so that
/// every script touches the keys of one Redis Cluster slot only. The salt is the smallest number
/// that puts shard *i*'s slot in the *i*-th N-th of the 16,384 slots: the shards are spread
/// evenly over the slot space, and so over the masters of a cluster, each of which owns a range
/// of slots (with 16 shards and 3 masters, 5 or 6 shards each).
///
/// * `{…}:<key hex>`: the record, [`Record::to_bytes`] (its `expires_at` inside), or for
///   [`ParStore::remember`] the `until` deadline in decimal milliseconds.
/// * `{…}:<key hex>:opened`: present once [`ParStore::open`] has started the retention window;
///   holds the window's end in decimal milliseconds.
/// * `{…}:live`: a sorted set of the key hex of every charged entry, scored by its deadline (the
///   window's end once opened).
/// * `{…}:charges`: a hash, key hex → `weight|owner bucket|group bucket` (the share buckets as
///   digests, never a raw `client_id`).
/// * `{…}:usage`: a hash of what the shard holds, `n` (entries) and `b` (bytes), and the same
///   per share bucket (`<bucket hex>:n`, `<bucket hex>:b`).
///
/// No key is hot: a push or redemption touches the five keys of its own shard, one of N, and
/// nothing store-wide.
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
/// On a Redis Cluster the argument holds slot by slot: a shard's books and its records share a
/// slot, so one master runs every script that changes them, atomically, and they move together
/// when the slot moves. A failover does not break it either: a replica applies each script's
/// writes as one `MULTI`/`EXEC` block (Redis replicates a script's effects, never half of them),
/// so the books a promoted replica holds always count exactly the records it holds; a write the
/// replica never got is lost with its charge, never one without the other.
///
/// The price of never crossing a slot: a limit is reached in one shard before the others. The
/// store reports N as [`StoreLimits::partitions`], and the layer tries a push that meets a full
/// shard under a fresh handle (another shard), 3 times in all; a share's refusal is final. With
/// the defaults (16 shards; 62,500 entries and 16 MiB each) random handles fill the shards
/// evenly, so a share is refused within a few percent of its limit; a share smaller than N
/// entries, or a single record heavier than `1/N` of a share's bytes, cannot be reached in full.
/// The default shard count falls with the limits so that every shard keeps at least 1,024
/// entries and 8 MiB, and small stores (tests, a single tenant) use one shard: exact.
///
/// Redis' own memory for the records is their weights plus allocator rounding: jemalloc's size
/// classes are a quarter apart, so a value just above 1 MiB takes 1.25 MiB. Size `maxmemory` at
/// 1.25 × [`RedisStoreConfig::max_stored_bytes`] plus what else the instance holds.
///
/// # Durability: waiting for replicas
///
/// Redis replicates asynchronously: a master acknowledges a write before any replica has it,
/// and a master that dies takes its last writes with it. A failover could then lose a pushed
/// request whose `request_uri` the client already holds, or bring back a record that was
/// already redeemed (a second authorization code for one `request_uri`).
///
/// With [`RedisStoreConfig::wait_replicas`] N > 0, every script is followed by `WAIT N timeout`
/// in the same pipeline, on the same connection, so it reaches the master that ran the script
/// (never another node: a cluster client routes a keyless `WAIT` to every master, where it
/// waits for nothing) and counts the replicas that have that write. The store acts on a write
/// only when N replicas confirm it:
///
/// * a put answers `Ok` (the layer's `201`) only then; otherwise the put fails with
///   [`StoreError::Unavailable`] (`503`) and its record is deleted (in the background, best
///   effort): never a `201` for a record that may be lost;
/// * a take, open or complete hands out its record or its win only then; otherwise it fails
///   with [`StoreError::Unavailable`], and no authorization response is produced. A record
///   whose removal was not confirmed may come back after a failover; it can then be redeemed
///   once more, which is its first and only redemption, because the earlier one produced none.
///
/// A take that `WAIT` then fails has removed its record all the same. So that this stays a
/// race and not the rule, every script first counts the replicas the master lists as online
/// and acknowledging (within the last 3 s, from `INFO replication`) and, with fewer than N,
/// refuses before writing anything (`NOREPLICAS`, [`StoreError::Unavailable`]). After a
/// failover the promoted master has one replica fewer: with N replicas per master and N > 0,
/// its slots refuse every operation until a replica is back (the failed node restarted, or a
/// spare one moved by Redis Cluster's replica migration), and no redemption burns its handle
/// meanwhile. Give each master N + 1 replicas to keep serving through a failure.
///
/// What `WAIT` does not give, and what is left:
///
/// * It is not consensus. The failover must promote a replica that has the write. With one
///   replica per master and N = 1 it does, if that replica survives; with more replicas, set N
///   to all of them, or accept that the promoted one may lag (Redis prefers the replica with the
///   most data, but only as a ranking, not a rule).
/// * Replicas keep writes in memory: losing a master and the replica that confirmed a write
///   together loses the write. Persistence (`appendonly yes`, `appendfsync always`) narrows
///   that; tower-par does not configure the server.
/// * A timed-out operation is unknown, not undone, and may even run after the timeout (the
///   request was queued for a node that comes back): a take whose answer never arrived may have
///   removed the record, which is then burnt (the safe side); a put that timed out may have
///   stored a record no client holds, which the store deletes in the background (best effort;
///   otherwise it waits for its `expires_at` and holds its charge until then). A replica that
///   stalls between the count of online replicas and the `WAIT` lets a take burn its record.
/// * Without waiting (N = 0, the default) all of the above can happen on every failover: a
///   pushed request acknowledged by a master that dies before replicating is lost (the client's
///   redemption gets `invalid_request_uri`), and a redemption acknowledged by such a master can
///   be repeated once on the promoted replica.
///
/// The price is a replication round trip per write; see `BENCHMARKS.md`. Writes that wait use a
/// pool of 8 connections, because `WAIT` holds its connection until the replicas answer.
///
/// # Redis Cluster
///
/// `redis-cluster://` (any nodes of the cluster as seeds) uses redis-rs' cluster client: it maps
/// slots to masters, follows `MOVED` and `ASK`, refreshes the map when the cluster changes, and
/// reconnects. While a master is down and until the cluster promotes its replica (about the
/// cluster's `cluster-node-timeout` plus an election), operations on its slots fail with
/// [`StoreError::Unavailable`] within [`RedisStoreConfig::op_timeout`]; the other masters'
/// slots keep working if the cluster runs with `cluster-require-full-coverage no` (with Redis'
/// default, `yes`, the whole cluster refuses while a slot has no master). Service on the failed
/// slots resumes by itself once the replica is promoted (when waiting for N replicas: once the
/// promoted master has N replicas, see above). Every script declares all the keys it touches and
/// they share one slot, so a script never meets `CROSSSLOT`.
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
/// * A standalone server, the primary of a replicated setup, or a Redis Cluster. Sentinel is
///   not supported: redis-rs' Sentinel client finds the master when a connection is made and
///   does not follow a failover on connections already made.
/// * `maxmemory-policy noeviction` (the default). Under any `allkeys-*` or `volatile-*` policy
///   Redis may evict live records when memory runs short, and a client would then hold a
///   `request_uri` that cannot be redeemed. With `noeviction` a full Redis fails the write, which
///   the store reports as [`StoreError::Unavailable`].
/// * Replication is asynchronous unless the store waits for replicas (above). Waiting needs
///   Redis 5 or later (scripts read `INFO`, which older servers refuse before a write).
/// * Tested with Redis 7.0; the scripts use only commands of Redis 3.2 and later.
///
/// # Failing closed
///
/// Every Redis error, and every operation that does not finish within
/// [`RedisStoreConfig::op_timeout`], is [`StoreError::Unavailable`]. A timed-out `take` may
/// still have removed the record on the server; the handle is then burnt, which is the safe
/// side. The connections reconnect in the background, so the store recovers by itself when Redis
/// comes back.
#[derive(Clone)]
pub struct RedisStore {
    pool: Arc<[Connection]>,
    next: Arc<AtomicUsize>,
    prefix: Arc<str>,
    shards: Arc<[ShardKeys]>,
    op_timeout: Duration,
    wait: Option<Wait>,
    limits: StoreLimits,
}

/// The names of one shard's keys.
#[derive(Debug)]
struct ShardKeys {
    /// `{<prefix>:<shard>:<salt>}`, the hash tag every key of the shard starts with.
    tag: String,
    live: String,
    charges: String,
    usage: String,
}

/// What follows every write (see [`RedisStoreConfig::wait_replicas`]).
#[derive(Clone, Copy, Debug)]
struct Wait {
    replicas: u32,
    timeout_ms: u64,
}

/// One script call on the keys of one shard, sent as `EVALSHA`, or as `EVAL` when the server
/// answers `NOSCRIPT`.
///
/// Not redis-rs' `ScriptInvocation`: that one loads a missing script with `SCRIPT LOAD`, which a
/// cluster client sends to every node and which fails while any of them is down, just when a
/// freshly promoted replica (script caches are not replicated) needs the script; and it cannot
/// share a pipeline with the `WAIT` that must follow the write on the same connection.
struct Call {
    lua: &'static Lua,
    /// Record, opened marker, live, charges, usage.
    keys: [String; 5],
    args: Vec<Vec<u8>>,
    /// The replicas that must be online for the script to run (0: no check), its last ARGV.
    replicas: u32,
}

impl Call {
    fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn command(&self, by_hash: bool) -> Cmd {
        let (name, script) = if by_hash {
            ("EVALSHA", &self.lua.hash)
        } else {
            ("EVAL", &self.lua.code)
        };
        let mut command = cmd(name);
        command
            .arg(script)
            .arg(self.keys.len())
            .arg(&self.keys[..])
            .arg(&self.args[..])
            .arg(self.replicas);
        command
    }
}

/// A script's answer, and what the replicas did not confirm (nothing, without waiting).
struct Reply {
    value: Value,
    unconfirmed: Option<Unconfirmed>,
}

impl Reply {
    /// The answer as a `T`; [`StoreError::Unavailable`] for an answer that `acts(&answer)` (a
    /// write the store would act on) when the replicas did not confirm it.
    fn confirmed<T: FromRedisValue>(self, acts: impl FnOnce(&T) -> bool) -> Result<T, StoreError> {
        let answer: T = from_redis_value(self.value).map_err(|e| unavailable(e.into()))?;
        match self.unconfirmed {
            Some(unconfirmed) if acts(&answer) => {
                Err(StoreError::Unavailable(Box::new(unconfirmed)))
            }
            _ => Ok(answer),
        }
    }
}

/// Sends `call`, followed by `WAIT` in the same pipeline when `wait` says so; `EVAL` after a
/// `NOSCRIPT`.
async fn send(conn: &mut Connection, call: &Call, wait: Option<Wait>) -> RedisResult<Reply> {
    let mut by_hash = true;
    loop {
        let command = call.command(by_hash);
        let (value, unconfirmed) = match wait {
            None => (conn.req_packed_command(&command).await?, None),
            Some(wait) => {
                let mut pipeline = pipe();
                pipeline
                    .add_command(command)
                    .cmd("WAIT")
                    .arg(wait.replicas)
                    .arg(wait.timeout_ms);
                let replies = conn.req_packed_commands(&pipeline, 0, 2).await?;
                let Ok([value, acknowledged]) = <[Value; 2]>::try_from(replies) else {
                    return Err(RedisError::from((
                        ErrorKind::UnexpectedReturnType,
                        "a script and WAIT got other than two answers",
                    )));
                };
                let acknowledged: u64 = from_redis_value(acknowledged.extract_error()?)?;
                (
                    value,
                    (acknowledged < u64::from(wait.replicas)).then_some(Unconfirmed(wait)),
                )
            }
        };
        match value.extract_error() {
            Err(e) if by_hash && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                by_hash = false;
            }
            value => {
                return Ok(Reply {
                    value: value?,
                    unconfirmed,
                })
            }
        }
    }
}

impl RedisStore {
    /// Connects to Redis (one server, or a Redis Cluster) and checks that it answers.
    ///
    /// Fails with [`StoreError::Unavailable`] when the URL is invalid (or asks for TLS without
    /// the `redis-tls` feature), the prefix or shard count is invalid, or Redis cannot be reached
    /// within the connect timeout, so that a misconfiguration shows at startup. Once connected,
    /// outages are survived: operations fail with [`StoreError::Unavailable`] and the store
    /// recovers when Redis is back. To start while Redis may be down, use
    /// [`RedisStore::connect_lazy`].
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let (shards, wait) = Self::checked(&config)?;
        let connect_timeout = config.connect_timeout;
        let count = pool_size(wait);
        let pool = if let Some(client) = config.single_client()? {
            // One direct attempt gives a prompt and specific error ("connection refused", "auth
            // failed"); the manager would retry with backoff for seconds before giving up.
            run(connect_timeout, async {
                let mut probe = client.get_multiplexed_async_connection().await?;
                cmd("PING").query_async::<()>(&mut probe).await
            })
            .await?;
            let pool = config.connections(count)?;
            for conn in pool.iter() {
                let mut conn = conn.clone();
                run(connect_timeout, async move {
                    cmd("PING").query_async::<()>(&mut conn).await
                })
                .await?;
            }
            pool
        } else {
            // Connected now, nodes and slot map, within the connect timeout: a pending connection
            // would do it in the first operation, within the (shorter) operation timeout.
            let client = config.cluster_client()?;
            let mut pool = Vec::with_capacity(count);
            for _ in 0..count {
                let connecting = client.get_async_connection_with_config(config.cluster_config());
                pool.push(Connection::Cluster(run(connect_timeout, connecting).await?));
            }
            pool.into()
        };
        Ok(Self::assemble(config, shards, wait, pool))
    }

    /// Creates the store without contacting Redis: the first operations connect, and fail with
    /// [`StoreError::Unavailable`] until Redis answers.
    ///
    /// Fails only for an invalid URL, prefix or shard count, or when called outside a Tokio
    /// runtime.
    pub fn connect_lazy(config: RedisStoreConfig) -> Result<Self, StoreError> {
        let (shards, wait) = Self::checked(&config)?;
        let pool = config.connections(pool_size(wait))?;
        Ok(Self::assemble(config, shards, wait, pool))
    }

    /// The shard count and the waiting of a configuration, checked.
    fn checked(config: &RedisStoreConfig) -> Result<(u32, Option<Wait>), StoreError> {
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
        let wait = (config.wait_replicas > 0).then(|| Wait {
            replicas: config.wait_replicas,
            // A third: a write met with NOSCRIPT is sent again, and both WAITs must fit.
            timeout_ms: u64::try_from(config.op_timeout.as_millis() / 3)
                .unwrap_or(u64::MAX)
                .max(1),
        });
        Ok((shards, wait))
    }

    fn assemble(
        config: RedisStoreConfig,
        shards: u32,
        wait: Option<Wait>,
        pool: Arc<[Connection]>,
    ) -> Self {
        let shard_keys = (0..shards)
            .map(|shard| {
                let tag = shard_tag(&config.prefix, shard, shards);
                ShardKeys {
                    live: format!("{tag}:live"),
                    charges: format!("{tag}:charges"),
                    usage: format!("{tag}:usage"),
                    tag,
                }
            })
            .collect();
        Self {
            pool,
            next: Arc::new(AtomicUsize::new(0)),
            prefix: config.prefix.into(),
            shards: shard_keys,
            op_timeout: config.op_timeout,
            wait,
            limits: StoreLimits::new(config.max_entries, config.max_stored_bytes)
                .with_partitions(shards),
        }
    }

    /// The shard of a store key, and the key's name in the shard's books (its hex).
    fn locate(&self, key: &StoreKey) -> (u32, String) {
        let digest = key.as_bytes();
        let tail = u32::from_be_bytes([digest[28], digest[29], digest[30], digest[31]]);
        (tail % self.limits.partitions(), key.to_hex())
    }

    /// A call of `lua` on the keys of `member` in `shard`.
    fn call(&self, lua: &'static Lua, shard: u32, member: &str) -> Call {
        let keys = &self.shards[shard as usize];
        let record = format!("{}:{member}", keys.tag);
        Call {
            lua,
            keys: [
                record.clone(),
                format!("{record}:opened"),
                keys.live.clone(),
                keys.charges.clone(),
                keys.usage.clone(),
            ],
            args: Vec::with_capacity(16),
            replicas: self.wait.map_or(0, |wait| wait.replicas),
        }
    }

    /// `limit`'s part in `shard`.
    fn part(&self, limit: u64, shard: u32) -> u64 {
        part(limit, shard, self.limits.partitions())
    }

    /// The next connection of the pool (a `WAIT` holds its connection: turns spread the load).
    fn connection(&self) -> Connection {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        self.pool[turn].clone()
    }

    /// Runs `call` on the next connection of the pool, with `WAIT` when configured.
    async fn execute(&self, call: &Call) -> Result<Reply, StoreError> {
        run(
            self.op_timeout,
            send(&mut self.connection(), call, self.wait),
        )
        .await
    }

    /// Deletes the record of a put that failed after it may have stored it, in the background
    /// (the push answers at once): its handle was never given out, only its charge is to be
    /// given back. Best effort: while Redis is unreachable the record waits for its deadline.
    fn discard(&self, shard: u32, member: String, now_ms: u64) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut call = store.call(&TAKE, shard, &member);
            call.arg(now_ms).arg(&member);
            // Deleting what nobody holds needs no replica.
            call.replicas = 0;
            let mut conn = store.pool[0].clone();
            if let Err(err) = run(store.op_timeout, send(&mut conn, &call, None)).await {
                tracing::debug!(error = %err, "a refused pushed request could not be deleted; it holds its charge until it expires");
            }
        });
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("wait", &self.wait)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Milliseconds from `now` to `deadline`, at least 1: Redis refuses a TTL of 0, and a record
/// that is already dead is judged by its deadline anyway.
fn ttl_millis(deadline_ms: u64, now_ms: u64) -> u64 {
    deadline_ms.saturating_sub(now_ms).max(1)
}

fn unavailable(e: RedisError) -> StoreError {
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

/// A write fewer replicas than [`RedisStoreConfig::wait_replicas`] confirmed in time.
#[derive(Clone, Copy, Debug)]
struct Unconfirmed(Wait);

impl fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fewer than {} Redis replicas confirmed the write within {} ms",
            self.0.replicas, self.0.timeout_ms
        )
    }
}

impl std::error::Error for Unconfirmed {}

/// Whether a script refused to run because too few replicas were online (its `NOREPLICAS`),
/// before it wrote anything.
fn refused_for_want_of_replicas(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(e)
        if e.downcast_ref::<RedisError>().and_then(RedisError::code) == Some("NOREPLICAS"))
}

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
        let (shard, member) = self.locate(&key);
        let mut call = self.call(&PUT, shard, &member);
        call.arg(record.to_bytes())
            .arg(now_ms)
            .arg(ttl_millis(deadline_ms, now_ms))
            .arg(deadline_ms)
            .arg(&member)
            .arg(record.weight())
            .arg(self.part(self.limits.max_entries(), shard))
            .arg(self.part(self.limits.max_bytes(), shard));
        for share in [Some(charge.owner()), charge.group()] {
            match share {
                Some(share) => call
                    .arg(share.bucket().to_hex())
                    .arg(self.part(share.max_entries(), shard))
                    .arg(self.part(share.max_bytes(), shard)),
                None => call.arg("").arg(0).arg(0),
            };
        }
        Box::pin(async move {
            let outcome = self
                .execute(&call)
                .await
                .and_then(|reply| reply.confirmed::<i64>(|&outcome| outcome == 1));
            match outcome {
                Ok(1) => Ok(()),
                Ok(0) => Err(StoreError::Exists),
                Ok(3) => Err(StoreError::ShareExhausted),
                Ok(_) => Err(StoreError::Full),
                Err(err) => {
                    // Stored but not confirmed, or perhaps stored (an answer that never came):
                    // nobody holds the handle, only the charge is to be given back. Refused for
                    // want of replicas, the script wrote nothing.
                    if !refused_for_want_of_replicas(&err) {
                        self.discard(shard, member, now_ms);
                    }
                    Err(err)
                }
            }
        })
    }

    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        let (shard, member) = self.locate(&key);
        let mut call = self.call(&TAKE, shard, &member);
        call.arg(unix_millis(now)).arg(&member);
        Box::pin(async move {
            let reply = self.execute(&call).await?;
            decode(reply.confirmed(Option::is_some)?)
        })
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
        let (shard, member) = self.locate(&key);
        let mut call = self.call(&OPEN, shard, &member);
        call.arg(now_ms)
            .arg(until_ms)
            .arg(ttl_millis(until_ms, now_ms))
            .arg(&member);
        Box::pin(async move {
            let reply = self.execute(&call).await?;
            decode(reply.confirmed(Option::is_some)?)
        })
    }

    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        let (shard, member) = self.locate(&key);
        let mut call = self.call(&COMPLETE, shard, &member);
        call.arg(unix_millis(now)).arg(&member);
        Box::pin(async move {
            let reply = self.execute(&call).await?;
            reply.confirmed(|&won| won)
        })
    }

    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        let now_ms = unix_millis(now);
        let until_ms = unix_millis(until);
        let (shard, member) = self.locate(&key);
        let mut call = self.call(&REMEMBER, shard, &member);
        call.arg(until_ms)
            .arg(now_ms)
            .arg(ttl_millis(until_ms, now_ms))
            .arg(&member)
            .arg(RECORD_OVERHEAD_BYTES)
            .arg(self.part(self.limits.max_entries(), shard))
            .arg(self.part(self.limits.max_bytes(), shard));
        Box::pin(async move {
            let reply = self.execute(&call).await?;
            match reply.confirmed::<i64>(|&outcome| outcome == 1)? {
                1 => Ok(true),
                0 => Ok(false),
                _ => Err(StoreError::Full),
            }
        })
    }

    /// The members of every shard's `live` set alive at `now` (`ZCOUNT`, one shard at a time,
    /// so that no command crosses a slot): pushed requests and remembered JWT ids. On a Redis
    /// Cluster each `ZCOUNT` goes to the master of its shard's slot (the client routes a keyed
    /// command by its key, and reads from masters only).
    fn stored_requests(&self, now: SystemTime) -> StoreFuture<'_, Option<u64>> {
        let after_now = format!("({}", unix_millis(now));
        let mut conn = self.connection();
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
    fn cluster_urls_name_their_seeds() {
        let seeds = |url| cluster_seeds(url).map(|r| r.map_err(drop));
        let owned = |v: &[&str]| Some(Ok(v.iter().map(|s| (*s).to_owned()).collect()));
        assert_eq!(seeds("redis://h:6379/0"), None);
        assert_eq!(
            seeds("redis-cluster://10.0.0.1:7000,10.0.0.2:7001"),
            owned(&["redis://10.0.0.1:7000/", "redis://10.0.0.2:7001/"])
        );
        assert_eq!(
            seeds("redis-cluster://u:pw@a:1,b:2/"),
            owned(&["redis://u:pw@a:1/", "redis://u:pw@b:2/"])
        );
        assert_eq!(seeds("rediss-cluster://a:1"), owned(&["rediss://a:1/"]));
        for bad in [
            "redis-cluster://a:1/2",
            "redis-cluster://a:1?x=y",
            "redis-cluster://a:1,,b:2",
            "redis-cluster://",
        ] {
            assert_eq!(seeds(bad), Some(Err(())), "{bad}");
        }
        assert!(!format!(
            "{:?}",
            RedisStoreConfig::new("redis-cluster://u:hunter2@a:1,b:2")
        )
        .contains("hunter2"));
    }

    #[test]
    fn shard_tags_fall_in_their_share_of_the_slots() {
        // Redis' own answer: CLUSTER KEYSLOT foo is 12182.
        assert_eq!(slot_of("foo"), 12_182);
        for shards in [1, 3, 16, 1024] {
            for shard in 0..shards {
                let tag = shard_tag("tower-par:https://as.example.com", shard, shards);
                let inside = tag.strip_prefix('{').and_then(|t| t.strip_suffix('}'));
                let slot = slot_of(inside.expect("a hash tag"));
                assert_eq!(slot * shards / CLUSTER_SLOTS, shard, "{tag} of {shards}");
            }
        }
    }

    #[test]
    fn only_a_refusal_for_want_of_replicas_wrote_nothing() {
        let refused = ::redis::make_extension_error(
            "NOREPLICAS".into(),
            Some("0 of 1 replicas online".into()),
        );
        assert!(refused_for_want_of_replicas(&unavailable(refused)));
        let other = RedisError::from((ErrorKind::Io, "connection reset"));
        assert!(!refused_for_want_of_replicas(&unavailable(other)));
        let timed_out = StoreError::Unavailable(Box::new(TimedOut(Duration::from_millis(5))));
        assert!(!refused_for_want_of_replicas(&timed_out));
    }

    #[test]
    fn ttl_is_never_zero() {
        assert_eq!(ttl_millis(1_000, 400), 600);
        assert_eq!(ttl_millis(1_000, 1_000), 1);
        assert_eq!(ttl_millis(1_000, 5_000), 1);
    }
}
