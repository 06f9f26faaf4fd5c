//! JWK Sets as clients register them (`ClientKeys::from_jwks`), and each member as the `jwk` of
//! a DPoP proof signed with the harness's ES256 key (the key parser and the RFC 7638 thumbprint
//! on whatever the parser accepts).
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
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let claims = format!(
            r#"{{"htm":"POST","htu":"{PAR_ENDPOINT}","iat":{},"jti":"j"}}"#,
            tower_par_fuzz::NOW_SECS
        );
        let proof = jwt::sign_es256(header.to_string().as_bytes(), claims.as_bytes());
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
