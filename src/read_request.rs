//! What the layer reads from a client's request at its two endpoints, read so that a hostile or
//! unusual client always gets a clear answer:
//!
//! * **one field line** for each header field the layer reads (`Authorization`, `Content-Type`,
//!   `DPoP`): two lines, equal or not, are ambiguous (RFC 9110 §5.3, RFC 9449 §4.3) and refused;
//! * **the media type**: `application/x-www-form-urlencoded`, UTF-8;
//! * **the body under three limits**: its size (`max_body_bytes`), a time limit while it arrives
//!   (`body_timeout`, `408`), and, when the layer refuses a body it has not read to its end, a
//!   bounded **drain** (`max_drain_bytes`, `drain_timeout`) that reads and discards the rest
//!   before answering. A client that is still sending when the server answers and closes gets a
//!   TCP reset that can destroy the answer in flight (Node's `http` client then sees `EPIPE`);
//!   after a drain the answer arrives whole and the connection stays usable. Past either bound
//!   the answer carries `Connection: close`. Drained bytes are never kept.

use std::{
    pin::{pin, Pin},
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf as _, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body::Body;

use crate::{error::OAuthError, layer::Config, timer::SleepFuture, timer::Timer, BoxError};

/// The value of `name` when the request has at most one line of it.
///
/// # Errors
/// `400 invalid_request` when it has two or more, whatever their values: the layer cannot know
/// which one a proxy in front of it judged the request by.
pub(crate) fn single_line<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h HeaderValue>, OAuthError> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next();
    if lines.next().is_some() {
        return Err(OAuthError::invalid_request(format!(
            "the request has more than one {name} field line"
        )));
    }
    Ok(first)
}

/// `application/x-www-form-urlencoded`, any case, with optional parameters, on exactly one
/// `Content-Type` line; a charset other than UTF-8 is refused because RFC 6749 App. B forms are
/// UTF-8 (PAR-03).
///
/// A wrong media type is `400 invalid_request` rather than `415`: RFC 9126 §2.3 errors are
/// RFC 6749 §5.2 JSON, and the OpenID conformance suite expects 400 for every PAR error but
/// `invalid_client`.
pub(crate) fn check_media_type(
    headers: &HeaderMap,
    refusal: &'static str,
) -> Result<(), OAuthError> {
    let value = single_line(headers, &header::CONTENT_TYPE)?
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_form(value) {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(refusal))
    }
}

pub(crate) fn is_form(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return false;
    }
    parts.all(|param| {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        !name.trim().eq_ignore_ascii_case("charset")
            || value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    })
}

/// Reads a form body whole, within `max_body_bytes` and `body_timeout`.
///
/// # Errors
/// * `413` when the declared length or the bytes received pass the cap, after the drain (never
///   asking for a body that `Expect: 100-continue` holds back, never waiting for a declared
///   length the drain would not read);
/// * `408` when the body stalls past `body_timeout` (the connection closes);
/// * `400 invalid_request` when the body breaks off (the connection closes).
pub(crate) async fn read_form<B>(
    config: &Config,
    headers: &HeaderMap,
    body: B,
) -> Result<Bytes, OAuthError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let cap = config.max_body as u64;
    if declared_length(headers, &body) > cap {
        return Err(refuse(
            config,
            headers,
            body,
            OAuthError::payload_too_large(config.max_body),
        )
        .await);
    }
    let mut body = pin!(body);
    let mut collected = Collected::default();
    let mut deadline = Deadline::new(&*config.timer, config.body_timeout);
    let outcome = std::future::poll_fn(|cx| loop {
        match body.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if !collected.push(data, cap) {
                        return Poll::Ready(Read::TooLarge);
                    }
                }
            }
            Poll::Ready(Some(Err(err))) => {
                let err: BoxError = err.into();
                return Poll::Ready(if is_length_limit(&*err) {
                    Read::LimitInFront
                } else {
                    Read::Broken
                });
            }
            Poll::Ready(None) => return Poll::Ready(Read::Complete),
            Poll::Pending if deadline.poll_passed(cx) => return Poll::Ready(Read::TimedOut),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    match outcome {
        Read::Complete => Ok(collected.into_bytes()),
        Read::TooLarge => {
            let received = collected.len;
            drop(collected);
            let too_large = OAuthError::payload_too_large(config.max_body);
            let budget = config.max_drain.saturating_sub(received);
            Err(drain_then(config, body, budget, too_large).await)
        }
        Read::TimedOut => Err(OAuthError::body_timeout(config.body_timeout)),
        // A length limit set in front of the layer (an outer `Limited`, e.g. tower-http's
        // `RequestBodyLimitLayer`): named as such, so that the answer does not cite ours.
        Read::LimitInFront => Err(OAuthError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the request body is larger than a limit set in front of this endpoint",
        )
        .closing_connection()),
        Read::Broken => Err(
            OAuthError::invalid_request("the request body could not be read").closing_connection(),
        ),
    }
}

