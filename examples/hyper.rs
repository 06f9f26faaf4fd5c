//! tower-par in front of a plain hyper service, without axum.
//!
//! ```text
//! cargo run --example hyper
//! curl -s -u web-app:web-app-secret -d response_type=code http://127.0.0.1:3000/as/par
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, Request, Response};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tower::{service_fn, Layer as _};
use tower_par::{ParLayer, PushedAuthorizationRequest, RequestBody, StaticClients};

/// The authorization endpoint: a plain function over `http` types.
async fn authorize(
    request: Request<RequestBody<Incoming>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let pushed = request
        .extensions()
        .get::<PushedAuthorizationRequest>()
        .is_some();
    let text = format!(
        "{} {} (pushed: {pushed})\n",
        request.method(),
        request.uri()
    );
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let par = ParLayer::builder()
        .issuer("http://127.0.0.1:3000")
        .clients(StaticClients::from_json_str(include_str!("clients.json"))?)
        .build()?;
    let service = par.layer(service_fn(authorize));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {err}");
            }
        });
    }
}
