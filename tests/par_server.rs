//! The reference server's contract (issue 4), from outside: flags, the `listening on` line, exit
//! code 2, discovery, push → 303 with code/state/iss, echo mode, graceful SIGTERM.
//! The oauth4webapi test (tests/client) drives the same binary with a real OAuth client.

#[path = "common/big_pushes.rs"]
mod big_pushes;
#[path = "common/par_server.rs"]
mod par_server;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use par_server::{par_server_binary, Node};
use serde_json::Value;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn send(request: http::Request<Full<Bytes>>) -> (u16, http::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("request failed");
    let (parts, body) = response.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn push(base: &str, extra: &str) -> String {
    let request = http::Request::post(format!("{base}/as/par"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode("web-app:web-app-secret")),
        )
        .body(Full::new(Bytes::from(format!(
            "response_type=code&redirect_uri={}&state=st-1{extra}",
            enc("https://client.example.org/cb")
        ))))
        .unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(status, 201, "{body:?}");
    serde_json::from_slice::<Value>(&body).unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn get(url: String) -> (u16, http::HeaderMap, Bytes) {
    send(http::Request::get(url).body(Full::default()).unwrap()).await
}

#[test]
fn bad_flags_and_bad_clients_files_exit_with_code_2() {
    let binary = par_server_binary();
    let bad_clients =
        std::env::temp_dir().join(format!("par-server-bad-{}.json", std::process::id()));
    std::fs::write(
        &bad_clients,
        r#"{"clients":[{"client_id":"x","auth_method":"client_secret_post"}]}"#,
    )
    .unwrap();
    let cases: [&[&str]; 8] = [
        &["--bogus"],
        &["--listen"],
        &["--listen", "not-an-address"],
        &["--inner", "teapot"],
        &["--max-stored-bytes", "0"],
        &["--max-stored-bytes", "lots"],
        &["--clients", "/nonexistent/clients.json"],
        &["--clients", bad_clients.to_str().unwrap()],
    ];
    for args in cases {
        par_server::assert_refused(&binary, args, "par_server: ");
    }
    let _ = std::fs::remove_file(bad_clients);
}

#[tokio::test]
async fn push_then_authorize_answers_303_with_code_state_and_iss() {
    let node = Node::start(&par_server_binary(), &[]);
    let uri = push(&node.base, "").await;
    let (status, headers, _) = get(format!(
        "{}/as/authorize?client_id=web-app&request_uri={}",
        node.base,
        enc(&uri)
    ))
    .await;
    assert_eq!(status, 303);
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://client.example.org/cb?code="),
        "{location}"
    );
    assert!(location.contains("&state=st-1&"), "{location}");
    assert!(
        location.ends_with(&format!("iss={}", enc(&node.base))),
        "{location}: default issuer http://<listen address>"
    );
    let (status, headers, body) = get(format!(
        "{}/as/authorize?client_id=web-app&request_uri={}",
        node.base,
        enc(&uri)
    ))
    .await;
    assert_eq!(status, 400);
    assert!(headers.get("location").is_none());
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"],
        "invalid_request_uri"
    );
}

#[tokio::test]
async fn the_plain_handler_refuses_unknown_clients_and_redirects_without_a_redirect() {
    let node = Node::start(&par_server_binary(), &[]);
    for query in [
        "client_id=nobody&response_type=code",
        "client_id=web-app&response_type=code&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    ] {
        let (status, headers, _) = get(format!("{}/as/authorize?{query}", node.base)).await;
        assert_eq!(status, 400, "{query}");
        assert!(headers.get("location").is_none(), "{query}");
    }
}

#[tokio::test]
async fn discovery_documents_describe_the_par_endpoint() {
    let node = Node::start(
        &par_server_binary(),
        &["--issuer", "https://as.example.test", "--require-par"],
    );
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, headers, body) = get(format!("{}{path}", node.base)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["access-control-allow-origin"], "*", "issue 15");
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["issuer"], "https://as.example.test");
        assert_eq!(
            doc["authorization_endpoint"],
            "https://as.example.test/as/authorize"
        );
        assert_eq!(
            doc["pushed_authorization_request_endpoint"],
            "https://as.example.test/as/par"
        );
        assert_eq!(doc["require_pushed_authorization_requests"], true);
        for member in [
            "response_types_supported",
            "token_endpoint_auth_methods_supported",
            "code_challenge_methods_supported",
        ] {
            assert!(doc[member].is_array(), "{member}");
        }
    }
}

