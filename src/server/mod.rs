//! Serving a tower-par stack over TCP (feature `server`): what the reference binaries
//! (`par_server`, `par-proxy`) are made of, for integrators who want the same behaviour without
//! writing it again.
//!
//! * [`serve`]: hyper HTTP/1.1 on a Tokio listener, with a header-read timeout (a client that
//!   trickles its request head cannot hold a connection), a lingering close (a client still
//!   sending when the server closes reads the answer instead of a TCP reset) and a graceful
//!   shutdown that lets requests in flight finish.
//! * [`shutdown_signal`]: resolves on SIGINT or SIGTERM.
//! * [`CommonFlags`]: the command-line flags the reference binaries share (`--listen`,
//!   `--clients`, `--issuer`, `--lifetime`, `--capacity`, `--max-stored-bytes`, `--store`,
//!   `--redis-wait-replicas`, `--consume`, `--require-par`, `--body-timeout`,
//!   `--header-read-timeout`, `--metrics`), and the listener, store, layer builder, serving
//!   settings and metrics endpoint they describe.
//! * [`serve_metrics`], [`install_prometheus_recorder`] (feature `prometheus`): `/metrics` in the
//!   Prometheus text format on a listener of its own.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tower::Layer as _;
//! use tower_par::{server, ParLayer, StaticClients};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let par = ParLayer::builder()
//!     .issuer("https://as.example.com")
//!     .clients(StaticClients::from_json_file("clients.json")?)
//!     .build()?;
//! let router: Router = Router::new().route("/as/authorize", get(|| async { "authorize" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! server::serve(listener, par.layer(router), server::ServeConfig::default(), server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```

mod connection;
mod drain;
mod flags;
mod header_timer;
#[cfg(feature = "prometheus")]
mod metrics;
mod serve;

#[cfg(feature = "prometheus")]
pub use self::metrics::{install_prometheus_recorder, serve_metrics};
pub use self::{
    flags::{CommonFlags, FlagError},
    serve::{serve, serve_with, shutdown_signal, ServeConfig},
};
