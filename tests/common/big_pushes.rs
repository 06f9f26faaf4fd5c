//! Floods of 1 MiB pushes of worst-case bytes against a running `par_server` (issue 16 item 1),
//! shared by the memory-store and Redis tests.
#![allow(dead_code, unreachable_pub)]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// The PAR endpoint's body cap, and the size of every push here.
pub const BODY: usize = 1 << 20;
/// A valid S256 code challenge (RFC 7636 appendix B).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Who pushes: the demo clients of examples/clients.json.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pusher {
    /// The public client of the issue: no secret, PKCE.
    Spa,
    /// Confidential, client_secret_basic.
    WebApp,
    /// Confidential, client_secret_post.
    PostApp,
}

impl Pusher {
    pub const fn client_id(self) -> &'static str {
        match self {
            Self::Spa => "spa",
            Self::WebApp => "web-app",
            Self::PostApp => "post-app",
        }
    }

    /// The form, `state` padded with `!` to exactly [`BODY`] bytes (`!` is kept as one byte by
    /// a form decoder and was stored as `%21`, three, before payloads were compact).
    fn body(self) -> Bytes {
        let head = match self {
            Self::Spa => format!(
                "client_id=spa&response_type=code&code_challenge={CHALLENGE}&code_challenge_method=S256&state="
            ),
            Self::WebApp => "response_type=code&state=".to_owned(),
            Self::PostApp => "client_id=post-app&client_secret=post-app-secret&response_type=code\
                 &redirect_uri=https%3A%2F%2Fpost.example.org%2Fcb&state="
                .to_owned(),
        };
        let mut body = head.into_bytes();
        body.resize(BODY, b'!');
        Bytes::from(body)
    }

    fn basic(self) -> Option<String> {
        (self == Self::WebApp)
            .then(|| format!("Basic {}", STANDARD.encode("web-app:web-app-secret")))
    }
}

/// What a flood got: the handles that got `201`, and how many of each status.
#[derive(Debug, Default)]
pub struct Outcome {
    pub issued: Vec<(&'static str, String)>,
    pub statuses: BTreeMap<u16, usize>,
    /// Pushes sent again after `503` "store unavailable" (a store that did not answer in time).
    pub retried: usize,
}

/// How often a flood worker may send a push again after the store did not answer in time.
const MAX_RETRIES: usize = 5;
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// `503` because the store did not answer (its operation timed out), not because it is full.
fn is_store_unavailable(status: u16, json: &Value) -> bool {
    status == 503
        && json["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("store is unavailable"))
}

impl Outcome {
    pub fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    pub fn extend(&mut self, other: Self) {
        self.issued.extend(other.issued);
        self.retried += other.retried;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
    }
}

/// `n` pushes of 1 MiB by `pusher` over `parallel` connections. Every answer must be `201`, or
/// a refusal in `refusals` with the RFC 6749 §5.2 JSON `temporarily_unavailable`, `no-store` and
/// `Retry-After`.
pub async fn flood(
    base: &str,
    pusher: Pusher,
    n: usize,
    parallel: usize,
    refusals: &[u16],
) -> Outcome {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let body = pusher.body();
    let url: Arc<str> = format!("{base}/as/par").into();
    let mut tasks = Vec::new();
    for worker in 0..parallel {
        let (client, body, url) = (client.clone(), body.clone(), Arc::clone(&url));
        let share = n / parallel + usize::from(worker < n % parallel);
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut pushes = 0;
            while pushes < share {
                let mut request = http::Request::post(&*url)
                    .header("content-type", "application/x-www-form-urlencoded");
                if let Some(basic) = pusher.basic() {
                    request = request.header("authorization", basic);
                }
                let response = client
                    .request(request.body(Full::new(body.clone())).unwrap())
                    .await
                    .expect("push");
                let (parts, body) = response.into_parts();
                let body = body.collect().await.expect("body").to_bytes();
                let status = parts.status.as_u16();
                let json: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body:?}"));
                if is_store_unavailable(status, &json) && outcome.retried < MAX_RETRIES {
                    // A store that did not answer in time (a loaded machine): the client does
                    // what Retry-After says. The budgets are not what refused it.
                    outcome.retried += 1;
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
                pushes += 1;
                *outcome.statuses.entry(status).or_default() += 1;
                if status == 201 {
                    let uri = json["request_uri"].as_str().expect("request_uri");
                    outcome.issued.push((pusher.client_id(), uri.to_owned()));
                    continue;
                }
                assert_eq!(json["error"], "temporarily_unavailable", "{status}: {json}");
                assert_eq!(parts.headers["cache-control"], "no-store");
                assert_eq!(
                    parts.headers["retry-after"], "1",
                    "{status} needs Retry-After"
                );
                assert!(json["error_description"].is_string());
            }
            outcome
        }));
    }
    let mut outcome = Outcome::default();
    for task in tasks {
        outcome.extend(task.await.expect("pusher task"));
    }
    for status in outcome.statuses.keys() {
        assert!(
            *status == 201 || refusals.contains(status),
            "{pusher:?}: unexpected status {status} in {:?}",
            outcome.statuses
        );
    }
    outcome
}

