//! The PAR endpoint through the whole layer: the media type, the query (credentials there are
//! refused), the `Authorization` header (Basic), the `DPoP` header, the form body, client
//! authentication (secret, post, none, `client_secret_jwt`), validation, storage.
//!
//! Input: five fields separated by NUL bytes, `content-type`, query, `authorization`, `dpop`,
//! body (the body is the rest, NULs included); an empty field is a header not sent. Clients and
//! the fixed clock: `tower_par_fuzz::endpoint`.
//!
//! Properties: no input panics or gets a 5xx; every refusal is RFC 6749 §5.2 JSON with
//! `no-store` and a code the endpoint may send for its status; a `201` carries a `request_uri`
//! the handle parser accepts, which redeems once for the client that pushed it, and the inner
//! endpoint then receives exactly the pushed parameters minus the credentials (plus `dpop_jkt`
//! from a proof) when no request object was pushed.
#![no_main]

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower_par::__fuzz::{decode_basic, form, jwt::unverified_subject, parse_handle};
use tower_par_fuzz::endpoint::endpoint;

const CREDENTIALS: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

fuzz_target!(init: { endpoint(); }, |data: &[u8]| {
    let mut fields = data.splitn(5, |&b| b == 0);
    let mut next = || fields.next().unwrap_or_default();
    let (content_type, query, authorization, dpop, body) = (next(), next(), next(), next(), next());

    let mut uri = b"/as/par".to_vec();
    if !query.is_empty() {
        uri.push(b'?');
        uri.extend_from_slice(query);
    }
    let mut builder = Request::post(uri.as_slice());
    for (name, value) in [
        (header::CONTENT_TYPE.as_str(), content_type),
        (header::AUTHORIZATION.as_str(), authorization),
        ("dpop", dpop),
    ] {
        if !value.is_empty() {
            // A value no HTTP parser would pass on never reaches the layer.
            let Ok(value) = HeaderValue::from_bytes(value) else {
                return;
            };
            builder = builder.header(name, value);
        }
    }
    let Ok(req) = builder.body(Full::new(Bytes::copy_from_slice(body))) else {
        return;
    };

    let endpoint = endpoint();
    let answer = endpoint.call(false, req);
    match answer.status {
        StatusCode::CREATED => {}
        StatusCode::PAYLOAD_TOO_LARGE => {
            assert_eq!(answer.oauth_error(), "invalid_request");
            return;
        }
        StatusCode::UNAUTHORIZED => {
            assert_eq!(answer.oauth_error(), "invalid_client");
            return;
        }
        // A client past its share of the store (every handle this target gets is redeemed, so
        // only a share smaller than one request could refuse).
        StatusCode::TOO_MANY_REQUESTS => {
            assert_eq!(answer.oauth_error(), "temporarily_unavailable");
            return;
        }
        StatusCode::BAD_REQUEST => {
            let code = answer.oauth_error();
            assert!(
                [
                    "invalid_request",
                    "invalid_client",
                    "unauthorized_client",
                    "unsupported_response_type",
                    "invalid_request_object",
                    "invalid_dpop_proof",
                    "request_not_supported",
                ]
                .contains(&code.as_str()),
                "{code}"
            );
            return;
        }
        other => panic!("status {other}: {:?}", answer.body),
    }

    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("a JSON 201");
    let request_uri = json["request_uri"].as_str().expect("a request_uri");
    assert!(parse_handle(request_uri).is_some(), "{request_uri}");
    assert!(json["expires_in"].as_u64().is_some_and(|s| (1..=600).contains(&s)));

    let pairs = form::parse(body).expect("a pushed body decoded");
    let client_id = match decode_basic(authorization) {
        Ok((client_id, _)) => client_id,
        _ => match pairs.iter().find(|(n, _)| n == "client_id") {
            Some((_, client_id)) => client_id.to_string(),
            None => {
                let assertion = pairs.iter().find(|(n, _)| n == "client_assertion");
                unverified_subject(&assertion.expect("a client was named").1)
                    .expect("the assertion names its client")
            }
        },
    };
    let redeemed = endpoint.redeem_as(false, &client_id, request_uri);
    let pushed = redeemed.pushed.expect("an accepted push redeems");
    assert_eq!(pushed.client_id(), client_id);
    assert_eq!(endpoint.redeem_as(false, &client_id, request_uri).oauth_error(), "invalid_request_uri");

    if pairs.iter().all(|(n, _)| n != "request") {
        let got: Vec<(&str, &str)> = pushed.iter().collect();
        let mut want: Vec<(&str, &str)> = pairs
            .iter()
            .filter(|(n, _)| !CREDENTIALS.contains(&n.as_ref()))
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect();
        if !dpop.is_empty() && want.iter().all(|(n, _)| *n != "dpop_jkt") {
            let jkt = pushed.get("dpop_jkt").expect("a DPoP proof binds its key");
            want.push(("dpop_jkt", jkt));
        }
        assert_eq!(got, want);
    }
});
