//! The command-line flags the reference binaries share, and what they describe.

use std::{fmt, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::net::TcpListener;

use super::ServeConfig;
use crate::{
    client::StaticClients,
    store::{ParStore, StoreLimits, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_STORED_BYTES},
    Consumption, MemoryStore, ParLayer, ParLayerBuilder,
};

/// A flag the binaries cannot use, or a start-up step it names that failed (a clients file that
/// does not load, an address that cannot be bound, a store that cannot be reached). The binaries
/// print it and exit with code 2.
///
/// ```
/// use tower_par::server::FlagError;
///
/// let err = FlagError::new("--capacity 0: not a positive number");
/// assert_eq!(err.to_string(), "--capacity 0: not a positive number");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError(String);

impl FlagError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

/// The flags `par_server` and `par-proxy` share.
///
/// Each binary reads its own flags and hands every other one to [`CommonFlags::parse_flag`]; then
/// [`CommonFlags::bind`] gives the listener and the issuer, and [`CommonFlags::layer_builder`] a
/// [`ParLayerBuilder`] with the clients, the store, the lifetime, the consumption policy and
/// `require_par` set.
///
/// ```
/// use std::time::Duration;
/// use tower_par::server::CommonFlags;
///
/// let mut flags = CommonFlags::new("127.0.0.1:3000".parse().unwrap());
/// let mut args = ["--lifetime", "90", "--require-par", "--inner", "echo"]
///     .into_iter()
///     .map(String::from);
/// let mut inner = None;
/// while let Some(flag) = args.next() {
///     if flags.parse_flag(&flag, &mut args).unwrap() {
///         continue;
///     }
///     match flag.as_str() {
///         "--inner" => inner = args.next(), // the binary's own flag
///         other => panic!("unknown flag {other}"),
///     }
/// }
/// assert_eq!(flags.lifetime, Duration::from_secs(90));
/// assert!(flags.require_par);
/// assert_eq!(inner.as_deref(), Some("echo"));
/// assert!(flags.parse_flag("--capacity", &mut ["0".to_string()].into_iter()).is_err());
/// assert!(flags.parse_flag("--body-timeout", &mut ["0.5".to_string()].into_iter()).unwrap());
/// assert_eq!(flags.body_timeout, Duration::from_millis(500));
/// assert!(flags.parse_flag("--header-read-timeout", &mut ["0".to_string()].into_iter()).is_err());
///
/// // A Redis Cluster named by two of its nodes; every write waits for one replica.
/// let mut value = |v: &str| [v.to_string()].into_iter();
/// assert!(flags.parse_flag("--store", &mut value("redis-cluster://10.0.0.1:7000,10.0.0.2:7000")).unwrap());
/// assert!(flags.parse_flag("--redis-wait-replicas", &mut value("1")).unwrap());
/// assert_eq!(flags.redis_wait_replicas, 1);
/// assert!(flags.parse_flag("--redis-wait-replicas", &mut value("-1")).is_err());
/// assert!(flags.parse_flag("--store", &mut value("memcached://h:1")).is_err());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CommonFlags {
    /// `--listen ADDR`: where to accept connections.
    pub listen: SocketAddr,
    /// `--clients PATH`: the clients JSON file; `None` leaves the choice to the binary.
    pub clients: Option<PathBuf>,
    /// `--issuer URL`; `None`: `http://<bound address>`.
    pub issuer: Option<String>,
    /// `--lifetime SECS`: the default `request_uri` lifetime (default 60).
    pub lifetime: Duration,
    /// `--capacity N`: the most stored requests (default 1,000,000).
    pub capacity: u64,
    /// `--max-stored-bytes N`: the byte budget of the store (default 256 MiB).
    pub max_stored_bytes: u64,
    /// `--store memory|redis://…|redis-cluster://…`: where pushed requests live (default
    /// `memory`).
    pub store: String,
    /// `--redis-wait-replicas N`: how many replicas must hold each write of a Redis store
    /// before it counts (default 0; [`RedisStoreConfig::wait_replicas`](crate::store::RedisStoreConfig::wait_replicas)).
    pub redis_wait_replicas: u32,
    /// `--consume strict|completion` (default strict).
    pub consume: Consumption,
    /// `--require-par`: every client must push.
    pub require_par: bool,
    /// `--body-timeout SECS`: how long a PAR body or POST authorization form may take to
    /// arrive (default 10; [`ParLayerBuilder::body_timeout`]).
    pub body_timeout: Duration,
    /// `--header-read-timeout SECS`: how long a request head may take to arrive (default 10;
    /// [`ServeConfig::header_read_timeout`]).
    pub header_read_timeout: Duration,
    /// `--metrics ADDR`: serve `/metrics` in the Prometheus text format on this address (feature
    /// `prometheus`; [`CommonFlags::start_metrics`]). Default: no metrics endpoint.
    pub metrics: Option<SocketAddr>,
}

