//! Unit tests for the `jwt` module. Keys are generated at run time by the shared test helpers
//! (`tests/common/jwt.rs`), which this file includes so that the integration-test helpers are
//! compiled and exercised here too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[allow(unreachable_pub)]
#[path = "../../tests/common/jwt.rs"]
mod helpers;

use self::helpers::*;
use super::{
    dpop::{same_target, thumbprint},
    keys::parse_public_jwk,
    *,
};

const ISSUER: &str = "https://as.example.com";
const PAR: &str = "https://as.example.com/as/par";
const TOKEN: &str = "https://as.example.com/as/token";
const CLIENT: &str = "client-1";
/// 64 bytes: long enough for HS256, HS384 and HS512 (RFC 7518 §3.2).
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn at(offset: i64) -> i64 {
    secs(now()) + offset
}

fn policy() -> AssertionPolicy {
    let mut policy = AssertionPolicy::new(ISSUER, PAR);
    policy.token_endpoint = Some(TOKEN.to_owned());
    policy
}

fn fapi2() -> AssertionPolicy {
    AssertionPolicy {
        fapi2: true,
        ..policy()
    }
}

fn client_keys(keys: &[&TestKey]) -> ClientKeys {
    let set = json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() });
    ClientKeys::from_jwks(&set).expect("valid key set")
}

/// HS256-signs (with [`SECRET`]) `header` and `payload` exactly as given, so a test can send
/// duplicate member names or a specific claim order.
fn sign_text(header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.as_bytes()),
        URL_SAFE_NO_PAD.encode(payload.as_bytes())
    );
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("HMAC signing");
    format!("{input}.{signature}")
}

/// Checks kind and wording, and that the description is fit for `error_description`.
#[track_caller]
fn expect_err<T: std::fmt::Debug>(result: Result<T, JwtError>, kind: JwtErrorKind, words: &str) {
    let err = result.expect_err("verification should fail");
    assert_eq!(err.kind, kind, "{}", err.description);
    assert!(
        err.description.contains(words),
        "description {:?} should contain {words:?}",
        err.description
    );
    assert!(
        err.description
            .chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')),
        "description {:?} has characters RFC 6749 5.2 forbids",
        err.description
    );
}

fn assertion_ok(token: &str, credential: ClientCredential<'_>, policy: &AssertionPolicy) {
    if let Err(err) = verify_client_assertion(token, CLIENT, credential, policy, now()) {
        panic!("assertion refused: {err}");
    }
}

fn assertion_err(
    token: &str,
    credential: ClientCredential<'_>,
    policy: &AssertionPolicy,
    words: &str,
) {
    expect_err(
        verify_client_assertion(token, CLIENT, credential, policy, now()),
        JwtErrorKind::InvalidClient,
        words,
    );
}

/// Client assertion claims with some members replaced (`null` removes).
fn claims_with(extra: Value) -> Value {
    let mut claims = client_assertion_claims(CLIENT, ISSUER, now());
    merge(&mut claims, &extra);
    claims
}

// ---------------------------------------------------------------------------------------------
// ClientKeys::from_jwks

fn fake_rsa_jwk(kid: &str, modulus_bytes: usize) -> Value {
    // Only the length of n is checked at load; no private key is needed for that.
    json!({"kty": "RSA", "kid": kid, "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(vec![0xC5; modulus_bytes])})
}

fn key_error(set: Value) -> KeyError {
    ClientKeys::from_jwks(&set).expect_err("key set should be refused")
}

#[test]
fn jwks_loads_every_supported_key_type() {
    let es = TestKey::es256("es");
    let es384 = TestKey::es384("es384");
    let ed = TestKey::ed25519("ed");
    let rsa = TestKey::rsa("rsa", Algorithm::PS256, 0);
    let keys = client_keys(&[&es, &es384, &ed, &rsa]);
    assert_eq!(
        keys.kids().collect::<Vec<_>>(),
        ["es", "es384", "ed", "rsa"]
    );
}

#[test]
fn jwks_refuses_what_is_not_a_key_set() {
    let key = TestKey::es256("a");
    for set in [
        json!([key.public_jwk()]),
        json!({"keys": key.public_jwk()}),
        json!("x"),
    ] {
        assert!(key_error(set).to_string().contains("not a JWK Set"));
    }
    assert!(key_error(json!({"keys": []}))
        .to_string()
        .contains("no signature verification key"));
}

#[test]
fn jwks_refuses_a_key_without_kid_and_duplicate_kids() {
    let key = TestKey::es256("a");
    let err = key_error(json!({"keys": [key.bare_jwk()]}));
    assert!(err.to_string().contains("has no kid"), "{err}");
    let other = TestKey::es256("a");
    let err = key_error(json!({"keys": [key.public_jwk(), other.public_jwk()]}));
    assert!(err.to_string().contains("repeats a kid"), "{err}");
    assert!(err.to_string().contains("keys[1]"), "{err}");
    assert_eq!(err.kid(), Some("a"));
    let err = key_error(json!({"keys": [{"kid": "", "kty": "EC"}]}));
    assert!(
        err.to_string().contains("lacks the required member crv"),
        "{err}"
    );
}

#[test]
fn jwks_refuses_private_key_material() {
    let key = TestKey::es256("ec-1");
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        let mut jwk = key.public_jwk();
        jwk[member] = json!("AQAB");
        let err = key_error(json!({ "keys": [jwk] }));
        let text = err.to_string();
        assert!(text.contains("private key material"), "{text}");
        assert!(text.contains(&format!("member {member}")), "{text}");
        assert!(text.contains("\"ec-1\""), "names the kid: {text}");
    }
    let err = key_error(json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}));
    assert!(err.to_string().contains("symmetric key"), "{err}");
    // Refused even on a key that would otherwise be skipped as an encryption key.
    let mut enc = key.public_jwk();
    enc["use"] = json!("enc");
    enc["d"] = json!("AQAB");
    assert!(key_error(json!({ "keys": [enc] }))
        .to_string()
        .contains("private key material"));
}

