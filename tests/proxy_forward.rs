#![cfg(feature = "proxy")]
//! The forwarder of `tower_par::proxy` on its own, over real TCP: a hyper server running
//! [`Forward`] in front of a stand-in upstream (tests/common/upstream.rs). RFC 9110 §7.6 header
//! handling, `X-Forwarded-*` and `Forwarded` (RFC 7239), cookies, redirects, streaming, `502`,
//! `504`, discovery merging; and the same forwarder as the inner service of a `ParLayer`.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use common::upstream::{self, echoed_header, echoed_headers, get, send};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tower::Layer as _;
use tower_par::{
    proxy::Forward,
    server::{self, ServeConfig},
    ParLayer, RequestBody, StaticClients,
};

/// A proxy serving `make(peer)` on 127.0.0.1:0; stops when dropped.
struct Running {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run<S, B>(make: impl FnMut(SocketAddr) -> S + Send + 'static) -> Running
where
    S: tower::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower_par::BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<tower_par::BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = server::serve_with(
            listener,
            make,
            ServeConfig::default(),
            std::future::pending(),
        )
        .await;
    });
    Running { addr, task }
}

/// The forwarder alone, for plain hyper request bodies.
async fn forwarder(upstream: &str, timeout: Duration) -> Running {
    let forward: Forward<Incoming> = Forward::builder(upstream)
        .response_timeout(timeout)
        .build()
        .unwrap();
    run(move |peer| forward.for_peer(peer)).await
}

