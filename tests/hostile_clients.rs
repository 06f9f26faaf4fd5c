//! Hostile and unusual clients against the `par_server` binary (issues 11 and 16): real curl and
//! a real hyper client get the `413` of an oversize push; HEAD and a POST's query cannot bypass
//! `require_par` or the swap; a state-only implicit response completes; trickling heads and
//! bodies are cut off; a Redis store without `--issuer` warns. Node's `http` module and undici
//! `fetch` meet the same `413` in tests/client/oversize.test.mjs. Raw-socket details of each
//! rule are in tests/ambiguous.rs, tests/oversize.rs and tests/body_timeout.rs.
//!
//! Uses the `par_server` example binary that `cargo test` builds (see `common/par_server.rs`)
//! and `curl` (installed by scripts/test when missing).

mod common;
#[path = "common/par_server.rs"]
mod par_server;
#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use common::{
    enc,
    raw_http::{head, RawConnection},
    send_with_new_client as send, Reply, WEB_CB,
};
use http_body_util::Full;
use hyper::body::Frame;
use par_server::{par_server_binary, Node};

const FORM_TYPE: &str = "application/x-www-form-urlencoded";

fn addr(node: &Node) -> SocketAddr {
    node.base.trim_start_matches("http://").parse().unwrap()
}

fn basic(credentials: &str) -> String {
    format!("Basic {}", STANDARD.encode(credentials))
}

/// A push by `web-app` (client_secret_basic) with `extra` appended to the form.
async fn push_web(base: &str, extra: &str) -> Reply {
    let form = format!(
        "response_type=code&redirect_uri={}&state=st-1{extra}",
        enc(WEB_CB)
    );
    send(
        http::Request::post(format!("{base}/as/par"))
            .header("content-type", FORM_TYPE)
            .header("authorization", basic("web-app:web-app-secret"))
            .body(Full::new(Bytes::from(form)))
            .unwrap(),
    )
    .await
}

async fn get(url: String) -> Reply {
    send(
        http::Request::get(url)
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await
}

fn oversize_form(len: usize) -> Vec<u8> {
    let mut body = b"client_id=spa&response_type=code&state=".to_vec();
    body.resize(len, b'a');
    body
}

#[track_caller]
fn assert_too_large(status: u16, body: &[u8]) {
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(body));
    let json: serde_json::Value = serde_json::from_slice(body).expect("a JSON error body");
    assert_eq!(json["error"], "invalid_request");
    assert!(json["error_description"]
        .as_str()
        .unwrap()
        .contains("larger"));
}

/// curl ARGS… URL: the status and the body.
fn curl(args: &[&str], url: &str) -> (u16, Vec<u8>) {
    let output = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "30",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed (scripts/test installs it)");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = output.stdout;
    let split = out.iter().rposition(|&b| b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&out[split + 1..]).parse().unwrap();
    (status, out[..split].to_vec())
}

