//! Shared integration-test harness: the layer in front of an echo authorization endpoint, served
//! by hyper over real TCP on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "jwt")]
pub mod jwt;
pub mod raw_http;
pub mod upstream;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    response::IntoResponse,
    routing::get,
    Json, Router,
};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use serde_json::{json, Value};
use std::future::IntoFuture as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tower::Layer as _;
use tower_par::{
    Completion, ManualClock, MemoryStore, ParLayer, ParLayerBuilder, PushedAuthorizationRequest,
    StaticClients,
};

pub const ISSUER: &str = "https://as.example.com";
pub const WEB_CB: &str = "https://client.example.org/cb";
pub const SPA_CB: &str = "http://127.0.0.1:8080/callback";
/// A valid S256 code challenge (RFC 7636 appendix B).
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub fn clients() -> StaticClients {
    StaticClients::from_json_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/clients.json"
    ))
    .unwrap()
}

/// The default builder of the tests: demo clients, a manual clock, a memory store.
pub fn builder(clock: &ManualClock) -> ParLayerBuilder {
    ParLayer::builder()
        .issuer(ISSUER)
        .clients(clients())
        .store(MemoryStore::with_capacity(10_000))
        .clock(clock.clone())
}

/// What the inner authorization endpoint saw, echoed back as JSON.
async fn echo(State(mode): State<InnerMode>, request: Request) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let pushed = parts
        .extensions
        .get::<PushedAuthorizationRequest>()
        .cloned();
    let completion = parts.extensions.get::<Completion>().cloned();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let echo = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "content_type": parts.headers.get("content-type").and_then(|v| v.to_str().ok()),
        "body": String::from_utf8_lossy(&body),
        "pushed": pushed.as_ref().map(|p| json!({
            "client_id": p.client_id(),
            "params": p.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            "complete_in_uri": p.is_complete_in_uri(),
        })),
    });
    match mode {
        InnerMode::Echo => Json(echo).into_response(),
        InnerMode::Login
            if !parts
                .headers
                .get("cookie")
                .is_some_and(|c| c.as_bytes().starts_with(b"session=")) =>
        {
            // A login round-trip: not the authorization response.
            let location = format!("/login?return={}", enc(&parts.uri.to_string()));
            (axum::http::StatusCode::SEE_OTHER, [("location", location)]).into_response()
        }
        InnerMode::Login | InnerMode::Redirect => {
            // Completes like a real authorization endpoint: redirect to the pushed redirect_uri.
            let Some(pushed) = pushed else {
                return Json(echo).into_response();
            };
            let redirect_uri = pushed.get("redirect_uri").unwrap_or(WEB_CB).to_owned();
            let location = format!(
                "{redirect_uri}?code=c-{}&state={}",
                rand_suffix(),
                pushed.get("state").unwrap_or("")
            );
            (axum::http::StatusCode::SEE_OTHER, [("location", location)]).into_response()
        }
        InnerMode::Deny => {
            let Some(pushed) = pushed else {
                return Json(echo).into_response();
            };
            let redirect_uri = pushed.get("redirect_uri").unwrap_or(WEB_CB).to_owned();
            let location = format!(
                "{redirect_uri}?error=access_denied&state={}",
                pushed.get("state").unwrap_or("")
            );
            (axum::http::StatusCode::SEE_OTHER, [("location", location)]).into_response()
        }
        InnerMode::RedirectWith(suffix) => {
            let Some(pushed) = pushed else {
                return Json(echo).into_response();
            };
            let redirect_uri = pushed.get("redirect_uri").unwrap_or(WEB_CB).to_owned();
            let location = format!("{redirect_uri}{suffix}");
            (axum::http::StatusCode::SEE_OTHER, [("location", location)]).into_response()
        }
        InnerMode::ExplicitCompletion => {
            let won = match completion {
                Some(c) => c.complete().await.unwrap_or(false),
                None => false,
            };
            Json(json!({"completed": won, "echo": echo})).into_response()
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// How the inner authorization endpoint answers.
#[derive(Clone, Copy, Debug)]
pub enum InnerMode {
    /// 200 JSON of what it received.
    Echo,
    /// 303 to the pushed redirect_uri with a code.
    Redirect,
    /// Without a `session` cookie: 303 to /login; with it: like `Redirect`.
    Login,
    /// 303 to the pushed redirect_uri with `error=access_denied`.
    Deny,
    /// Calls `Completion::complete` and reports the outcome.
    ExplicitCompletion,
    /// 303 to the pushed redirect_uri followed by this suffix as it is (`?response=…`,
    /// `#state=…`): authorization responses of kinds the layer does not parse.
    RedirectWith(&'static str),
}

pub fn inner_app(mode: InnerMode) -> Router {
    Router::new()
        .route("/as/authorize", get(echo).post(echo))
        .route("/other", get(echo).post(echo))
        .with_state(mode)
}

/// A running server; dropping it stops accepting.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(layer: ParLayer, mode: InnerMode) -> TestServer {
    serve_service(layer.layer(inner_app(mode))).await
}

/// The layer `builder` builds, in front of the echo endpoint.
pub async fn serve_echo(builder: ParLayerBuilder) -> TestServer {
    serve(builder.build().unwrap(), InnerMode::Echo).await
}

/// The layer in front of `app`, served by hyper over TCP.
pub async fn serve_app(layer: ParLayer, app: Router) -> TestServer {
    serve_service(layer.layer(app)).await
}

/// Serves any service (an axum `Router` with the layer inside, a tower-http stack) with hyper.
pub async fn serve_service<S, B>(service: S) -> TestServer
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let hyper_service = hyper_util::service::TowerToHyperService::new(service);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .await;
            });
        }
    });
    TestServer::running(addr, task)
}

