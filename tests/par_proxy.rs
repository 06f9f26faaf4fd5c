#![cfg(feature = "proxy")]
//! The `par-proxy` binary's contract (issue 13), from outside: flags and exit code 2, the
//! `listening on` line, the authorization path read from the upstream's discovery (retried for
//! 30 s), OAuth answers as par_server gives them, PAR while the upstream is down, `504`, signed
//! request objects passed on, 100 MB streamed both ways in flat memory, graceful SIGTERM.
//! The upstream is a stand-in (tests/common/upstream.rs); tests/proxy runs node-oidc-provider.
//! The tests run on multi-threaded runtimes: starting the child blocks one thread while the
//! in-process upstream answers its discovery request on another.

mod common;
#[path = "common/par_server.rs"]
mod par_server;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use common::{
    enc, jwt,
    upstream::{self, echoed_header, get, send},
    Reply,
};
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use par_server::Node;
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_par-proxy");
const ISSUER: &str = "http://as.example.test:4000";
const WEB_CB: &str = "https://client.example.org/cb";
const BASIC_WEB_APP: &str = "Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA==";

fn demo_clients() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/clients.json")
}

/// Starts par-proxy on 127.0.0.1:0 in front of `upstream` with the demo clients.
fn start(upstream: &str, extra: &[&str]) -> Node {
    let mut args = vec![
        "--upstream",
        upstream,
        "--issuer",
        ISSUER,
        "--clients",
        demo_clients(),
    ];
    args.extend_from_slice(extra);
    Node::start(std::path::Path::new(BINARY), &args)
}

