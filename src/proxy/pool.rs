//! Keep-alive connections to the upstream, one per client connection.
//!
//! An HTTP/1.1 client connection sends one request after the other, so one upstream connection
//! serves all of them: the first request takes a connection (an idle one, or a new one) and the
//! connection stays with the client connection until it closes, when it goes back to the idle
//! list for the next client. A request then costs no pool lookup, no hashing of the origin and no
//! task to hand the connection back, which a shared pool (hyper-util's legacy client) spends on
//! every request. Concurrent requests on one client connection (HTTP/2 in front, or a `Forward`
//! shared by all connections) each take their own upstream connection.

use std::sync::{Arc, Mutex, PoisonError};

use http::{Request, Response, Uri};
use http_body::Body;
use hyper::{
    body::Incoming,
    client::conn::http1::{self, SendRequest},
};
use tower_service::Service as _;

use super::forward::Connector;
use crate::BoxError;

/// The upstream origin, the way to connect to it and the connections no client holds.
pub(crate) struct Pool<B> {
    connector: Connector,
    origin: Uri,
    idle: Mutex<Vec<SendRequest<B>>>,
    max_idle: usize,
}

impl<B> Pool<B> {
    pub(crate) fn new(connector: Connector, origin: Uri, max_idle: usize) -> Self {
        Self {
            connector,
            origin,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// An idle connection ready for a request, if there is one. Closed ones are dropped; one
    /// still busy with a response body (handed back by a client connection that closed
    /// mid-response) stays for later: waiting on it would hold the request up for as long as that
    /// body takes.
    fn take_idle(&self) -> Option<SendRequest<B>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|sender| !sender.is_closed());
        let ready = idle.iter().rposition(SendRequest::is_ready)?;
        Some(idle.swap_remove(ready))
    }

    fn give_back(&self, sender: SendRequest<B>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }
}

impl<B> Pool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Opens a new connection (TCP, and TLS for `https://`) and runs it on a task of its own.
    async fn connect(&self) -> Result<SendRequest<B>, BoxError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
        let io = connector.call(self.origin.clone()).await?;
        let (sender, connection) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// The upstream connection of one client connection (see the module's documentation).
pub(crate) struct Kept<B> {
    pool: Arc<Pool<B>>,
    sender: Mutex<Option<SendRequest<B>>>,
}

impl<B> Kept<B> {
    pub(crate) const fn new(pool: Arc<Pool<B>>) -> Self {
        Self {
            pool,
            sender: Mutex::new(None),
        }
    }
}

impl<B> Kept<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Sends `request` on this client connection's upstream connection, on an idle one, or on a
    /// new one, and returns the response head.
    ///
    /// A connection the upstream closed while it was idle is only found out when used: a request
    /// it refused unsent goes to the next connection (the one that was sent is never repeated, as
    /// the upstream may have acted on it). A new connection is tried once.
    pub(crate) async fn send(
        &self,
        mut request: Request<B>,
    ) -> Result<Response<Incoming>, BoxError> {
        let mut reused = self.take();
        loop {
            let fresh = reused.is_none();
            let mut sender = match reused.take() {
                Some(sender) => sender,
                None => self.pool.connect().await?,
            };
            if let Err(err) = sender.ready().await {
                if fresh {
                    return Err(err.into());
                }
                reused = self.pool.take_idle();
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.keep(sender);
                    return Ok(response);
                }
                Err(mut err) => match err.take_message() {
                    Some(unsent) if !fresh => {
                        request = unsent;
                        reused = self.pool.take_idle();
                    }
                    _ => return Err(err.into_error().into()),
                },
            }
        }
    }

    /// The kept connection when it is ready for a request, else an idle one. A kept connection
    /// still streaming a response body stays kept: the next request of an HTTP/1.1 client only
    /// comes after that body, so it is busy only when requests overlap (HTTP/2 in front, or one
    /// `Forward` shared by every connection), and then waiting for it would hold this request up
    /// for as long as that body takes.
    fn take(&self) -> Option<SendRequest<B>> {
        {
            let mut kept = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
            match kept.as_ref() {
                Some(sender) if sender.is_ready() => return kept.take(),
                Some(sender) if sender.is_closed() => *kept = None,
                _ => {}
            }
        }
        self.pool.take_idle()
    }

    fn keep(&self, sender: SendRequest<B>) {
        let mut kept = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.is_none() {
            *kept = Some(sender);
        } else {
            drop(kept);
            self.pool.give_back(sender);
        }
    }
}

impl<B> Drop for Kept<B> {
    fn drop(&mut self) {
        let kept = self
            .sender
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = kept {
            self.pool.give_back(sender);
        }
    }
}