/// Refuses a request with `err` before reading its body: drains the body first (within the
/// drain's bounds) so that the answer reaches the client, or marks the answer as closing the
/// connection when it cannot.
pub(crate) async fn refuse<B>(
    config: &Config,
    headers: &HeaderMap,
    body: B,
    err: OAuthError,
) -> OAuthError
where
    B: Body<Data = Bytes>,
{
    if body.is_end_stream() {
        return err;
    }
    // The client waits for `100 Continue` before it sends the body; hyper sends that only when
    // the body is polled, so the answer goes out without the body ever being asked for.
    let holds_back = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if holds_back || declared_length(headers, &body) > config.max_drain {
        return err.closing_connection();
    }
    drain_then(config, pin!(body), config.max_drain, err).await
}

/// The declared length: `Content-Length`, or the body's own lower size bound.
fn declared_length<B: Body>(headers: &HeaderMap, body: &B) -> u64 {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    declared.max(body.size_hint().lower())
}

/// Reads and discards the rest of `body`, at most `budget` bytes within `drain_timeout`; `err`
/// closes the connection unless the body ended within those bounds.
async fn drain_then<B: Body>(
    config: &Config,
    mut body: Pin<&mut B>,
    mut budget: u64,
    err: OAuthError,
) -> OAuthError {
    let mut deadline = Deadline::new(&*config.timer, config.drain_timeout);
    let drained = std::future::poll_fn(|cx| loop {
        match body.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |data| data.remaining() as u64);
                match budget.checked_sub(len) {
                    Some(left) => budget = left,
                    None => return Poll::Ready(false),
                }
            }
            Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
            Poll::Ready(None) => return Poll::Ready(true),
            Poll::Pending if deadline.poll_passed(cx) => return Poll::Ready(false),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    if drained {
        err
    } else {
        err.closing_connection()
    }
}

enum Read {
    Complete,
    TooLarge,
    LimitInFront,
    TimedOut,
    Broken,
}

fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    // axum and others nest errors; walk the chain.
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// The chunks of a body: one chunk (the common case, a form that arrived with its head) is kept
/// as it is, without an allocation; more are joined once at the end.
#[derive(Default)]
struct Collected {
    first: Bytes,
    more: Vec<Bytes>,
    len: u64,
}

impl Collected {
    /// Keeps `data`; false once the body passes `cap`.
    fn push(&mut self, data: Bytes, cap: u64) -> bool {
        self.len += data.len() as u64;
        if self.len > cap {
            return false;
        }
        if self.first.is_empty() {
            self.first = data;
        } else if !data.is_empty() {
            self.more.push(data);
        }
        true
    }

    fn into_bytes(self) -> Bytes {
        if self.more.is_empty() {
            return self.first;
        }
        let mut joined = BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0));
        joined.extend_from_slice(&self.first);
        for chunk in &self.more {
            joined.extend_from_slice(chunk);
        }
        joined.freeze()
    }
}

/// A time limit whose sleep starts only when the body first makes the reader wait: a body that
/// arrived with its request head never starts a timer.
struct Deadline<'t> {
    timer: &'t dyn Timer,
    after: Duration,
    sleep: Option<SleepFuture>,
}

impl<'t> Deadline<'t> {
    fn new(timer: &'t dyn Timer, after: Duration) -> Self {
        Self {
            timer,
            after,
            sleep: None,
        }
    }