/// Writes a raw request (ending with `Connection: close`) and reads the whole answer.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the proxy answered and closed")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn body_of(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn hop_by_hop_fields_go_host_stays_and_forwarded_chains_grow() {
    let upstream = upstream::start().await;
    let proxy = forwarder(&upstream.url, Duration::from_secs(10)).await;
    let answer = raw(
        proxy.addr,
        "GET /any/path?x=1&y=%20 HTTP/1.1\r\n\
         Host: as.example.com:4000\r\n\
         Connection: close, X-Hop-Secret\r\n\
         X-Hop-Secret: must-not-pass\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Authorization: Basic cHJveHk6cGFzcw==\r\n\
         TE: trailers\r\n\
         X-Forwarded-For: 203.0.113.9\r\n\
         X-Forwarded-Proto: https\r\n\
         Forwarded: for=203.0.113.9;proto=https\r\n\
         Cookie: sid=abc\r\n\
         Authorization: Basic dXNlcjpwYXNz\r\n\
         \r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let echo: Value = serde_json::from_str(body_of(&answer)).unwrap();
    assert_eq!(echo["path"], "/any/path");
    assert_eq!(echo["query"], "x=1&y=%20");
    let names: Vec<String> = echoed_headers(&echo).into_iter().map(|(n, _)| n).collect();
    for gone in [
        "connection",
        "x-hop-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(
            !names.iter().any(|n| n == gone),
            "{gone} reached the upstream: {names:?}"
        );
    }
    // Host is the client's, not the upstream's address: servers build URLs from it.
    assert_eq!(echoed_header(&echo, "host"), Some("as.example.com:4000"));
    assert_eq!(echoed_header(&echo, "cookie"), Some("sid=abc"));
    assert_eq!(
        echoed_header(&echo, "authorization"),
        Some("Basic dXNlcjpwYXNz")
    );
    assert_eq!(
        echoed_header(&echo, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(
        echoed_header(&echo, "x-forwarded-proto"),
        Some("https, http")
    );
    assert_eq!(
        echoed_header(&echo, "x-forwarded-host"),
        Some("as.example.com:4000")
    );
    assert_eq!(
        echoed_header(&echo, "forwarded"),
        Some("for=203.0.113.9;proto=https, for=127.0.0.1;host=\"as.example.com:4000\";proto=http")
    );
}

#[tokio::test]
async fn without_preserve_host_the_upstream_sees_its_own_authority() {
    let upstream = upstream::start().await;
    let forward: Forward<Incoming> = Forward::builder(&upstream.url)
        .preserve_host(false)
        .build()
        .unwrap();
    let proxy = run(move |peer| forward.for_peer(peer)).await;
    let echo = send(
        http::Request::get(format!("http://{}/echo", proxy.addr))
            .header("host", "as.example.com:4000")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(
        echoed_header(&echo, "host"),
        Some(upstream.addr.to_string().as_str())
    );
    assert_eq!(
        echoed_header(&echo, "x-forwarded-host"),
        Some("as.example.com:4000")
    );
}

#[tokio::test]
async fn every_set_cookie_line_is_kept_and_upstream_hop_by_hop_fields_are_dropped() {
    let upstream = upstream::start().await;
    let proxy = forwarder(&upstream.url, Duration::from_secs(10)).await;
    let reply = get(format!("http://{}/cookies", proxy.addr)).await;
    assert_eq!(reply.status, 200);
    let cookies: Vec<&str> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        [
            "a=1; Path=/; HttpOnly",
            "b=2; Path=/interaction; SameSite=Lax",
            "c=3; Max-Age=0"
        ]
    );
    assert_eq!(reply.headers["x-kept"], "yes");
    assert!(reply.headers.get("x-upstream-hop").is_none());
    assert_eq!(&reply.body[..], b"three cookies");
}

#[tokio::test]
async fn redirects_pass_untouched() {
    let upstream = upstream::start().await;
    let proxy = forwarder(&upstream.url, Duration::from_secs(10)).await;
    let reply = get(format!("http://{}/redirect", proxy.addr)).await;
    assert_eq!(reply.status, 302);
    assert_eq!(
        reply.headers["location"],
        "https://client.example.org/cb?code=upstream-code&state=s%20t"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_with_a_short_body() {
    let closed = upstream::closed_port().await;
    let proxy = forwarder(&format!("http://{closed}"), Duration::from_secs(10)).await;
    let started = std::time::Instant::now();
    let reply = get(format!("http://{}/anything", proxy.addr)).await;
    assert_eq!(reply.status, 502);
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    assert!(reply.body.len() < 200 && !reply.body.is_empty());
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn a_silent_upstream_is_504_after_the_response_head_timeout() {
    let upstream = upstream::start().await;
    let proxy = forwarder(&upstream.url, Duration::from_millis(700)).await;
    let started = std::time::Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        get(format!("http://{}/silent", proxy.addr)),
    )
    .await
    .expect("the proxy answered instead of waiting for the silent upstream");
    let waited = started.elapsed();
    assert_eq!(reply.status, 504);
    assert!(
        waited >= Duration::from_millis(650),
        "{waited:?}: not before the timeout"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}: no hang");
    assert!(reply.body.len() < 200 && !reply.body.is_empty());
    // The same proxy still answers other requests.
    assert_eq!(get(format!("http://{}/echo", proxy.addr)).await.status, 200);
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    const SIZE: u64 = 16 * 1024 * 1024 + 7;
    let upstream = upstream::start().await;
    let proxy = forwarder(&upstream.url, Duration::from_secs(10)).await;
    // Upload without a length (chunked): the upstream counts what arrived.
    let echo = upstream::upload(format!("http://{}/upload", proxy.addr), SIZE, false).await;
    assert_eq!(echo["length"], SIZE);
    assert_eq!(echoed_header(&echo, "transfer-encoding"), Some("chunked"));

    let reply = get(format!("http://{}/download?bytes={SIZE}", proxy.addr)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len() as u64, SIZE);
}

/// An upstream that numbers the connections it accepts and answers every request with the
/// number of the connection it came on; with `keep_alive` off it closes each after one answer.
async fn counting_upstream(keep_alive: bool) -> (upstream::Upstream, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(move |_request| async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                bytes::Bytes::from(number.to_string()),
                            )))
                        }),
                    ),
            );
        }
    });
    (upstream::Upstream::running(addr, task), accepted)
}

/// One client connection to `addr`: its requests go one after the other on it.
struct ClientConnection(hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>);