impl CommonFlags {
    /// The usage text of the common flags.
    pub const USAGE: &'static str = "[--listen ADDR] [--clients PATH] [--issuer URL] \
[--lifetime SECS] [--capacity N] [--max-stored-bytes N] \
[--store memory|redis://HOST:PORT/|redis-cluster://HOST:PORT[,HOST:PORT…]] [--redis-wait-replicas N] \
[--consume strict|completion] [--require-par] [--body-timeout SECS] [--header-read-timeout SECS] \
[--metrics ADDR]";

    /// The defaults, listening on `listen`.
    #[must_use]
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            clients: None,
            issuer: None,
            lifetime: Duration::from_secs(60),
            capacity: DEFAULT_MAX_ENTRIES,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
            store: "memory".into(),
            redis_wait_replicas: 0,
            consume: Consumption::Strict,
            require_par: false,
            body_timeout: ParLayerBuilder::DEFAULT_BODY_TIMEOUT,
            header_read_timeout: ServeConfig::DEFAULT_HEADER_READ_TIMEOUT,
            metrics: None,
        }
    }

    /// Reads `flag` if it is one of the common flags, taking its value from `args`.
    ///
    /// `Ok(true)`: it was; `Ok(false)`: it is not a common flag (the binary's own, or unknown).
    ///
    /// # Errors
    ///
    /// A common flag without a value or with a value that cannot be used.
    pub fn parse_flag(
        &mut self,
        flag: &str,
        args: &mut dyn Iterator<Item = String>,
    ) -> Result<bool, FlagError> {
        if flag == "--require-par" {
            self.require_par = true;
            return Ok(true);
        }
        if !WITH_VALUE.contains(&flag) {
            return Ok(false);
        }
        let value = args
            .next()
            .ok_or_else(|| FlagError(format!("{flag} needs a value")))?;
        let bad = |what: &str| FlagError(format!("{flag} {value}: {what}"));
        match flag {
            "--listen" => {
                self.listen = value
                    .parse()
                    .map_err(|_| bad("not an address like 127.0.0.1:3000"))?;
            }
            "--clients" => self.clients = Some(PathBuf::from(value)),
            "--issuer" => self.issuer = Some(value),
            "--lifetime" => {
                self.lifetime = value
                    .parse()
                    .map(Duration::from_secs)
                    .map_err(|_| bad("not a number of seconds"))?;
            }
            "--capacity" => {
                self.capacity = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("not a positive number"))?;
            }
            "--max-stored-bytes" => {
                self.max_stored_bytes = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("not a positive number of bytes"))?;
            }
            "--store" => {
                const REDIS: [&str; 4] = [
                    "redis://",
                    "rediss://",
                    "redis-cluster://",
                    "rediss-cluster://",
                ];
                if value != "memory" && !REDIS.iter().any(|scheme| value.starts_with(scheme)) {
                    return Err(bad(
                        "expected memory, a redis:// URL or a redis-cluster://HOST:PORT,… URL",
                    ));
                }
                self.store = value;
            }
            "--redis-wait-replicas" => {
                self.redis_wait_replicas =
                    value.parse().map_err(|_| bad("not a number of replicas"))?;
            }
            "--consume" => {
                self.consume = match value.as_str() {
                    "strict" => Consumption::Strict,
                    "completion" => Consumption::at_completion(),
                    _ => return Err(bad("expected strict or completion")),
                };
            }
            "--body-timeout" => {
                self.body_timeout = positive_seconds(&value).ok_or_else(|| bad(SECONDS))?;
            }
            "--header-read-timeout" => {
                self.header_read_timeout = positive_seconds(&value).ok_or_else(|| bad(SECONDS))?;
            }
            "--metrics" => {
                self.metrics = Some(
                    value
                        .parse()
                        .map_err(|_| bad("not an address like 127.0.0.1:9100"))?,
                );
            }
            _ => unreachable!("every flag of WITH_VALUE is matched"),
        }
        Ok(true)
    }

    /// What the flags set up that will not work as the operator probably expects, one line each,
    /// for the binary to print on stderr. Today: a Redis store without `--issuer` (nodes behind
    /// one load balancer must share one issuer: the store's keys include it, so with each node's
    /// default `http://<its own address>` no handle redeems on another node).
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.store != "memory" && self.issuer.is_none() {
            warnings.push(format!(
                "--store {} without --issuer: this node's issuer is its own listen address, and \
                 the store's keys include the issuer, so a request pushed to one node will not \
                 redeem on another; give every node behind one load balancer the same --issuer",
                self.store
            ));
        }
        warnings
    }

    /// The [`ServeConfig`] of these flags (`--header-read-timeout`).
    #[must_use]
    pub fn serve_config(&self) -> ServeConfig {
        ServeConfig::default().header_read_timeout(self.header_read_timeout)
    }

    /// Binds `--listen`, and names the issuer: `--issuer`, or `http://<bound address>` (the real
    /// port, also with `--listen 127.0.0.1:0`), without a trailing slash.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn bind(&self) -> Result<(TcpListener, String), FlagError> {
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|err| FlagError(format!("cannot listen on {}: {err}", self.listen)))?;
        let addr = listener.local_addr().unwrap_or(self.listen);
        let issuer = self
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        Ok((listener, issuer.trim_end_matches('/').to_owned()))
    }

    /// Loads `--clients`, or `default_json` when the flag was not given.
    ///
    /// # Errors
    ///
    /// The file cannot be read or is not a valid clients file.
    pub fn load_clients(&self, default_json: &str) -> Result<StaticClients, FlagError> {
        match &self.clients {
            Some(path) => StaticClients::from_json_file(path),
            None => StaticClients::from_json_str(default_json),
        }
        .map_err(|err| FlagError(err.to_string()))
    }

    /// The store-wide limits `--capacity` and `--max-stored-bytes` describe.
    #[must_use]
    pub fn limits(&self) -> StoreLimits {
        StoreLimits::new(self.capacity, self.max_stored_bytes)
    }

    /// The store `--store` names: a [`MemoryStore`] of `--capacity` entries and
    /// `--max-stored-bytes` bytes, or a Redis store (feature `redis`) on one server or a Redis
    /// Cluster whose keys are prefixed with the issuer, with the same limits, waiting for
    /// `--redis-wait-replicas` replicas after each write.
    ///
    /// # Errors
    ///
    /// Redis cannot be reached, this build has no Redis support, or `--redis-wait-replicas` was
    /// given for the memory store.
    pub async fn store(&self, issuer: &str) -> Result<Arc<dyn ParStore>, FlagError> {
        if self.store == "memory" {
            if self.redis_wait_replicas > 0 {
                return Err(FlagError(
                    "--redis-wait-replicas needs --store redis://… or redis-cluster://…".into(),
                ));
            }
            return Ok(Arc::new(MemoryStore::with_limits(self.limits())));
        }
        self.redis_store(issuer).await
    }

    #[cfg(feature = "redis")]
    async fn redis_store(&self, issuer: &str) -> Result<Arc<dyn ParStore>, FlagError> {
        let url = &self.store;
        let config = crate::store::RedisStoreConfig::new(url.as_str())
            .prefix(format!("tower-par:{issuer}"))
            .max_entries(self.capacity)
            .max_stored_bytes(self.max_stored_bytes)
            .wait_replicas(self.redis_wait_replicas);
        let store = crate::store::RedisStore::connect(config)
            .await
            .map_err(|err| FlagError(format!("redis store {url}: {err}")))?;
        Ok(Arc::new(store))
    }

    #[cfg(not(feature = "redis"))]
    #[allow(clippy::unused_async)]
    async fn redis_store(&self, _issuer: &str) -> Result<Arc<dyn ParStore>, FlagError> {
        Err(FlagError(format!(
            "--store {}: this build has no Redis support (feature `redis`)",
            self.store
        )))
    }

    /// A [`ParLayerBuilder`] with `issuer`, `clients`, the store, the default lifetime, the
    /// consumption policy, `require_par` and the body timeout of these flags; the binary adds the rest (paths,
    /// metadata) and builds it.
    ///
    /// # Errors
    ///
    /// As [`CommonFlags::store`].
    pub async fn layer_builder(
        &self,
        issuer: &str,
        clients: StaticClients,
    ) -> Result<ParLayerBuilder, FlagError> {
        Ok(ParLayer::builder()
            .issuer(issuer)
            .clients(clients)
            .store(self.store(issuer).await?)
            .default_lifetime(self.lifetime)
            .require_par(self.require_par)
            .consumption(self.consume)
            .body_timeout(self.body_timeout))
    }
}

