//! JWK Sets as clients register them (`ClientKeys::from_jwks`), and each member as the `jwk` of
//! a DPoP proof signed by the harness's key of the same type (the key parser, the signature check
//! with a foreign key, and the RFC 7638 thumbprint on whatever the parser accepts).
//!
//! Properties: no input panics; a set that loads has at least one key and unique, non-empty
//! `kid`s; a DPoP proof carrying a foreign key is refused as `invalid_dpop_proof`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_par::{__fuzz::jwt::dpop_proof, ClientKeys};
use tower_par_fuzz::{jwt, PAR_ENDPOINT};

fuzz_target!(init: { jwt::keys(); }, |data: &[u8]| {
    let Ok(set) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match ClientKeys::from_jwks(&set) {
        Ok(keys) => {
            let kids: Vec<&str> = keys.kids().collect();
            assert!(!kids.is_empty());
            for (i, kid) in kids.iter().enumerate() {
                assert!(!kid.is_empty() && !kids[..i].contains(kid), "{kids:?}");
            }
            let _ = format!("{keys:?}");
        }
        Err(err) => {
            let _ = (err.to_string(), err.kid());
        }
    }

    let Some(members) = set.get("keys").and_then(Value::as_array) else {
        return;
    };
    for jwk in members.iter().take(4) {
        // The algorithm the key is for, so that the proof gets past the key-type check and the
        // signature is checked with the foreign key.
        let signer = match (jwk["kty"].as_str(), jwk["crv"].as_str()) {
            (Some("EC"), Some("P-384")) => 1,
            (Some("OKP"), _) => 2,
            (Some("RSA"), _) => 3,
            _ => 0,
        };
        let alg = jwt::SIGNERS[signer].0;
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
        let claims = format!(
            r#"{{"htm":"POST","htu":"{PAR_ENDPOINT}","iat":{},"jti":"j"}}"#,
            tower_par_fuzz::NOW_SECS
        );
        let proof = jwt::sign_with(signer, header.to_string().as_bytes(), claims.as_bytes());
        if let Err(refusal) = dpop_proof(
            &proof,
            "POST",
            PAR_ENDPOINT,
            jwt::now(),
            Duration::from_secs(60),
        ) {
            jwt::check_refusal(&refusal, "invalid_dpop_proof");
        }
    }
});
