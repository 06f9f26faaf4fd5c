//! The reference server's contract (issue 4), from outside: flags, the `listening on` line, exit
//! code 2, discovery, push → 303 with code/state/iss, echo mode, graceful SIGTERM.
//! The oauth4webapi test (tests/client) drives the same binary with a real OAuth client.

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
    let cases: [&[&str]; 6] = [
        &["--bogus"],
        &["--listen"],
        &["--listen", "not-an-address"],
        &["--inner", "teapot"],
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
        let (status, _, body) = get(format!("{}{path}", node.base)).await;
        assert_eq!(status, 200, "{path}");
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
