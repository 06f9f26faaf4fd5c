//! The PAR endpoint over real HTTP. IDs refer to ../shared/docs/spec-checklist.md.

mod common;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tower_par::{
    client::{AuthMethod, Client},
    ManualClock, MemoryStore, ParLayer, PkceRequirement, StaticClients,
};

async fn server() -> TestServer {
    serve(
        builder(&ManualClock::new()).build().unwrap(),
        InnerMode::Echo,
    )
    .await
}

fn spa_form(extra: &str) -> String {
    format!(
        "response_type=code&client_id=spa&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        enc(SPA_CB)
    )
}

#[tokio::test]
async fn push_answers_201_with_a_fresh_request_uri() {
    // OK-01, OK-02, OK-03, OK-04, OK-05
    let server = server().await;
    let reply = server.push_web("").await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let json = reply.json();
    assert!(
        json["expires_in"].is_u64(),
        "expires_in must be an integer: {json}"
    );
    assert_eq!(json["expires_in"], 60);
    let uri = json["request_uri"].as_str().unwrap();
    let random = uri
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .expect("URN prefix");
    assert_eq!(random.len(), 43);
    assert!(random
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(json.as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn other_methods_get_405_with_allow_post() {
    // PAR-02
    let server = server().await;
    for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let request = http::Request::builder()
            .method(method)
            .uri(server.url("/as/par"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(b"response_type=code")))
            .unwrap();
        let reply = server.send(request).await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("POST"), "{method}");
        if method != "HEAD" {
            reply.assert_error(405, "invalid_request");
        }
    }
}

#[tokio::test]
async fn declared_oversize_is_refused_before_the_body_is_read() {
    // PAR-04: a Content-Length above the cap and past what the drain reads (tests/oversize.rs)
    // -> 413 at once; no body byte is ever sent here, so a server that waited for the body would
    // time out instead of answering.
    let server = server().await;
    let head = format!(
        "POST /as/par HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
        50_000_000
    );
    let reply = server.raw(head.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("invalid_request"));
    assert!(reply.contains("connection: close"), "{reply}");
    // The server keeps serving.
    assert_eq!(server.push_web("").await.status, 201);
}

#[tokio::test]
async fn chunked_oversize_is_refused_once_the_cap_is_passed() {
    // PAR-04: a chunked body has no declared length; Limited counts the bytes.
    let server = server().await;
    let mut request = b"POST /as/par HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..16 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"1\r\na\r\n0\r\n\r\n"); // 1,048,577 bytes in all
    let reply = server.raw(&request).await;
    assert!(
        reply.starts_with("HTTP/1.1 413"),
        "{}",
        &reply[..reply.len().min(300)]
    );
    assert_eq!(server.push_web("").await.status, 201);
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_accepted() {
    // PAR-04 boundary: 1,048,576 bytes is allowed, one more is not.
    let server = server().await;
    let base = format!(
        "response_type=code&client_id=web-app&redirect_uri={}&pad=",
        enc(WEB_CB)
    );
    let form = format!("{base}{}", "p".repeat(1_048_576 - base.len()));
    assert_eq!(form.len(), 1_048_576);
    assert_eq!(
        server
            .push(Some("web-app:web-app-secret"), &form)
            .await
            .status,
        201
    );
    let reply = server
        .push(Some("web-app:web-app-secret"), &format!("{form}p"))
        .await;
    reply.assert_error(413, "invalid_request");
}

#[tokio::test]
async fn the_body_cap_is_configurable() {
    let server = serve(
        builder(&ManualClock::new())
            .max_body_bytes(100)
            .build()
            .unwrap(),
        InnerMode::Echo,
    )
    .await;
    server
        .push_web(&format!("pad={}", "x".repeat(100)))
        .await
        .assert_error(413, "invalid_request");
}

#[tokio::test]
async fn media_type_parameters_and_case_are_accepted() {
    // PAR-03; atproto #2717, WSO2 #18053
    let server = server().await;
    for content_type in [
        "application/x-www-form-urlencoded;charset=UTF-8",
        "application/x-www-form-urlencoded; charset=utf-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
    ] {
        let request = http::Request::post(server.url("/as/par"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(spa_form(""))))
            .unwrap();
        assert_eq!(server.send(request).await.status, 201, "{content_type}");
    }
}

#[tokio::test]
async fn other_media_types_are_invalid_request() {
    // PAR-03: 400 invalid_request (not 415), see push.rs for why.
    let server = server().await;
    for content_type in [
        Some("application/json"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut request = http::Request::post(server.url("/as/par"));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let reply = server
            .send(request.body(Full::new(Bytes::from(spa_form("")))).unwrap())
            .await;
        reply.assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn invalid_utf8_and_percent_encoding_are_invalid_request() {
    // PAR-03, rust-notes D11
    let server = server().await;
    for bad in ["&state=%FF", "&state=%E2%82", "&state=%G1", "&state=%"] {
        server
            .push(None, &spa_form(bad))
            .await
            .assert_error(400, "invalid_request");
    }
    let mut raw = spa_form("&state=").into_bytes();
    raw.push(0xff);
    let request = http::Request::post(server.url("/as/par"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(raw)))
        .unwrap();
    server
        .send(request)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn duplicate_parameters_are_invalid_request() {
    // VAL-06
    let server = server().await;
    server
        .push(None, &spa_form("&scope=a&scope=b"))
        .await
        .assert_error(400, "invalid_request");
    server
        .push(None, &spa_form("&client_id=spa"))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn resource_may_repeat_and_every_value_reaches_the_inner_service() {
    // VAL-06, RFC 8707 §2
    let server = server().await;
    let uri = server
        .push(
            None,
            &spa_form("&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example"),
        )
        .await
        .request_uri();
    let echo = server.redeem("spa", &uri).await.json();
    let resources: Vec<_> = pushed_params(&echo)
        .into_iter()
        .filter(|(n, _)| n == "resource")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(resources, ["https://a.example", "https://b.example"]);
}

#[tokio::test]
async fn request_uri_in_the_body_is_invalid_request() {
    // VAL-01
    let server = server().await;
    server
        .push(None, &spa_form("&request_uri=urn%3Ax"))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn two_authentication_methods_are_invalid_request() {
    // AUTH-05
    let server = server().await;
    let reply = server.push_web("client_secret=web-app-secret").await;
    reply.assert_error(400, "invalid_request");
    let reply = server
        .push_web("client_assertion_type=x&client_assertion=y")
        .await;
    reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    // AUTH-03: id `a:b c`, secret `p+q%r` travel as `a%3Ab+c:p%2Bq%25r`.
    let client = Client::builder("a:b c")
        .secret("p+q%r")
        .redirect_uri(WEB_CB)
        .grant_type("authorization_code")
        .build()
        .unwrap();
    let layer = ParLayer::builder()
        .issuer(ISSUER)
        .clients(StaticClients::from_clients([client]).unwrap())
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    let form = "response_type=code";
    assert_eq!(
        server.push(Some("a%3Ab+c:p%2Bq%25r"), form).await.status,
        201
    );
    // The raw values are not the registered credentials.
    server
        .push(Some("a:b c:p+q%r"), form)
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn client_secret_post_authenticates_and_is_never_stored() {
    // AUTH-04, VAL-08
    let server = server().await;
    let form = "response_type=code&client_id=post-app&client_secret=post-app-secret&redirect_uri=https%3A%2F%2Fpost.example.org%2Fcb&state=s";
    let uri = server.push(None, form).await.request_uri();
    let echo = server.redeem("post-app", &uri).await.json();
    let names: Vec<_> = pushed_params(&echo).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["response_type", "redirect_uri", "state"]);
    assert!(!echo["query"].as_str().unwrap().contains("secret"));
}

#[tokio::test]
async fn only_the_registered_method_authenticates() {
    // AUTH-08, AUTH-02
    let server = server().await;
    // post-app is registered for client_secret_post; Basic is refused and the challenge answered.
    let reply = server
        .push(
            Some("post-app:post-app-secret"),
            "response_type=code&redirect_uri=https%3A%2F%2Fpost.example.org%2Fcb",
        )
        .await;
    reply.assert_error(401, "invalid_client");
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    // web-app is registered for client_secret_basic; body credentials are refused.
    let reply = server
        .push(
            None,
            &format!(
                "response_type=code&client_id=web-app&client_secret=web-app-secret&redirect_uri={}",
                enc(WEB_CB)
            ),
        )
        .await;
    reply.assert_error(401, "invalid_client");
    assert!(reply.header("www-authenticate").is_none());
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_invalid_client() {
    // AUTH-01, AUTH-02
    let server = server().await;
    let form = format!("response_type=code&redirect_uri={}", enc(WEB_CB));
    let reply = server.push(Some("web-app:wrong"), &form).await;
    reply.assert_error(401, "invalid_client");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"https://as.example.com\"")
    );
    let reply = server.push(Some("nobody:secret"), &form).await;
    reply.assert_error(401, "invalid_client");
    assert!(reply.header("www-authenticate").is_some());
    // A confidential client that sends only its id.
    let reply = server
        .push(None, &format!("{form}&client_id=web-app"))
        .await;
    reply.assert_error(401, "invalid_client");
    // No client at all.
    server
        .push(None, &form)
        .await
        .assert_error(401, "invalid_client");
    // Wrong body secret: 401 without a challenge (no Authorization header was used).
    let reply = server
        .push(None, "response_type=code&client_id=post-app&client_secret=nope&redirect_uri=https%3A%2F%2Fpost.example.org%2Fcb")
        .await;
    reply.assert_error(401, "invalid_client");
    assert!(reply.header("www-authenticate").is_none());
}

#[tokio::test]
async fn malformed_authorization_headers_are_invalid_client() {
    let server = server().await;
    for value in ["Basic !!!", "Bearer abc", "Basic"] {
        let request = http::Request::post(server.url("/as/par"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", value)
            .body(Full::new(Bytes::from_static(b"response_type=code")))
            .unwrap();
        let reply = server.send(request).await;
        reply.assert_error(401, "invalid_client");
        assert!(reply.header("www-authenticate").is_some(), "{value}");
    }
}

#[tokio::test]
async fn a_body_client_id_must_match_the_authenticated_client() {
    // AUTH-09
    let server = server().await;
    let reply = server
        .push(
            Some("web-app:web-app-secret"),
            &format!(
                "response_type=code&client_id=spa&redirect_uri={}",
                enc(WEB_CB)
            ),
        )
        .await;
    reply.assert_error(400, "invalid_request");
    // Without a body client_id the authenticated client is the client (spec-checklist C-4).
    let reply = server
        .push(
            Some("web-app:web-app-secret"),
            &format!("response_type=code&redirect_uri={}", enc(WEB_CB)),
        )
        .await;
    assert_eq!(reply.status, 201);
}

#[tokio::test]
async fn public_clients_push_with_s256_pkce() {
    // AUTH-10, VAL-09
    let server = server().await;
    assert_eq!(server.push(None, &spa_form("")).await.status, 201);
    let no_pkce = format!(
        "response_type=code&client_id=spa&redirect_uri={}",
        enc(SPA_CB)
    );
    server
        .push(None, &no_pkce)
        .await
        .assert_error(400, "invalid_request");
    server
        .push(None, &spa_form("").replace("S256", "plain"))
        .await
        .assert_error(400, "invalid_request");
    let no_method = spa_form("").replace("&code_challenge_method=S256", "");
    server
        .push(None, &no_method)
        .await
        .assert_error(400, "invalid_request");
    server
        .push(None, &format!("{no_pkce}&code_challenge_method=S256"))
        .await
        .assert_error(400, "invalid_request");
    server
        .push(None, &spa_form("").replace(CHALLENGE, "short"))
        .await
        .assert_error(400, "invalid_request");
    server
        .push(None, &spa_form("").replace("S256", "S512"))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn pkce_can_be_required_of_every_client_or_allow_plain() {
    let clock = ManualClock::new();
    let server = serve(
        builder(&clock)
            .pkce(PkceRequirement::AllClients)
            .build()
            .unwrap(),
        InnerMode::Echo,
    )
    .await;
    server
        .push_web("")
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(
        server
            .push_web(&format!(
                "code_challenge={CHALLENGE}&code_challenge_method=S256"
            ))
            .await
            .status,
        201
    );
    let server = serve(
        builder(&clock).allow_plain_pkce(true).build().unwrap(),
        InnerMode::Echo,
    )
    .await;
    assert_eq!(
        server
            .push(None, &spa_form("").replace("S256", "plain"))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn response_type_is_required_and_must_be_known() {
    // VAL-04
    let server = server().await;
    let reply = server
        .push(
            Some("web-app:web-app-secret"),
            &format!("redirect_uri={}", enc(WEB_CB)),
        )
        .await;
    reply.assert_error(400, "invalid_request");
    server.push_web("").await; // sanity
    let reply = server
        .push(
            Some("web-app:web-app-secret"),
            &format!("response_type=foo&redirect_uri={}", enc(WEB_CB)),
        )
        .await;
    reply.assert_error(400, "unsupported_response_type");
}

#[tokio::test]
async fn a_blank_response_type_or_one_with_empty_members_is_invalid_request() {
    // Issue 16.4, RFC 6749 §3.1.1: the public client without PKCE got a 201 for these.
    let server = server().await;
    for response_type in [
        "%20",
        "+",
        "%20%20",
        "code%20%20id_token",
        "code+",
        "%20code",
        "code++token",
    ] {
        let reply = server
            .push(
                None,
                &format!(
                    "client_id=spa&response_type={response_type}&redirect_uri={}&state=x",
                    enc(SPA_CB)
                ),
            )
            .await;
        reply.assert_error(400, "invalid_request");
    }
    // Single spaces between known types are fine (PKCE then applies to `code`).
    let reply = server
        .push(
            None,
            &format!(
                "client_id=spa&response_type=code&redirect_uri={}&state=x",
                enc(SPA_CB)
            ),
        )
        .await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("code_challenge"));
}

#[tokio::test]
async fn clients_without_a_user_grant_cannot_push() {
    // P1-06: client_credentials only -> unauthorized_client
    let server = server().await;
    let reply = server
        .push(
            Some("worker:worker-secret"),
            "response_type=code&redirect_uri=https%3A%2F%2Fw.example%2Fcb",
        )
        .await;
    reply.assert_error(400, "unauthorized_client");
}

#[tokio::test]
async fn response_types_follow_the_grants() {
    // VAL-04, P1-06: code needs authorization_code, token/id_token need implicit.
    let server = server().await;
    let reply = server
        .push(
            Some("web-app:web-app-secret"),
            &format!("response_type=token&redirect_uri={}", enc(WEB_CB)),
        )
        .await;
    reply.assert_error(400, "unauthorized_client");
    let implicit = "redirect_uri=https%3A%2F%2Fimplicit.example.org%2Fcb";
    let reply = server
        .push(
            Some("implicit-app:implicit-app-secret"),
            &format!("response_type=token&{implicit}"),
        )
        .await;
    assert_eq!(reply.status, 201);
    let reply = server
        .push(
            Some("implicit-app:implicit-app-secret"),
            &format!("response_type=id_token%20token&{implicit}"),
        )
        .await;
    assert_eq!(reply.status, 201);
    let reply = server
        .push(
            Some("implicit-app:implicit-app-secret"),
            &format!("response_type=code&{implicit}"),
        )
        .await;
    reply.assert_error(400, "unauthorized_client");
}

#[tokio::test]
async fn redirect_uri_must_be_registered_or_implied() {
    // VAL-03, SEC-02
    let server = server().await;
    let reply = server
        .push(
            Some("web-app:web-app-secret"),
            "response_type=code&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
        )
        .await;
    reply.assert_error(400, "invalid_request");
    // Prefix tricks are not matches.
    let reply = server
        .push(
            Some("web-app:web-app-secret"),
            &format!(
                "response_type=code&redirect_uri={}",
                enc("https://client.example.org/cb/../x")
            ),
        )
        .await;
    reply.assert_error(400, "invalid_request");
    // Omitted with exactly one registered: accepted.
    assert_eq!(
        server
            .push(Some("web-app:web-app-secret"), "response_type=code")
            .await
            .status,
        201
    );
    // Omitted with two registered: which one?
    let reply = server
        .push(
            None,
            "response_type=code&client_id=post-app&client_secret=post-app-secret",
        )
        .await;
    reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn lifetime_is_the_clients_own_or_the_default() {
    // P1-03, OK-05
    let clock = ManualClock::new();
    let server = serve(
        builder(&clock)
            .default_lifetime(Duration::from_secs(90))
            .build()
            .unwrap(),
        InnerMode::Echo,
    )
    .await;
    assert_eq!(server.push_web("").await.json()["expires_in"], 90);
    let reply = server
        .push(Some("short-lived:short-lived-secret"), "response_type=code")
        .await;
    assert_eq!(reply.json()["expires_in"], 2);
}

#[tokio::test]
async fn a_full_store_answers_503_and_keeps_every_issued_handle() {
    // Two confidential clients fill a store of 4 within their shares (half each); a third
    // client, within its own share, then meets the full store: 503, not 429.
    let clock = ManualClock::new();
    let layer = builder(&clock)
        .store(MemoryStore::with_capacity(4))
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    let mut issued = Vec::new();
    for _ in 0..2 {
        issued.push(("web-app", server.push_web("").await.request_uri()));
        issued.push(("post-app", server.push_post("").await.request_uri()));
    }
    let reply = server
        .push(Some("short-lived:short-lived-secret"), "response_type=code")
        .await;
    reply.assert_error(503, "temporarily_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    for (client_id, uri) in &issued {
        assert_eq!(
            server.redeem(client_id, uri).await.status,
            200,
            "an issued handle was lost"
        );
    }
    assert_eq!(
        server.push_web("").await.status,
        201,
        "room again after redemptions"
    );
}

#[tokio::test]
async fn two_hundred_parallel_pushes_get_distinct_handles() {
    // OK-03
    let server = Arc::new(server().await);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { server.push_web("").await.request_uri() })
        })
        .collect();
    let mut uris = std::collections::HashSet::new();
    for task in tasks {
        assert!(uris.insert(task.await.unwrap()));
    }
    assert_eq!(uris.len(), 200);
}

#[tokio::test]
async fn credentials_in_the_par_query_are_refused_other_query_parameters_ignored() {
    // PAR-06
    let server = server().await;
    let request = |query: &str, body: String| {
        http::Request::post(server.url(&format!("/as/par?{query}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let reply = server
        .send(request("client_secret=post-app-secret", spa_form("")))
        .await;
    reply.assert_error(400, "invalid_request");
    let reply = server
        .send(request("scope=admin", spa_form("&scope=read")))
        .await;
    let echo = server.redeem("spa", &reply.request_uri()).await.json();
    assert!(pushed_params(&echo).contains(&("scope".into(), "read".into())));
    assert!(!echo["query"].as_str().unwrap().contains("admin"));
}

#[tokio::test]
async fn garbage_bodies_never_cause_a_5xx() {
    let server = server().await;
    let bodies: [&[u8]; 7] = [
        b"",
        b"&&&===&",
        b"%%%%",
        b"\x00\x01\x02",
        b"=",
        b"response_type",
        &[0xC3, 0x28, b'=', 0xA0],
    ];
    for body in bodies {
        for basic in [None, Some("web-app:web-app-secret")] {
            let reply = server.push(basic, &String::from_utf8_lossy(body)).await;
            assert!(
                (400..500).contains(&reply.status),
                "{body:?}: {}",
                reply.status
            );
            assert!(reply.json()["error"].is_string());
        }
    }
}

#[tokio::test]
async fn clients_may_authenticate_with_a_custom_registry() {
    // The registry is a trait: here, one that knows a single public client.
    struct One(Arc<Client>);
    impl tower_par::ClientRegistry for One {
        fn client<'a>(&'a self, id: &'a str) -> tower_par::client::RegistryFuture<'a> {
            let found = (id == self.0.client_id()).then(|| Arc::clone(&self.0));
            Box::pin(async move { Ok(found) })
        }
    }
    let client = Client::builder("native")
        .auth_method(AuthMethod::None)
        .redirect_uri(SPA_CB)
        .grant_type("authorization_code")
        .build()
        .unwrap();
    let layer = ParLayer::builder()
        .issuer(ISSUER)
        .clients(One(Arc::new(client)))
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    assert_eq!(
        server
            .push(
                None,
                &spa_form("").replace("client_id=spa", "client_id=native")
            )
            .await
            .status,
        201
    );
    server
        .push(None, &spa_form(""))
        .await
        .assert_error(401, "invalid_client");
}
