//! Signing helpers for tests of the `jwt` feature.
//!
//! Keys are generated when a test runs (never committed); tokens are signed with the same JOSE
//! library the crate verifies with, but the header and claims are plain JSON so a test can put
//! anything in them (`alg: none`, a private `jwk`, duplicate-free but odd claims).
//!
//! Used by the crate's own unit tests (`src/jwt/tests.rs` includes this file) and by
//! integration tests (`mod common;` with `#[cfg(feature = "jwt")] pub mod jwt;` in
//! `tests/common/mod.rs`).
#![allow(dead_code)]

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

/// A generated private key with its public JWK.
pub struct TestKey {
    /// The `kid` put in the public JWK and in signed headers.
    pub kid: String,
    /// The algorithm [`TestKey::sign`] uses.
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// Public members only (`kty`, `crv`, `x`, `y` / `n`, `e`), no `kid`.
    public: Value,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    /// A fresh P-256 key for `ES256`.
    pub fn es256(kid: &str) -> Self {
        use p256::{elliptic_curve::sec1::ToEncodedPoint, pkcs8::EncodePrivateKey};
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let der = secret
            .to_pkcs8_der()
            .expect("PKCS#8 encoding of a P-256 key");
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            public: json!({
                "kty": "EC", "crv": "P-256",
                "x": b64(point.x().expect("uncompressed point")),
                "y": b64(point.y().expect("uncompressed point")),
            }),
        }
    }

    /// A fresh P-384 key for `ES384`.
    pub fn es384(kid: &str) -> Self {
        use p384::{elliptic_curve::sec1::ToEncodedPoint, pkcs8::EncodePrivateKey};
        let secret = p384::SecretKey::random(&mut rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let der = secret
            .to_pkcs8_der()
            .expect("PKCS#8 encoding of a P-384 key");
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES384,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            public: json!({
                "kty": "EC", "crv": "P-384",
                "x": b64(point.x().expect("uncompressed point")),
                "y": b64(point.y().expect("uncompressed point")),
            }),
        }
    }

    /// A fresh Ed25519 key for `EdDSA`.
    pub fn ed25519(kid: &str) -> Self {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let signing = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let der = signing
            .to_pkcs8_der()
            .expect("PKCS#8 encoding of an Ed25519 key");
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public: json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": b64(signing.verifying_key().as_bytes()),
            }),
        }
    }

    /// A 2048-bit RSA key for `RS256` or `PS256`. RSA generation is slow in debug builds, so
    /// `slot` (0 or 1) picks one of two keys generated once per test binary: use different
    /// slots when a test needs two different RSA keys.
    pub fn rsa(kid: &str, alg: Algorithm, slot: usize) -> Self {
        use rsa::{pkcs1::EncodeRsaPrivateKey, traits::PublicKeyParts};
        static KEYS: [OnceLock<rsa::RsaPrivateKey>; 2] = [OnceLock::new(), OnceLock::new()];
        let private = KEYS[slot].get_or_init(|| {
            rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key generation")
        });
        let der = private
            .to_pkcs1_der()
            .expect("PKCS#1 encoding of an RSA key");
        Self {
            kid: kid.to_owned(),
            alg,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            public: json!({
                "kty": "RSA",
                "n": b64(&private.n().to_bytes_be()),
                "e": b64(&private.e().to_bytes_be()),
            }),
        }
    }

    /// Signs the exact `header` and `claims` bytes with this key's algorithm.
    pub fn sign_segments(&self, header: &[u8], claims: &[u8]) -> String {
        sign_segments(header, claims, &self.encoding, self.alg)
    }

    /// The public JWK with `kid`, as a client registers it.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public.clone();
        jwk["kid"] = Value::String(self.kid.clone());
        jwk
    }

    /// The public JWK without `kid`, as a DPoP proof carries it.
    pub fn bare_jwk(&self) -> Value {
        self.public.clone()
    }

    /// `{"keys": [public_jwk]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// Signs `claims` with header `{"alg": <alg>, "kid": <kid>}` merged with `header`
    /// (a `null` member in `header` removes that member, e.g. `{"kid": null}`).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let mut full = json!({ "alg": alg_name(self.alg), "kid": self.kid });
        merge(&mut full, header);
        sign_raw(&full, claims, &self.encoding, self.alg)
    }
}