    fn poll_passed(&mut self, cx: &mut Context<'_>) -> bool {
        let (timer, after) = (self.timer, self.after);
        self.sleep
            .get_or_insert_with(|| timer.sleep(after))
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use http_body::Frame;

    use super::*;
    use crate::{ParLayer, StaticClients};

    /// Counts the sleeps it was asked for; each completes at once.
    #[derive(Clone, Default)]
    struct CountingTimer(Arc<AtomicUsize>);

    impl Timer for CountingTimer {
        fn sleep(&self, _: Duration) -> SleepFuture {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(std::future::ready(()))
        }
    }

    fn layer(timer: CountingTimer, max_body: usize) -> ParLayer {
        ParLayer::builder()
            .issuer("https://as.example.com")
            .clients(StaticClients::default())
            .timer(timer)
            .max_body_bytes(max_body)
            .build()
            .unwrap()
    }

    /// A body of `chunks` chunks of `chunk_len` bytes that counts how many of its chunks are
    /// alive at once; every other poll is `Pending` when `stalls`.
    struct CountedBody {
        chunks: usize,
        chunk_len: usize,
        live: Arc<AtomicUsize>,
        most_live: Arc<AtomicUsize>,
        stalls: bool,
        stalled: bool,
    }

    struct Owned(Vec<u8>, Arc<AtomicUsize>);

    impl AsRef<[u8]> for Owned {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl Drop for Owned {
        fn drop(&mut self) {
            self.1.fetch_sub(1, Ordering::Relaxed);
        }
    }

    impl Body for CountedBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.stalls && !self.stalled {
                self.stalled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.stalled = false;
            if self.chunks == 0 {
                return Poll::Ready(None);
            }
            self.chunks -= 1;
            let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
            self.most_live.fetch_max(live, Ordering::Relaxed);
            let owned = Owned(vec![b'a'; self.chunk_len], Arc::clone(&self.live));
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_owner(owned)))))
        }
    }

    fn counted(chunks: usize, chunk_len: usize, stalls: bool) -> (CountedBody, Arc<AtomicUsize>) {
        let most_live = Arc::new(AtomicUsize::new(0));
        let body = CountedBody {
            chunks,
            chunk_len,
            live: Arc::new(AtomicUsize::new(0)),
            most_live: Arc::clone(&most_live),
            stalls,
            stalled: false,
        };
        (body, most_live)
    }

    #[tokio::test]
    async fn drained_bytes_are_never_kept() {
        // 4 MiB in 64 KiB chunks against a 64 KiB cap: the drain reads every chunk and drops it
        // at once, so memory stays flat whatever the size.
        let layer = layer(CountingTimer::default(), 64 * 1024);
        let (body, most_live) = counted(64, 64 * 1024, false);
        let err = read_form(layer.config(), &HeaderMap::new(), body)
            .await
            .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!err.closes_connection(), "drained to its end");
        assert!(most_live.load(Ordering::Relaxed) <= 2, "{most_live:?}");
    }

    #[tokio::test]
    async fn the_timer_starts_only_when_the_body_makes_the_reader_wait() {
        let timer = CountingTimer::default();
        let layer = layer(timer.clone(), 64 * 1024);
        let (body, _) = counted(3, 100, false);
        let form = read_form(layer.config(), &HeaderMap::new(), body).await;
        assert_eq!(form.unwrap().len(), 300);
        assert_eq!(
            timer.0.load(Ordering::Relaxed),
            0,
            "no sleep for a body at hand"
        );
        // A body that waits: this timer's sleep is already over, so the wait is a 408.
        let (body, _) = counted(3, 100, true);
        let err = read_form(layer.config(), &HeaderMap::new(), body)
            .await
            .unwrap_err();
        assert_eq!(err.status(), http::StatusCode::REQUEST_TIMEOUT);
        assert!(err.closes_connection());
        assert_eq!(timer.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn form_media_type_in_any_case_with_parameters() {
        for ok in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "application/x-www-form-urlencoded;charset=\"utf-8\"",
            "application/x-www-form-urlencoded ; foo=bar",
        ] {
            assert!(is_form(ok), "{ok}");
        }
        for bad in [
            "application/json",
            "multipart/form-data",
            "",
            "application/x-www-form-urlencoded; charset=ISO-8859-1",
            "text/plain; x=application/x-www-form-urlencoded",
        ] {
            assert!(!is_form(bad), "{bad}");
        }
    }

    #[test]
    fn a_field_read_by_the_layer_must_have_one_line() {
        let mut headers = HeaderMap::new();
        assert_eq!(single_line(&headers, &header::AUTHORIZATION), Ok(None));
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Basic a"));
        assert!(single_line(&headers, &header::AUTHORIZATION)
            .unwrap()
            .is_some());
        // Equal lines are refused too: a proxy may have merged or split them.
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Basic a"));
        let err = single_line(&headers, &header::AUTHORIZATION).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (400, "invalid_request")
        );
    }

    #[test]
    fn one_chunk_is_kept_as_it_is_and_more_are_joined() {
        let chunk = Bytes::from_static(b"a=1&b=2");
        let mut one = Collected::default();
        assert!(one.push(chunk.clone(), 100));
        assert_eq!(one.into_bytes().as_ptr(), chunk.as_ptr());
        let mut three = Collected::default();
        for part in ["a=1", "&b", "=2"] {
            assert!(three.push(Bytes::from(part), 7));
        }
        assert_eq!(three.into_bytes(), "a=1&b=2");
        let mut over = Collected::default();
        assert!(!over.push(Bytes::from("12345678"), 7));
    }
}