/// Serves an axum `Router` with `axum::serve`, the way an application does.
pub async fn serve_axum(app: Router) -> TestServer {
    serving(|listener| axum::serve(listener, app).into_future()).await
}

/// Runs `server` on a fresh listener on 127.0.0.1 (e.g. `axum::serve` with any make-service).
pub async fn serving<F, Fut>(server: F) -> TestServer
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = server(listener);
    let task = tokio::spawn(async move {
        server.await.unwrap();
    });
    TestServer::running(addr, task)
}

/// A `private_key_jwt` client with `key`'s public key and the code grant to [`WEB_CB`].
#[cfg(feature = "jwt")]
pub fn private_key_jwt_client(client_id: &str, key: &jwt::TestKey) -> tower_par::Client {
    tower_par::Client::builder(client_id)
        .auth_method(tower_par::AuthMethod::PrivateKeyJwt)
        .jwks(key.jwks())
        .redirect_uri(WEB_CB)
        .grant_type("authorization_code")
        .build()
        .expect("a valid private_key_jwt client")
}

/// Like [`serve`], but through `tower_par::server::serve`, the serving loop of `par_server`
/// (header-read timeout, lingering close), with `config`.
pub async fn serve_with_server_loop(
    layer: ParLayer,
    mode: InnerMode,
    config: tower_par::server::ServeConfig,
) -> TestServer {
    let service = layer.layer(inner_app(mode));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = tower_par::server::serve(listener, service, config, std::future::pending()).await;
    });
    TestServer::running(addr, task)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 6749 §5.2 error: status, `error`, JSON, no-store.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(
            self.status,
            status,
            "status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.json()["error"],
            error,
            "error code; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(self.json()["error_description"].is_string());
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert!(
            self.header("location").is_none(),
            "an error must never redirect"
        );
    }

    /// The request_uri of a 201.
    #[track_caller]
    pub fn request_uri(&self) -> String {
        assert_eq!(
            self.status,
            201,
            "push failed: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()["request_uri"].as_str().unwrap().to_owned()
    }
}

/// Sends `request` with a fresh hyper client (any body type: chunked ones too) and reads the
/// answer whole.
pub async fn send_with_new_client<B>(request: http::Request<B>) -> Reply
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let client = Client::builder(TokioExecutor::new()).build_http();
    Reply::read(client.request(request).await.expect("request failed")).await
}

impl Reply {
    async fn read(response: http::Response<hyper::body::Incoming>) -> Self {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Self {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

impl TestServer {
    /// A server already accepting on `addr`; `task` is aborted on drop.
    pub fn running(addr: SocketAddr, task: tokio::task::JoinHandle<()>) -> Self {
        Self {
            addr,
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            task,
        }
    }

    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> Reply {
        Reply::read(self.client.request(request).await.expect("request failed")).await
    }

    /// POST a form to `path_and_query`.
    pub async fn post_form(&self, path_and_query: &str, form: &str) -> Reply {
        self.send(
            http::Request::post(self.url(path_and_query))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form.to_owned())))
                .unwrap(),
        )
        .await
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// POST a form to the PAR endpoint with optional Basic credentials (raw `id:secret`).
    pub async fn push(&self, basic: Option<&str>, form: &str) -> Reply {
        let mut request = http::Request::post(self.url("/as/par"))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(credentials) = basic {
            request = request.header(
                "authorization",
                format!("Basic {}", STANDARD.encode(credentials)),
            );
        }
        self.send(
            request
                .body(Full::new(Bytes::from(form.to_owned())))
                .unwrap(),
        )
        .await
    }

    /// A valid push by `web-app` (client_secret_basic) with extra form parameters appended.
    pub async fn push_web(&self, extra: &str) -> Reply {
        let mut form = format!(
            "response_type=code&client_id=web-app&redirect_uri={}&state=xyz",
            enc(WEB_CB)
        );
        if !extra.is_empty() {
            form.push('&');
            form.push_str(extra);
        }
        self.push(Some("web-app:web-app-secret"), &form).await
    }

    /// A valid push by `post-app` (client_secret_post, two redirect URIs) with extra form
    /// parameters appended.
    pub async fn push_post(&self, extra: &str) -> Reply {
        let mut form = format!(
            "response_type=code&client_id=post-app&client_secret=post-app-secret&redirect_uri={}",
            enc("https://post.example.org/cb")
        );
        if !extra.is_empty() {
            form.push('&');
            form.push_str(extra);
        }
        self.push(None, &form).await
    }

    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.send(
            http::Request::get(self.url(path_and_query))
                .body(Full::default())
                .unwrap(),
        )
        .await
    }

