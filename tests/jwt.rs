#![cfg(feature = "jwt")]
//! Signed JWTs at the PAR endpoint over real TCP (issue 5): `private_key_jwt` and
//! `client_secret_jwt` client assertions (RFC 7523 §3, RFC 9126 §2), pushed request objects
//! (RFC 9101, RFC 9126 §3), DPoP proofs (RFC 9449 §10) and the JWT metadata members.
//! Requirement IDs refer to spec-checklist.md (AUTH-06/07, JAR-xx, DPOP-xx, FAPI-xx, MD-xx).
//!
//! Keys are generated per test run (tests/common/jwt.rs); the layer runs on a `ManualClock`, so
//! every time-dependent case signs relative to that clock and moves it explicitly.

mod common;

use std::time::Duration;

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use bytes::Bytes;
use common::{jwt::*, *};
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tower_par::{
    client::AuthMethod, Client, Clock as _, JwtSettings, ManualClock, MemoryStore, ParLayer,
    ParLayerBuilder, StaticClients,
};

const PAR_URL: &str = "https://as.example.com/as/par";
const TOKEN_URL: &str = "https://as.example.com/token";
const FOREIGN_AUD: &str = "https://other-as.example.net";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// 48 bytes: long enough for HS256 (RFC 7518 §3.2 wants at least 32).
const HMAC_SECRET: &str = "hmac-app-secret-that-is-long-enough-for-hs256-ok";

/// The demo clients plus:
/// - `jwt-app`: private_key_jwt with `app_jwks`;
/// - `other-app`: private_key_jwt with `other_jwks`;
/// - `hmac-app`: client_secret_jwt with [`HMAC_SECRET`];
/// - `signed-only`: private_key_jwt with `app_jwks`, `require_signed_request_object`.
fn jwt_clients(app_jwks: Value, other_jwks: Value) -> StaticClients {
    let code_client = |id: &str| {
        Client::builder(id)
            .redirect_uri(WEB_CB)
            .grant_type("authorization_code")
    };
    let extra = [
        code_client("jwt-app")
            .auth_method(AuthMethod::PrivateKeyJwt)
            .jwks(app_jwks.clone()),
        code_client("other-app")
            .auth_method(AuthMethod::PrivateKeyJwt)
            .jwks(other_jwks),
        code_client("hmac-app")
            .auth_method(AuthMethod::ClientSecretJwt)
            .secret(HMAC_SECRET),
        code_client("signed-only")
            .auth_method(AuthMethod::PrivateKeyJwt)
            .jwks(app_jwks)
            .require_signed_request_object(true),
    ]
    .into_iter()
    .map(|builder| builder.build().expect("valid test client"));
    let demo = clients();
    let demo = demo.iter().map(|client| Client::clone(client));
    StaticClients::from_clients(demo.chain(extra)).expect("unique client ids")
}

fn jwt_builder(
    clock: &ManualClock,
    clients: StaticClients,
    settings: JwtSettings,
) -> ParLayerBuilder {
    ParLayer::builder()
        .issuer(ISSUER)
        .clients(clients)
        .store(MemoryStore::with_capacity(10_000))
        .clock(clock.clone())
        .jwt(settings)
}

/// A server with the JWT clients, the token endpoint configured, keys for two clients.
struct Setup {
    clock: ManualClock,
    /// `jwt-app`'s (and `signed-only`'s) key.
    app: TestKey,
    /// `other-app`'s key.
    other: TestKey,
    server: TestServer,
}

impl Setup {
    async fn new(mode: InnerMode) -> Self {
        Self::with(mode, JwtSettings::default().token_endpoint(TOKEN_URL)).await
    }

    async fn with(mode: InnerMode, settings: JwtSettings) -> Self {
        let clock = ManualClock::new();
        let app = TestKey::es256("app-key-1");
        let other = TestKey::es256("other-key-1");
        let clients = jwt_clients(app.jwks(), other.jwks());
        let layer = jwt_builder(&clock, clients, settings).build().unwrap();
        let server = serve(layer, mode).await;
        Self {
            clock,
            app,
            other,
            server,
        }
    }

    /// Assertion claims for `client_id` (aud = issuer) on the server's clock.
    fn claims(&self, client_id: &str) -> Value {
        client_assertion_claims(client_id, ISSUER, self.clock.now())
    }

    /// A `jwt-app` assertion signed with its key, claims edited by `edit`.
    fn app_assertion(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.claims("jwt-app");
        edit(&mut claims);
        self.app.sign(&json!({}), &claims)
    }

    fn secs_from_now(&self, delta: i64) -> i64 {
        secs(self.clock.now()) + delta
    }

