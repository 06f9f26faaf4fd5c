//! A stand-in upstream authorization server for the proxy tests: an axum app on 127.0.0.1:0
//! that shows what reached it and answers the ways a real server does (cookies, redirects,
//! streams, silence); and the client side of those tests ([`send`], [`get`], [`upload`]).
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{self, any},
    Json, Router,
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::Reply;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// A running upstream; dropping it stops accepting.
pub struct Upstream {
    pub addr: SocketAddr,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the upstream saw: method, path and query, every header line in order, the body's length
/// and (when short) the body itself.
async fn echo(request: Request) -> Json<Value> {
    let (parts, body) = request.into_parts();
    let mut length = 0usize;
    let mut head = Vec::new();
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.expect("request body").into_data() else {
            continue;
        };
        length += chunk.len();
        if head.len() < 4096 {
            head.extend_from_slice(&chunk[..chunk.len().min(4096 - head.len())]);
        }
    }
    let headers: Vec<Value> = parts
        .headers
        .iter()
        .map(|(n, v)| json!([n.as_str(), v.to_str().unwrap_or("<binary>")]))
        .collect();
    Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "length": length,
        "body": String::from_utf8_lossy(&head),
    }))
}

/// The upstream's discovery document, built from the `Host` it sees (as node-oidc-provider
/// builds it).
async fn discovery(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    let base = format!("http://{host}");
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth2/auth"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt", "tls_client_auth"],
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": true,
        "response_types_supported": ["code"],
    }))
}

async fn cookies() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::SET_COOKIE, "a=1; Path=/; HttpOnly")
        .header(header::SET_COOKIE, "b=2; Path=/interaction; SameSite=Lax")
        .header(header::SET_COOKIE, "c=3; Max-Age=0")
        .header(header::CONNECTION, "x-upstream-hop")
        .header("x-upstream-hop", "secret")
        .header("x-kept", "yes")
        .body(Body::from("three cookies"))
        .unwrap()
}

async fn redirect() -> Response {
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            "https://client.example.org/cb?code=upstream-code&state=s%20t",
        )],
    )
        .into_response()
}

async fn silent() -> &'static str {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "too late"
}

/// `GET /download?bytes=N`: N bytes, produced 64 KiB at a time as the client reads.
async fn download(request: Request) -> Response {
    let total: u64 = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("bytes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Response::new(Body::from_stream(repeated(total)))
}

pub fn app() -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", routing::get(discovery))
        // Like node-oidc-provider: only the OpenID path.
        .route(
            "/.well-known/oauth-authorization-server",
            routing::get(|| async { StatusCode::NOT_FOUND }),
        )
        .route("/cookies", routing::get(cookies))
        .route("/redirect", routing::get(redirect))
        .route("/silent", routing::get(silent))
        .route("/download", routing::get(download))
        .fallback(any(echo))
}

pub async fn start() -> Upstream {
    start_app(app()).await
}

impl Upstream {
    /// An upstream served by `task` on `addr`.
    pub fn running(addr: SocketAddr, task: tokio::task::JoinHandle<()>) -> Self {
        Self {
            addr,
            url: format!("http://{addr}"),
            task,
        }
    }
}

pub async fn start_app(app: Router) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Upstream::running(addr, task)
}

/// An address nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// The header lines an echo shows, as (name, value) pairs.
pub fn echoed_headers(echo: &Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn echoed_header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str())
}

/// POSTs `total` bytes, streamed 64 KiB at a time (with a `Content-Length`, or chunked), to `url`
/// and returns what the echo upstream saw (its `length` is the bytes that arrived).
pub async fn upload(url: String, total: u64, with_length: bool) -> Value {
    let body = http_body_util::StreamBody::new(Box::pin(futures_util::StreamExt::map(
        repeated(total),
        |chunk| chunk.map(http_body::Frame::data),
    )));
    let mut request = http::Request::post(url);
    if with_length {
        request = request.header("content-length", total.to_string());
    }
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request.body(body).unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

/// `total` bytes of `x`, 64 KiB at a time, made as they are read.
pub fn repeated(
    total: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    futures_util::stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            (left > 0).then(|| {
                let n = left.min(chunk.len() as u64);
                (Ok(chunk.slice(..n as usize)), left - n)
            })
        }
    })
}

pub async fn send(request: http::Request<Full<Bytes>>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("request failed");
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn get(url: String) -> Reply {
    send(http::Request::get(url).body(Full::default()).unwrap()).await
}
