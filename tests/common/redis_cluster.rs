//! A throwaway Redis Cluster for tests: 3 masters and 3 replicas, six `redis-server` children on
//! free loopback ports (`--cluster-enabled yes --cluster-node-timeout 1000`, each in its own
//! temporary directory), joined by `redis-cli --cluster create … --cluster-replicas 1`. Every
//! process is killed when the cluster is dropped, also when a test panics.
//!
//! Needs `redis-server` and `redis-cli` (Debian: `apt-get install -y redis-server`, which brings
//! `redis-tools`); a test never skips. The test crate must also declare `mod redis_server;`
//! (`common/redis_server.rs`).
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use tower_par::store::StoreKey;

use super::redis_server::{find_binary, free_port, RedisServer};

/// How long the cluster gets to form, or to settle after a change.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One node's view of a cluster member, from `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// For a replica, the id of its master.
    pub master_id: Option<String>,
    /// For a master, the slot ranges it serves (inclusive).
    pub slots: Vec<(u16, u16)>,
}

/// A running Redis Cluster of 3 masters and 3 replicas.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    cli: PathBuf,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until it is healthy.
    ///
    /// `cluster-require-full-coverage no`: while one master is down and not yet replaced, the
    /// other masters keep serving their slots (Redis' default `yes` stops the whole cluster).
    /// `repl-diskless-sync-delay 0`: a replica that (re)joins gets its copy at once, not after
    /// Redis' default 5 s wait for more replicas.
    ///
    /// # Panics
    ///
    /// When a server or `redis-cli` is missing, or the cluster does not form.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Like [`RedisCluster::start`], but every node speaks only TLS, to clients, to its replica
    /// and on the cluster bus, with one throwaway CA ([`RedisCluster::tls_ca_pem`]).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let mut nodes: Vec<RedisServer> = Vec::new();
        for _ in 0..6 {
            let bus_port = free_port().to_string();
            let mut args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "1000",
                "--cluster-port",
                &bus_port,
                "--cluster-config-file",
                "{dir}/nodes.conf",
                "--cluster-require-full-coverage",
                "no",
                "--repl-diskless-sync-delay",
                "0",
            ];
            let node = if tls {
                args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
                RedisServer::start_tls_with_args(&args, nodes.first())
            } else {
                RedisServer::start_with_args(&args)
            };
            nodes.push(node);
        }
        let cli = find_binary().with_file_name("redis-cli");
        let cluster = Self { nodes, cli };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new(&cluster.cli)
            .args(cluster.tls_args())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (Debian: apt-get install -y redis-tools): {e}",
                    cluster.cli.display()
                )
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_healthy(3);
        cluster
    }

    /// `redis-cluster://127.0.0.1:P1,…` naming every node as a seed (`rediss-cluster://` for a
    /// TLS cluster).
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let scheme = if self.tls_ca_pem().is_some() {
            "rediss-cluster"
        } else {
            "redis-cluster"
        };
        format!("{scheme}://{}", seeds.join(","))
    }

    /// The CA certificate (PEM) of a [`RedisCluster::start_tls`] cluster.
    pub fn tls_ca_pem(&self) -> Option<&[u8]> {
        self.nodes[0].tls_ca_pem()
    }

    /// `redis-cli`'s TLS arguments for this cluster (none for a plain one).
    fn tls_args(&self) -> Vec<String> {
        self.nodes[0]
            .tls_ca_file()
            .map(|ca| vec!["--tls".into(), "--cacert".into(), ca.display().to_string()])
            .unwrap_or_default()
    }

    /// `redis://127.0.0.1:PORT/` of the node at `index` (0-5), for looking at it directly.
    pub fn node_url(&self, index: usize) -> String {
        self.nodes[index].url()
    }

    /// The index (0-5) of the node listening on `port`.
    pub fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// The members as the node at `index` sees them.
    pub fn members(&self, index: usize) -> Vec<Member> {
        self.cli(index, &["CLUSTER", "NODES"])
            .lines()
            .filter_map(parse_member)
            .collect()
    }

    /// The indices of the masters, as the first live node sees them.
    pub fn masters(&self) -> Vec<usize> {
        self.members(self.any_live())
            .iter()
            .filter(|m| m.master && !m.failed && !m.slots.is_empty())
            .map(|m| self.index_of(m.port))
            .collect()
    }

    /// The index of the master that serves `slot`, as the first live node sees it.
    pub fn master_of_slot(&self, slot: u16) -> usize {
        let members = self.members(self.any_live());
        let master = members
            .iter()
            .find(|m| {
                m.master && !m.failed && m.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {members:?}"));
        self.index_of(master.port)
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        self.cli(self.any_live(), &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }

    /// Where a `RedisStore` with `prefix` keeps its shards: shard → the index of the master
    /// holding its books (`{<prefix>:<shard>:<salt>}:usage`), for every shard that has any.
    pub fn shard_masters(&self, prefix: &str) -> HashMap<u32, usize> {
        let mut placed = HashMap::new();
        for master in self.masters() {
            let pattern = format!("{{{prefix}:*}}:usage");
            for name in self.cli(master, &["KEYS", &pattern]).lines() {
                let shard = name
                    .strip_prefix(&format!("{{{prefix}:"))
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|shard| shard.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected key {name}"));
                assert!(
                    placed.insert(shard, master).is_none(),
                    "shard {shard} on two masters"
                );
            }
        }
        placed
    }

    /// Kills the node at `index` with SIGKILL (no shutdown, no last words).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].stop();
    }

    /// Starts the node at `index` again, on its port, with its `nodes.conf`.
    pub fn restart(&mut self, index: usize) {
        self.nodes[index].restart();
    }

    /// Freezes the node at `index` (SIGSTOP), like a host that stalls.
    pub fn pause(&self, index: usize) {
        self.nodes[index].pause();
    }

    /// Lets a paused node run again (SIGCONT).
    pub fn resume(&self, index: usize) {
        self.nodes[index].resume();
    }

    /// The index of the replica of the master at `master`.
    pub fn replica_of(&self, master: usize) -> usize {
        let members = self.members(master);
        let id = &members
            .iter()
            .find(|m| m.port == self.nodes[master].port())
            .expect("the master knows itself")
            .id;
        let replica = members
            .iter()
            .find(|m| m.master_id.as_ref() == Some(id))
            .unwrap_or_else(|| panic!("node {master} has no replica: {members:?}"));
        self.index_of(replica.port)
    }

    /// Whether the node at `index` answers.
    pub fn is_up(&self, index: usize) -> bool {
        self.try_cli(index, &["PING"])
            .is_some_and(|reply| reply.trim() == "PONG")
    }

    /// Runs a command on the node at `index` with `redis-cli`, returning its raw output.
    ///
    /// # Panics
    ///
    /// When the node does not answer.
    pub fn cli(&self, index: usize, args: &[&str]) -> String {
        self.try_cli(index, args).unwrap_or_else(|| {
            panic!(
                "node {index} (port {}) did not answer {args:?}",
                self.nodes[index].port()
            )
        })
    }

    fn try_cli(&self, index: usize, args: &[&str]) -> Option<String> {
        let output = Command::new(&self.cli)
            .args(self.tls_args())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.nodes[index].port().to_string(),
            ])
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// A field (`name:value` line) of `INFO section` on the node at `index`.
    pub fn info_field(&self, index: usize, section: &str, name: &str) -> Option<String> {
        let info = self.cli(index, &["INFO", section]);
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .map(|value| value.trim().to_owned())
    }

    fn any_live(&self) -> usize {
        (0..self.nodes.len())
            .find(|&i| self.is_up(i))
            .expect("every node of the cluster is down")
    }

    /// Waits (at most [`SETTLE_TIMEOUT`]) until every live node sees `cluster_state:ok`, all
    /// slots served by `masters` masters, and every master with a replica whose link is up.
    ///
    /// # Panics
    ///
    /// When that does not happen in time.
    pub fn wait_healthy(&self, masters: usize) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            match self.health(masters) {
                Ok(()) => return,
                Err(problem) if Instant::now() > deadline => {
                    panic!("the cluster did not settle within {SETTLE_TIMEOUT:?}: {problem}")
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn health(&self, masters: usize) -> Result<(), String> {
        let live: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_up(i)).collect();
        for &i in &live {
            let info = self.cli(i, &["CLUSTER", "INFO"]);
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return Err(format!("node {i}: {info}"));
            }
        }
        let members = self.members(live[0]);
        let serving: Vec<&Member> = members
            .iter()
            .filter(|m| m.master && !m.failed && !m.slots.is_empty())
            .collect();
        if serving.len() != masters {
            return Err(format!(
                "{} masters serve slots: {members:?}",
                serving.len()
            ));
        }
        for master in serving {
            let index = self.index_of(master.port);
            let replicas = self.info_field(index, "replication", "connected_slaves");
            if replicas.as_deref() != Some("1") {
                return Err(format!("master {index} has {replicas:?} replicas"));
            }
        }
        for &i in &live {
            if self.info_field(i, "replication", "role").as_deref() == Some("slave")
                && self
                    .info_field(i, "replication", "master_link_status")
                    .as_deref()
                    != Some("up")
            {
                return Err(format!("replica {i} is not linked to its master"));
            }
        }
        Ok(())
    }
}

/// One line of `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch>
/// <link> <slot>…`.
fn parse_member(line: &str) -> Option<Member> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    let port = fields[1]
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let flags: Vec<&str> = fields[2].split(',').collect();
    let slots = fields[8..]
        .iter()
        .filter(|range| !range.starts_with('['))
        .filter_map(|range| match range.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => range.parse().ok().map(|s| (s, s)),
        })
        .collect();
    Some(Member {
        id: fields[0].to_owned(),
        port,
        master: flags.contains(&"master"),
        failed: flags.iter().any(|f| *f == "fail" || *f == "fail?"),
        master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
        slots,
    })
}

/// The shard (of 16, the default) of a store key, as `RedisStore`'s docs lay it out: the
/// digest's last four bytes, modulo the shard count.
pub fn shard_of(key: &StoreKey) -> u32 {
    let d = key.as_bytes();
    u32::from_be_bytes([d[28], d[29], d[30], d[31]]) % 16
}