impl ClientConnection {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        Self(sender)
    }

    /// The body of the answer to `GET /`: the number of the upstream connection that served it.
    async fn upstream_connection(&mut self) -> String {
        self.0.ready().await.unwrap();
        let request = http::Request::get("/")
            .header("host", "as.example.com")
            .body(Full::default())
            .unwrap();
        let response = self.0.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }
}

#[tokio::test]
async fn a_client_connection_keeps_one_upstream_connection_and_hands_it_on_when_it_closes() {
    let (upstream, accepted) = counting_upstream(true).await;
    let proxy = forwarder(&upstream.url, Duration::from_secs(10)).await;
    let mut first = ClientConnection::open(proxy.addr).await;
    for _ in 0..5 {
        assert_eq!(first.upstream_connection().await, "1");
    }
    drop(first);
    // The proxy sees the client's FIN and hands the connection back to the idle ones.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = ClientConnection::open(proxy.addr).await;
    assert_eq!(second.upstream_connection().await, "1");
    // A client connection opened while the idle list is empty gets a connection of its own.
    let mut third = ClientConnection::open(proxy.addr).await;
    assert_eq!(third.upstream_connection().await, "2");
    for _ in 0..3 {
        assert_eq!(second.upstream_connection().await, "1");
        assert_eq!(third.upstream_connection().await, "2");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_upstream_that_closes_its_connections_costs_no_request() {
    let (upstream, accepted) = counting_upstream(false).await;
    let proxy = forwarder(&upstream.url, Duration::from_secs(10)).await;
    let mut client = ClientConnection::open(proxy.addr).await;
    for expected in 1..=4 {
        assert_eq!(client.upstream_connection().await, expected.to_string());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_response_body_still_streaming_holds_no_other_request_up() {
    // One `Forward` for every connection (`server::serve` clones one service): the client
    // connections share its kept upstream connection.
    let upstream = upstream::start().await;
    let forward: Forward<Incoming> = Forward::builder(&upstream.url)
        .response_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let proxy = run(move |_peer| forward.clone()).await;
    // A download the client does not read: its upstream connection stays busy with the body.
    let mut slow = ClientConnection::open(proxy.addr).await;
    let request = http::Request::get("/download?bytes=104857600")
        .header("host", "as.example.com")
        .body(Full::default())
        .unwrap();
    let download = slow.0.send_request(request).await.unwrap();
    assert_eq!(download.status(), 200);
    for _ in 0..3 {
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            get(format!("http://{}/echo", proxy.addr)),
        )
        .await
        .expect("answered while the other body is still streaming");
        assert_eq!(reply.status, 200);
    }
    drop(download);
}

#[tokio::test]
async fn the_upstream_gets_the_origin_form_and_a_host_whatever_the_client_sent() {
    let upstream = upstream::start().await;
    let proxy = forwarder(&upstream.url, Duration::from_secs(10)).await;
    // RFC 9112 §3.2.2: the host of an absolute-form target replaces the Host field.
    let answer = raw(
        proxy.addr,
        "GET http://user:secret@as.example.com:4000/a/b?c=d HTTP/1.1\r\n\
         Host: other.example\r\n\
         Connection: close\r\n\
         \r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let echo: Value = serde_json::from_str(body_of(&answer)).unwrap();
    assert_eq!(echo["path"], "/a/b");
    assert_eq!(echo["query"], "c=d");
    assert_eq!(echoed_header(&echo, "host"), Some("as.example.com:4000"));
    // HTTP/1.0 without Host: the upstream (spoken to in HTTP/1.1) gets its own authority.
    let answer = raw(proxy.addr, "GET /plain HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let echo: Value = serde_json::from_str(body_of(&answer)).unwrap();
    assert_eq!(echo["path"], "/plain");
    assert_eq!(
        echoed_header(&echo, "host"),
        Some(upstream.addr.to_string().as_str())
    );
}

fn par_layer() -> ParLayer {
    ParLayer::builder()
        .issuer("http://as.example.com:4000")
        .par_path("/par")
        .authorize_path("/oauth2/auth")
        .clients(
            StaticClients::from_json_file(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/clients.json"
            ))
            .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn behind_the_layer_pushes_are_answered_and_swapped_requests_forwarded() {
    let upstream = upstream::start().await;
    let par = par_layer();
    let forward: Forward<RequestBody<Incoming>> = Forward::builder(&upstream.url).build().unwrap();
    let proxy = run(move |peer| par.layer(forward.for_peer(peer))).await;
    let push = send(
        http::Request::post(format!("http://{}/par", proxy.addr))
            .header("host", "as.example.com:4000")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA==")
            .body(Full::from(
                "response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&state=s1",
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(push.status, 201);
    let request_uri = push.json()["request_uri"].as_str().unwrap().to_owned();
    let reply = get(format!(
        "http://{}/oauth2/auth?client_id=web-app&request_uri={}",
        proxy.addr,
        form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
    ))
    .await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(echo["path"], "/oauth2/auth");
    assert_eq!(
        echo["query"],
        "client_id=web-app&response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&state=s1"
    );
    // Every other path streams through, body and all.
    let other = send(
        http::Request::post(format!("http://{}/token", proxy.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::from("grant_type=authorization_code&code=c"))
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(other["path"], "/token");
    assert_eq!(other["body"], "grant_type=authorization_code&code=c");
}

#[tokio::test]
async fn discovery_documents_come_from_the_upstream_with_the_par_members_merged_in() {
    let upstream = upstream::start().await;
    let par = par_layer();
    let forward: Forward<RequestBody<Incoming>> = Forward::builder(&upstream.url)
        .build()
        .unwrap()
        .merge_discovery(&par);
    let proxy = run(move |peer| par.layer(forward.for_peer(peer))).await;
    // The stand-in serves only the OpenID path; the OAuth path falls back to it.
    // Whatever address the request came to, the document is fetched with the issuer's Host.
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let reply = get(format!("http://{}{path}", proxy.addr)).await;
        assert_eq!(reply.status, 200, "{path}");
        // Public, so readable by a browser-based client on any origin (as the layer's own).
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        let doc = reply.json();
        // Built by the upstream from the public Host.
        assert_eq!(doc["issuer"], "http://as.example.com:4000", "{path}");
        assert_eq!(
            doc["authorization_endpoint"],
            "http://as.example.com:4000/oauth2/auth"
        );
        assert_eq!(
            doc["token_endpoint"],
            "http://as.example.com:4000/oauth2/token"
        );
        assert_eq!(
            doc["pushed_authorization_request_endpoint"],
            "http://as.example.com:4000/par"
        );
        assert_eq!(doc["require_pushed_authorization_requests"], false);
        // What both accept: tls_client_auth is the upstream's alone, client_secret_post the
        // layer's alone.
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "private_key_jwt"])
        );
        assert_eq!(doc["request_parameter_supported"], true);
    }
}

#[tokio::test]
async fn the_upstream_document_can_be_read_at_start_up() {
    let upstream = upstream::start().await;
    let forward: Forward<Incoming> = Forward::builder(&upstream.url).build().unwrap();
    let doc = forward
        .upstream_discovery("public.example:4000")
        .await
        .unwrap();
    assert_eq!(
        doc["authorization_endpoint"],
        "http://public.example:4000/oauth2/auth"
    );
    let closed = upstream::closed_port().await;
    let forward: Forward<Incoming> = Forward::builder(format!("http://{closed}"))
        .build()
        .unwrap();
    let err = forward
        .upstream_discovery("public.example:4000")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[test]
fn only_http_and_https_origins_are_upstreams() {
    for bad in [
        "ftp://127.0.0.1:21",
        "127.0.0.1:8080",
        "http://127.0.0.1:8080/base",
        "http://h?x=1",
    ] {
        assert!(
            Forward::builder(bad).build::<Incoming>().is_err(),
            "{bad} was accepted"
        );
    }
    assert!(Forward::builder("https://127.0.0.1:8443/")
        .build::<Incoming>()
        .is_ok());
    let err = Forward::builder("https://127.0.0.1:8443")
        .upstream_ca_pem("not a certificate")
        .build::<Incoming>()
        .unwrap_err();
    assert!(err.to_string().contains("CERTIFICATE"), "{err}");
}