impl CommonFlags {
    /// With `--metrics ADDR`: installs the Prometheus recorder (see
    /// [`install_prometheus_recorder`](super::install_prometheus_recorder)), binds `ADDR` and
    /// serves `/metrics` there for `layer` on a Tokio task, and returns the bound address (the
    /// real port, also for `127.0.0.1:0`). Without the flag: `Ok(None)`, nothing installed.
    ///
    /// ```no_run
    /// use tower_par::{server::CommonFlags, ParLayer, StaticClients};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut flags = CommonFlags::new("127.0.0.1:3000".parse()?);
    /// flags.parse_flag("--metrics", &mut ["127.0.0.1:9100".to_owned()].into_iter())?;
    /// let par = ParLayer::builder()
    ///     .issuer("https://as.example.com")
    ///     .clients(StaticClients::default())
    ///     .build()?;
    /// if let Some(addr) = flags.start_metrics(&par).await? {
    ///     println!("metrics on http://{addr}/metrics");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The address cannot be bound, another `metrics` recorder is installed, or this build has
    /// no Prometheus support (feature `prometheus`).
    #[cfg(feature = "prometheus")]
    pub async fn start_metrics(&self, layer: &ParLayer) -> Result<Option<SocketAddr>, FlagError> {
        let Some(addr) = self.metrics else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|err| FlagError(format!("--metrics: cannot listen on {addr}: {err}")))?;
        let bound = listener.local_addr().unwrap_or(addr);
        let handle = super::install_prometheus_recorder()?;
        tokio::spawn(super::serve_metrics(
            listener,
            layer.clone(),
            handle,
            std::future::pending(),
        ));
        Ok(Some(bound))
    }

    /// Without the `prometheus` feature, `--metrics` cannot be served.
    ///
    /// # Errors
    ///
    /// `--metrics` was given.
    #[cfg(not(feature = "prometheus"))]
    #[allow(clippy::unused_async)]
    pub async fn start_metrics(&self, layer: &ParLayer) -> Result<Option<SocketAddr>, FlagError> {
        let _ = layer;
        match self.metrics {
            None => Ok(None),
            Some(addr) => Err(FlagError(format!(
                "--metrics {addr}: this build has no Prometheus support (feature `prometheus`)"
            ))),
        }
    }
}

/// The common flags that take a value (`--require-par` is the one that does not).
const WITH_VALUE: [&str; 12] = [
    "--listen",
    "--clients",
    "--issuer",
    "--lifetime",
    "--capacity",
    "--max-stored-bytes",
    "--store",
    "--redis-wait-replicas",
    "--consume",
    "--body-timeout",
    "--header-read-timeout",
    "--metrics",
];

const SECONDS: &str = "not a positive number of seconds";

/// A positive number of seconds, fractions allowed (`0.5`).
fn positive_seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.parse().ok()?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The usage text names every common flag exactly once, and no other.
    #[test]
    fn usage_names_every_flag_once() {
        let usage = CommonFlags::USAGE;
        for flag in WITH_VALUE.iter().chain(&["--require-par"]) {
            let mentions = usage.matches(&format!("[{flag} ")).count()
                + usage.matches(&format!("[{flag}]")).count();
            assert_eq!(mentions, 1, "{flag} in {usage}");
        }
        assert_eq!(
            usage.matches("[--").count(),
            WITH_VALUE.len() + 1,
            "{usage}"
        );
    }
}