#[tokio::test]
async fn browser_based_clients_get_cors_from_the_layer_without_a_flag() {
    // Issue 15: the demo `spa` client (public) registered http://127.0.0.1:8080/callback.
    let node = Node::start(&par_server_binary(), &[]);
    let preflight = |origin: &'static str| {
        http::Request::options(format!("{}/as/par", node.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "dpop")
            .body(Full::default())
            .unwrap()
    };
    let (status, headers, _) = send(preflight("http://127.0.0.1:8080")).await;
    assert_eq!(status, 204);
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://127.0.0.1:8080"
    );
    let (status, headers, _) = send(preflight("https://client.example.org")).await;
    assert_eq!(
        status, 403,
        "web-app is confidential and registered no web origin"
    );
    assert!(headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn echo_mode_shows_what_the_inner_service_received() {
    let node = Node::start(&par_server_binary(), &["--inner", "echo"]);
    let uri = push(&node.base, "&scope=openid%20profile&ext=z%C3%B6").await;
    let (status, _, body) = get(format!(
        "{}/as/authorize?client_id=web-app&request_uri={}",
        node.base,
        enc(&uri)
    ))
    .await;
    assert_eq!(status, 200);
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["pushed"], true);
    let params: Vec<(String, String)> = echo["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "client_id",
            "response_type",
            "redirect_uri",
            "state",
            "scope",
            "ext"
        ]
    );
    assert!(params.contains(&("scope".into(), "openid profile".into())));
    assert!(params.contains(&("ext".into(), "zö".into())));
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_gracefully() {
    Node::start(&par_server_binary(), &[]).assert_graceful_sigterm();
}

/// Issue 16 item 1, against `par_server` with its default settings (memory store, 1,000,000
/// entries, 256 MiB, half per client, a quarter for public clients): 1,000 pushes of 1 MiB of
/// worst-case bytes by the public client `spa`, then confidential clients until the store is
/// full. RSS grows by at most the byte budget plus [`OVERHEAD`]; refusals are JSON errors;
/// every handle that got `201` redeems.
///
/// `spa`'s excess is `429`: the public clients' share (a quarter, 64 MiB) runs out long before
/// the store does. `web-app` then stops at its own share (half, 128 MiB: `429`), and `post-app`,
/// within its share, meets the full store: `503`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_1_mib_pushes_stays_within_the_byte_budget() {
    use big_pushes::{
        fill_with_confidential_clients, flood, redeem_each_once, rss_bytes, Pusher, BUDGET, WEIGHT,
    };
    /// Beyond the stored weights: the in-flight bodies of the pushing connections, the
    /// allocator's arenas that keep freed transient buffers, the runtime and the binary's pages.
    const OVERHEAD: u64 = 64 << 20;
    let node = Node::start(&par_server_binary(), &[]);
    let pid = node.child.id();
    let before = rss_bytes(pid);

    let started = std::time::Instant::now();
    let mut outcome = flood(&node.base, Pusher::Spa, 1_000, 4, &[429]).await;
    assert_eq!(
        outcome.issued.len() as u64,
        BUDGET / 4 / WEIGHT,
        "the public clients' share of 64 MiB: {:?}",
        outcome.statuses
    );
    let after_spa = rss_bytes(pid);
    let web = fill_with_confidential_clients(&node.base, &mut outcome, 160, 4, &[503]).await;
    assert_eq!(
        web as u64,
        BUDGET / 2 / WEIGHT,
        "web-app's share of 128 MiB"
    );
    let stored = outcome.issued.len() as u64;
    assert!(
        stored * WEIGHT > BUDGET - 2 * WEIGHT,
        "{stored} records fill the budget"
    );
    let full = rss_bytes(pid);
    eprintln!(
        "1 MiB floods: {:?} ({} sent again after 503 store unavailable) in {:?}; {stored} stored; RSS {} MiB -> {} MiB after spa -> {} MiB full \
         (growth {} MiB, budget 256 MiB + overhead {} MiB)",
        outcome.statuses,
        outcome.retried,
        started.elapsed(),
        before >> 20,
        after_spa >> 20,
        full >> 20,
        (full - before) >> 20,
        OVERHEAD >> 20
    );
    assert!(
        full.saturating_sub(before) <= BUDGET + OVERHEAD,
        "RSS grew by {} MiB",
        (full - before) >> 20
    );

    redeem_each_once(&node.base, &outcome.issued, 4).await;
}
