//! A throwaway `redis-server` for tests: a child process on a free loopback port, without
//! persistence, killed on drop.
//!
//! Tests that need Redis must never skip silently: when `redis-server` cannot be found or does
//! not start, [`RedisServer::start`] panics with what to install. Set `REDIS_SERVER` to the
//! binary's path to use one outside `PATH`.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use std::{
    env, fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long a fresh server gets to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) child `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// With TLS: the CA certificate (PEM) that signed the server's certificate.
    tls_ca: Option<Vec<u8>>,
    /// More `redis-server` arguments, given on every (re)start.
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing or does not come up: a test needing Redis fails loudly.
    pub fn start() -> Self {
        Self::start_with(false, &[])
    }

    /// Like [`RedisServer::start`], with more `redis-server` arguments; `{port}` and `{dir}` in
    /// them become the server's port and directory.
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_with(false, args)
    }

    /// Like [`RedisServer::start`], but the server speaks only TLS, with a certificate for
    /// `127.0.0.1` from a throwaway CA (made with the `openssl` command; see
    /// [`RedisServer::tls_ca_pem`]).
    pub fn start_tls() -> Self {
        Self::start_with(true, &[])
    }

    /// Like [`RedisServer::start_tls`], with more arguments (as [`RedisServer::start_with_args`])
    /// and, with `like`, the CA and certificate of that server (nodes of one TLS cluster must
    /// trust each other).
    pub fn start_tls_with_args(args: &[&str], like: Option<&Self>) -> Self {
        match like {
            None => Self::start_with(true, args),
            Some(other) => Self::start_with_certificates_of(other, args),
        }
    }

    fn start_with(tls: bool, args: &[&str]) -> Self {
        Self::start_inner(tls, None, args)
    }

    fn start_with_certificates_of(other: &Self, args: &[&str]) -> Self {
        Self::start_inner(true, Some(other.dir.as_path()), args)
    }

    fn start_inner(tls: bool, certificates_in: Option<&Path>, args: &[&str]) -> Self {
        let binary = find_binary();
        // Another process can grab the port between our probe and the server's bind; retry
        // with a new port in that case.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir =
                env::temp_dir().join(format!("tower-par-redis-{}-{port}", std::process::id()));
            let extra_args = args
                .iter()
                .map(|arg| {
                    arg.replace("{port}", &port.to_string())
                        .replace("{dir}", &dir.display().to_string())
                })
                .collect();
            let mut server = Self {
                binary: binary.clone(),
                port,
                dir,
                child: None,
                tls_ca: None,
                extra_args,
            };
            if tls {
                let made = match certificates_in {
                    Some(from) => server.copy_certificates(from),
                    None => server.make_certificates(),
                };
                if let Err(e) = made {
                    panic!("cannot make TLS certificates for redis-server: {e}");
                }
            }
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// `redis://127.0.0.1:<port>/` (database 0), `rediss://…` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The CA certificate (PEM) a client must trust to reach a [`RedisServer::start_tls`]
    /// server; `None` for a plain server.
    pub fn tls_ca_pem(&self) -> Option<&[u8]> {
        self.tls_ca.as_deref()
    }

    /// The port the server listens on (it keeps it across [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (like a crash: clients see their connections drop) and waits for it
    /// to exit. Its data is gone; there is no persistence.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its connections but answers nothing, like a host
    /// that stalls.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`RedisServer::pause`]d server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server runs");
        // The shell's own `kill`: the binary is in procps, which minimal Debian images lack.
        let status = Command::new("sh")
            .args(["-c", &format!("kill {signal} {}", child.id())])
            .status()
            .expect("run sh");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the server again on the same port, after [`RedisServer::stop`].
    ///
    /// # Panics
    ///
    /// When it does not come up (for instance because the port was taken meanwhile).
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!("could not restart redis-server on port {}: {e}", self.port);
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let log = self.dir.join("redis.log");
        let port = self.port.to_string();
        let mut command = Command::new(&self.binary);
        command
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--daemonize", "no", "--protected-mode", "yes"]);
        if self.tls_ca.is_some() {
            command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.dir.join("ca.crt"));
        } else {
            command.args(["--port", &port]);
        }
        let mut child = command
            .args(&self.extra_args)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server exited with {status}; log:\n{log}"));
            }
            // A TLS port cannot be pinged in clear; accepting connections is enough there.
            let ready = if self.tls_ca.is_some() {
                listening(self.port)
            } else {
                ping(self.port)
            };
            if ready {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {STARTUP_TIMEOUT:?}",
                    self.port
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl RedisServer {
    /// The CA and server certificate of the server whose directory is `from`, in this one's.
    fn copy_certificates(&mut self, from: &Path) -> Result<(), String> {
        fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        for file in ["ca.crt", "server.crt", "server.key"] {
            fs::copy(from.join(file), self.dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
        }
        self.tls_ca = Some(fs::read(self.dir.join("ca.crt")).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// The CA certificate's file, for `redis-cli --cacert`; `None` for a plain server.
    pub fn tls_ca_file(&self) -> Option<PathBuf> {
        self.tls_ca.as_ref().map(|_| self.dir.join("ca.crt"))
    }

    /// A CA and a server certificate for 127.0.0.1 in the server's directory.
    fn make_certificates(&mut self) -> Result<(), String> {
        self.tls_ca = Some(throwaway_certificates(&self.dir)?);
        Ok(())
    }
}

/// A throwaway CA (`ca.crt`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`server.crt`, `server.key`) in `dir`, made with the `openssl` command. Returns the CA's PEM.
/// The certificate serves clients too (`clientAuth`): a TLS Redis Cluster's nodes present it to
/// each other on the cluster bus.
pub fn throwaway_certificates(dir: &Path) -> Result<Vec<u8>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .map_err(|e| e.to_string())?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [&[&str]; 3] = [
        &[
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.crt"],
            &["-days", "2", "-subj", "/CN=tower-par test CA"],
        ]
        .concat(),
        &[
            &["req"],
            &ec[..],
            &["-keyout", "server.key", "-out", "server.csr"],
            &["-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| {
                format!("cannot run openssl (install it: apt-get install -y openssl): {e}")
            })?;
        if !output.status.success() {
            return Err(format!(
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    fs::read(dir.join("ca.crt")).map_err(|e| e.to_string())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `$REDIS_SERVER`, else `redis-server` on `PATH`, else Debian's location.
pub fn find_binary() -> PathBuf {
    if let Some(path) = env::var_os("REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server not found (looked in $REDIS_SERVER, PATH, /usr/bin, /usr/sbin). \
                 These tests need a real Redis: install it with \
                 `sudo apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`, \
                 or point REDIS_SERVER at the binary."
            )
        })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral loopback port")
}

/// Whether something accepts connections on the port.
fn listening(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Whether a Redis answers `PING` on the port.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A key prefix no other store in this test process uses: `<tag>-<pid>-<n>`.
pub fn fresh_prefix(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
