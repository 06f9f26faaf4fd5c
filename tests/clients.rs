//! A client table a real deployment can use (issue 17, item 3): several secrets at once,
//! secrets at rest as digests, and no registry lookup for plain authorization requests when no
//! client requires PAR. Over real TCP.

mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use common::*;
use tower_par::{
    AuthMethod, Client, ClientRegistry, ManualClock, MemoryStore, ParLayer, RegistryFuture,
    StaticClients,
};

/// `printf %s digest-app-secret | sha256sum`
const DIGEST_APP_SECRET_SHA256: &str =
    "e596c3cc6add2ff268c327e3df40a4eeba9a4aa42f6b89326d725b0fa3684adb";

/// A registry that counts its lookups and can claim that some client requires PAR.
struct Counting {
    clients: StaticClients,
    lookups: Arc<AtomicUsize>,
    /// `None`: the trait's default answer.
    hint: Option<bool>,
}

impl ClientRegistry for Counting {
    fn client<'a>(&'a self, client_id: &'a str) -> RegistryFuture<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.clients.client(client_id)
    }

    fn any_client_requires_par(&self) -> bool {
        self.hint
            .unwrap_or_else(|| ClientRegistry::any_client_requires_par(&NoHint))
    }
}

/// A registry with nothing but the trait's default answer.
struct NoHint;

impl ClientRegistry for NoHint {
    fn client<'a>(&'a self, _: &'a str) -> RegistryFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}

fn code_client(id: &str) -> tower_par::ClientBuilder {
    Client::builder(id)
        .redirect_uri(WEB_CB)
        .grant_type("authorization_code")
}

async fn server_with(registry: impl ClientRegistry) -> TestServer {
    let layer = ParLayer::builder()
        .issuer(ISSUER)
        .clients(registry)
        .store(MemoryStore::with_capacity(100))
        .clock(ManualClock::new())
        .build()
        .unwrap();
    serve(layer, InnerMode::Echo).await
}

async fn counted_plain_request(hint: Option<bool>, table: StaticClients) -> usize {
    let lookups = Arc::new(AtomicUsize::new(0));
    let server = server_with(Counting {
        clients: table,
        lookups: Arc::clone(&lookups),
        hint,
    })
    .await;
    let reply = server
        .get("/as/authorize?client_id=web-app&response_type=code&state=s")
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.json()["pushed"].is_null(), "passed through unchanged");
    lookups.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_plain_authorization_request_costs_no_lookup_when_no_client_requires_par() {
    let table = StaticClients::from_clients([code_client("web-app")
        .secret("web-app-secret")
        .build()
        .unwrap()])
    .unwrap();
    assert!(!table.any_client_requires_par());
    // StaticClients answers from its table.
    assert_eq!(counted_plain_request(Some(false), table.clone()).await, 0);
    // A registry that says some client may require PAR, or says nothing: one lookup.
    assert_eq!(counted_plain_request(Some(true), table.clone()).await, 1);
    assert_eq!(counted_plain_request(None, table.clone()).await, 1);

    // The table's own answer, through the layer: no lookup, and a requiring client is enforced.
    let lookups = Arc::new(AtomicUsize::new(0));
    let server = server_with(Counting {
        hint: Some(table.any_client_requires_par()),
        clients: table,
        lookups: Arc::clone(&lookups),
    })
    .await;
    assert_eq!(
        server.get("/as/authorize?client_id=web-app").await.status,
        200
    );
    assert_eq!(lookups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_table_with_a_par_client_still_enforces_it() {
    let table = StaticClients::from_clients([
        code_client("web-app")
            .secret("web-app-secret")
            .build()
            .unwrap(),
        code_client("strict")
            .secret("strict-secret")
            .require_par(true)
            .build()
            .unwrap(),
    ])
    .unwrap();
    assert!(table.any_client_requires_par());
    let server = server_with(table).await;
    server
        .get("/as/authorize?client_id=strict&response_type=code")
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(
        server
            .get("/as/authorize?client_id=web-app&response_type=code")
            .await
            .status,
        200
    );
}

fn rotation_clients() -> StaticClients {
    StaticClients::from_json_str(&format!(
        r#"{{"clients":[
            {{"client_id":"rotating","auth_method":"client_secret_basic",
              "client_secret":"old-secret","client_secrets":["new-secret"],
              "redirect_uris":["{WEB_CB}"],"grant_types":["authorization_code"]}},
            {{"client_id":"digest-app","auth_method":"client_secret_post",
              "client_secret_sha256":"{DIGEST_APP_SECRET_SHA256}",
              "redirect_uris":["{WEB_CB}"],"grant_types":["authorization_code"]}}
        ]}}"#
    ))
    .unwrap()
}