    /// A code request pushed by `client_id` with `assertion`, plus `extra` parameters.
    async fn push_assertion(
        &self,
        client_id: &str,
        assertion: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", WEB_CB),
            ("state", "xyz"),
        ];
        pairs.extend_from_slice(extra);
        pairs.push(("client_assertion_type", JWT_BEARER));
        pairs.push(("client_assertion", assertion));
        self.server.push(None, &form(&pairs)).await
    }

    /// A fresh, valid `jwt-app` assertion.
    fn fresh_app_assertion(&self) -> String {
        self.app_assertion(|_| {})
    }

    /// Pushes `pairs` (plus client_id and a fresh assertion) for `jwt-app`: the form has no
    /// authorization parameters of its own unless `pairs` carries them.
    async fn push_app_form(&self, client_id: &str, key: &TestKey, pairs: &[(&str, &str)]) -> Reply {
        let assertion = key.sign(&json!({}), &self.claims(client_id));
        let mut all = vec![("client_id", client_id)];
        all.extend_from_slice(pairs);
        all.push(("client_assertion_type", JWT_BEARER));
        all.push(("client_assertion", &assertion));
        self.server.push(None, &form(&all)).await
    }

    /// A request object for `client_id` signed by `key`, claims edited by `edit`.
    fn request_object(
        &self,
        key: &TestKey,
        client_id: &str,
        params: &[(&str, &str)],
        edit: impl FnOnce(&mut Value),
    ) -> String {
        let mut claims = request_object_claims(client_id, ISSUER, params, self.clock.now());
        edit(&mut claims);
        key.sign(&json!({ "typ": "oauth-authz-req+jwt" }), &claims)
    }

    /// POSTs `form` to the PAR endpoint as `web-app` (client_secret_basic) with `DPoP` headers.
    async fn push_dpop(&self, proofs: &[&str], form: &str) -> Reply {
        let mut request = http::Request::post(self.server.url("/as/par"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode("web-app:web-app-secret")),
            );
        for proof in proofs {
            request = request.header("dpop", *proof);
        }
        self.server
            .send(
                request
                    .body(Full::new(Bytes::from(form.to_owned())))
                    .unwrap(),
            )
            .await
    }

    /// What the echo inner service saw when `client_id` redeemed `request_uri`.
    async fn inner_params(
        &self,
        client_id: &str,
        request_uri: &str,
    ) -> (Value, Vec<(String, String)>) {
        let reply = self.server.redeem(client_id, request_uri).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let echo = reply.json();
        assert_eq!(echo["pushed"]["client_id"], client_id);
        let params = pushed_params(&echo);
        (echo, params)
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn web_form(extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", "web-app"),
        ("redirect_uri", WEB_CB),
        ("state", "xyz"),
    ];
    pairs.extend_from_slice(extra);
    form(&pairs)
}

fn remove(claims: &mut Value, name: &str) {
    claims.as_object_mut().expect("claims object").remove(name);
}

/// RFC 7638 §3.2 SHA-256 thumbprint, computed here independently of the crate: the required
/// members in lexicographic order, no whitespace.
fn thumbprint(jwk: &Value) -> String {
    let member = |name: &str| jwk[name].as_str().expect("JWK member").to_owned();
    let canonical = match jwk["kty"].as_str() {
        Some("EC") => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member("crv"),
            member("x"),
            member("y")
        ),
        Some("OKP") => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            member("crv"),
            member("x")
        ),
        other => panic!("no thumbprint for kty {other:?}"),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn sorted(mut params: Vec<(String, String)>) -> Vec<(String, String)> {
    params.sort();
    params
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// private_key_jwt (RFC 7523 §3, RFC 9126 §2; AUTH-06, AUTH-07)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn private_key_jwt_valid_assertion_is_accepted_and_not_passed_on() {
    let s = Setup::new(InnerMode::Echo).await;
    let reply = s
        .push_assertion("jwt-app", &s.fresh_app_assertion(), &[])
        .await;
    let uri = reply.request_uri();
    assert_eq!(reply.json()["expires_in"], 60);
    let (_, params) = s.inner_params("jwt-app", &uri).await;
    assert_eq!(
        sorted(params),
        sorted(owned(&[
            ("response_type", "code"),
            ("redirect_uri", WEB_CB),
            ("state", "xyz"),
        ])),
        "the assertion and its type stay at the PAR endpoint (VAL-08)"
    );
}

#[tokio::test]
async fn private_key_jwt_without_client_id_finds_the_client_by_sub() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = s.fresh_app_assertion();
    let body = form(&[
        ("response_type", "code"),
        ("redirect_uri", WEB_CB),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion),
    ]);
    let uri = s.server.push(None, &body).await.request_uri();
    s.inner_params("jwt-app", &uri).await;
}

#[tokio::test]
async fn private_key_jwt_invalid_signature_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    // The header and signature of one valid assertion around the payload of another: well
    // formed, right kid, but the signature does not cover these claims.
    let first = s.fresh_app_assertion();
    let second = s.app_assertion(|c| c["exp"] = json!(s.secs_from_now(120)));
    let mut a = first.split('.');
    let (header, _, signature) = (a.next().unwrap(), a.next(), a.next().unwrap());
    let payload = second.split('.').nth(1).unwrap();
    let forged = format!("{header}.{payload}.{signature}");
    s.push_assertion("jwt-app", &forged, &[])
        .await
        .assert_error(401, "invalid_client");
    // The genuine one still works: the refusal was the signature, not the claims.
    s.push_assertion("jwt-app", &second, &[])
        .await
        .request_uri();
}