#[test]
fn jwks_refuses_unsupported_key_types_and_curves() {
    let cases = [
        (json!({"kty": "oct", "kid": "a"}), "unsupported kty"),
        (
            json!({"kty": "EC", "kid": "a", "crv": "P-521", "x": "AA", "y": "AA"}),
            "unsupported curve",
        ),
        (
            json!({"kty": "EC", "kid": "a", "crv": "secp256k1", "x": "AA", "y": "AA"}),
            "unsupported curve",
        ),
        (
            json!({"kty": "OKP", "kid": "a", "crv": "X25519", "x": "AA"}),
            "unsupported curve",
        ),
        (
            json!({"kty": "OKP", "kid": "a", "crv": "Ed448", "x": "AA"}),
            "unsupported curve",
        ),
        (
            json!({"kty": "EC", "kid": "a", "crv": "P-256", "x": "AA", "y": "AA"}),
            "wrong length",
        ),
        (
            json!({"kty": "RSA", "kid": "a", "n": "not base64!", "e": "AQAB"}),
            "base64url",
        ),
    ];
    for (jwk, words) in cases {
        let err = key_error(json!({ "keys": [jwk] }));
        assert!(
            err.to_string().contains(words),
            "{err} should contain {words}"
        );
    }
}

#[test]
fn jwks_enforces_rsa_size() {
    let err = key_error(json!({"keys": [fake_rsa_jwk("small", 128)]}));
    assert!(err.to_string().contains("1024 bits"), "{err}");
    assert!(err.to_string().contains("at least 2048"), "{err}");
    // 2048 bits exactly: only the size is checked at load.
    assert!(ClientKeys::from_jwks(&json!({"keys": [fake_rsa_jwk("ok", 256)]})).is_ok());
    let err = key_error(json!({"keys": [fake_rsa_jwk("big", 1024)]}));
    assert!(err.to_string().contains("at most 4096"), "{err}");
}

#[test]
fn jwks_checks_alg_against_key_type() {
    let key = TestKey::es256("a");
    let mut jwk = key.public_jwk();
    jwk["alg"] = json!("RS256");
    assert!(key_error(json!({ "keys": [jwk] }))
        .to_string()
        .contains("does not fit"));
    let mut jwk = key.public_jwk();
    jwk["alg"] = json!("ES512");
    assert!(key_error(json!({ "keys": [jwk] }))
        .to_string()
        .contains("not supported"));
    let mut jwk = key.public_jwk();
    jwk["alg"] = json!("ES256");
    assert!(ClientKeys::from_jwks(&json!({ "keys": [jwk] })).is_ok());
}

#[test]
fn jwks_skips_keys_not_meant_for_signatures() {
    let sig = TestKey::es256("sig");
    let enc = json!({"kty": "OKP", "crv": "X25519", "x": "AA", "use": "enc"});
    let mut wrap = TestKey::es256("wrap").public_jwk();
    wrap["key_ops"] = json!(["wrapKey"]);
    let keys = ClientKeys::from_jwks(&json!({"keys": [enc, wrap, sig.public_jwk()]}))
        .expect("encryption keys are skipped");
    assert_eq!(keys.kids().collect::<Vec<_>>(), ["sig"]);
}

#[test]
fn client_keys_debug_shows_no_key_material() {
    let key = TestKey::es256("kid-1");
    let keys = client_keys(&[&key]);
    let debug = format!("{keys:?}");
    assert!(
        debug.contains("kid-1") && debug.contains("P-256"),
        "{debug}"
    );
    let x = key.bare_jwk()["x"].as_str().unwrap().to_owned();
    assert!(!debug.contains(&x), "{debug}");
    let secret = format!("{:?}", ClientCredential::Secrets(&[SECRET]));
    assert!(!secret.contains("0123"), "{secret}");
}

// ---------------------------------------------------------------------------------------------
// Client assertions (AUTH-06, AUTH-07, FAPI-07, FAPI-08, FAPI-10)

#[test]
fn assertion_accepted_for_every_asymmetric_alg() {
    let keys = [
        TestKey::es256("es256"),
        TestKey::es384("es384"),
        TestKey::ed25519("ed"),
        TestKey::rsa("rs", Algorithm::RS256, 0),
        TestKey::rsa("ps", Algorithm::PS256, 1),
    ];
    let set = client_keys(&keys.iter().collect::<Vec<_>>());
    for key in &keys {
        let token = client_assertion(key, CLIENT, ISSUER, now());
        let verified = verify_client_assertion(
            &token,
            CLIENT,
            ClientCredential::Keys(&set),
            &policy(),
            now(),
        )
        .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert!(verified.jti.starts_with("jti-"));
        assert_eq!(verified.expires_at, now() + Duration::from_secs(60));
    }
}

#[test]
fn assertion_accepted_for_every_hmac_alg() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = sign_hmac(SECRET, alg, &json!({}), &claims_with(json!({})));
        assertion_ok(&token, ClientCredential::Secrets(&[SECRET]), &policy());
    }
    let token = client_assertion_hs256(SECRET, CLIENT, PAR, now());
    assertion_ok(&token, ClientCredential::Secrets(&[SECRET]), &policy());
}

