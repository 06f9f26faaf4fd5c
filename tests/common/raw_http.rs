//! HTTP/1.1 on a raw TCP socket: requests written byte for byte (repeated field lines, bodies
//! that trickle or never come), responses read as they arrive, including `100 Continue` and
//! whether the server closed the connection.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, time::Duration};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::{timeout, Instant},
};

/// One response as it came off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of a header (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an RFC 6749 §5.2 error: status, `error`, JSON, no-store.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(
            self.status,
            status,
            "{:?} {}",
            self.headers,
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.json()["error"], error);
        assert!(self.json()["error_description"].is_string());
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
    }

    /// Whether the server announced that it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A client connection on which the test writes raw bytes.
pub struct RawConnection {
    stream: TcpStream,
    received: Vec<u8>,
}

impl RawConnection {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            received: Vec::new(),
        }
    }

    /// Writes `bytes` whole.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next response (a `100 Continue` counts as one), or `None` if the server closed the
    /// connection (or `within` passed) before a complete one arrived.
    pub async fn response(&mut self, within: Duration) -> Option<RawResponse> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(response) = self.parse() {
                return Some(response);
            }
            let mut chunk = [0u8; 16 * 1024];
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.received.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends `bytes` one at a time, 200 ms apart, until a response arrives: the response and
    /// how long the trickle had gone on. `None` if all was sent (or the server closed) first.
    pub async fn trickle(&mut self, bytes: &[u8]) -> Option<(RawResponse, Duration)> {
        let started = Instant::now();
        for byte in bytes {
            if self.send(std::slice::from_ref(byte)).await.is_err() {
                break;
            }
            if let Some(reply) = self.response(Duration::from_millis(200)).await {
                return Some((reply, started.elapsed()));
            }
        }
        None
    }

    /// Reads (and discards) until the server closes its side; false if it has not within
    /// `within`.
    pub async fn closed_by_server(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let mut chunk = [0u8; 16 * 1024];
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    fn parse(&mut self) -> Option<RawResponse> {
        let end = self.received.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&self.received[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if self.received.len() < end + 4 + length {
            return None;
        }
        let body = self.received[end + 4..end + 4 + length].to_vec();
        self.received.drain(..end + 4 + length);
        Some(RawResponse {
            status,
            headers,
            body,
        })
    }
}

/// A request head with `lines` as its header lines, in order.
pub fn head(request_line: &str, lines: &[&str]) -> Vec<u8> {
    let mut out = format!("{request_line}\r\nhost: 127.0.0.1\r\n");
    for line in lines {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A complete request: `head` with `content-length` for `body`, then the body.
pub fn request(request_line: &str, lines: &[&str], body: &[u8]) -> Vec<u8> {
    let length = format!("content-length: {}", body.len());
    let mut all: Vec<&str> = lines.to_vec();
    all.push(&length);
    let mut out = head(request_line, &all);
    out.extend_from_slice(body);
    out
}
