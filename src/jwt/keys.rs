//! Client public keys (JWK, RFC 7517), validated once at load.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{jwk::Jwk, Algorithm, DecodingKey};
use serde_json::{json, Map, Value};

/// JWK members that only private (or symmetric) keys carry (RFC 7518 §6.2.2, §6.3.2, §6.4.1;
/// RFC 8037 §2 reuses `d`).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

const RSA_MIN_BITS: usize = 2048;
/// The RustCrypto RSA verifier refuses larger moduli; say so at load rather than at first use.
const RSA_MAX_BITS: usize = 4096;

/// The key types this module verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyType {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyType {
    /// Whether a signature with `alg` can be made with a key of this type.
    pub(super) fn fits(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (Self::Rsa, Algorithm::RS256 | Algorithm::PS256)
                | (Self::P256, Algorithm::ES256)
                | (Self::P384, Algorithm::ES384)
                | (Self::Ed25519, Algorithm::EdDSA)
        )
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::P384 => "EC P-384",
            Self::Ed25519 => "OKP Ed25519",
        }
    }
}

/// One validated public key.
#[derive(Clone)]
pub(super) struct PublicKey {
    pub(super) kid: Option<String>,
    pub(super) kty: KeyType,
    /// The JWK's own `alg`, if it named one: then only that algorithm is accepted with it.
    pub(super) alg: Option<Algorithm>,
    pub(super) decoding: DecodingKey,
    /// The public members only, as the JOSE library's type (for RFC 7638 thumbprints).
    pub(super) jwk: Jwk,
}

impl PublicKey {
    pub(super) fn fits(&self, alg: Algorithm) -> bool {
        self.kty.fits(alg) && self.alg.map_or(true, |own| own == alg)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("kty", &self.kty.name())
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Parses one JWK that must be a public signature key of a supported type.
///
/// The reason in `Err` is a sentence fragment for an operator (clients file) or a client (DPoP).
pub(super) fn parse_public_jwk(value: &Value) -> Result<PublicKey, String> {
    let Value::Object(jwk) = value else {
        return Err("is not a JSON object".into());
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(if *member == "k" {
            "is a symmetric key (member k); only public keys are accepted".into()
        } else {
            format!(
                "contains private key material (member {member}); only public keys are accepted"
            )
        });
    }
    let kty = string_member(jwk, "kty")?;
    let (kty, public): (KeyType, Value) = match kty {
        "RSA" => {
            let n = base64url_member(jwk, "n")?;
            let e = base64url_member(jwk, "e")?;
            let bits = bit_length(&n);
            if bits < RSA_MIN_BITS {
                return Err(format!(
                    "is an RSA key of {bits} bits; at least {RSA_MIN_BITS} are required"
                ));
            }
            if bits > RSA_MAX_BITS {
                return Err(format!(
                    "is an RSA key of {bits} bits; at most {RSA_MAX_BITS} are supported"
                ));
            }
            if !valid_rsa_exponent(&e) {
                return Err("has an invalid RSA exponent e".into());
            }
            (
                KeyType::Rsa,
                json!({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}),
            )
        }
        "EC" => {
            let (kty, len) = match string_member(jwk, "crv")? {
                "P-256" => (KeyType::P256, 32),
                "P-384" => (KeyType::P384, 48),
                other => {
                    return Err(format!(
                        "uses unsupported curve {} (supported: P-256, P-384)",
                        super::quoted(other)
                    ))
                }
            };
            for coord in ["x", "y"] {
                if base64url_member(jwk, coord)?.len() != len {
                    return Err(format!("has an EC coordinate {coord} of the wrong length"));
                }
            }
            let public = json!({"kty": "EC", "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]});
            (kty, public)
        }
        "OKP" => {
            match string_member(jwk, "crv")? {
                "Ed25519" => {}
                other => {
                    return Err(format!(
                        "uses unsupported curve {} (supported: Ed25519)",
                        super::quoted(other)
                    ))
                }
            }
            if base64url_member(jwk, "x")?.len() != 32 {
                return Err("has an Ed25519 public key x of the wrong length".into());
            }
            (
                KeyType::Ed25519,
                json!({"kty": "OKP", "crv": "Ed25519", "x": jwk["x"]}),
            )
        }
        other => {
            return Err(format!(
                "has unsupported kty {} (supported: RSA, EC, OKP)",
                super::quoted(other)
            ))
        }
    };
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            let alg = super::jws::asymmetric_alg(name).ok_or_else(|| {
                format!(
                    "names alg {}, which is not supported (supported: {})",
                    super::quoted(name),
                    super::jws::ASYMMETRIC_NAMES
                )
            })?;
            if !kty.fits(alg) {
                return Err(format!(
                    "names alg {name}, which does not fit a {} key",
                    kty.name()
                ));
            }
            Some(alg)
        }
        Some(_) => return Err("has a non-string alg".into()),
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("has a non-string kid".into()),
    };
    let jwk: Jwk = serde_json::from_value(public).map_err(|_| "is not a valid JWK".to_owned())?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| "is not a valid JWK".to_owned())?;
    Ok(PublicKey {
        kid,
        kty,
        alg,
        decoding,
        jwk,
    })
}

fn string_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match jwk.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("has a non-string {name}")),
        None => Err(format!("lacks the required member {name}")),
    }
}