#[tokio::test]
async fn every_registered_secret_authenticates_during_a_rotation() {
    let server = server_with(rotation_clients()).await;
    for credentials in ["rotating:old-secret", "rotating:new-secret"] {
        server
            .push(Some(credentials), "response_type=code")
            .await
            .request_uri();
    }
    let refused = server
        .push(Some("rotating:older-secret"), "response_type=code")
        .await;
    refused.assert_error(401, "invalid_client");
    assert!(refused.header("www-authenticate").is_some());
}

#[tokio::test]
async fn a_secret_registered_as_a_digest_authenticates() {
    let server = server_with(rotation_clients()).await;
    let form =
        |secret: &str| format!("response_type=code&client_id=digest-app&client_secret={secret}");
    server
        .push(None, &form("digest-app-secret"))
        .await
        .request_uri();
    server
        .push(None, &form(DIGEST_APP_SECRET_SHA256))
        .await
        .assert_error(401, "invalid_client");
    server
        .push(None, &form("digest-app-secreT"))
        .await
        .assert_error(401, "invalid_client");
}

#[test]
fn client_secret_jwt_with_a_digest_is_refused_at_load() {
    let err = StaticClients::from_json_str(&format!(
        r#"{{"clients":[{{"client_id":"hmac","auth_method":"client_secret_jwt",
            "client_secret_sha256":"{DIGEST_APP_SECRET_SHA256}"}}]}}"#
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("client `hmac`") && err.contains("needs the secret itself"),
        "{err}"
    );
    // The builder says the same.
    let err = code_client("hmac")
        .auth_method(AuthMethod::ClientSecretJwt)
        .secret("a-secret-long-enough-for-hs256-0123456789")
        .secret_sha256(DIGEST_APP_SECRET_SHA256)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("needs the secret itself"), "{err}");
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn client_secret_jwt_accepts_an_assertion_signed_with_any_registered_secret() {
    use common::jwt::client_assertion_hs256;
    use tower_par::Clock as _;

    const OLD: &str = "old-hmac-secret-that-is-long-enough-for-hs256!!";
    const NEW: &str = "new-hmac-secret-that-is-long-enough-for-hs256!!";
    let clock = ManualClock::new();
    let clients = StaticClients::from_clients([code_client("hmac")
        .auth_method(AuthMethod::ClientSecretJwt)
        .secret(OLD)
        .secret(NEW)
        .build()
        .unwrap()])
    .unwrap();
    let layer = ParLayer::builder()
        .issuer(ISSUER)
        .clients(clients)
        .clock(clock.clone())
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    let push = |secret: &'static str| {
        let assertion = client_assertion_hs256(secret.as_bytes(), "hmac", ISSUER, clock.now());
        let form = format!(
            "response_type=code&client_id=hmac&client_assertion_type={}&client_assertion={assertion}",
            enc("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        let server = &server;
        async move { server.push(None, &form).await }
    };
    push(OLD).await.request_uri();
    push(NEW).await.request_uri();
    push("a-third-hmac-secret-that-is-long-enough-for-hs256")
        .await
        .assert_error(401, "invalid_client");
}