#[test]
fn assertion_signed_with_any_of_several_secrets_is_accepted() {
    // Secret rotation: the old and the new secret are both registered.
    let old: &[u8] = b"old-secret-old-secret-old-secret-old-secret!";
    let unknown: &[u8] = b"unknown-secret-unknown-secret-unknown-secret";
    let short: &[u8] = b"too-short";
    for signer in [old, SECRET] {
        let token = client_assertion_hs256(signer, CLIENT, ISSUER, now());
        assertion_ok(
            &token,
            ClientCredential::Secrets(&[short, old, SECRET]),
            &policy(),
        );
    }
    let token = client_assertion_hs256(unknown, CLIENT, ISSUER, now());
    assertion_err(
        &token,
        ClientCredential::Secrets(&[old, SECRET]),
        &policy(),
        "signature does not verify",
    );
}

#[test]
fn assertion_with_short_secret_refused() {
    let short = b"0123456789abcdef0123456789abcdef"; // 32 bytes: HS256 only
    let token = sign_hmac(short, Algorithm::HS256, &json!({}), &claims_with(json!({})));
    assertion_ok(&token, ClientCredential::Secrets(&[short]), &policy());
    let token = sign_hmac(short, Algorithm::HS512, &json!({}), &claims_with(json!({})));
    assertion_err(
        &token,
        ClientCredential::Secrets(&[short]),
        &policy(),
        "at least 64 bytes",
    );
}

#[test]
fn assertion_with_invalid_signature_refused() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let token = client_assertion(&key, CLIENT, ISSUER, now());
    // Flip one signature character (not the last, whose low bits may be padding).
    let mut bytes = token.into_bytes();
    let at = bytes.len() - 5;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let token = String::from_utf8(bytes).unwrap();
    assertion_err(
        &token,
        ClientCredential::Keys(&keys),
        &policy(),
        "signature does not verify",
    );

    let token = sign_hmac(
        b"another secret of at least thirty-two bytes!",
        Algorithm::HS256,
        &json!({}),
        &claims_with(json!({})),
    );
    assertion_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        &policy(),
        "signature does not verify",
    );
}

#[test]
fn assertion_with_wrong_key_refused() {
    let registered = TestKey::es256("k");
    let keys = client_keys(&[&registered]);
    // Another key claiming the registered kid.
    let impostor = TestKey::es256("k");
    let token = client_assertion(&impostor, CLIENT, ISSUER, now());
    assertion_err(
        &token,
        ClientCredential::Keys(&keys),
        &policy(),
        "signature does not verify",
    );
    // Same for RSA (two different generated keys).
    let rsa_keys = client_keys(&[&TestKey::rsa("r", Algorithm::RS256, 0)]);
    let token = client_assertion(
        &TestKey::rsa("r", Algorithm::RS256, 1),
        CLIENT,
        ISSUER,
        now(),
    );
    assertion_err(
        &token,
        ClientCredential::Keys(&rsa_keys),
        &policy(),
        "signature does not verify",
    );
}

#[test]
fn assertion_with_unknown_kid_refused() {
    let keys = client_keys(&[&TestKey::es256("known")]);
    let token = client_assertion(&TestKey::es256("other-kid"), CLIENT, ISSUER, now());
    assertion_err(
        &token,
        ClientCredential::Keys(&keys),
        &policy(),
        "unknown kid 'other-kid'",
    );
}

#[test]
fn assertion_kid_must_fit_alg() {
    let ec = TestKey::es256("ec");
    let ed = TestKey::ed25519("ed");
    let keys = client_keys(&[&ec, &ed]);
    // Signed by the Ed25519 key but naming the EC key's kid.
    let token = ed.sign(&json!({"kid": "ec"}), &claims_with(json!({})));
    assertion_err(
        &token,
        ClientCredential::Keys(&keys),
        &policy(),
        "does not fit alg EdDSA",
    );
}

#[test]
fn assertion_without_kid_tries_fitting_keys() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let ed = TestKey::ed25519("ed");
    let keys = client_keys(&[&a, &b, &ed]);
    let token = b.sign(&json!({"kid": null}), &claims_with(json!({})));
    assertion_ok(&token, ClientCredential::Keys(&keys), &policy());
    let stranger = TestKey::es256("s");
    let token = stranger.sign(&json!({"kid": null}), &claims_with(json!({})));
    assertion_err(
        &token,
        ClientCredential::Keys(&keys),
        &policy(),
        "signature does not verify",
    );
    let only_ec = client_keys(&[&a]);
    let token = ed.sign(&json!({"kid": null}), &claims_with(json!({})));
    assertion_err(
        &token,
        ClientCredential::Keys(&only_ec),
        &policy(),
        "no registered key fits",
    );
}

#[test]
fn assertion_without_kid_refused_when_two_keys_verify() {
    let key = TestKey::es256("a");
    let mut twin = key.public_jwk();
    twin["kid"] = json!("b");
    let keys = ClientKeys::from_jwks(&json!({"keys": [key.public_jwk(), twin]})).unwrap();
    let token = key.sign(&json!({"kid": null}), &claims_with(json!({})));
    assertion_err(
        &token,
        ClientCredential::Keys(&keys),
        &policy(),
        "more than one",
    );
}

#[test]
fn assertion_alg_none_refused() {
    let keys = client_keys(&[&TestKey::es256("k")]);
    let token = unsigned(&json!({}), &claims_with(json!({})));
    assertion_err(&token, ClientCredential::Keys(&keys), &policy(), "alg none");
    assertion_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        &policy(),
        "alg none",
    );
    let token = unsigned(&json!({"alg": "None"}), &claims_with(json!({})));
    assertion_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        &policy(),
        "alg none",
    );
}

#[test]
fn assertion_hmac_with_keys_refused() {
    // Key confusion: the public key's bytes used as an HMAC secret must never verify.
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let token = sign_hmac(
        SECRET,
        Algorithm::HS256,
        &json!({"kid": "k"}),
        &claims_with(json!({})),
    );
    assertion_err(&token, ClientCredential::Keys(&keys), &policy(), "HMAC");
}

