//! The accept loop: hyper HTTP/1.1 connections with a header-read timeout and a lingering
//! close, watched for a graceful shutdown.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use hyper::{body::Incoming, server::conn::http1, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tower_service::Service;

use super::{connection::ConnectionService, drain::Drain, header_timer::ConnectionTimer};
use crate::BoxError;

/// How [`serve`] treats its connections.
///
/// ```
/// use std::time::Duration;
/// use tower_par::server::ServeConfig;
///
/// let config = ServeConfig::default()
///     .header_read_timeout(Duration::from_secs(5))
///     .lingering_close(Duration::from_secs(2));
/// assert_eq!(config.get_header_read_timeout(), Duration::from_secs(5));
/// ```
#[derive(Clone, Debug)]
pub struct ServeConfig {
    header_read_timeout: Duration,
    shutdown_grace: Duration,
    lingering_close: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            lingering_close: Self::DEFAULT_LINGERING_CLOSE,
        }
    }
}

impl ServeConfig {
    /// Default [`ServeConfig::header_read_timeout`]: 10 s.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`ServeConfig::shutdown_grace`]: 10 s.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// Default [`ServeConfig::lingering_close`]: 5 s.
    pub const DEFAULT_LINGERING_CLOSE: Duration = Duration::from_secs(5);

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

    /// How long a connection the server closes keeps reading, and discarding, what the client
    /// still sends (nginx's lingering close). Default 5 s; zero closes at once.
    ///
    /// When the server closes a connection on which the client is still sending (a body the
    /// layer refused without reading it all, past its drain), the kernel would answer the
    /// unread bytes with a TCP reset, and a reset can destroy the answer before the client has
    /// read it (Node's `http` client then reports `EPIPE` instead of the `413`). So the server
    /// first shuts down only its sending side, which tells the client that the answer is
    /// complete, then reads and discards until the client closes too or this time has passed.
    /// A connection whose client has already closed ends at once.
    #[must_use]
    pub const fn lingering_close(mut self, linger: Duration) -> Self {
        self.lingering_close = linger;
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
/// Each connection is HTTP/1.1 with keep-alive, `TCP_NODELAY`, the header-read timeout of
/// `config` and its [lingering close](ServeConfig::lingering_close). An `accept` error such as running out of file descriptors is logged and retried
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
    let drain = Drain::new();
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
        // A builder per connection, for the connection's own timer (see `header_timer`).
        let connection = http1::Builder::new()
            .timer(ConnectionTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .serve_connection(
                TokioIo::new(Lingering::new(stream, config.lingering_close)),
                ConnectionService::new(make_service(peer)),
            );
        let connection = drain.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, drain.shutdown())
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

/// A TCP stream whose shutdown is a lingering close: hyper shuts a connection down when it is
/// done with it, and this shutdown sends FIN, then reads and discards until the client closes
/// or the linger time has passed (see [`ServeConfig::lingering_close`]).
struct Lingering {
    stream: TcpStream,
    linger: Duration,
    state: Linger,
}

enum Linger {
    Open,
    Draining(Pin<Box<tokio::time::Sleep>>),
    Done,
}

impl Lingering {
    const fn new(stream: TcpStream, linger: Duration) -> Self {
        Self {
            stream,
            linger,
            state: Linger::Open,
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        /// Reads per poll before yielding to the other tasks, so a client that sends as fast as
        /// it can neither starves them nor outlives the linger time.
        const READS_PER_POLL: usize = 16;
        let this = self.get_mut();
        loop {
            match &mut this.state {
                Linger::Open => {
                    std::task::ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                    this.state = if this.linger.is_zero() {
                        Linger::Done
                    } else {
                        Linger::Draining(Box::pin(tokio::time::sleep(this.linger)))
                    };
                }
                Linger::Draining(deadline) => {
                    let mut scratch = [0u8; 8192];
                    let mut waiting_for_input = false;
                    for _ in 0..READS_PER_POLL {
                        let mut buf = ReadBuf::new(&mut scratch);
                        match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                            // The client has closed too, or the connection broke: done.
                            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                                this.state = Linger::Done;
                                return Poll::Ready(Ok(()));
                            }
                            Poll::Ready(Err(_)) => {
                                this.state = Linger::Done;
                                return Poll::Ready(Ok(()));
                            }
                            Poll::Ready(Ok(())) => {}
                            Poll::Pending => {
                                waiting_for_input = true;
                                break;
                            }
                        }
                    }
                    if deadline.as_mut().poll(cx).is_ready() {
                        this.state = Linger::Done;
                        return Poll::Ready(Ok(()));
                    }
                    if !waiting_for_input {
                        // More to read right now: come back after the other tasks had a turn.
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                }
                Linger::Done => return Poll::Ready(Ok(())),
            }
        }
    }
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
/// The handlers are installed when this is called, not when the future is first polled: call it
/// before announcing that the server is up, so that a signal sent right after the announcement
/// shuts the server down gracefully instead of killing it. Must be called inside a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let wait = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, sync::Arc};

    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        sync::Notify,
    };

    use super::*;

    /// Reads from `stream` until it ends (or 5 s pass); what was read.
    async fn read_to_end(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_shutdown_lets_the_request_in_flight_finish_and_closes_idle_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (entered, release, stop) = (
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
        );
        let service = {
            let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
            tower::service_fn(move |request: Request<Incoming>| {
                let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
                async move {
                    if request.uri().path() == "/slow" {
                        entered.notify_one();
                        release.notified().await;
                    }
                    Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"done"),
                    )))
                }
            })
        };
        let stopping = Arc::clone(&stop);
        let server = tokio::spawn(serve(
            listener,
            service,
            ServeConfig::default().lingering_close(Duration::ZERO),
            async move { stopping.notified().await },
        ));

        // An idle kept-alive connection (one answered request), and one request in flight.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answered = [0u8; 12];
        idle.read_exact(&mut answered).await.unwrap();
        assert_eq!(&answered, b"HTTP/1.1 200");
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        entered.notified().await;

        stop.notify_one();
        // The idle connection is closed at once; the server waits for the request in flight.
        let started = std::time::Instant::now();
        let rest = read_to_end(&mut idle).await;
        assert!(started.elapsed() < Duration::from_secs(2), "closed at once");
        assert!(!rest.contains("HTTP/1.1"), "{rest}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!server.is_finished(), "the request in flight is waited for");
        release.notify_one();
        let answer = read_to_end(&mut busy).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns once the connections are closed")
            .unwrap()
            .unwrap();
    }
}
