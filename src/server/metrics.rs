//! `/metrics` in the Prometheus text format, on a listener of its own (feature `prometheus`):
//! what `--metrics ADDR` of the reference binaries serves.

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_service::Service;

use super::{serve, FlagError, ServeConfig};
use crate::{
    metrics::{describe, PUSH_DURATION_BUCKETS, PUSH_DURATION_SECONDS},
    ParLayer,
};

/// How often the recorder folds recorded durations into their histogram between scrapes, so
/// that an unscraped server does not keep every sample.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs a Prometheus recorder as the process's global `metrics` recorder, with
/// `tower_par_push_duration_seconds` as a histogram of [`PUSH_DURATION_BUCKETS`] and the crate's
/// metrics described, and starts its upkeep (a Tokio task: call it inside a runtime).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let handle = tower_par::server::install_prometheus_recorder()?;
/// // … serve the layer; then, on a scrape:
/// println!("{}", handle.render());
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// Another recorder is installed already.
pub fn install_prometheus_recorder() -> Result<PrometheusHandle, FlagError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(PUSH_DURATION_SECONDS.into()),
            &PUSH_DURATION_BUCKETS,
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|err| FlagError::new(format!("--metrics: {err}")))?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_INTERVAL).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves: the layer's gauges are updated
/// from its store ([`ParLayer::update_gauges`]), then `handle` renders everything the recorder
/// holds. Any other path is `404`, any other method `405`.
///
/// ```no_run
/// use tower_par::{server, ParLayer, StaticClients};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let par = ParLayer::builder()
///     .issuer("https://as.example.com")
///     .clients(StaticClients::default())
///     .build()?;
/// let handle = server::install_prometheus_recorder()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
/// tokio::spawn(server::serve_metrics(listener, par.clone(), handle, std::future::pending()));
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_metrics(
    listener: TcpListener,
    layer: ParLayer,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve(
        listener,
        Scrape { layer, handle },
        ServeConfig::default(),
        shutdown,
    )
    .await
}

/// The `/metrics` service.
#[derive(Clone)]
struct Scrape {
    layer: ParLayer,
    handle: PrometheusHandle,
}

impl<B> Service<Request<B>> for Scrape {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let status = if req.uri().path() != "/metrics" {
            Some(StatusCode::NOT_FOUND)
        } else if req.method() != Method::GET {
            Some(StatusCode::METHOD_NOT_ALLOWED)
        } else {
            None
        };
        let scrape = self.clone();
        Box::pin(async move {
            if let Some(status) = status {
                let mut response = Response::new(Full::default());
                *response.status_mut() = status;
                return Ok(response);
            }
            if let Err(err) = scrape.layer.update_gauges().await {
                tracing::warn!(error = %err, "metrics: the store's gauges could not be read");
            }
            let mut response = Response::new(Full::new(Bytes::from(scrape.handle.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(response)
        })
    }
}