#[test]
fn assertion_asymmetric_with_secret_refused() {
    let rsa = TestKey::rsa("r", Algorithm::RS256, 0);
    let token = client_assertion(&rsa, CLIENT, ISSUER, now());
    assertion_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        &policy(),
        "shared secret",
    );
    let token = client_assertion(&TestKey::es256("e"), CLIENT, ISSUER, now());
    assertion_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        &policy(),
        "allowed: HS256",
    );
}

#[test]
fn assertion_fapi2_algs_only() {
    let rs = TestKey::rsa("rs", Algorithm::RS256, 0);
    let es384 = TestKey::es384("es384");
    let ps = TestKey::rsa("ps", Algorithm::PS256, 0);
    let es = TestKey::es256("es");
    let ed = TestKey::ed25519("ed");
    let keys = client_keys(&[&rs, &es384, &es, &ed]);
    for refused in [&rs, &es384] {
        let token = client_assertion(refused, CLIENT, ISSUER, now());
        assertion_ok(&token, ClientCredential::Keys(&keys), &policy());
        assertion_err(
            &token,
            ClientCredential::Keys(&keys),
            &fapi2(),
            "allowed: PS256, ES256, EdDSA",
        );
    }
    // The RSA key is registered as "rs"; PS256 with it is fine.
    for accepted in [&es, &ed] {
        assertion_ok(
            &client_assertion(accepted, CLIENT, ISSUER, now()),
            ClientCredential::Keys(&keys),
            &fapi2(),
        );
    }
    let token = ps.sign(&json!({"kid": "rs"}), &claims_with(json!({})));
    assertion_ok(&token, ClientCredential::Keys(&keys), &fapi2());
    let token = client_assertion_hs256(SECRET, CLIENT, ISSUER, now());
    assertion_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        &fapi2(),
        "FAPI 2.0",
    );
}

#[test]
fn assertion_iss_and_sub_must_be_the_client() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let cases = [
        (json!({"iss": "other"}), "iss is not the client_id"),
        (json!({"sub": "other"}), "sub is not the client_id"),
        (json!({"iss": null}), "lacks iss"),
        (json!({"sub": null}), "lacks sub"),
        (json!({"sub": 7}), "sub is not a string"),
    ];
    for (extra, words) in cases {
        let token = key.sign(&json!({}), &claims_with(extra));
        assertion_err(&token, ClientCredential::Keys(&keys), &policy(), words);
    }
}

#[test]
fn assertion_each_rfc9126_audience_accepted_and_refused_in_fapi2() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let token = key.sign(&json!({}), &claims_with(json!({"aud": ISSUER})));
    assertion_ok(&token, ClientCredential::Keys(&keys), &policy());
    assertion_ok(&token, ClientCredential::Keys(&keys), &fapi2());
    let others = [
        json!(PAR),
        json!(TOKEN),
        json!(["https://elsewhere", ISSUER]),
        json!([PAR]),
    ];
    for aud in others {
        let token = key.sign(&json!({}), &claims_with(json!({ "aud": aud })));
        assertion_ok(&token, ClientCredential::Keys(&keys), &policy());
        assertion_err(&token, ClientCredential::Keys(&keys), &fapi2(), "aud");
    }
}

#[test]
fn assertion_foreign_audience_refused() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let cases = [
        (
            json!("https://other.example.com"),
            "aud does not name this server",
        ),
        (
            json!(["https://other.example.com"]),
            "aud does not name this server",
        ),
        (json!([ISSUER, 5]), "non-string"),
        (json!(5), "neither a string nor an array"),
        (Value::Null, "lacks aud"),
    ];
    for (aud, words) in cases {
        let token = key.sign(&json!({}), &claims_with(json!({ "aud": aud })));
        assertion_err(&token, ClientCredential::Keys(&keys), &policy(), words);
        let fapi2_words = if aud.is_array() { "aud" } else { words };
        assertion_err(&token, ClientCredential::Keys(&keys), &fapi2(), fapi2_words);
    }
    // Without a token endpoint configured, its URL is foreign.
    let token = key.sign(&json!({}), &claims_with(json!({ "aud": TOKEN })));
    let mut no_token = policy();
    no_token.token_endpoint = None;
    assertion_err(
        &token,
        ClientCredential::Keys(&keys),
        &no_token,
        "aud does not name this server",
    );
}

#[test]
fn assertion_expiry_rules() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let ok = [
        json!({"exp": at(1)}),
        json!({"exp": at(300), "iat": at(0)}),
        json!({"exp": at(305), "iat": null}),
        json!({"exp": (at(30) as f64) + 0.5}),
    ];
    for extra in ok {
        let token = key.sign(&json!({}), &claims_with(extra.clone()));
        assertion_ok(&token, ClientCredential::Keys(&keys), &policy());
    }
    let refused = [
        (json!({"exp": at(0)}), "has expired"),
        (json!({"exp": at(-1)}), "has expired"),
        (json!({"exp": null}), "lacks exp"),
        (json!({"exp": "1800000060"}), "exp is not a NumericDate"),
        (json!({"exp": -5}), "exp is not a NumericDate"),
        (
            json!({"exp": at(311), "iat": null}),
            "too far in the future",
        ),
        (
            json!({"exp": at(200), "iat": at(-200)}),
            "exp - iat exceeds 300 s",
        ),
    ];
    for (extra, words) in refused {
        let token = key.sign(&json!({}), &claims_with(extra));
        assertion_err(&token, ClientCredential::Keys(&keys), &policy(), words);
    }
}