#[test]
fn curl_sees_the_413_for_declared_and_chunked_bodies() {
    // Issue 11.2, PAR-04: with and without `Expect: 100-continue` (curl's default for large
    // bodies), with Content-Length and chunked, 1.1 MB and 3 MB.
    let node = Node::start(&par_server_binary(), &[]);
    let url = format!("{}/as/par", node.base);
    for size in [1_100_000, 3_000_000] {
        let file = std::env::temp_dir().join(format!(
            "tower-par-hostile-{}-{size}.form",
            std::process::id()
        ));
        std::fs::write(&file, oversize_form(size)).unwrap();
        let data = format!("@{}", file.display());
        for extra in [
            &[][..],
            &["-H", "Expect:"][..],
            &["-H", "Transfer-Encoding: chunked"][..],
            &["-H", "Transfer-Encoding: chunked", "-H", "Expect:"][..],
        ] {
            let mut args = vec!["-H", "content-type: application/x-www-form-urlencoded"];
            args.extend_from_slice(extra);
            args.extend(["--data-binary", &data]);
            let (status, body) = curl(&args, &url);
            assert_too_large(status, &body);
        }
        let _ = std::fs::remove_file(file);
    }
    // The server keeps serving.
    let (status, body) = curl(
        &[
            "-u",
            "web-app:web-app-secret",
            "-d",
            "response_type=code",
            "-d",
            "redirect_uri=https://client.example.org/cb",
        ],
        &url,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn a_hyper_client_sees_the_413_for_declared_and_chunked_bodies() {
    // Issue 11.2, PAR-04: 1.1 MB and 3 MB within the drain (the connection stays open), and
    // 6 MB past it (answered at once, then the lingering close lets the client read it).
    let node = Node::start(&par_server_binary(), &[]);
    let url = format!("{}/as/par", node.base);
    for size in [1_100_000, 3_000_000, 6_000_000] {
        let body = Bytes::from(oversize_form(size));
        let declared = send(
            http::Request::post(&url)
                .header("content-type", FORM_TYPE)
                .body(Full::new(body.clone()))
                .unwrap(),
        )
        .await;
        assert_too_large(declared.status, &declared.body);
        let chunked = send(
            http::Request::post(&url)
                .header("content-type", FORM_TYPE)
                .body(Chunks::of(&body))
                .unwrap(),
        )
        .await;
        assert_too_large(chunked.status, &chunked.body);
        let closes = chunked
            .headers
            .get("connection")
            .is_some_and(|v| v == "close");
        assert_eq!(
            closes,
            size > 4 * 1024 * 1024,
            "{size}: Connection: close past the drain"
        );
    }
    push_web(&node.base, "").await.request_uri();
}

/// A body of 64 KiB chunks without a declared length: hyper sends it chunked.
struct Chunks(std::collections::VecDeque<Bytes>);

impl Chunks {
    fn of(body: &Bytes) -> Self {
        Self(
            (0..body.len())
                .step_by(64 * 1024)
                .map(|at| body.slice(at..(at + 64 * 1024).min(body.len())))
                .collect(),
        )
    }
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

// ===== HEAD at the authorization endpoint (issue 16.2) =====

/// `curl -sI URL`: the status line and headers of a HEAD.
fn curl_head(url: &str) -> String {
    let output = Command::new("curl")
        .args(["-sI", "--max-time", "10", url])
        .output()
        .expect("curl is installed (scripts/test installs it)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn head_cannot_bypass_require_par() {
    // The command: `curl -sI …/as/authorize?client_id=spa&response_type=code&state=x`
    // against `par_server --require-par` answered 303 with a code.
    let node = Node::start(&par_server_binary(), &["--require-par"]);
    let head = curl_head(&format!(
        "{}/as/authorize?client_id=spa&response_type=code&state=x",
        node.base
    ));
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("allow: get, post"),
        "{head}"
    );
    assert!(!head.to_ascii_lowercase().contains("location:"), "{head}");
}

#[tokio::test]
async fn head_cannot_bypass_the_swap_nor_burn_the_handle() {
    // The issue: a live handle plus `response_type=token&state=attacker` in the query of a HEAD
    // answered `303 #access_token=…&state=attacker` for a client without the implicit grant.
    let node = Node::start(&par_server_binary(), &[]);
    let uri = push_web(&node.base, "").await.request_uri();
    let url = format!(
        "{}/as/authorize?client_id=web-app&request_uri={}&response_type=token&state=attacker",
        node.base,
        enc(&uri)
    );
    let head = tokio::task::spawn_blocking(move || curl_head(&url))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(!head.contains("access_token"), "{head}");
    // The GET that follows redeems the pushed request, as pushed.
    let reply = get(format!(
        "{}/as/authorize?client_id=web-app&request_uri={}",
        node.base,
        enc(&uri)
    ))
    .await;
    assert_eq!(reply.status, 303);
    let location = reply.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{WEB_CB}?code=")),
        "{location}"
    );
    assert!(location.contains("state=st-1"), "{location}");
}

// ===== The query of a POST to the authorization endpoint (issue 16.3) =====

async fn post_authorize(base: &str, query: &str, body: &str) -> Reply {
    send(
        http::Request::post(format!("{base}/as/authorize?{query}"))
            .header("content-type", FORM_TYPE)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_post_query_cannot_bypass_require_par() {
    // `par-required` (a demo client with `require_par`) names itself in the query of a POST
    // whose body is empty; the layer used to look at the body only and pass the request on.
    let node = Node::start(&par_server_binary(), &[]);
    let query = format!(
        "client_id=par-required&response_type=code&redirect_uri={}",
        enc("https://strict.example.org/cb")
    );
    let reply = post_authorize(&node.base, &query, "").await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("pushed authorization requests"));
}

#[tokio::test]
async fn a_request_uri_in_a_post_query_is_swapped_once_and_injected_values_are_dropped() {
    // The issue: `POST …?client_id=web-app&request_uri=…&response_type=token` with an empty body
    // reached the handler with the injected values, and the handle stayed unused.
    let node = Node::start(&par_server_binary(), &[]);
    let uri = push_web(&node.base, "").await.request_uri();
    let query = format!(
        "client_id=web-app&request_uri={}&response_type=token&state=attacker",
        enc(&uri)
    );
    let reply = post_authorize(&node.base, &query, "").await;
    assert_eq!(reply.status, 303, "{:?}", reply.body);
    let location = reply.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{WEB_CB}?code=")),
        "{location}"
    );
    assert!(location.contains("state=st-1"), "{location}");
    assert!(!location.contains("access_token") && !location.contains("attacker"));
    post_authorize(&node.base, &query, "")
        .await
        .assert_error(400, "invalid_request_uri");
}

// ===== Completion that failed open (issue 16.5) =====

#[tokio::test]
async fn a_state_only_implicit_response_completes_once() {
    // The issue: with `--inner login --consume completion`, a pushed `response_type=id_token`
    // request redeemed again and again (`303 …/cb#state=s2&iss=…` each time).
    let node = Node::start(
        &par_server_binary(),
        &["--inner", "login", "--consume", "completion"],
    );
    let form = format!(
        "response_type=id_token&redirect_uri={}&state=s2&nonce=n",
        enc("https://implicit.example.org/cb")
    );
    let pushed = send(
        http::Request::post(format!("{}/as/par", node.base))
            .header("content-type", FORM_TYPE)
            .header("authorization", basic("implicit-app:implicit-app-secret"))
            .body(Full::new(Bytes::from(form)))
            .unwrap(),
    )
    .await;
    let uri = pushed.request_uri();
    let redeem = || {
        send(
            http::Request::get(format!(
                "{}/as/authorize?client_id=implicit-app&request_uri={}",
                node.base,
                enc(&uri)
            ))
            .header("cookie", "session=demo-user")
            .body(Full::<Bytes>::default())
            .unwrap(),
        )
    };
    let first = redeem().await;
    assert_eq!(first.status, 303);
    let location = first.header("location").unwrap();
    assert!(
        location.starts_with("https://implicit.example.org/cb#state=s2&iss="),
        "{location}"
    );
    redeem().await.assert_error(400, "invalid_request_uri");
}

// ===== Slow clients (issue 11.3) =====

#[tokio::test]
async fn a_client_trickling_its_request_head_is_cut_off() {
    // hyper's header-read timeout, set by `tower_par::server::serve` (1 s here).
    let node = Node::start(&par_server_binary(), &["--header-read-timeout", "1"]);
    let mut connection = RawConnection::connect(addr(&node)).await;
    connection
        .send(b"POST /as/par HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        .await
        .unwrap();
    let cut_off = trickle_until_cut_off(&mut connection, Instant::now())
        .await
        .expect("the server let the head trickle for 10 s");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&cut_off),
        "cut off after {cut_off:?}"
    );
    // Others are served.
    push_web(&node.base, "").await.request_uri();
}

/// Sends one byte of a request head every 200 ms (for 10 s at most) until the server closes the
/// connection; how long after `started` that was.
async fn trickle_until_cut_off(
    connection: &mut RawConnection,
    started: Instant,
) -> Option<Duration> {
    for _ in 0..50 {
        if connection.send(b"a").await.is_err()
            || connection
                .closed_by_server(Duration::from_millis(200))
                .await
        {
            return Some(started.elapsed());
        }
    }
    None
}

#[tokio::test]
async fn the_head_of_every_request_on_a_kept_alive_connection_has_the_timeout() {
    // The header-read timeout runs on one timer per connection, its deadline moved for each head
    // (`tower_par::server`): after answered requests, a trickled head is cut off all the same,
    // and an idle kept-alive connection is closed once the timeout has passed.
    let node = Node::start(&par_server_binary(), &["--header-read-timeout", "1"]);
    let mut connection = RawConnection::connect(addr(&node)).await;
    for pause in [600, 600, 0] {
        connection
            .send(&head(
                "GET /.well-known/oauth-authorization-server HTTP/1.1",
                &[],
            ))
            .await
            .unwrap();
        let answer = connection.response(Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer.status, 200);
        // Inside the timeout, which runs from the answer (hyper then waits for the next head).
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let started = Instant::now();
    connection
        .send(b"GET /.well-known/oauth-authorization-server HTTP/1.1\r\nx-slow: ")
        .await
        .unwrap();
    let cut_off = trickle_until_cut_off(&mut connection, started)
        .await
        .expect("the server let the second head trickle for 10 s");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&cut_off),
        "cut off after {cut_off:?}"
    );

    let mut idle = RawConnection::connect(addr(&node)).await;
    idle.send(&head(
        "GET /.well-known/oauth-authorization-server HTTP/1.1",
        &[],
    ))
    .await
    .unwrap();
    assert_eq!(
        idle.response(Duration::from_secs(5)).await.unwrap().status,
        200
    );
    let started = Instant::now();
    assert!(idle.closed_by_server(Duration::from_secs(5)).await);
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&started.elapsed()),
        "closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408() {
    let node = Node::start(&par_server_binary(), &["--body-timeout", "1"]);
    let body = format!("response_type=code&redirect_uri={}&state=slow", enc(WEB_CB));
    let auth = format!("authorization: {}", basic("web-app:web-app-secret"));
    let length = format!("content-length: {}", body.len());
    let mut connection = RawConnection::connect(addr(&node)).await;
    connection
        .send(&head(
            "POST /as/par HTTP/1.1",
            &[
                &auth,
                "content-type: application/x-www-form-urlencoded",
                &length,
            ],
        ))
        .await
        .unwrap();
    let (reply, elapsed) = connection
        .trickle(body.as_bytes())
        .await
        .expect("a 408 while the body trickled");
    reply.assert_error(408, "invalid_request");
    assert!(reply.closes());
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&elapsed),
        "{elapsed:?}"
    );
}

// ===== Small ones (issue 11.6) =====

#[cfg(feature = "redis")]
#[test]
fn a_redis_store_without_issuer_warns() {
    let redis = redis_server::RedisServer::start();
    let store = redis.url();
    let stderr_of = |args: &[&str]| {
        let path = std::env::temp_dir().join(format!(
            "tower-par-warn-{}-{}.err",
            std::process::id(),
            args.len()
        ));
        let file = std::fs::File::create(&path).unwrap();
        let node = Node::start_with_stderr(&par_server_binary(), args, file);
        drop(node);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(path);
        text
    };
    let warned = stderr_of(&["--store", &store]);
    assert!(
        warned.contains("par_server: warning: --store redis://") && warned.contains("--issuer"),
        "{warned}"
    );
    let quiet = stderr_of(&["--store", &store, "--issuer", "http://par.test"]);
    assert!(!quiet.contains("warning"), "{quiet}");
}
