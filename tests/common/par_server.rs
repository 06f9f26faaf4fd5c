//! Runs the `par_server` example binary as a child process.
#![allow(dead_code, unreachable_pub)]

use std::{
    env, fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, SystemTime},
};

pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The example binary, checked to be newer than every source it is built from.
pub fn par_server_binary() -> PathBuf {
    if let Some(path) = env::var_os("PAR_SERVER_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/par_server_redis-<hash> -> target/<profile>/examples/par_server
    let exe = env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("par_server{}", env::consts::EXE_SUFFIX));
    let build =
        "run `cargo build --all-features --example par_server` (plain `cargo test` builds it \
                 too), or point PAR_SERVER_BIN at a par_server binary";
    let built = fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}; {build}", binary.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest = newest_mtime(&root.join("src"))
        .max(newest_mtime(&root.join("examples")))
        .max(newest_mtime(&root.join("Cargo.toml")));
    assert!(
        built >= newest,
        "{} is older than the sources; {build}",
        binary.display()
    );
    binary
}

fn newest_mtime(path: &Path) -> SystemTime {
    let Ok(meta) = fs::metadata(path) else {
        return SystemTime::UNIX_EPOCH;
    };
    let own = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if !meta.is_dir() {
        return own;
    }
    fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| newest_mtime(&entry.path()))
        .fold(own, SystemTime::max)
}

/// A running `par_server` child, killed on drop.
pub struct Node {
    pub child: Child,
    pub base: String,
    /// The `/metrics` URL it printed (`--metrics ADDR`).
    pub metrics: Option<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts `par_server --listen 127.0.0.1:0 ARGS…` and waits for "listening on".
    pub fn start(binary: &Path, args: &[&str]) -> Self {
        Self::start_with_stderr(binary, args, Stdio::inherit())
    }

    /// Like [`Node::start`], with stderr going to `stderr` (a file the test reads).
    pub fn start_with_stderr(binary: &Path, args: &[&str], stderr: impl Into<Stdio>) -> Self {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // A thread, so that a silent server cannot block the test past the timeout.
        std::thread::spawn(move || {
            let mut metrics = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Printed before "listening on".
                if let Some(url) = line.strip_prefix("metrics on ") {
                    metrics = Some(url.trim().to_owned());
                }
                if let Some(base) = line.strip_prefix("listening on ") {
                    let _ = tx.send((base.trim().to_owned(), metrics.take()));
                }
            }
        });
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok((base, metrics)) => Self {
                child,
                base,
                metrics,
            },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "par_server did not report its address within {STARTUP_TIMEOUT:?} ({status:?})"
                );
            }
        }
    }
}

/// Runs `binary ARGS` and asserts what a reference binary does with flags it cannot use: exit
/// code 2, nothing on stdout, a message on stderr that starts with `prefix`. Returns stderr.
#[track_caller]
pub fn assert_refused<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    binary: &Path,
    args: &[S],
    prefix: &str,
) -> String {
    let output = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}");
    assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.starts_with(prefix), "{args:?}: {stderr}");
    stderr
}

impl Node {
    /// Sends SIGTERM and asserts a graceful exit (status 0) within 10 s.
    #[cfg(unix)]
    #[track_caller]
    pub fn assert_graceful_sigterm(&mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status:?}");
                return;
            }
            assert!(std::time::Instant::now() < deadline, "SIGTERM was ignored");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