#[test]
fn assertion_iat_and_nbf_future_skew() {
    // FAPI-08: 8 s ahead accepted, 70 s ahead refused.
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    for claim in ["iat", "nbf"] {
        let token = key.sign(
            &json!({}),
            &claims_with(json!({ claim: at(8), "exp": at(68) })),
        );
        assertion_ok(&token, ClientCredential::Keys(&keys), &policy());
        assertion_ok(&token, ClientCredential::Keys(&keys), &fapi2());
        let token = key.sign(
            &json!({}),
            &claims_with(json!({ claim: at(70), "exp": at(130) })),
        );
        assertion_err(
            &token,
            ClientCredential::Keys(&keys),
            &policy(),
            "in the future",
        );
        // A configured skew above 60 s is capped at 60 s.
        let lax = AssertionPolicy {
            max_future_skew: Duration::from_secs(120),
            ..policy()
        };
        assertion_err(&token, ClientCredential::Keys(&keys), &lax, "in the future");
        let token = key.sign(
            &json!({}),
            &claims_with(json!({ claim: at(50), "exp": at(110) })),
        );
        assertion_ok(&token, ClientCredential::Keys(&keys), &lax);
        assertion_err(
            &token,
            ClientCredential::Keys(&keys),
            &policy(),
            "in the future",
        );
    }
}

#[test]
fn assertion_jti_rules() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let long = "x".repeat(257);
    let cases = [
        (json!({"jti": null}), "lacks jti"),
        (json!({"jti": ""}), "jti is empty"),
        (json!({"jti": 12}), "jti is not a string"),
        (json!({ "jti": long }), "longer than 256"),
    ];
    for (extra, words) in cases {
        let token = key.sign(&json!({}), &claims_with(extra));
        assertion_err(&token, ClientCredential::Keys(&keys), &policy(), words);
    }
    let token = key.sign(&json!({}), &claims_with(json!({"jti": "abc"})));
    let verified = verify_client_assertion(
        &token,
        CLIENT,
        ClientCredential::Keys(&keys),
        &policy(),
        now(),
    )
    .unwrap();
    let expected = VerifiedAssertion {
        jti: "abc".into(),
        expires_at: now() + Duration::from_secs(60),
    };
    assert_eq!(verified, expected);
}

#[test]
fn assertion_typ_of_other_jwt_kinds_refused() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    for typ in ["JWT", "client-authentication+jwt"] {
        let token = key.sign(&json!({ "typ": typ }), &claims_with(json!({})));
        assertion_ok(&token, ClientCredential::Keys(&keys), &policy());
    }
    for typ in [
        "dpop+jwt",
        "application/oauth-authz-req+jwt",
        "OAUTH-AUTHZ-REQ+JWT",
    ] {
        let token = key.sign(&json!({ "typ": typ }), &claims_with(json!({})));
        assertion_err(
            &token,
            ClientCredential::Keys(&keys),
            &policy(),
            "another kind of JWT",
        );
    }
}

#[test]
fn assertion_malformed_tokens_refused() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let cred = ClientCredential::Keys(&keys);
    assertion_err("", cred, &policy(), "not a compact JWS");
    assertion_err("a.b", cred, &policy(), "not a compact JWS");
    assertion_err("a.b.c.d.e", cred, &policy(), "encrypted (JWE)");
    assertion_err(
        "!!.e30.AA",
        cred,
        &policy(),
        "header is not unpadded base64url",
    );
    let not_json = format!("{}.e30.AA", URL_SAFE_NO_PAD.encode("[1]"));
    assertion_err(&not_json, cred, &policy(), "header is not a JSON object");
    let token = key.sign(&json!({"crit": ["exp"], "exp": 1}), &claims_with(json!({})));
    assertion_err(&token, cred, &policy(), "crit");
    let token = key.sign(&json!({"alg": "RS512"}), &claims_with(json!({})));
    assertion_err(&token, cred, &policy(), "uses alg 'RS512'");
    let token = key.sign(&json!({"kid": 3}), &claims_with(json!({})));
    assertion_err(&token, cred, &policy(), "non-string kid");
}

