//! The accept loop: hyper HTTP/1.1 connections with a header-read timeout, watched for a
//! graceful shutdown.

use std::{future::Future, io, net::SocketAddr, time::Duration};

use hyper::{body::Incoming, server::conn::http1, Request, Response};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::BoxError;

/// How [`serve`] treats its connections.
///
/// ```
/// use std::time::Duration;
/// use tower_par::server::ServeConfig;
///
/// let config = ServeConfig::default().header_read_timeout(Duration::from_secs(5));
/// assert_eq!(config.get_header_read_timeout(), Duration::from_secs(5));
/// ```
#[derive(Clone, Debug)]
pub struct ServeConfig {
    header_read_timeout: Duration,
    shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl ServeConfig {
    /// Default [`ServeConfig::header_read_timeout`]: 10 s.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`ServeConfig::shutdown_grace`]: 10 s.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

    /// How long a client may take to send a complete request head (request line and header
    /// fields) once it has started one, or to start the next one on a kept-alive connection;
    /// past it hyper closes the connection. Default 10 s.
    #[must_use]
    pub const fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a shutdown waits for requests in flight before it drops their connections.
    /// Default 10 s.
    #[must_use]
    pub const fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The header-read timeout in use.
    #[must_use]
    pub const fn get_header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting, lets the
/// requests in flight finish (up to [`ServeConfig::shutdown_grace`]) and returns.
///
/// Each connection is HTTP/1.1 with keep-alive, `TCP_NODELAY`, and the header-read timeout of
/// `config`. An `accept` error such as running out of file descriptors is logged and retried
/// after a pause, never returned: one bad moment must not stop the server.
///
/// # Errors
///
/// None at present; the `io::Result` leaves room for listener errors that must end the server.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_with(listener, move |_peer| service.clone(), config, shutdown).await
}

/// [`serve`] with a service made for each connection from the peer's address: a reverse proxy
/// puts it into `X-Forwarded-For` ([`proxy::Forward::for_peer`](crate::proxy::Forward::for_peer)).
///
/// ```no_run
/// use tower_par::server;
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let hello = |peer: std::net::SocketAddr| {
///     tower::service_fn(move |_request: http::Request<hyper::body::Incoming>| async move {
///         Ok::<_, std::convert::Infallible>(http::Response::new(format!("hello {peer}")))
///     })
/// };
/// server::serve_with(listener, hello, server::ServeConfig::default(), server::shutdown_signal()).await
/// # }
/// ```
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_with<F, S, B>(
    listener: TcpListener,
    mut make_service: F,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    F: FnMut(SocketAddr) -> S,
    // hyper takes `&self`, so each request gets a clone of the connection's service.
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                // EMFILE, ENFILE, ENOMEM: spinning on accept would only burn the CPU that the
                // connections already open need to finish and free their descriptors.
                tracing::error!(error = %err, "accept failed; pausing for a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Answers are small and written whole; Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(make_service(peer)),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?config.shutdown_grace,
            "shutdown: connections still open after the grace period were dropped"
        );
    }
    Ok(())
}

/// Errors that concern one connection attempt only; the listener is fine.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Resolves when the process receives SIGINT (Ctrl-C) or, on Unix, SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// binary that calls it before it prints `listening on` cannot be killed by a SIGTERM that
/// arrives in between. Call it inside a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
