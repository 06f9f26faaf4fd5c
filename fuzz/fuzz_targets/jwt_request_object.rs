//! Pushed request objects (RFC 9101, RFC 9126 §3), signed by the harness's real keys or raw.
//! Input format: `tower_par_fuzz::jwt`.
//!
//! Properties: no input panics; a refusal is `invalid_request_object` with an allowed
//! description; an accepted object was issued by `client-1` for this server and yields
//! parameters as a plain push would: `client_id` kept, no JWT envelope claims, no `request` or
//! `request_uri`, no empty values, and they survive the canonical form encoding the store uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_par::__fuzz::{form, jwt::request_object};
use tower_par_fuzz::{jwt, CLIENT_ID};

fuzz_target!(init: { jwt::keys(); }, |data: &[u8]| {
    let Some(case) = jwt::case(data) else {
        return;
    };
    match request_object(
        &case.token,
        CLIENT_ID,
        case.credential,
        &case.server,
        jwt::now(),
    ) {
        Err(refusal) => jwt::check_refusal(&refusal, "invalid_request_object"),
        Ok(params) => {
            assert!(
                !case.must_fail,
                "accepted with the wrong kind of credential"
            );
            assert_eq!(jwt::claims_of(&case.token)["iss"], CLIENT_ID);
            assert!(params
                .iter()
                .any(|(n, v)| n == "client_id" && v == CLIENT_ID));
            let mut encoded = String::new();
            for (name, value) in &params {
                assert!(
                    ![
                        "iss",
                        "aud",
                        "exp",
                        "iat",
                        "nbf",
                        "jti",
                        "request",
                        "request_uri"
                    ]
                    .contains(&name.as_str()),
                    "{name} passed through"
                );
                assert!(!value.is_empty(), "{name} is empty");
                form::append_pair(&mut encoded, name, value);
            }
            let decoded = form::parse(encoded.as_bytes()).expect("canonical forms decode");
            let nonempty: Vec<_> = params.iter().filter(|(n, _)| !n.is_empty()).collect();
            assert_eq!(decoded.len(), nonempty.len());
        }
    }
});