#[test]
fn assertion_duplicate_member_names_refused() {
    let claims = format!(
        r#"{{"iss":"{CLIENT}","sub":"{CLIENT}","aud":"{ISSUER}","exp":{},"jti":"a","iss":"{CLIENT}"}}"#,
        at(60)
    );
    let token = sign_text(r#"{"alg":"HS256"}"#, &claims);
    assertion_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        &policy(),
        "unique member names",
    );
    let unique = claims.replacen(&format!(r#","iss":"{CLIENT}"}}"#), "}", 1);
    let token = sign_text(r#"{"alg":"HS256"}"#, &unique);
    assertion_ok(&token, ClientCredential::Secrets(&[SECRET]), &policy());
    let token = sign_text(r#"{"alg":"HS256","alg":"HS256"}"#, &unique);
    assertion_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        &policy(),
        "unique member names",
    );
}

#[test]
fn descriptions_never_echo_forbidden_characters_or_the_token() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let token = key.sign(&json!({"kid": "evil\"kid\\\n"}), &claims_with(json!({})));
    let err = verify_client_assertion(
        &token,
        CLIENT,
        ClientCredential::Keys(&keys),
        &policy(),
        now(),
    )
    .unwrap_err();
    assert!(
        err.description.contains("unknown kid 'evil?kid??'"),
        "{}",
        err.description
    );
    assert!(!err.description.contains(&token));
    let long_kid = "k".repeat(500);
    let token = key.sign(&json!({ "kid": long_kid }), &claims_with(json!({})));
    let err = verify_client_assertion(
        &token,
        CLIENT,
        ClientCredential::Keys(&keys),
        &policy(),
        now(),
    )
    .unwrap_err();
    assert!(err.description.len() < 200, "{}", err.description);
    assert_eq!(description_safe("a\"b\\c\u{e9}", 10), "a?b?c?");
}

// ---------------------------------------------------------------------------------------------
// Request objects (JAR-02..JAR-08, VAL-01)

fn ro_claims(extra: Value) -> Value {
    let mut claims = request_object_claims(CLIENT, ISSUER, &[("scope", "openid")], now());
    merge(&mut claims, &extra);
    claims
}

fn ro_err(token: &str, credential: ClientCredential<'_>, words: &str) {
    expect_err(
        verify_request_object(token, CLIENT, credential, ISSUER, now()),
        JwtErrorKind::InvalidRequestObject,
        words,
    );
}

fn ro_ok(token: &str, credential: ClientCredential<'_>) -> RequestObject {
    verify_request_object(token, CLIENT, credential, ISSUER, now())
        .unwrap_or_else(|e| panic!("request object refused: {e}"))
}

#[test]
fn request_object_params_in_claim_order() {
    let payload = format!(
        r#"{{"iss":"{CLIENT}","response_type":"code","aud":"{ISSUER}","client_id":"{CLIENT}","scope":"openid profile","exp":{},"max_age":300,"claims":{{"userinfo":{{"email":null}}}},"authorization_details":[{{"type":"payment"}}],"ui":true,"nonce":null,"state":"","redirect_uri":"https://client.example/cb","iat":{},"nbf":{},"jti":"j"}}"#,
        at(300),
        at(0),
        at(0)
    );
    let token = sign_text(r#"{"alg":"HS256"}"#, &payload);
    let object = ro_ok(&token, ClientCredential::Secrets(&[SECRET]));
    let params: Vec<(&str, &str)> = object
        .params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        params,
        [
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("scope", "openid profile"),
            ("max_age", "300"),
            ("claims", r#"{"userinfo":{"email":null}}"#),
            ("authorization_details", r#"[{"type":"payment"}]"#),
            ("ui", "true"),
            ("redirect_uri", "https://client.example/cb"),
        ]
    );
    assert_eq!(object.expires_at, Some(now() + Duration::from_secs(300)));
}

#[test]
fn request_object_signed_with_keys_or_secret() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let token = request_object(&key, CLIENT, ISSUER, &[("scope", "openid")], now());
    let object = ro_ok(&token, ClientCredential::Keys(&keys));
    assert!(object.params.contains(&("scope".into(), "openid".into())));
    let token = sign_hmac(SECRET, Algorithm::HS256, &json!({}), &ro_claims(json!({})));
    ro_ok(&token, ClientCredential::Secrets(&[SECRET]));
    // Wrong credential kinds.
    ro_err(&token, ClientCredential::Keys(&keys), "HMAC");
    let token = request_object(
        &TestKey::rsa("r", Algorithm::RS256, 0),
        CLIENT,
        ISSUER,
        &[],
        now(),
    );
    ro_err(
        &token,
        ClientCredential::Secrets(&[SECRET]),
        "shared secret",
    );
}

#[test]
fn request_object_bad_signature_or_key_refused() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let token = request_object(&TestKey::es256("k"), CLIENT, ISSUER, &[], now());
    ro_err(
        &token,
        ClientCredential::Keys(&keys),
        "signature does not verify",
    );
    let token = request_object(&TestKey::es256("x"), CLIENT, ISSUER, &[], now());
    ro_err(&token, ClientCredential::Keys(&keys), "unknown kid 'x'");
}

#[test]
fn request_object_alg_none_refused() {
    let keys = client_keys(&[&TestKey::es256("k")]);
    let token = unsigned(
        &json!({"typ": "oauth-authz-req+jwt"}),
        &ro_claims(json!({})),
    );
    ro_err(&token, ClientCredential::Keys(&keys), "alg none");
}

#[test]
fn request_object_iss_and_client_id_rules() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let cases = [
        (json!({"iss": "other"}), "iss is not the client_id"),
        (json!({"iss": null}), "lacks iss"),
        (
            json!({"client_id": "other"}),
            "does not match the authenticated client",
        ),
        (json!({"client_id": null}), "lacks the client_id claim"),
        (
            json!({"iss": "other", "client_id": "other"}),
            "iss is not the client_id",
        ),
        (
            json!({"request_uri": "urn:ietf:params:oauth:request_uri:x"}),
            "request_uri",
        ),
        (json!({"request": "a.b.c"}), "nested request"),
    ];
    for (extra, words) in cases {
        let token = key.sign(&json!({}), &ro_claims(extra));
        ro_err(&token, ClientCredential::Keys(&keys), words);
    }
}

#[test]
fn request_object_audience_rules() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    for aud in [
        json!(ISSUER),
        json!([ISSUER, "https://x"]),
        json!(["https://x", ISSUER]),
    ] {
        let token = key.sign(&json!({}), &ro_claims(json!({ "aud": aud })));
        ro_ok(&token, ClientCredential::Keys(&keys));
    }
    let refused = [
        (json!(PAR), "aud does not name this server"),
        (json!(TOKEN), "aud does not name this server"),
        (json!("https://other"), "aud does not name this server"),
        (json!([PAR]), "aud does not name this server"),
        (Value::Null, "lacks aud"),
        (json!(1), "neither a string"),
    ];
    for (aud, words) in refused {
        let token = key.sign(&json!({}), &ro_claims(json!({ "aud": aud })));
        ro_err(&token, ClientCredential::Keys(&keys), words);
    }
}

#[test]
fn request_object_typ_rules() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    for typ in [
        Value::Null,
        json!("JWT"),
        json!("oauth-authz-req+jwt"),
        json!("application/oauth-authz-req+jwt"),
    ] {
        let token = key.sign(&json!({ "typ": typ }), &ro_claims(json!({})));
        ro_ok(&token, ClientCredential::Keys(&keys));
    }
    for typ in ["dpop+jwt", "at+jwt", "jose"] {
        let token = key.sign(&json!({ "typ": typ }), &ro_claims(json!({})));
        ro_err(
            &token,
            ClientCredential::Keys(&keys),
            "expected none, JWT or oauth-authz-req+jwt",
        );
    }
}

