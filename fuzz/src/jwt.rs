//! Real keys and the input format of the JWT targets.
//!
//! Keys are generated once per process (never committed). An input is one selector byte and
//! either a raw token (the fuzzer's bytes as they are) or a header and a claims set separated by
//! a NUL byte, which the harness signs with the selected key, so the fuzzer gets past the
//! signature and into the claim checks. In a header, the JSON string `"$jwk"` is replaced by the
//! selected key's public JWK (DPoP proofs carry their key).
//!
//! Selector byte: bits 0-2 pick the signer ([`SIGNERS`]), bit 3 raw mode, bit 4 the FAPI 2.0
//! profile, bit 5 verifies with the other kind of credential (keys for an HMAC token, the
//! secret for a signature), which must always fail.

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use tower_par::{
    __fuzz::jwt::{Credential, Refusal, Server},
    ClientKeys,
};

#[allow(unreachable_pub)]
#[path = "../../tests/common/jwt.rs"]
mod test_keys;

use test_keys::{sign_segments, TestKey};

/// The client secret of the HMAC signers: 64 bytes, enough for HS512 (RFC 7518 §3.2).
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// [`SECRET`] as the layer holds a client's secrets: a list, any of which verifies.
const SECRETS: &[&[u8]] = &[SECRET];

/// The signers, by selector value, with the `kid` each registered key has.
pub const SIGNERS: [(&str, Option<&str>); 8] = [
    ("ES256", Some("es256")),
    ("ES384", Some("es384")),
    ("EdDSA", Some("ed25519")),
    ("RS256", Some("rsa")),
    ("PS256", Some("rsa")),
    ("HS256", None),
    ("HS384", None),
    ("HS512", None),
];

pub const RAW: u8 = 1 << 3;
pub const FAPI2: u8 = 1 << 4;
pub const CROSS: u8 = 1 << 5;

enum Signer {
    Key(TestKey),
    Hmac(Algorithm),
}

/// The keys of one fuzzing process.
pub struct Keys {
    signers: Vec<Signer>,
    client_keys: ClientKeys,
}

/// The process's keys, generated on first use.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let es256 = TestKey::es256("es256");
        let es384 = TestKey::es384("es384");
        let ed25519 = TestKey::ed25519("ed25519");
        let rs256 = TestKey::rsa("rsa", Algorithm::RS256, 0);
        let ps256 = TestKey::rsa("rsa", Algorithm::PS256, 0);
        let set = json!({"keys": [
            es256.public_jwk(), es384.public_jwk(), ed25519.public_jwk(), rs256.public_jwk(),
        ]});
        let client_keys = ClientKeys::from_jwks(&set).expect("the generated keys load");
        let signers = vec![
            Signer::Key(es256),
            Signer::Key(es384),
            Signer::Key(ed25519),
            Signer::Key(rs256),
            Signer::Key(ps256),
            Signer::Hmac(Algorithm::HS256),
            Signer::Hmac(Algorithm::HS384),
            Signer::Hmac(Algorithm::HS512),
        ];
        Keys {
            signers,
            client_keys,
        }
    })
}

/// One JWT to verify and what to verify it with.
pub struct Case {
    pub token: String,
    pub credential: Credential<'static>,
    pub server: Server,
    /// Signed by the harness and verified with the other kind of credential: must be refused.
    pub must_fail: bool,
}

/// The fixed "now" of every verification.
#[must_use]
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(crate::NOW_SECS)
}

/// Decodes an input (see the module docs); `None` for a raw token that is not UTF-8 (no header
/// field or form value can carry one).
#[must_use]
pub fn case(data: &[u8]) -> Option<Case> {
    let (&selector, rest) = data.split_first()?;
    let keys = keys();
    let signer = &keys.signers[usize::from(selector & 7)];
    let is_hmac = matches!(signer, Signer::Hmac(_));
    let token = if selector & RAW != 0 {
        std::str::from_utf8(rest).ok()?.to_owned()
    } else {
        let (header, claims) = crate::split_at_nul(rest);
        match signer {
            Signer::Key(key) => {
                let jwk = key.bare_jwk().to_string();
                key.sign_segments(
                    &crate::replace_all(header, b"\"$jwk\"", jwk.as_bytes()),
                    claims,
                )
            }
            Signer::Hmac(alg) => {
                sign_segments(header, claims, &EncodingKey::from_secret(SECRET), *alg)
            }
        }
    };
    let cross = selector & CROSS != 0;
    let credential = if is_hmac != cross {
        Credential::Secrets(SECRETS)
    } else {
        Credential::Keys(&keys.client_keys)
    };
    Some(Case {
        token,
        credential,
        server: Server {
            issuer: crate::ISSUER.to_owned(),
            par_endpoint: crate::PAR_ENDPOINT.to_owned(),
            token_endpoint: Some(crate::TOKEN_ENDPOINT.to_owned()),
            fapi2: selector & FAPI2 != 0,
        },
        must_fail: selector & RAW == 0 && cross,
    })
}

/// Checks a refusal: the code of the verifier that refused, a description fit for
/// `error_description`, never longer than the 300 characters (plus "...") the crate allows.
#[track_caller]
pub fn check_refusal(refusal: &Refusal, code: &str) {
    assert_eq!(refusal.0, code, "{}", refusal.1);
    crate::assert_description_allowed(&refusal.1);
    assert!(refusal.1.chars().count() <= 303, "{}", refusal.1);
}

/// The claims of a compact JWS, read without verification (to check what a verifier accepted).
#[must_use]
pub fn claims_of(token: &str) -> serde_json::Map<String, serde_json::Value> {
    segment(token, 1)
}

fn segment(token: &str, index: usize) -> serde_json::Map<String, serde_json::Value> {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    let encoded = token
        .split('.')
        .nth(index)
        .expect("an accepted JWS has three parts");
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .expect("accepted parts are base64url");
    serde_json::from_slice(&bytes).expect("accepted parts are JSON objects")
}

/// The header of a compact JWS, read without verification.
#[must_use]
pub fn header_of(token: &str) -> serde_json::Map<String, serde_json::Value> {
    segment(token, 0)
}

/// Signs exact header and claims bytes with signer `index` of [`SIGNERS`].
#[must_use]
pub fn sign_with(index: usize, header: &[u8], claims: &[u8]) -> String {
    match &keys().signers[index] {
        Signer::Key(key) => key.sign_segments(header, claims),
        Signer::Hmac(alg) => sign_segments(header, claims, &EncodingKey::from_secret(SECRET), *alg),
    }
}

/// Seconds since the epoch of a NumericDate claim.
#[must_use]
pub fn seconds(value: Option<&serde_json::Value>) -> Option<f64> {
    value.and_then(serde_json::Value::as_f64)
}
