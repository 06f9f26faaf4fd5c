#![cfg(feature = "jwt")]
//! Endpoint URLs that are true (issue 17, item 2): by default the issuer's origin plus the path
//! the layer matches, or the public URL given explicitly. Metadata advertises it, a DPoP proof
//! must name it as `htu` (RFC 9449 §4.3), and a client assertion may name it as `aud`
//! (RFC 9126 §2). Each layout runs end to end over TCP with both.

mod common;

use axum::{routing::get, Json, Router};
use bytes::Bytes;
use common::{jwt::*, *};
use http_body_util::Full;
use serde_json::{json, Value};
use tower::Layer as _;
use tower_par::{
    Clock as _, ManualClock, ParLayer, ParLayerBuilder, PushedAuthorizationRequest, StaticClients,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the authorization endpoint received: the pushed parameters.
async fn pushed_params(pushed: Option<PushedAuthorizationRequest>) -> Json<Value> {
    let params: Vec<Value> = pushed
        .iter()
        .flat_map(|p| p.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>())
        .collect();
    Json(json!({ "params": params }))
}

struct Layout {
    clock: ManualClock,
    key: TestKey,
    server: TestServer,
    /// Where the client sends its push.
    push_path: &'static str,
    /// Where the client sends the browser.
    authorize_path: &'static str,
}

fn layer_builder(clock: &ManualClock, key: &TestKey, issuer: &str) -> ParLayerBuilder {
    let client = private_key_jwt_client("jwt-app", key);
    ParLayer::builder()
        .issuer(issuer)
        .clients(StaticClients::from_clients([client]).unwrap())
        .clock(clock.clone())
}

impl Layout {
    /// Push with an assertion for `aud` and a DPoP proof for `htu`.
    async fn push(&self, aud: &str, htu: &str) -> Reply {
        let now = self.clock.now();
        let form = [
            ("response_type", "code"),
            ("client_id", "jwt-app"),
            ("redirect_uri", WEB_CB),
            ("state", "xyz"),
            ("client_assertion_type", JWT_BEARER),
            (
                "client_assertion",
                &client_assertion(&self.key, "jwt-app", aud, now),
            ),
        ]
        .iter()
        .map(|(n, v)| format!("{n}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
        let proof = dpop_proof(&self.key, "POST", htu, now);
        self.server
            .send(
                http::Request::post(self.server.url(self.push_path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("dpop", proof)
                    .body(Full::new(Bytes::from(form)))
                    .unwrap(),
            )
            .await
    }

    /// The push works with `url` as both `aud` and `htu`, and the redeemed request is bound to
    /// the proof's key; `wrong_url` is refused as either.
    async fn assert_true_url(&self, url: &str, wrong_url: &str) {
        let uri = self.push(url, url).await.request_uri();
        let redeemed = self
            .server
            .get(&format!(
                "{}?client_id=jwt-app&request_uri={}",
                self.authorize_path,
                enc(&uri)
            ))
            .await;
        assert_eq!(redeemed.status, 200);
        let params = redeemed.json()["params"].clone();
        assert!(
            params
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p[0] == "dpop_jkt"),
            "{params}"
        );
        self.push(url, wrong_url)
            .await
            .assert_error(400, "invalid_dpop_proof");
        self.push(wrong_url, url)
            .await
            .assert_error(401, "invalid_client");
    }
}

#[tokio::test]
async fn an_issuer_with_a_path_advertises_and_accepts_its_origin_plus_the_par_path() {
    const ISSUER_WITH_PATH: &str = "https://as.example.com/tenant-a";
    const PAR: &str = "https://as.example.com/tenant-a/as/par";
    let clock = ManualClock::new();
    let key = TestKey::es256("k1");
    let par = layer_builder(&clock, &key, ISSUER_WITH_PATH)
        .par_path("/tenant-a/as/par")
        .authorize_path("/tenant-a/as/authorize")
        .serve_metadata(json!({}))
        .build()
        .unwrap();
    let routes = Router::new().route("/tenant-a/as/authorize", get(pushed_params));
    let layout = Layout {
        server: serve_axum(routes.layer(par)).await,
        clock,
        key,
        push_path: "/tenant-a/as/par",
        authorize_path: "/tenant-a/as/authorize",
    };

    let metadata = layout
        .server
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(metadata["issuer"], ISSUER_WITH_PATH);
    assert_eq!(metadata["pushed_authorization_request_endpoint"], PAR);
    assert_eq!(
        metadata["authorization_endpoint"],
        "https://as.example.com/tenant-a/as/authorize"
    );
    // Issuer + par_path, the URL advertised before: a path that does not exist.
    layout
        .assert_true_url(PAR, "https://as.example.com/tenant-a/tenant-a/as/par")
        .await;
    // The issuer stays an accepted audience.
    let uri = layout.push(ISSUER_WITH_PATH, PAR).await;
    uri.request_uri();
}

#[tokio::test]
async fn a_prefixed_layout_uses_the_public_url_it_is_given() {
    // The layer around a router nested at /auth (as behind a proxy that strips /auth): it
    // matches /as/par, the world knows https://as.example.com/auth/as/par.
    const PAR: &str = "https://as.example.com/auth/as/par";
    let clock = ManualClock::new();
    let key = TestKey::es256("k1");
    let par = layer_builder(&clock, &key, ISSUER)
        .par_endpoint(PAR)
        .authorization_endpoint("https://as.example.com/auth/as/authorize")
        .build()
        .unwrap();
    let metadata = par.metadata();
    assert_eq!(metadata["pushed_authorization_request_endpoint"], PAR);
    let routes = Router::new().route("/as/authorize", get(pushed_params));
    let app = Router::new().nest_service("/auth", par.layer(routes).into_axum());
    let layout = Layout {
        server: serve_axum(app).await,
        clock,
        key,
        push_path: "/auth/as/par",
        authorize_path: "/auth/as/authorize",
    };
    // The origin + matched path would be https://as.example.com/as/par: not where clients push.
    layout
        .assert_true_url(PAR, "https://as.example.com/as/par")
        .await;
}