#[test]
fn request_object_time_rules() {
    let key = TestKey::es256("k");
    let keys = client_keys(&[&key]);
    let token = key.sign(
        &json!({}),
        &ro_claims(json!({"exp": null, "nbf": null, "iat": null})),
    );
    assert_eq!(
        ro_ok(&token, ClientCredential::Keys(&keys)).expires_at,
        None
    );
    let token = key.sign(&json!({}), &ro_claims(json!({"nbf": at(8), "iat": at(8)})));
    ro_ok(&token, ClientCredential::Keys(&keys));
    let refused = [
        (json!({"exp": at(0)}), "has expired"),
        (json!({"exp": at(-60)}), "has expired"),
        (json!({"nbf": at(70)}), "not valid yet"),
        (json!({"iat": at(70)}), "iat is in the future"),
        (json!({"exp": "soon"}), "exp is not a NumericDate"),
    ];
    for (extra, words) in refused {
        let token = key.sign(&json!({}), &ro_claims(extra));
        ro_err(&token, ClientCredential::Keys(&keys), words);
    }
}

#[test]
fn request_object_fapi2_profile() {
    let es = TestKey::es256("es");
    let rs = TestKey::rsa("rs", Algorithm::RS256, 0);
    let keys = client_keys(&[&es, &rs]);
    let verify = |token: &str| {
        verify_request_object_with_profile(
            token,
            CLIENT,
            ClientCredential::Keys(&keys),
            ISSUER,
            true,
            now(),
        )
    };
    assert!(verify(&es.sign(&json!({}), &ro_claims(json!({})))).is_ok());
    let kind = JwtErrorKind::InvalidRequestObject;
    expect_err(
        verify(&rs.sign(&json!({}), &ro_claims(json!({})))),
        kind,
        "allowed: PS256",
    );
    expect_err(
        verify(&es.sign(&json!({}), &ro_claims(json!({"exp": null})))),
        kind,
        "lacks exp",
    );
    expect_err(
        verify(&es.sign(&json!({}), &ro_claims(json!({"nbf": null})))),
        kind,
        "lacks nbf",
    );
    expect_err(
        verify(&es.sign(
            &json!({}),
            &ro_claims(json!({"nbf": at(0), "exp": at(3601)})),
        )),
        kind,
        "exceeds 60 minutes",
    );
    expect_err(
        verify(&es.sign(
            &json!({}),
            &ro_claims(json!({"nbf": at(-4200), "exp": at(60)})),
        )),
        kind,
        "exceeds 60 minutes",
    );
    assert!(verify(&es.sign(&json!({}), &ro_claims(json!({"nbf": at(8)})))).is_ok());
    let token = sign_hmac(SECRET, Algorithm::HS256, &json!({}), &ro_claims(json!({})));
    expect_err(
        verify_request_object_with_profile(
            &token,
            CLIENT,
            ClientCredential::Secrets(&[SECRET]),
            ISSUER,
            true,
            now(),
        ),
        kind,
        "FAPI 2.0",
    );
}

// ---------------------------------------------------------------------------------------------
// DPoP proofs (DPOP-02, DPOP-03)

const MAX_AGE: Duration = Duration::from_secs(60);

fn dpop(proof: &str, htm: &str, htu: &str) -> Result<DpopProof, JwtError> {
    verify_dpop_proof(proof, htm, htu, now(), MAX_AGE)
}

fn dpop_err(proof: &str, words: &str) {
    expect_err(
        dpop(proof, "POST", PAR),
        JwtErrorKind::InvalidDpopProof,
        words,
    );
}

/// RFC 7638 §3 computed independently of the library: required members, sorted, no spaces.
fn expected_jkt(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => &["e", "kty", "n"],
    };
    let body: Vec<String> = members
        .iter()
        .map(|m| format!(r#""{m}":"{}""#, jwk[*m].as_str().unwrap()))
        .collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{}}}", body.join(","))))
}

#[test]
fn dpop_good_proofs() {
    for key in [
        TestKey::es256("x"),
        TestKey::ed25519("x"),
        TestKey::rsa("x", Algorithm::PS256, 0),
        TestKey::es384("x"),
    ] {
        let proof = dpop_proof(&key, "POST", PAR, now());
        let verified = dpop(&proof, "POST", PAR).unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(verified.jkt, expected_jkt(&key.bare_jwk()), "{:?}", key.alg);
        assert_eq!(verified.issued_at, now());
        assert!(verified.jti.starts_with("jti-"));
    }
}