/// The default byte budget of `par_server`.
pub const BUDGET: u64 = 256 << 20;
/// What one push weighs in the store, rounded up: the body, less nothing, plus the overhead.
pub const WEIGHT: u64 = BODY as u64 + 600;

/// After a flood by `spa` (`outcome`): `web-app` pushes `web_pushes` times (refused past its
/// share, `429`), then `post-app` 100 times until the store is full (`503`, or also `429` where
/// `post_refusals` allows a share's refusal). Returns how many `web-app` stored; `outcome` gets
/// everything.
pub async fn fill_with_confidential_clients(
    base: &str,
    outcome: &mut Outcome,
    web_pushes: usize,
    parallel: usize,
    post_refusals: &[u16],
) -> usize {
    let web = flood(base, Pusher::WebApp, web_pushes, parallel, &[429]).await;
    let web_stored = web.issued.len();
    outcome.extend(web);
    let post = flood(base, Pusher::PostApp, 100, parallel, post_refusals).await;
    assert!(
        post.count(503) > 0,
        "the store must fill: {:?}",
        post.statuses
    );
    outcome.extend(post);
    assert!(
        outcome.issued.len() as u64 * WEIGHT <= BUDGET,
        "{} records within the budget",
        outcome.issued.len()
    );
    web_stored
}

/// Redeems a handle and returns the status of the answer. The answer is a `303` whose
/// `Location` carries the 1 MiB state (3 MiB escaped), so only the status line is read, on a
/// raw connection (hyper's client refuses heads that large).
pub async fn redeem_status(base: &str, client_id: &str, request_uri: &str) -> u16 {
    let authority = base.strip_prefix("http://").expect("http base");
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let request = format!(
        "GET /as/authorize?client_id={client_id}&request_uri={} HTTP/1.1\r\nHost: {authority}\r\n\
         Connection: close\r\n\r\n",
        form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("status line in time")
            .expect("read");
        assert!(n > 0, "connection closed before a status line");
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head).into_owned();
    if !line.starts_with("HTTP/1.1 303") {
        // Not the 1 MiB redirect: read the (small) error answer whole, for the failure message.
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut head)).await;
        eprintln!("{client_id}: {}", String::from_utf8_lossy(&head));
    }
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"))
}

/// Every handle redeems once (`303`, over `parallel` connections, oldest first: they live 60 s),
/// and a second time is `400`.
pub async fn redeem_each_once(base: &str, issued: &[(&'static str, String)], parallel: usize) {
    let base: Arc<str> = base.into();
    let newest_first: Vec<_> = issued.iter().rev().cloned().collect();
    let queue = Arc::new(std::sync::Mutex::new(newest_first));
    let workers: Vec<_> = (0..parallel)
        .map(|_| {
            let (base, queue) = (Arc::clone(&base), Arc::clone(&queue));
            tokio::spawn(async move {
                loop {
                    let Some((client_id, uri)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let mut status = redeem_status(&base, client_id, &uri).await;
                    for _ in 0..MAX_RETRIES {
                        if status != 503 {
                            break;
                        }
                        // The store did not answer in time; Retry-After says when to ask again.
                        tokio::time::sleep(RETRY_AFTER).await;
                        status = redeem_status(&base, client_id, &uri).await;
                    }
                    assert_eq!(
                        status, 303,
                        "a handle that got 201 must redeem ({client_id})"
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("redeemer");
    }
    if let Some((client_id, uri)) = issued.first() {
        assert_eq!(redeem_status(&base, client_id, uri).await, 400, "once only");
    }
}

/// The resident set of a process, in bytes (`VmRSS` of /proc/PID/status).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}