async fn push(base: &str, auth: &str, form: String) -> Reply {
    send(
        http::Request::post(format!("{base}/par"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", auth)
            .body(Full::from(form))
            .unwrap(),
    )
    .await
}

async fn push_web(base: &str) -> String {
    push(
        base,
        BASIC_WEB_APP,
        format!("response_type=code&redirect_uri={}&state=st-1", enc(WEB_CB)),
    )
    .await
    .request_uri()
}

async fn redeem(base: &str, path: &str, client_id: &str, request_uri: &str) -> Reply {
    get(format!(
        "{base}{path}?client_id={client_id}&request_uri={}",
        enc(request_uri)
    ))
    .await
}

#[test]
fn bad_flags_exit_with_code_2_and_a_message() {
    let bad_clients =
        std::env::temp_dir().join(format!("par-proxy-bad-{}.json", std::process::id()));
    std::fs::write(&bad_clients, r#"{"clients":[{"client_id":"x"}]}"#).unwrap();
    let required = [
        "--upstream",
        "http://127.0.0.1:9",
        "--issuer",
        ISSUER,
        "--clients",
        demo_clients(),
    ];
    let without = |flag: &str| -> Vec<String> {
        required
            .chunks(2)
            .filter(|pair| pair[0] != flag)
            .flatten()
            .map(|s| (*s).to_owned())
            .collect()
    };
    let with = |extra: &[&str]| -> Vec<String> {
        required
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let cases: Vec<Vec<String>> = vec![
        without("--upstream"),
        without("--issuer"),
        without("--clients"),
        with(&["--bogus"]),
        with(&["--listen"]),
        with(&["--listen", "not-an-address"]),
        with(&["--upstream-timeout", "0"]),
        with(&["--upstream-timeout", "soon"]),
        with(&["--par-path", "par"]),
        with(&["--consume", "eventually"]),
        vec![
            "--upstream".into(),
            "ftp://127.0.0.1:21".into(),
            "--issuer".into(),
            ISSUER.into(),
            "--clients".into(),
            demo_clients().into(),
        ],
        with(&[
            "--clients",
            bad_clients.to_str().unwrap(),
            "--authorize-path",
            "/auth",
        ]),
        with(&[
            "--clients",
            "/nonexistent/clients.json",
            "--authorize-path",
            "/auth",
        ]),
        with(&[
            "--upstream-ca",
            "/nonexistent/ca.pem",
            "--authorize-path",
            "/auth",
        ]),
    ];
    for args in cases {
        par_server::assert_refused(std::path::Path::new(BINARY), &args, "par-proxy: ");
    }
    let _ = std::fs::remove_file(bad_clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorize_path_comes_from_discovery_and_oauth_errors_are_the_proxys() {
    let upstream = upstream::start().await;
    let node = start(&upstream.url, &["--require-par"]);
    let base = &node.base;

    // push → authorize at the upstream's path (/oauth2/auth, from its discovery document).
    let request_uri = push_web(base).await;
    let reply = redeem(base, "/oauth2/auth", "web-app", &request_uri).await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(echo["path"], "/oauth2/auth");
    assert_eq!(
        echo["query"],
        format!(
            "client_id=web-app&response_type=code&redirect_uri={}&state=st-1",
            enc(WEB_CB)
        )
    );
    // Single use (URI-03).
    redeem(base, "/oauth2/auth", "web-app", &request_uri)
        .await
        .assert_error(400, "invalid_request_uri");
    // Another client cannot redeem it, and does not burn it (URI-01).
    let request_uri = push_web(base).await;
    redeem(base, "/oauth2/auth", "spa", &request_uri)
        .await
        .assert_error(400, "invalid_request_uri");
    assert_eq!(
        redeem(base, "/oauth2/auth", "web-app", &request_uri)
            .await
            .status,
        200
    );
    // --require-par: a plain authorization request is refused by the proxy (AZ-07).
    get(format!(
        "{base}/oauth2/auth?client_id=web-app&response_type=code"
    ))
    .await
    .assert_error(400, "invalid_request");
    // Method and size at the PAR endpoint (PAR-02, PAR-04).
    let reply = get(format!("{base}/par")).await;
    reply.assert_error(405, "invalid_request");
    assert_eq!(reply.headers["allow"], "POST");
    push(base, BASIC_WEB_APP, "x=".repeat(600 * 1024))
        .await
        .assert_error(413, "invalid_request");
    // Bad credentials.
    push(base, "Basic d2ViLWFwcDpub3Bl", "response_type=code".into())
        .await
        .assert_error(401, "invalid_client");

    // Discovery: the upstream's document with the PAR members.
    let doc = get(format!("{base}/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        format!("{ISSUER}/par")
    );
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    assert_eq!(
        doc["token_endpoint"]
            .as_str()
            .map(|t| t.ends_with("/oauth2/token")),
        Some(true)
    );
}

/// `--metrics` works on par-proxy as on par_server: its own listener, announced before
/// `listening on`, the counters of issue 12 in the Prometheus text format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener() {
    let upstream = upstream::start().await;
    let node = start(&upstream.url, &["--metrics", "127.0.0.1:0"]);
    let base = &node.base;
    let request_uri = push_web(base).await;
    assert_eq!(
        redeem(base, "/oauth2/auth", "web-app", &request_uri)
            .await
            .status,
        200
    );
    redeem(base, "/oauth2/auth", "web-app", &request_uri)
        .await
        .assert_error(400, "invalid_request_uri");
    push(base, "Basic d2ViLWFwcDpub3Bl", "response_type=code".into())
        .await
        .assert_error(401, "invalid_client");

    let url = node.metrics.as_deref().expect("a `metrics on` line");
    let reply = get(url.to_owned()).await;
    assert_eq!(reply.status, 200);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    for line in [
        "tower_par_pushes_total{outcome=\"created\"} 1",
        "tower_par_pushes_total{outcome=\"invalid_client\"} 1",
        "tower_par_redemptions_total{outcome=\"swapped\"} 1",
        "tower_par_redemptions_total{outcome=\"invalid_request_uri\"} 1",
        "tower_par_stored_requests 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from:\n{text}"
        );
    }
    // The proxy's own port does not serve them: /metrics there goes to the upstream.
    assert_eq!(
        get(format!("{base}/metrics")).await.json()["path"],
        "/metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_request_too_long_for_a_uri_reaches_the_upstream_as_a_post_form() {
    let upstream = upstream::start().await;
    let node = start(&upstream.url, &[]);
    let big = "b".repeat(70_000);
    let request_uri = push(
        &node.base,
        BASIC_WEB_APP,
        format!(
            "response_type=code&redirect_uri={}&state=st-2&claims_hint={big}",
            enc(WEB_CB)
        ),
    )
    .await
    .request_uri();
    let echo = redeem(&node.base, "/oauth2/auth", "web-app", &request_uri)
        .await
        .json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/oauth2/auth");
    assert_eq!(echo["query"], Value::Null);
    assert_eq!(
        echoed_header(&echo, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let expected = format!(
        "client_id=web-app&response_type=code&redirect_uri={}&state=st-2&claims_hint={big}",
        enc(WEB_CB)
    );
    assert_eq!(echo["length"], expected.len());
    assert!(expected.starts_with(echo["body"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_handles_are_refused() {
    let upstream = upstream::start().await;
    let node = start(&upstream.url, &["--lifetime", "1"]);
    let request_uri = push_web(&node.base).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    redeem(&node.base, "/oauth2/auth", "web-app", &request_uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_work_while_the_upstream_is_down_and_everything_else_is_502() {
    let closed = upstream::closed_port().await;
    let node = start(
        &format!("http://{closed}"),
        &["--authorize-path", "/authorize"],
    );
    let request_uri = push_web(&node.base).await;
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let reply = get(format!("{}/login", node.base)).await;
    assert_eq!(reply.status, 502);
    assert!(!reply.body.is_empty() && reply.body.len() < 200);
    // The swap itself succeeds; delivering it needs the upstream.
    assert_eq!(
        redeem(&node.base, "/authorize", "web-app", &request_uri)
            .await
            .status,
        502
    );
}

#[test]
fn without_authorize_path_an_unanswered_discovery_is_retried_30_s_then_exit_2() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let output = Command::new(BINARY)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{closed}"),
        ])
        .args(["--issuer", ISSUER, "--clients", demo_clients()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "never listening");
    assert!(
        waited >= Duration::from_secs(29),
        "{waited:?}: retried for 30 s"
    );
    assert!(waited < Duration::from_secs(45), "{waited:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("par-proxy: ") && stderr.contains("discovery"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_is_504_after_upstream_timeout() {
    let upstream = upstream::start().await;
    let node = start(&upstream.url, &["--upstream-timeout", "1"]);
    let started = Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        get(format!("{}/silent", node.base)),
    )
    .await
    .expect("an answer, not a hang");
    assert_eq!(reply.status, 504);
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert!(!reply.body.is_empty() && reply.body.len() < 200);
}

fn clients_with_jwt(key: &jwt::TestKey) -> PathBuf {
    let client = |id: &str, forward: bool| {
        json!({
            "client_id": id, "auth_method": "private_key_jwt", "jwks": key.jwks(),
            "redirect_uris": [WEB_CB], "grant_types": ["authorization_code"],
            "forward_request_object": forward,
        })
    };
    let path = std::env::temp_dir().join(format!(
        "par-proxy-jwt-{}-{}.json",
        std::process::id(),
        jwt::unique_jti()
    ));
    let file = json!({"clients": [client("jar-app", true), client("jar-quiet", false)]});
    std::fs::write(&path, file.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_request_object_travels_on_when_the_upstream_takes_them() {
    let key = jwt::TestKey::es256("k1");
    let clients = clients_with_jwt(&key);
    let upstream = upstream::start().await; // request_parameter_supported: true
    let node = Node::start(
        std::path::Path::new(BINARY),
        &[
            "--upstream",
            &upstream.url,
            "--issuer",
            ISSUER,
            "--clients",
            clients.to_str().unwrap(),
        ],
    );
    for (client_id, forwarded) in [("jar-app", true), ("jar-quiet", false)] {
        let now = SystemTime::now();
        let object = jwt::request_object(
            &key,
            client_id,
            ISSUER,
            &[
                ("response_type", "code"),
                ("redirect_uri", WEB_CB),
                ("state", "in-jwt"),
            ],
            now,
        );
        let assertion = jwt::client_assertion(&key, client_id, ISSUER, now);
        let reply = send(
            http::Request::post(format!("{}/par", node.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::from(format!(
                    "client_id={client_id}&client_assertion_type={}&client_assertion={assertion}&request={object}",
                    enc("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                )))
                .unwrap(),
        )
        .await;
        let request_uri = reply.request_uri();
        let echo = redeem(&node.base, "/oauth2/auth", client_id, &request_uri)
            .await
            .json();
        let query = echo["query"].as_str().unwrap();
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("state"), Some("in-jwt"), "{client_id}");
        assert_eq!(get("response_type"), Some("code"), "{client_id}");
        if forwarded {
            // RFC 9101 §6.3: the JWT as pushed, for an upstream that verifies it itself.
            assert_eq!(get("request"), Some(object.as_str()), "{client_id}");
        } else {
            assert_eq!(
                get("request"),
                None,
                "{client_id}: forward_request_object false"
            );
        }
        assert_eq!(get("client_assertion"), None);
    }
    let _ = std::fs::remove_file(clients);
}

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_and_download_stream_through_in_flat_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let upstream = upstream::start().await;
    let node = start(&upstream.url, &[]);
    // Warm the proxy up (runtime, pool, buffers) before the baseline.
    assert_eq!(get(format!("{}/warm", node.base)).await.status, 200);
    let baseline = peak_rss_kib(node.child.id());

    let echo = upstream::upload(format!("{}/upload", node.base), SIZE, true).await;
    assert_eq!(echo["length"], SIZE, "every byte reached the upstream");
    assert_eq!(
        echoed_header(&echo, "content-length"),
        Some(SIZE.to_string().as_str())
    );

    let response = Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>()
        .request(
            http::Request::get(format!("{}/download?bytes={SIZE}", node.base))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, SIZE);

    let peak = peak_rss_kib(node.child.id());
    eprintln!("par-proxy peak RSS: {baseline} KiB before, {peak} KiB after 2 x {SIZE} bytes");
    // 200 MB went through; a buffered body would show as ~100 MB here.
    assert!(
        peak.saturating_sub(baseline) < 16 * 1024,
        "peak RSS grew from {baseline} KiB to {peak} KiB"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_gracefully() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(upstream::start());
    start(&upstream.url, &[]).assert_graceful_sigterm();
}

/// `openssl s_server -www` (a status page for every GET) on 127.0.0.1 with a certificate from a
/// throwaway CA; killed on drop.
struct TlsUpstream {
    child: std::process::Child,
    port: u16,
    ca: PathBuf,
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_upstream(dir: &std::path::Path) -> TlsUpstream {
    redis_server::throwaway_certificates(dir).expect("openssl makes the certificates");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", "server.crt", "-key", "server.key"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    TlsUpstream {
        child,
        port,
        ca: dir.join("ca.crt"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_reached_with_a_private_ca_and_refused_without_it() {
    let dir = std::env::temp_dir().join(format!(
        "par-proxy-tls-{}-{}",
        std::process::id(),
        jwt::unique_jti()
    ));
    let upstream = tls_upstream(&dir);
    let url = format!("https://127.0.0.1:{}", upstream.port);
    let ca = upstream.ca.to_str().unwrap();
    let trusted = start(&url, &["--authorize-path", "/auth", "--upstream-ca", ca]);
    let reply = get(format!("{}/", trusted.base)).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(
        String::from_utf8_lossy(&reply.body).contains("s_server"),
        "openssl's status page"
    );
    // The system roots alone do not know the private CA: the TLS handshake fails, 502.
    let untrusted = start(&url, &["--authorize-path", "/auth"]);
    assert_eq!(get(format!("{}/", untrusted.base)).await.status, 502);
    drop(upstream);
    let _ = std::fs::remove_dir_all(dir);
}