#[test]
fn dpop_thumbprint_matches_rfc7638_example() {
    let example = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    let key = parse_public_jwk(&example).expect("RFC 7638 example key");
    assert_eq!(
        thumbprint(&key).as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    assert_eq!(
        expected_jkt(&example),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn dpop_wrong_htu_or_htm_refused() {
    let key = TestKey::es256("x");
    let proof = dpop_proof(&key, "POST", PAR, now());
    expect_err(
        dpop(&proof, "POST", TOKEN),
        JwtErrorKind::InvalidDpopProof,
        "htu does not match",
    );
    expect_err(
        dpop(&proof, "GET", PAR),
        JwtErrorKind::InvalidDpopProof,
        "htm does not match",
    );
    expect_err(
        dpop(&proof, "post", PAR),
        JwtErrorKind::InvalidDpopProof,
        "htm does not match",
    );
    // Query and fragment are ignored on both sides (RFC 9449 §4.3 step 9), as are the case of
    // scheme and host and a default port.
    assert!(dpop(&proof, "POST", &format!("{PAR}?x=1#f")).is_ok());
    let proof = dpop_proof(&key, "POST", "HTTPS://AS.example.com:443/as/par?a=b", now());
    assert!(dpop(&proof, "POST", PAR).is_ok());
    let proof = dpop_proof(&key, "POST", "https://as.example.com/AS/par", now());
    dpop_err(&proof, "htu does not match");
    let proof = dpop_proof(&key, "POST", "as.example.com/as/par", now());
    dpop_err(&proof, "htu does not match");
}

#[test]
fn dpop_iat_window() {
    let key = TestKey::es256("x");
    for offset in [-59, 0, 59] {
        let proof = key.sign(
            &json!({"typ": "dpop+jwt", "kid": null, "jwk": key.bare_jwk()}),
            &json!({"htm": "POST", "htu": PAR, "iat": at(offset), "jti": "j"}),
        );
        assert!(dpop(&proof, "POST", PAR).is_ok(), "iat offset {offset}");
    }
    for (offset, words) in [(-61, "in the past"), (61, "in the future")] {
        let proof = key.sign(
            &json!({"typ": "dpop+jwt", "kid": null, "jwk": key.bare_jwk()}),
            &json!({"htm": "POST", "htu": PAR, "iat": at(offset), "jti": "j"}),
        );
        dpop_err(&proof, words);
    }
    let proof = key.sign(
        &json!({"typ": "dpop+jwt", "kid": null, "jwk": key.bare_jwk()}),
        &json!({"htm": "POST", "htu": PAR, "jti": "j"}),
    );
    dpop_err(&proof, "lacks iat");
}

#[test]
fn dpop_private_or_symmetric_jwk_refused() {
    let key = TestKey::es256("x");
    let mut private = key.bare_jwk();
    private["d"] = json!("AQAB");
    let proof = key.sign(
        &json!({"typ": "dpop+jwt", "kid": null, "jwk": private}),
        &dpop_claims("POST", PAR, now()),
    );
    dpop_err(&proof, "jwk contains private key material");
    // Symmetric key and alg: refused at the alg already.
    let proof = sign_hmac(
        SECRET,
        Algorithm::HS256,
        &json!({"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(SECRET)}}),
        &dpop_claims("POST", PAR, now()),
    );
    dpop_err(&proof, "an HMAC alg is never accepted");
    let proof = key.sign(
        &json!({"typ": "dpop+jwt", "kid": null, "jwk": {"kty": "oct", "k": "AQAB"}}),
        &dpop_claims("POST", PAR, now()),
    );
    dpop_err(&proof, "symmetric key");
}

#[test]
fn dpop_header_rules() {
    let key = TestKey::es256("x");
    let claims = dpop_claims("POST", PAR, now());
    let header = |extra: Value| {
        let mut h = json!({"typ": "dpop+jwt", "kid": null, "jwk": key.bare_jwk()});
        merge(&mut h, &extra);
        h
    };
    dpop_err(
        &key.sign(&header(json!({"typ": null})), &claims),
        "lacks typ dpop+jwt",
    );
    dpop_err(
        &key.sign(&header(json!({"typ": "JWT"})), &claims),
        "expected dpop+jwt",
    );
    dpop_err(
        &key.sign(&header(json!({"jwk": null})), &claims),
        "lacks jwk",
    );
    dpop_err(&unsigned(&header(json!({})), &claims), "alg none");
    // The jwk is someone else's key: the signature does not verify with it.
    let other = TestKey::es256("y");
    dpop_err(
        &key.sign(&header(json!({"jwk": other.bare_jwk()})), &claims),
        "signature does not verify",
    );
    // The jwk does not fit the alg.
    let ed = TestKey::ed25519("z");
    dpop_err(
        &key.sign(&header(json!({"jwk": ed.bare_jwk()})), &claims),
        "does not fit alg ES256",
    );
    // Weak RSA key in the header.
    let small = json!({"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(vec![0xC5; 128])});
    dpop_err(
        &key.sign(&header(json!({"jwk": small})), &claims),
        "at least 2048",
    );
}

#[test]
fn dpop_claim_rules() {
    let key = TestKey::es256("x");
    let header = json!({"typ": "dpop+jwt", "kid": null, "jwk": key.bare_jwk()});
    let cases = [
        (json!({"jti": null}), "lacks jti"),
        (json!({"jti": ""}), "jti is empty"),
        (json!({"htm": null}), "lacks htm"),
        (json!({"htu": null}), "lacks htu"),
        (json!({"htu": 1}), "htu is not a string"),
    ];
    for (extra, words) in cases {
        let mut claims = dpop_claims("POST", PAR, now());
        merge(&mut claims, &extra);
        dpop_err(&key.sign(&header, &claims), words);
    }
}

#[test]
fn htu_comparison() {
    assert!(same_target(
        "https://a.example/p",
        "https://a.example/p?q#f"
    ));
    assert!(same_target(
        "https://A.EXAMPLE:443/p",
        "https://a.example/p"
    ));
    assert!(same_target("http://a.example:80/p", "http://a.example/p"));
    assert!(same_target("https://a.example", "https://a.example/"));
    assert!(!same_target(
        "https://a.example:8443/p",
        "https://a.example/p"
    ));
    assert!(!same_target("http://a.example/p", "https://a.example/p"));
    assert!(!same_target("https://a.example/p/", "https://a.example/p"));
    assert!(!same_target("/p", "/p"));
    assert!(!same_target("https:///p", "https:///p"));
}

proptest::proptest! {
    #[test]
    fn jwt_error_descriptions_keep_to_rfc_6749_and_their_cap(
        text in proptest::prelude::any::<String>(),
        max in 0usize..40,
    ) {
        // Values copied from a token (an alg, a kid) end up in error_description.
        let safe = description_safe(&text, max);
        proptest::prop_assert!(
            safe.chars().all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')),
            "{:?}", safe
        );
        let length = text.chars().count();
        let expected = if length > max { max + 3 } else { length };
        proptest::prop_assert_eq!(safe.chars().count(), expected);
    }
}