    /// GET the authorization endpoint with a session cookie (InnerMode::Login).
    pub async fn redeem_signed_in(&self, client_id: &str, request_uri: &str) -> Reply {
        let url = self.url(&format!(
            "/as/authorize?client_id={}&request_uri={}",
            enc(client_id),
            enc(request_uri)
        ));
        self.send(
            http::Request::get(url)
                .header("cookie", "session=1")
                .body(Full::default())
                .unwrap(),
        )
        .await
    }

    /// GET the authorization endpoint with client_id and request_uri.
    pub async fn redeem(&self, client_id: &str, request_uri: &str) -> Reply {
        self.get(&format!(
            "/as/authorize?client_id={}&request_uri={}",
            enc(client_id),
            enc(request_uri)
        ))
        .await
    }

    /// Sends raw bytes on a fresh connection and reads the response head and what follows.
    pub async fn raw(&self, bytes: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Form-urlencodes a component.
pub fn enc(s: &str) -> String {
    url_escape(s)
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `[name, value]` pairs the inner service saw in the pushed extension.
pub fn pushed_params(echo: &Value) -> Vec<(String, String)> {
    echo["pushed"]["params"]
        .as_array()
        .expect("the request was not pushed")
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub type Shared<T> = Arc<T>;

/// Captures the log lines of the current thread — and so of the servers a test on the
/// single-threaded test runtime starts — while it lives.
///
/// One global subscriber (at `TRACE`) writes each thread's lines to that thread's buffer. A
/// subscriber per test (`set_default`) would not do: tracing caches each call site's interest
/// process-wide, and a server of a parallel test that meets a call site first, on a thread
/// without a subscriber, can leave it disabled for the others for a while (seen as events and
/// spans missing from a capture).
pub struct Logs {
    _not_send: std::marker::PhantomData<*const ()>,
}

thread_local! {
    static THIS_THREADS_LOGS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes into the calling thread's buffer.
struct ThisThread;

impl std::io::Write for ThisThread {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        THIS_THREADS_LOGS.with_borrow_mut(|buffer| buffer.extend_from_slice(bytes));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture() -> Self {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(|| ThisThread)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the tests");
        });
        THIS_THREADS_LOGS.with_borrow_mut(Vec::clear);
        Self {
            _not_send: std::marker::PhantomData,
        }
    }

    /// Everything this thread logged since the capture began.
    pub fn text(&self) -> String {
        THIS_THREADS_LOGS.with_borrow(|buffer| String::from_utf8(buffer.clone()).unwrap())
    }

    /// Everything this thread logged since the last `take`, then forgotten.
    pub fn take(&self) -> String {
        THIS_THREADS_LOGS
            .with_borrow_mut(|buffer| String::from_utf8(std::mem::take(buffer)).unwrap())
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        THIS_THREADS_LOGS.with_borrow_mut(Vec::clear);
    }
}

/// The lines of the layer's events (targets `tower_par::…`) at the levels of the one-event-per-
/// answer contract (`INFO`, `WARN`, `ERROR`) in captured log text. A `DEBUG` line is a
/// diagnostic, not an answer: the Redis store's background delete of an earlier refused push
/// logs one when Redis is still down, while a later request is served.
pub fn events(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| line.contains(" tower_par::"))
        .filter(|line| {
            matches!(
                line.split_whitespace().nth(1),
                Some("INFO" | "WARN" | "ERROR")
            )
        })
        .collect()
}

/// The one event a request produced, checked to be the only one.
#[track_caller]
pub fn only_event(text: &str) -> &str {
    let events = events(text);
    assert_eq!(events.len(), 1, "exactly one event per refusal:\n{text}");
    events[0]
}
