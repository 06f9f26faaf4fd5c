//! DPoP proofs at the PAR endpoint (RFC 9449 §4.3), signed by the harness's real keys (the
//! header's `"$jwk"` becomes the signing key's public JWK) or raw. Input format:
//! `tower_par_fuzz::jwt`.
//!
//! Properties: no input panics; a refusal is `invalid_dpop_proof` with an allowed description;
//! an accepted proof has `typ` `dpop+jwt`, `htm` POST, an `iat` within a minute of now, and a
//! 43-character base64url SHA-256 thumbprint.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tower_par::__fuzz::jwt::dpop_proof;
use tower_par_fuzz::{jwt, NOW_SECS, PAR_ENDPOINT};

fuzz_target!(init: { jwt::keys(); }, |data: &[u8]| {
    let Some(case) = jwt::case(data) else {
        return;
    };
    let max_age = Duration::from_secs(60);
    match dpop_proof(&case.token, "POST", PAR_ENDPOINT, jwt::now(), max_age) {
        Err(refusal) => jwt::check_refusal(&refusal, "invalid_dpop_proof"),
        Ok(jkt) => {
            assert_eq!(jkt.len(), 43, "{jkt}");
            assert!(jkt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            let typ = jwt::header_of(&case.token)["typ"]
                .as_str()
                .unwrap_or("")
                .to_ascii_lowercase();
            assert!(
                typ == "dpop+jwt" || typ == "application/dpop+jwt",
                "typ {typ}"
            );
            let claims = jwt::claims_of(&case.token);
            assert_eq!(claims["htm"], "POST");
            let iat = jwt::seconds(claims.get("iat")).expect("iat is required");
            assert!((iat - NOW_SECS as f64).abs() <= 61.0, "iat {iat}");
        }
    }
});