fn base64url_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(string_member(jwk, name)?)
        .map_err(|_| format!("has a member {name} that is not unpadded base64url"))
}

/// Bit length of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|b| *b != 0) {
        Some(first) => (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize,
        None => 0,
    }
}

/// An odd exponent of at most 32 bits, at least 3 (what verifiers accept in practice).
fn valid_rsa_exponent(e: &[u8]) -> bool {
    let e: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
    if e.is_empty() || e.len() > 4 {
        return false;
    }
    let value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    value >= 3 && value % 2 == 1
}

/// A client's registered public keys (`jwks` in the clients file), parsed and validated when the
/// clients file is loaded, so that a bad key is an error at start-up and never at a request.
///
/// Accepted keys: RSA (2048 to 4096 bits; `RS256`, `PS256`), EC P-256 (`ES256`), EC P-384
/// (`ES384`), OKP Ed25519 (`EdDSA`). Every key needs a unique `kid`. A key that names an `alg`
/// is used only with that algorithm. Keys marked for another use than signatures (`use` other
/// than `sig`, or `key_ops` without `verify`) are skipped, so a set that also publishes
/// encryption keys loads.
///
/// ```
/// let jwks = serde_json::json!({"keys": [{
///     "kty": "EC", "crv": "P-256", "kid": "2024-1",
///     "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///     "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
/// }]});
/// let keys = tower_par::ClientKeys::from_jwks(&jwks).unwrap();
/// assert_eq!(keys.kids().collect::<Vec<_>>(), ["2024-1"]);
///
/// // Private key material is refused.
/// let mut private = jwks.clone();
/// private["keys"][0]["d"] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI".into();
/// let err = tower_par::ClientKeys::from_jwks(&private).unwrap_err();
/// assert_eq!(err.kid(), Some("2024-1"));
/// ```
#[derive(Clone)]
pub struct ClientKeys {
    keys: Vec<PublicKey>,
}

impl ClientKeys {
    /// Parses an inline JWK Set (`{"keys": [...]}`).
    ///
    /// Refused: a value that is not a key set, an empty set, a key without `kid`, duplicate
    /// `kid`s, private or symmetric key material (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`;
    /// checked on every key, skipped ones included), unsupported `kty`/`crv`/`alg`, RSA keys
    /// under 2048 bits.
    pub fn from_jwks(value: &Value) -> Result<Self, KeyError> {
        let Some(entries) = value.get("keys").and_then(Value::as_array) else {
            return Err(KeyError::set(
                "is not a JWK Set: expected an object with a keys array",
            ));
        };
        let mut keys: Vec<PublicKey> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
            let fail = |reason: String| KeyError {
                index: Some(index),
                kid: kid.clone(),
                reason,
            };
            // Leaked private material is refused even on keys that would be skipped.
            if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| entry.get(**m).is_some()) {
                return Err(fail(if *member == "k" {
                    "is a symmetric key (member k); register public keys only".into()
                } else {
                    format!(
                        "contains private key material (member {member}); register public keys only"
                    )
                }));
            }
            if !for_signatures(entry) {
                continue;
            }
            let key = parse_public_jwk(entry).map_err(fail)?;
            let Some(kid) = key.kid.as_deref() else {
                return Err(fail("has no kid; every registered key needs one".into()));
            };
            if kid.is_empty() {
                return Err(fail("has an empty kid".into()));
            }
            if keys.iter().any(|k| k.kid.as_deref() == Some(kid)) {
                return Err(fail("repeats a kid used by an earlier key".into()));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError::set("contains no signature verification key"));
        }
        Ok(Self { keys })
    }

    /// The `kid`s of the loaded keys, in set order.
    pub fn kids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    pub(super) fn keys(&self) -> &[PublicKey] {
        &self.keys
    }
}

/// `use` absent or `sig`, and `key_ops` absent or containing `verify` (RFC 7517 §4.2, §4.3).
fn for_signatures(jwk: &Value) -> bool {
    let use_ok = jwk.get("use").map_or(true, |u| u == "sig");
    let ops_ok = jwk.get("key_ops").map_or(true, |ops| {
        ops.as_array()
            .is_some_and(|ops| ops.iter().any(|o| o == "verify"))
    });
    use_ok && ops_ok
}

impl fmt::Debug for ClientKeys {
    // Lists kids and key types only: key material stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.keys
                    .iter()
                    .map(|k| format!("{} ({})", k.kid.as_deref().unwrap_or("?"), k.kty.name())),
            )
            .finish()
    }
}

/// Why a client's JWK Set was refused at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    index: Option<usize>,
    kid: Option<String>,
    reason: String,
}

impl KeyError {
    fn set(reason: &str) -> Self {
        Self {
            index: None,
            kid: None,
            reason: reason.to_owned(),
        }
    }

    /// The `kid` of the offending key, when it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, &self.kid) {
            (Some(index), Some(kid)) => {
                write!(f, "JWK Set: keys[{index}] (kid {kid:?}) {}", self.reason)
            }
            (Some(index), None) => write!(f, "JWK Set: keys[{index}] {}", self.reason),
            (None, _) => write!(f, "JWK Set {}", self.reason),
        }
    }
}

impl std::error::Error for KeyError {}