#[tokio::test]
async fn private_key_jwt_signed_with_another_clients_key_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let claims = s.claims("jwt-app");
    // other-app's private key, presented under jwt-app's kid.
    let under_app_kid = s.other.sign(&json!({ "kid": s.app.kid }), &claims);
    s.push_assertion("jwt-app", &under_app_kid, &[])
        .await
        .assert_error(401, "invalid_client");
    // other-app's private key under its own kid: not one of jwt-app's keys.
    let under_own_kid = s.other.sign(&json!({}), &s.claims("jwt-app"));
    s.push_assertion("jwt-app", &under_own_kid, &[])
        .await
        .assert_error(401, "invalid_client");
    // Without a kid, no registered key of jwt-app verifies it either.
    let no_kid = s.other.sign(&json!({ "kid": null }), &s.claims("jwt-app"));
    s.push_assertion("jwt-app", &no_kid, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_unknown_kid_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = s
        .app
        .sign(&json!({ "kid": "no-such-key" }), &s.claims("jwt-app"));
    let reply = s.push_assertion("jwt-app", &assertion, &[]).await;
    reply.assert_error(401, "invalid_client");
    // Without a kid, the client's single key is found.
    let no_kid = s.app.sign(&json!({ "kid": null }), &s.claims("jwt-app"));
    s.push_assertion("jwt-app", &no_kid, &[])
        .await
        .request_uri();
}

