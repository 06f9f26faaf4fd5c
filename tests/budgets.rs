//! What a push costs the store (issue 16 item 1), over HTTP on real TCP: payloads are kept at
//! the size they were pushed whatever their content, and the byte budget refuses with `503` like
//! a full store. (A record that a store hands back altered is `tests/sealed.rs`'s.)

mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tower_par::{
    store::{Charge, MemoryStore, ParStore, Record, StoreFuture, StoreKey, StoreLimits},
    ManualClock,
};

/// A memory store that notes the size of every payload it is given.
#[derive(Clone)]
struct Observed {
    inner: MemoryStore,
    payload_sizes: Arc<Mutex<Vec<usize>>>,
}

impl Observed {
    fn new(limits: StoreLimits) -> Self {
        Self {
            inner: MemoryStore::with_limits(limits),
            payload_sizes: Arc::default(),
        }
    }

    fn last_payload_size(&self) -> usize {
        *self.payload_sizes.lock().unwrap().last().expect("a put")
    }
}

impl ParStore for Observed {
    fn limits(&self) -> StoreLimits {
        self.inner.limits()
    }
    fn put(
        &self,
        key: StoreKey,
        record: Record,
        charge: Charge,
        now: SystemTime,
    ) -> StoreFuture<'_, ()> {
        self.payload_sizes
            .lock()
            .unwrap()
            .push(record.payload().len());
        self.inner.put(key, record, charge, now)
    }
    fn take(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        self.inner.take(key, now)
    }
    fn open(
        &self,
        key: StoreKey,
        now: SystemTime,
        window: Duration,
    ) -> StoreFuture<'_, Option<Record>> {
        self.inner.open(key, now, window)
    }
    fn complete(&self, key: StoreKey, now: SystemTime) -> StoreFuture<'_, bool> {
        self.inner.complete(key, now)
    }
    fn remember(&self, key: StoreKey, until: SystemTime, now: SystemTime) -> StoreFuture<'_, bool> {
        self.inner.remember(key, until, now)
    }
}

async fn server_on(store: Observed) -> TestServer {
    let layer = builder(&ManualClock::new()).store(store).build().unwrap();
    serve(layer, InnerMode::Echo).await
}

/// The public client's push of the issue: PKCE, then `state` of `n` bytes of `!`.
fn spa_push(n: usize) -> String {
    format!(
        "client_id=spa&response_type=code&code_challenge={CHALLENGE}&code_challenge_method=S256&state={}",
        "!".repeat(n)
    )
}

#[tokio::test]
async fn worst_case_bytes_are_stored_at_their_size_and_replayed_exactly() {
    // Issue 16: the canonical query kept every `!` as `%21`, three bytes for one.
    let store = Observed::new(StoreLimits::default());
    let server = server_on(store.clone()).await;
    for (n, by_post) in [(20_000, false), (300_000, true)] {
        let body = spa_push(n);
        let uri = server.push(None, &body).await.request_uri();
        let kept = store.last_payload_size();
        assert!(
            kept as f64 <= 1.1 * body.len() as f64,
            "{kept} bytes kept for a {}-byte push",
            body.len()
        );
        // The compact payload's bound, plus the seal's fixed 17 bytes (format byte and tag).
        assert!(
            kept <= body.len() + body.len() / 128 + 2 + 17,
            "{kept} for {}",
            body.len()
        );

        // The inner service still receives the canonical encoding, byte for byte.
        let expected = format!(
            "client_id=spa&response_type=code&code_challenge={CHALLENGE}&code_challenge_method=S256&state={}",
            "%21".repeat(n)
        );
        let echo = if by_post {
            let request = http::Request::post(server.url("/as/authorize"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(format!(
                    "client_id=spa&request_uri={}",
                    enc(&uri)
                ))))
                .unwrap();
            let echo = server.send(request).await.json();
            assert_eq!(echo["body"], expected);
            echo
        } else {
            let echo = server.redeem("spa", &uri).await.json();
            assert_eq!(echo["query"], expected);
            echo
        };
        let state = pushed_params(&echo)
            .into_iter()
            .find(|(name, _)| name == "state")
            .expect("state")
            .1;
        assert_eq!(state, "!".repeat(n), "the extension reads the compact form");
    }
}

#[tokio::test]
async fn the_byte_budget_refuses_like_a_full_store() {
    // 17 KiB: each client may hold 8.5 KiB, one 6 KiB push. Two clients' pushes leave less than
    // 6 KiB, so a third client, within its own share, meets the full store.
    let limits = StoreLimits::new(1_000, 17 * 1024);
    let server = server_on(Observed::new(limits)).await;
    let big = format!("ext={}", "~".repeat(6 * 1024));
    let short_lived = |extra: &str| {
        let form = format!("response_type=code&{extra}");
        let server = &server;
        async move {
            server
                .push(Some("short-lived:short-lived-secret"), &form)
                .await
        }
    };
    let mut issued = vec![
        ("web-app", server.push_web(&big).await.request_uri()),
        ("post-app", server.push_post(&big).await.request_uri()),
    ];
    let reply = short_lived(&big).await;
    reply.assert_error(503, "temporarily_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // A small push still fits: entries were never the limit, bytes are.
    issued.push(("short-lived", short_lived("").await.request_uri()));
    for (client_id, uri) in &issued {
        assert_eq!(server.redeem(client_id, uri).await.status, 200);
    }
    short_lived(&big).await.request_uri();
}
