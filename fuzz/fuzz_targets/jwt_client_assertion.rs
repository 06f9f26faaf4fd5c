//! Client assertions (`private_key_jwt`, `client_secret_jwt`; RFC 7523 §3), signed by the
//! harness's real keys or raw. Input format: `tower_par_fuzz::jwt`.
//!
//! Properties: no input panics; a refusal is `invalid_client` with an allowed description; an
//! accepted assertion really is one for `client-1`: `iss` = `sub` = the client, unexpired, not
//! longer-lived than the policy allows, with the `jti` returned, and under FAPI 2.0 only PS256,
//! ES256 or EdDSA; a token verified with the other kind of credential is always refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_par::__fuzz::jwt::{client_assertion, unverified_subject};
use tower_par_fuzz::{jwt, CLIENT_ID, NOW_SECS};

fuzz_target!(init: { jwt::keys(); }, |data: &[u8]| {
    let Some(case) = jwt::case(data) else {
        return;
    };
    let _ = unverified_subject(&case.token);
    match client_assertion(
        &case.token,
        CLIENT_ID,
        case.credential,
        &case.server,
        jwt::now(),
    ) {
        Err(refusal) => jwt::check_refusal(&refusal, "invalid_client"),
        Ok(jti) => {
            assert!(
                !case.must_fail,
                "accepted with the wrong kind of credential"
            );
            let claims = jwt::claims_of(&case.token);
            assert_eq!(claims["iss"], CLIENT_ID);
            assert_eq!(claims["sub"], CLIENT_ID);
            assert_eq!(claims["jti"], jti.as_str());
            let exp = jwt::seconds(claims.get("exp")).expect("exp is required");
            let now = NOW_SECS as f64;
            assert!(exp > now && exp <= now + 310.0, "exp {exp}");
            if case.server.fapi2 {
                assert!(["PS256", "ES256", "EdDSA"]
                    .contains(&jwt::header_of(&case.token)["alg"].as_str().unwrap_or("")));
            }
        }
    }
});