/// The JWS `alg` name of a jsonwebtoken algorithm.
pub fn alg_name(alg: Algorithm) -> String {
    serde_json::to_value(alg)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .expect("algorithm name")
}

/// Merges `extra`'s members into `base` (both objects); `null` removes a member.
pub fn merge(base: &mut Value, extra: &Value) {
    let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) else {
        return;
    };
    for (name, value) in extra {
        if value.is_null() {
            base.remove(name);
        } else {
            base.insert(name.clone(), value.clone());
        }
    }
}

/// A compact JWS of exactly this header and these claims, signed with `key` using `alg`.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    sign_segments(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        key,
        alg,
    )
}

/// A compact JWS over these exact header and claims bytes, which need not be JSON (the fuzz
/// targets sign whatever the fuzzer wrote).
pub fn sign_segments(header: &[u8], claims: &[u8], key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("signing");
    format!("{input}.{signature}")
}

/// Signs with a shared secret (`client_secret_jwt`): header `{"alg": <alg>}` merged with
/// `header`.
pub fn sign_hmac(secret: &[u8], alg: Algorithm, header: &Value, claims: &Value) -> String {
    let mut full = json!({ "alg": alg_name(alg) });
    merge(&mut full, header);
    sign_raw(&full, claims, &EncodingKey::from_secret(secret), alg)
}

/// An unsecured JWT (`alg: none`, empty signature) with `header` merged in.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    let mut full = json!({ "alg": "none" });
    merge(&mut full, header);
    format!(
        "{}.{}.",
        b64(full.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Seconds since the epoch.
pub fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A `jti` unique within the test process and across runs.
pub fn unique_jti() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("jti-{nanos}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// RFC 7523 §3 claims: `iss` = `sub` = `client_id`, `aud`, `iat` = now, `exp` = now + 60 s,
/// a fresh `jti`.
pub fn client_assertion_claims(client_id: &str, aud: &str, now: SystemTime) -> Value {
    let now = secs(now);
    json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "iat": now, "exp": now + 60, "jti": unique_jti(),
    })
}

/// A `private_key_jwt` assertion signed by `key` (with its `kid`).
pub fn client_assertion(key: &TestKey, client_id: &str, aud: &str, now: SystemTime) -> String {
    key.sign(&json!({}), &client_assertion_claims(client_id, aud, now))
}

/// A `client_secret_jwt` assertion (HS256).
pub fn client_assertion_hs256(
    secret: &[u8],
    client_id: &str,
    aud: &str,
    now: SystemTime,
) -> String {
    sign_hmac(
        secret,
        Algorithm::HS256,
        &json!({}),
        &client_assertion_claims(client_id, aud, now),
    )
}

/// RFC 9101 request object claims: `iss` = `client_id` claim = `client_id`, `aud` = issuer,
/// `iat` = `nbf` = now, `exp` = now + 300 s, a fresh `jti`, then `params` in order.
pub fn request_object_claims(
    client_id: &str,
    issuer: &str,
    params: &[(&str, &str)],
    now: SystemTime,
) -> Value {
    let now = secs(now);
    let mut claims = json!({
        "iss": client_id, "aud": issuer, "client_id": client_id,
        "iat": now, "nbf": now, "exp": now + 300, "jti": unique_jti(),
    });
    for (name, value) in params {
        claims[*name] = Value::String((*value).to_owned());
    }
    claims
}

/// A request object signed by `key`, `typ: oauth-authz-req+jwt`.
pub fn request_object(
    key: &TestKey,
    client_id: &str,
    issuer: &str,
    params: &[(&str, &str)],
    now: SystemTime,
) -> String {
    key.sign(
        &json!({ "typ": "oauth-authz-req+jwt" }),
        &request_object_claims(client_id, issuer, params, now),
    )
}

/// RFC 9449 proof claims: `htm`, `htu`, `iat` = now, a fresh `jti`.
pub fn dpop_claims(htm: &str, htu: &str, now: SystemTime) -> Value {
    json!({ "htm": htm, "htu": htu, "iat": secs(now), "jti": unique_jti() })
}

/// A DPoP proof by `key`: `typ: dpop+jwt`, the public `jwk` in the header, no `kid`.
pub fn dpop_proof(key: &TestKey, htm: &str, htu: &str, now: SystemTime) -> String {
    key.sign(
        &json!({ "typ": "dpop+jwt", "kid": null, "jwk": key.bare_jwk() }),
        &dpop_claims(htm, htu, now),
    )
}