#[tokio::test]
async fn private_key_jwt_expired_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = s.fresh_app_assertion(); // exp = now + 60
    s.clock.advance(Duration::from_secs(61));
    s.push_assertion("jwt-app", &assertion, &[])
        .await
        .assert_error(401, "invalid_client");
    let past = s.app_assertion(|c| {
        c["iat"] = json!(s.secs_from_now(-30));
        c["exp"] = json!(s.secs_from_now(-1));
    });
    s.push_assertion("jwt-app", &past, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_without_exp_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = s.app_assertion(|c| remove(c, "exp"));
    s.push_assertion("jwt-app", &assertion, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_exp_too_far_ahead_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    // The default bound is 5 minutes: exactly 300 s passes, 301 s and an hour do not.
    let at_bound = s.app_assertion(|c| c["exp"] = json!(s.secs_from_now(300)));
    s.push_assertion("jwt-app", &at_bound, &[])
        .await
        .request_uri();
    for ahead in [301, 3600] {
        let assertion = s.app_assertion(|c| c["exp"] = json!(s.secs_from_now(ahead)));
        s.push_assertion("jwt-app", &assertion, &[])
            .await
            .assert_error(401, "invalid_client");
    }
}

#[tokio::test]
async fn private_key_jwt_nbf_8s_ahead_accepted_70s_refused() {
    let s = Setup::new(InnerMode::Echo).await;
    let near = s.app_assertion(|c| c["nbf"] = json!(s.secs_from_now(8)));
    s.push_assertion("jwt-app", &near, &[]).await.request_uri();
    let far = s.app_assertion(|c| {
        c["nbf"] = json!(s.secs_from_now(70));
        c["exp"] = json!(s.secs_from_now(120));
    });
    s.push_assertion("jwt-app", &far, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_missing_jti_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = s.app_assertion(|c| remove(c, "jti"));
    s.push_assertion("jwt-app", &assertion, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_replayed_jti_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = s.fresh_app_assertion();
    s.push_assertion("jwt-app", &assertion, &[])
        .await
        .request_uri();
    let replay = s.push_assertion("jwt-app", &assertion, &[]).await;
    replay.assert_error(401, "invalid_client");
    assert!(
        replay.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{:?}",
        replay.json()
    );
    // A different assertion that reuses the jti is a replay too (AUTH-06: the jti, not the JWT).
    let jti = serde_json::from_slice::<Value>(
        &URL_SAFE_NO_PAD
            .decode(assertion.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()["jti"]
        .clone();
    let same_jti = s.app_assertion(|c| {
        c["jti"] = jti;
        c["exp"] = json!(s.secs_from_now(90));
    });
    s.push_assertion("jwt-app", &same_jti, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_replay_is_caught_across_nodes_sharing_a_store() {
    let clock = ManualClock::new();
    let app = TestKey::es256("app-key-1");
    let other = TestKey::es256("other-key-1");
    let clients = jwt_clients(app.jwks(), other.jwks());
    let store = MemoryStore::with_capacity(1_000);
    let node = |store: MemoryStore| {
        jwt_builder(&clock, clients.clone(), JwtSettings::default())
            .store(store)
            .build()
            .unwrap()
    };
    let first = serve(node(store.clone()), InnerMode::Echo).await;
    let second = serve(node(store), InnerMode::Echo).await;
    let assertion = client_assertion(&app, "jwt-app", ISSUER, clock.now());
    let body = form(&[
        ("response_type", "code"),
        ("client_id", "jwt-app"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion),
    ]);
    first.push(None, &body).await.request_uri();
    second
        .push(None, &body)
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_each_rfc9126_audience_is_accepted() {
    let s = Setup::new(InnerMode::Echo).await;
    for aud in [
        json!(ISSUER),
        json!(PAR_URL),
        json!(TOKEN_URL),
        json!([FOREIGN_AUD, ISSUER]),
        json!([PAR_URL]),
    ] {
        let assertion = s.app_assertion(|c| c["aud"] = aud.clone());
        let reply = s.push_assertion("jwt-app", &assertion, &[]).await;
        assert_eq!(
            reply.status,
            201,
            "aud {aud}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
}

#[tokio::test]
async fn private_key_jwt_foreign_audience_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    for aud in [
        json!(FOREIGN_AUD),
        json!([FOREIGN_AUD]),
        json!("https://as.example.com/"),
        json!("https://as.example.com/as/authorize"),
    ] {
        let assertion = s.app_assertion(|c| c["aud"] = aud.clone());
        s.push_assertion("jwt-app", &assertion, &[])
            .await
            .assert_error(401, "invalid_client");
    }
    let without = s.app_assertion(|c| remove(c, "aud"));
    s.push_assertion("jwt-app", &without, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_token_endpoint_audience_needs_configuration() {
    let s = Setup::with(InnerMode::Echo, JwtSettings::default()).await;
    let assertion = s.app_assertion(|c| c["aud"] = json!(TOKEN_URL));
    s.push_assertion("jwt-app", &assertion, &[])
        .await
        .assert_error(401, "invalid_client");
}

/// FAPI 2.0 §5.3.2.1 (FAPI-07, FAPI-10, spec-checklist C-1): `aud` only the issuer as a
/// string; PS256/ES256/EdDSA only. The same keys and assertions pass without the profile.
#[tokio::test]
async fn fapi2_accepts_only_the_issuer_string_and_fapi_algorithms() {
    let clock = ManualClock::new();
    let app = TestKey::es256("app-key-1");
    let rs256 = TestKey::rsa("rsa-key-1", Algorithm::RS256, 0);
    let ps256 = TestKey::rsa("rsa-key-1", Algorithm::PS256, 0);
    let other = TestKey::es256("other-key-1");
    let jwks = json!({ "keys": [app.public_jwk(), rs256.public_jwk()] });
    let clients = jwt_clients(jwks, other.jwks());
    let settings = JwtSettings::default().token_endpoint(TOKEN_URL);
    let fapi = serve(
        jwt_builder(&clock, clients.clone(), settings.clone().fapi2(true))
            .build()
            .unwrap(),
        InnerMode::Echo,
    )
    .await;
    let baseline = serve(
        jwt_builder(&clock, clients, settings).build().unwrap(),
        InnerMode::Echo,
    )
    .await;

    let signed = |key: &TestKey, aud: Value| {
        let mut claims = client_assertion_claims("jwt-app", ISSUER, clock.now());
        claims["aud"] = aud;
        key.sign(&json!({}), &claims)
    };

    // Only the issuer, as a string.
    push(&fapi, "jwt-app", signed(&app, json!(ISSUER)))
        .await
        .request_uri();
    for aud in [json!(PAR_URL), json!(TOKEN_URL), json!([ISSUER])] {
        push(&fapi, "jwt-app", signed(&app, aud.clone()))
            .await
            .assert_error(401, "invalid_client");
        push(&baseline, "jwt-app", signed(&app, aud))
            .await
            .request_uri();
    }
    // RS256 refused, PS256 with the very same RSA key accepted.
    push(&fapi, "jwt-app", signed(&rs256, json!(ISSUER)))
        .await
        .assert_error(401, "invalid_client");
    push(&baseline, "jwt-app", signed(&rs256, json!(ISSUER)))
        .await
        .request_uri();
    push(&fapi, "jwt-app", signed(&ps256, json!(ISSUER)))
        .await
        .request_uri();
    // No HMAC under FAPI 2.0, even for a client_secret_jwt client.
    let hmac = client_assertion_hs256(HMAC_SECRET.as_bytes(), "hmac-app", ISSUER, clock.now());
    push(&fapi, "hmac-app", hmac)
        .await
        .assert_error(401, "invalid_client");
    let hmac = client_assertion_hs256(HMAC_SECRET.as_bytes(), "hmac-app", ISSUER, clock.now());
    push(&baseline, "hmac-app", hmac).await.request_uri();
}

#[tokio::test]
async fn private_key_jwt_alg_none_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = unsigned(&json!({ "kid": s.app.kid }), &s.claims("jwt-app"));
    s.push_assertion("jwt-app", &assertion, &[])
        .await
        .assert_error(401, "invalid_client");
    let no_signature = unsigned(&json!({}), &s.claims("jwt-app"));
    s.push_assertion("jwt-app", &no_signature, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_client_refuses_hmac_assertions() {
    let s = Setup::new(InnerMode::Echo).await;
    let claims = s.claims("jwt-app");
    let hmac = sign_hmac(
        HMAC_SECRET.as_bytes(),
        Algorithm::HS256,
        &json!({ "kid": s.app.kid }),
        &claims,
    );
    s.push_assertion("jwt-app", &hmac, &[])
        .await
        .assert_error(401, "invalid_client");
    // Key confusion: the HMAC key is the client's public JWK, which anyone can read.
    let public = s.app.public_jwk().to_string();
    let confused = sign_hmac(
        public.as_bytes(),
        Algorithm::HS256,
        &json!({ "kid": s.app.kid }),
        &s.claims("jwt-app"),
    );
    s.push_assertion("jwt-app", &confused, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn client_assertion_with_another_jwt_typ_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = s
        .app
        .sign(&json!({ "typ": "dpop+jwt" }), &s.claims("jwt-app"));
    s.push_assertion("jwt-app", &assertion, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn client_assertion_for_a_secret_basic_client_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let assertion = client_assertion_hs256(
        b"web-app-secret-web-app-secret-web-app-secret",
        "web-app",
        ISSUER,
        s.clock.now(),
    );
    s.push_assertion("web-app", &assertion, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn client_assertion_iss_or_sub_of_another_client_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    for claim in ["iss", "sub"] {
        let assertion = s.app_assertion(|c| c[claim] = json!("other-app"));
        s.push_assertion("jwt-app", &assertion, &[])
            .await
            .assert_error(401, "invalid_client");
    }
}

/// Pushes a code request authenticated by `assertion` alone.
async fn push(server: &TestServer, client_id: &str, assertion: String) -> Reply {
    let body = form(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion),
    ]);
    server.push(None, &body).await
}

// ---------------------------------------------------------------------------------------------
// client_secret_jwt
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_secret_jwt_valid_and_wrong_secret() {
    let s = Setup::new(InnerMode::Echo).await;
    let now = s.clock.now();
    let valid = client_assertion_hs256(HMAC_SECRET.as_bytes(), "hmac-app", ISSUER, now);
    let uri = s
        .push_assertion("hmac-app", &valid, &[])
        .await
        .request_uri();
    s.inner_params("hmac-app", &uri).await;

    let wrong = client_assertion_hs256(
        b"not-the-hmac-app-secret-but-also-long-enough-ok",
        "hmac-app",
        ISSUER,
        now,
    );
    s.push_assertion("hmac-app", &wrong, &[])
        .await
        .assert_error(401, "invalid_client");
    // HS512 needs a 64-byte key (RFC 7518 §3.2); the registered secret is 48 bytes.
    let hs512 = sign_hmac(
        HMAC_SECRET.as_bytes(),
        Algorithm::HS512,
        &json!({}),
        &client_assertion_claims("hmac-app", ISSUER, now),
    );
    s.push_assertion("hmac-app", &hs512, &[])
        .await
        .assert_error(401, "invalid_client");
    // An asymmetric signature for a client_secret_jwt client.
    let asymmetric = s.app.sign(&json!({}), &s.claims("hmac-app"));
    s.push_assertion("hmac-app", &asymmetric, &[])
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn client_secret_jwt_replayed_jti_is_invalid_client() {
    let s = Setup::new(InnerMode::Echo).await;
    let valid = client_assertion_hs256(HMAC_SECRET.as_bytes(), "hmac-app", ISSUER, s.clock.now());
    s.push_assertion("hmac-app", &valid, &[])
        .await
        .request_uri();
    s.push_assertion("hmac-app", &valid, &[])
        .await
        .assert_error(401, "invalid_client");
}

// ---------------------------------------------------------------------------------------------
// Request objects (RFC 9101, RFC 9126 §3; JAR-xx)
// ---------------------------------------------------------------------------------------------

/// The object's parameters, and only those, reach the inner service (JAR-02).
#[tokio::test]
async fn request_object_parameters_replace_the_outer_ones() {
    let s = Setup::new(InnerMode::Echo).await;
    let object = s.request_object(
        &s.app,
        "jwt-app",
        &[
            ("response_type", "code"),
            ("redirect_uri", WEB_CB),
            ("state", "inner-state"),
            ("scope", "openid inner"),
            ("x_inner", "Zürich & more"),
        ],
        |c| c["max_age"] = json!(300),
    );
    let reply = s
        .push_app_form(
            "jwt-app",
            &s.app,
            &[
                ("response_type", "code"),
                ("redirect_uri", "https://evil.example.com/cb"),
                ("state", "outer-state"),
                ("scope", "admin"),
                ("x_outer", "1"),
                ("request", &object),
            ],
        )
        .await;
    let uri = reply.request_uri();
    let (echo, params) = s.inner_params("jwt-app", &uri).await;
    assert_eq!(
        sorted(params),
        sorted(owned(&[
            ("response_type", "code"),
            ("redirect_uri", WEB_CB),
            ("state", "inner-state"),
            ("scope", "openid inner"),
            ("x_inner", "Zürich & more"),
            ("max_age", "300"),
        ])),
        "exactly the object's authorization parameters: {echo}"
    );
    let query = echo["query"].as_str().unwrap();
    for outer in ["outer", "evil", "admin", "request="] {
        assert!(!query.contains(outer), "{outer} leaked into {query}");
    }
}

/// RFC 8707 §2 / VAL-06: several `resource` values, an array in a request object (as
/// oauth4webapi's `issueRequestObject` sends them), reach the inner service as repeated
/// parameters, exactly as with a plain push; JSON-valued parameters stay JSON.
#[tokio::test]
async fn request_object_resource_array_becomes_repeated_parameters() {
    let s = Setup::new(InnerMode::Echo).await;
    let details = json!([{ "type": "payment_initiation", "amount": "12.00" }]);
    let object = s.request_object(&s.app, "jwt-app", &[("response_type", "code")], |c| {
        c["resource"] = json!(["https://rs1.example.com/", "https://rs2.example.com/"]);
        c["authorization_details"] = details.clone();
    });
    let uri = s
        .push_app_form("jwt-app", &s.app, &[("request", &object)])
        .await
        .request_uri();
    let (_, params) = s.inner_params("jwt-app", &uri).await;
    let resources: Vec<&str> = params
        .iter()
        .filter(|(n, _)| n == "resource")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        resources,
        ["https://rs1.example.com/", "https://rs2.example.com/"]
    );
    let plain = s
        .push_dpop(
            &[],
            &web_form(&[
                ("resource", "https://rs1.example.com/"),
                ("resource", "https://rs2.example.com/"),
            ]),
        )
        .await
        .request_uri();
    let (_, plain_params) = s.inner_params("web-app", &plain).await;
    let plain_resources: Vec<&str> = plain_params
        .iter()
        .filter(|(n, _)| n == "resource")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(resources, plain_resources, "the same as with a plain push");
    let shown = params
        .iter()
        .find(|(n, _)| n == "authorization_details")
        .map(|(_, v)| serde_json::from_str::<Value>(v).unwrap());
    assert_eq!(shown, Some(details));

    let bad = s.request_object(&s.app, "jwt-app", &[("response_type", "code")], |c| {
        c["resource"] = json!(["https://rs1.example.com/", 7]);
    });
    s.push_app_form("jwt-app", &s.app, &[("request", &bad)])
        .await
        .assert_error(400, "invalid_request_object");
}

#[tokio::test]
async fn request_object_signed_with_the_client_secret() {
    let s = Setup::new(InnerMode::Echo).await;
    let now = s.clock.now();
    let claims = request_object_claims(
        "hmac-app",
        ISSUER,
        &[("response_type", "code"), ("state", "hmac-object")],
        now,
    );
    let object = sign_hmac(
        HMAC_SECRET.as_bytes(),
        Algorithm::HS256,
        &json!({}),
        &claims,
    );
    let assertion = client_assertion_hs256(HMAC_SECRET.as_bytes(), "hmac-app", ISSUER, now);
    let body = form(&[
        ("client_id", "hmac-app"),
        ("request", &object),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion),
    ]);
    let uri = s.server.push(None, &body).await.request_uri();
    let (_, params) = s.inner_params("hmac-app", &uri).await;
    assert_eq!(
        sorted(params),
        sorted(owned(&[
            ("response_type", "code"),
            ("state", "hmac-object")
        ]))
    );
}

#[tokio::test]
async fn request_object_alg_none_is_invalid_request_object() {
    let s = Setup::new(InnerMode::Echo).await;
    let claims = request_object_claims(
        "jwt-app",
        ISSUER,
        &[("response_type", "code")],
        s.clock.now(),
    );
    let object = unsigned(&json!({}), &claims);
    s.push_app_form("jwt-app", &s.app, &[("request", &object)])
        .await
        .assert_error(400, "invalid_request_object");
}

#[tokio::test]
async fn request_object_client_id_mismatch_is_invalid_request_object() {
    let s = Setup::new(InnerMode::Echo).await;
    // Signed by jwt-app, but naming other-app inside.
    let object = s.request_object(&s.app, "jwt-app", &[("response_type", "code")], |c| {
        c["client_id"] = json!("other-app");
    });
    s.push_app_form("jwt-app", &s.app, &[("request", &object)])
        .await
        .assert_error(400, "invalid_request_object");
    // other-app's own valid object, pushed by jwt-app.
    let foreign = s.request_object(&s.other, "other-app", &[("response_type", "code")], |_| {});
    s.push_app_form("jwt-app", &s.app, &[("request", &foreign)])
        .await
        .assert_error(400, "invalid_request_object");
    // And it is fine when other-app pushes it itself.
    s.push_app_form("other-app", &s.other, &[("request", &foreign)])
        .await
        .request_uri();
}

#[tokio::test]
async fn request_object_containing_request_uri_is_invalid_request_object() {
    let s = Setup::new(InnerMode::Echo).await;
    let object = s.request_object(
        &s.app,
        "jwt-app",
        &[
            ("response_type", "code"),
            ("request_uri", "urn:ietf:params:oauth:request_uri:abc"),
        ],
        |_| {},
    );
    s.push_app_form("jwt-app", &s.app, &[("request", &object)])
        .await
        .assert_error(400, "invalid_request_object");
}

#[tokio::test]
async fn request_object_bad_claims_are_invalid_request_object() {
    let s = Setup::new(InnerMode::Echo).await;
    let params = [("response_type", "code")];
    let now = secs(s.clock.now());
    let cases = [
        ("aud = PAR URL (JAR-06)", "aud", json!(PAR_URL)),
        ("iss of another client", "iss", json!("other-app")),
        ("expired", "exp", json!(now - 1)),
        ("nbf 70 s ahead", "nbf", json!(now + 70)),
    ];
    for (what, claim, value) in cases {
        let object = s.request_object(&s.app, "jwt-app", &params, |c| c[claim] = value);
        let reply = s
            .push_app_form("jwt-app", &s.app, &[("request", &object)])
            .await;
        assert_eq!(
            reply.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.assert_error(400, "invalid_request_object");
    }
    // JAR-07: nbf 8 s ahead is clock skew, accepted.
    let object = s.request_object(&s.app, "jwt-app", &params, |c| {
        c["nbf"] = json!(secs(s.clock.now()) + 8);
    });
    s.push_app_form("jwt-app", &s.app, &[("request", &object)])
        .await
        .request_uri();
}

/// The object's `exp` caps `expires_in` (and the handle's actual life).
#[tokio::test]
async fn request_object_exp_caps_expires_in() {
    let s = Setup::new(InnerMode::Echo).await;
    let params = [("response_type", "code")];
    let long = s.request_object(&s.app, "jwt-app", &params, |_| {}); // exp = now + 300
    let reply = s
        .push_app_form("jwt-app", &s.app, &[("request", &long)])
        .await;
    assert_eq!(
        reply.json()["expires_in"],
        60,
        "the default lifetime applies"
    );

    let short = s.request_object(&s.app, "jwt-app", &params, |c| {
        c["exp"] = json!(secs(s.clock.now()) + 30);
    });
    let reply = s
        .push_app_form("jwt-app", &s.app, &[("request", &short)])
        .await;
    let uri = reply.request_uri();
    let expires_in = reply.json()["expires_in"].as_u64().unwrap();
    assert!((29..=30).contains(&expires_in), "expires_in {expires_in}");
    s.clock.advance(Duration::from_secs(31));
    s.server
        .redeem("jwt-app", &uri)
        .await
        .assert_error(400, "invalid_request_uri");
}

#[tokio::test]
async fn require_signed_request_object_client_pushing_plain_is_invalid_request() {
    let s = Setup::new(InnerMode::Echo).await;
    s.push_app_form(
        "signed-only",
        &s.app,
        &[("response_type", "code"), ("redirect_uri", WEB_CB)],
    )
    .await
    .assert_error(400, "invalid_request");
    let object = s.request_object(
        &s.app,
        "signed-only",
        &[("response_type", "code"), ("redirect_uri", WEB_CB)],
        |_| {},
    );
    let uri = s
        .push_app_form("signed-only", &s.app, &[("request", &object)])
        .await
        .request_uri();
    s.inner_params("signed-only", &uri).await;
}

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449 §4.3, §10.1; DPOP-02, DPOP-03)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dpop_good_proof_binds_the_code_to_its_thumbprint() {
    let s = Setup::new(InnerMode::Echo).await;
    for key in [TestKey::es256("unused"), TestKey::ed25519("unused")] {
        let proof = dpop_proof(&key, "POST", PAR_URL, s.clock.now());
        let uri = s.push_dpop(&[&proof], &web_form(&[])).await.request_uri();
        let (_, params) = s.inner_params("web-app", &uri).await;
        let jkts: Vec<&str> = params
            .iter()
            .filter(|(n, _)| n == "dpop_jkt")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(jkts, [thumbprint(&key.bare_jwk())], "{:?}", key.alg);
    }
}

#[tokio::test]
async fn dpop_bad_proofs_are_invalid_dpop_proof() {
    let s = Setup::new(InnerMode::Echo).await;
    let key = TestKey::es256("unused");
    let now = s.clock.now();
    let cases = [
        ("wrong htu", dpop_proof(&key, "POST", TOKEN_URL, now)),
        (
            "htu of the listening address",
            dpop_proof(&key, "POST", &s.server.url("/as/par"), now),
        ),
        ("wrong htm", dpop_proof(&key, "GET", PAR_URL, now)),
        (
            "old iat",
            dpop_proof(&key, "POST", PAR_URL, now - Duration::from_secs(120)),
        ),
        (
            "iat far ahead",
            dpop_proof(&key, "POST", PAR_URL, now + Duration::from_secs(120)),
        ),
        (
            "typ JWT",
            key.sign(
                &json!({ "typ": "JWT", "kid": null, "jwk": key.bare_jwk() }),
                &dpop_claims("POST", PAR_URL, now),
            ),
        ),
        (
            "no jwk",
            key.sign(
                &json!({ "typ": "dpop+jwt" }),
                &dpop_claims("POST", PAR_URL, now),
            ),
        ),
        (
            "jwk of another key",
            key.sign(
                &json!({ "typ": "dpop+jwt", "kid": null, "jwk": TestKey::es256("x").bare_jwk() }),
                &dpop_claims("POST", PAR_URL, now),
            ),
        ),
        (
            "alg none",
            unsigned(
                &json!({ "typ": "dpop+jwt", "jwk": key.bare_jwk() }),
                &dpop_claims("POST", PAR_URL, now),
            ),
        ),
        (
            "HMAC",
            sign_hmac(
                HMAC_SECRET.as_bytes(),
                Algorithm::HS256,
                &json!({ "typ": "dpop+jwt", "jwk": key.bare_jwk() }),
                &dpop_claims("POST", PAR_URL, now),
            ),
        ),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (what, proof) in &cases {
        let reply = s.push_dpop(&[proof], &web_form(&[])).await;
        assert_eq!(
            reply.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.assert_error(400, "invalid_dpop_proof");
    }
    // A proof that was fresh when made is refused once the clock has moved past its max age.
    let proof = dpop_proof(&key, "POST", PAR_URL, now);
    s.clock.advance(Duration::from_secs(61));
    s.push_dpop(&[&proof], &web_form(&[]))
        .await
        .assert_error(400, "invalid_dpop_proof");
}

/// RFC 9449 §4.3: one `DPoP` field. Two lines are an ambiguous request (issue 11.1): refused
/// before either proof is looked at, like two `Authorization` lines (tests/ambiguous.rs sends
/// them byte for byte).
#[tokio::test]
async fn dpop_two_proofs_are_invalid_request() {
    let s = Setup::new(InnerMode::Echo).await;
    let key = TestKey::es256("unused");
    let a = dpop_proof(&key, "POST", PAR_URL, s.clock.now());
    let b = dpop_proof(&key, "POST", PAR_URL, s.clock.now());
    s.push_dpop(&[&a, &b], &web_form(&[]))
        .await
        .assert_error(400, "invalid_request");
    s.push_dpop(&[&a, &a], &web_form(&[]))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn dpop_replayed_proof_is_invalid_dpop_proof() {
    let s = Setup::new(InnerMode::Echo).await;
    let key = TestKey::es256("unused");
    let proof = dpop_proof(&key, "POST", PAR_URL, s.clock.now());
    s.push_dpop(&[&proof], &web_form(&[])).await.request_uri();
    s.push_dpop(&[&proof], &web_form(&[]))
        .await
        .assert_error(400, "invalid_dpop_proof");
}

#[tokio::test]
async fn dpop_jkt_must_match_the_proof() {
    let s = Setup::new(InnerMode::Echo).await;
    let key = TestKey::es256("unused");
    let other_jkt = thumbprint(&TestKey::es256("other").bare_jwk());
    let proof = dpop_proof(&key, "POST", PAR_URL, s.clock.now());
    s.push_dpop(&[&proof], &web_form(&[("dpop_jkt", &other_jkt)]))
        .await
        .assert_error(400, "invalid_dpop_proof");

    // The matching value is accepted and stored once, not twice.
    let jkt = thumbprint(&key.bare_jwk());
    let proof = dpop_proof(&key, "POST", PAR_URL, s.clock.now());
    let uri = s
        .push_dpop(&[&proof], &web_form(&[("dpop_jkt", &jkt)]))
        .await
        .request_uri();
    let (_, params) = s.inner_params("web-app", &uri).await;
    let jkts: Vec<&(String, String)> = params.iter().filter(|(n, _)| n == "dpop_jkt").collect();
    assert_eq!(jkts, [&("dpop_jkt".to_owned(), jkt)]);
}

#[tokio::test]
async fn dpop_jkt_without_a_proof_is_stored_as_is() {
    let s = Setup::new(InnerMode::Echo).await;
    let jkt = thumbprint(&TestKey::es256("unused").bare_jwk());
    let uri = s
        .push_dpop(&[], &web_form(&[("dpop_jkt", &jkt)]))
        .await
        .request_uri();
    let (_, params) = s.inner_params("web-app", &uri).await;
    assert!(
        params.contains(&("dpop_jkt".to_owned(), jkt.clone())),
        "{params:?}"
    );
}

#[tokio::test]
async fn dpop_with_private_key_jwt_and_a_request_object() {
    let s = Setup::new(InnerMode::Echo).await;
    let key = TestKey::es256("unused");
    let object = s.request_object(
        &s.app,
        "jwt-app",
        &[("response_type", "code"), ("state", "dpop-object")],
        |_| {},
    );
    let assertion = s.fresh_app_assertion();
    let body = form(&[
        ("client_id", "jwt-app"),
        ("request", &object),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion),
    ]);
    let proof = dpop_proof(&key, "POST", PAR_URL, s.clock.now());
    let request = http::Request::post(s.server.url("/as/par"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", proof)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let uri = s.server.send(request).await.request_uri();
    let (_, params) = s.inner_params("jwt-app", &uri).await;
    assert_eq!(
        sorted(params),
        sorted(owned(&[
            ("response_type", "code"),
            ("state", "dpop-object"),
            ("dpop_jkt", &thumbprint(&key.bare_jwk())),
        ]))
    );
}

// ---------------------------------------------------------------------------------------------
// Metadata (MD-xx)
// ---------------------------------------------------------------------------------------------

async fn metadata_of(settings: JwtSettings) -> Value {
    let clock = ManualClock::new();
    let layer = builder(&clock)
        .jwt(settings)
        .serve_metadata(json!({}))
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    let reply = server.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(reply.status, 200);
    reply.json()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect()
}

#[tokio::test]
async fn metadata_lists_the_jwt_methods_and_algorithms() {
    let meta = metadata_of(JwtSettings::default()).await;
    let methods = strings(&meta["token_endpoint_auth_methods_supported"]);
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "none",
    ] {
        assert!(methods.contains(&method), "{method} in {methods:?}");
    }
    let auth_algs = strings(&meta["token_endpoint_auth_signing_alg_values_supported"]);
    let object_algs = strings(&meta["request_object_signing_alg_values_supported"]);
    let dpop_algs = strings(&meta["dpop_signing_alg_values_supported"]);
    for algs in [&auth_algs, &object_algs] {
        for alg in ["ES256", "ES384", "PS256", "RS256", "EdDSA", "HS256"] {
            assert!(algs.contains(&alg), "{alg} in {algs:?}");
        }
    }
    for alg in ["ES256", "ES384", "PS256", "RS256", "EdDSA"] {
        assert!(dpop_algs.contains(&alg), "{alg} in {dpop_algs:?}");
    }
    assert!(
        !dpop_algs.iter().any(|a| a.starts_with("HS")),
        "DPoP is asymmetric only: {dpop_algs:?}"
    );
    for algs in [&auth_algs, &object_algs, &dpop_algs] {
        assert!(!algs.contains(&"none"), "{algs:?}");
    }
    assert_eq!(meta["request_parameter_supported"], true);
}

#[tokio::test]
async fn fapi2_metadata_lists_only_fapi_algorithms() {
    let meta = metadata_of(JwtSettings::default().fapi2(true)).await;
    for member in [
        "token_endpoint_auth_signing_alg_values_supported",
        "request_object_signing_alg_values_supported",
    ] {
        let mut algs = strings(&meta[member]);
        algs.sort_unstable();
        assert_eq!(algs, ["ES256", "EdDSA", "PS256"], "{member}");
    }
}
