#![cfg(feature = "jwt")]
//! `ParLayerBuilder::forward_request_objects` (issue 13): a pushed signed request object reaches
//! the inner service only when the layer is told to pass it on (par-proxy does so for upstreams
//! that advertise `request_parameter_supported`), and never for a client that opted out.

mod common;

use common::{jwt::*, *};
use serde_json::Value;
use tower_par::{client::AuthMethod, Client, Clock as _, ManualClock, StaticClients};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn clients(key: &TestKey) -> StaticClients {
    let client = |id: &str, forward: bool| {
        Client::builder(id)
            .auth_method(AuthMethod::PrivateKeyJwt)
            .jwks(key.jwks())
            .redirect_uri(WEB_CB)
            .grant_type("authorization_code")
            .forward_request_object(forward)
            .build()
            .unwrap()
    };
    StaticClients::from_clients([client("jar-app", true), client("jar-quiet", false)]).unwrap()
}

/// Pushes a request object for `client_id`, redeems it, returns (the JWT, what the inner service
/// received as parameters).
async fn push_and_redeem(forward: bool, client_id: &str) -> (String, Vec<(String, String)>) {
    let clock = ManualClock::new();
    let key = TestKey::es256("k1");
    let layer = builder(&clock)
        .clients(clients(&key))
        .forward_request_objects(forward)
        .build()
        .unwrap();
    let server = serve(layer, InnerMode::Echo).await;
    let now = clock.now();
    let object = request_object(
        &key,
        client_id,
        ISSUER,
        &[
            ("response_type", "code"),
            ("redirect_uri", WEB_CB),
            ("state", "s"),
        ],
        now,
    );
    let assertion = client_assertion(&key, client_id, ISSUER, now);
    let form = format!(
        "client_id={client_id}&client_assertion_type={}&client_assertion={assertion}&request={object}",
        enc(JWT_BEARER)
    );
    let request_uri = server.push(None, &form).await.request_uri();
    let echo: Value = server.redeem(client_id, &request_uri).await.json();
    let query = echo["query"].as_str().unwrap().to_owned();
    let params = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    (object, params)
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn by_default_the_request_object_stays_at_the_par_endpoint() {
    let (_, params) = push_and_redeem(false, "jar-app").await;
    assert_eq!(get(&params, "state"), Some("s"));
    assert_eq!(get(&params, "request"), None);
}

#[tokio::test]
async fn when_asked_the_original_jwt_travels_with_the_unpacked_parameters() {
    let (object, params) = push_and_redeem(true, "jar-app").await;
    assert_eq!(get(&params, "state"), Some("s"));
    assert_eq!(get(&params, "response_type"), Some("code"));
    assert_eq!(get(&params, "request"), Some(object.as_str()));
    assert_eq!(get(&params, "client_assertion"), None);
}

#[tokio::test]
async fn a_client_that_opted_out_never_has_its_jwt_passed_on() {
    let (_, params) = push_and_redeem(true, "jar-quiet").await;
    assert_eq!(get(&params, "state"), Some("s"));
    assert_eq!(get(&params, "request"), None);
}
