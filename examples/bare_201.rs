//! The ceiling of the HTTP stack for `bench/load.sh`: a bare hyper 1.x HTTP/1.1 server that
//! reads and discards every request body and answers `201` with a fixed JSON body of the same
//! shape and length as a PAR response. No routing, no parsing, no store, no randomness.
//!
//! ```text
//! cargo run --release --example bare_201 -- --listen 127.0.0.1:3002
//! ```
//!
//! Prints `listening on http://ADDR` once it accepts connections.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Same length as a real PAR response: a 43-character handle (32 random bytes, base64url).
const BODY: &str = concat!(
    r#"{"request_uri":"urn:ietf:params:oauth:request_uri:"#,
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    r#"","expires_in":60}"#
);

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Drain the body like a real endpoint must before it can answer; a read error only means
    // the client went away, and the connection task ends on its own.
    let _ = req.into_body().collect().await;
    let mut res = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    *res.status_mut() = StatusCode::CREATED;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn parse_args() -> Result<SocketAddr, String> {
    let mut listen = "127.0.0.1:3002".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs ADDR")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    listen
        .parse()
        .map_err(|e| format!("bad --listen {listen}: {e}"))
}

#[tokio::main]
async fn main() {
    let addr = match parse_args() {
        Ok(addr) => addr,
        Err(msg) => {
            eprintln!("bare_201: {msg}\nusage: bare_201 [--listen 127.0.0.1:PORT]");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare_201: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    println!("listening on http://{local}");

    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Transient accept errors (EMFILE, ECONNABORTED) must not stop the server; the pause
            // keeps an out-of-descriptors condition from spinning a core.
            Err(e) => {
                eprintln!("bare_201: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            // Connection errors are the client's business (reset, bad request); nothing to do.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
