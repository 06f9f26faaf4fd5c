//! Compact JWS handling shared by the three verifiers: header pre-checks, the algorithm
//! allow-lists, key selection, and the signature check itself (done by `jsonwebtoken`).

use std::collections::HashSet;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};

use super::{claims::Object, keys::PublicKey, quoted, ClientCredential, JwtError, JwtErrorKind};

/// `private_key_jwt`, request objects of key-holding clients, DPoP proofs.
pub(super) const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::RS256,
    Algorithm::EdDSA,
];
pub(super) const ASYMMETRIC_NAMES: &str = "ES256, ES384, PS256, RS256, EdDSA";
/// FAPI 2.0 Security Profile §5.4.1 (FAPI-10).
pub(super) const FAPI2: &[Algorithm] = &[Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];
const FAPI2_NAMES: &str = "PS256, ES256, EdDSA";
/// `client_secret_jwt` and HMAC request objects.
pub(super) const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const HMAC_NAMES: &str = "HS256, HS384, HS512";

/// Matches a JWS `alg` name against the algorithms this module supports at all.
fn alg_from_name(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "PS256" => Algorithm::PS256,
        "RS256" => Algorithm::RS256,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// An asymmetric algorithm from [`ASYMMETRIC`], by name.
pub(super) fn asymmetric_alg(name: &str) -> Option<Algorithm> {
    alg_from_name(name).filter(|alg| ASYMMETRIC.contains(alg))
}

/// Which algorithms one verification accepts.
#[derive(Clone, Copy, Debug)]
pub(super) enum AlgPolicy {
    /// Asymmetric algorithms; `fapi2` narrows them to [`FAPI2`].
    Asymmetric { fapi2: bool },
    /// HMAC only; none at all under FAPI 2.0 (§5.4.1 allows PS256, ES256, EdDSA only).
    Hmac { fapi2: bool },
}

impl AlgPolicy {
    pub(super) fn for_credential(credential: &ClientCredential<'_>, fapi2: bool) -> Self {
        match credential {
            ClientCredential::Keys(_) => Self::Asymmetric { fapi2 },
            ClientCredential::Secrets(_) => Self::Hmac { fapi2 },
        }
    }

    fn allowed(self) -> (&'static [Algorithm], &'static str) {
        match self {
            Self::Asymmetric { fapi2: false } => (ASYMMETRIC, ASYMMETRIC_NAMES),
            Self::Asymmetric { fapi2: true } => (FAPI2, FAPI2_NAMES),
            Self::Hmac { fapi2: false } => (HMAC, HMAC_NAMES),
            Self::Hmac { fapi2: true } => (&[], "none with a shared secret under FAPI 2.0"),
        }
    }
}

/// What the verifier is looking at, for error descriptions.
#[derive(Clone, Copy, Debug)]
pub(super) struct Context {
    pub(super) kind: JwtErrorKind,
    /// "client assertion", "request object", "DPoP proof".
    pub(super) what: &'static str,
}

impl Context {
    pub(super) fn error(self, detail: impl AsRef<str>) -> JwtError {
        JwtError::new(self.kind, format!("{} {}", self.what, detail.as_ref()))
    }
}

/// A compact JWS whose header passed the generic checks; nothing is verified yet.
#[derive(Debug)]
pub(super) struct Jws<'a> {
    token: &'a str,
    pub(super) header: Object,
    pub(super) alg: Algorithm,
}

impl<'a> Jws<'a> {
    /// Splits the token, decodes the header, refuses `alg: none`, `crit`, and any `alg` outside
    /// `policy`.
    pub(super) fn parse(token: &'a str, policy: AlgPolicy, cx: Context) -> Result<Self, JwtError> {
        let segments = token.split('.').count();
        if segments == 5 {
            return Err(cx.error("is encrypted (JWE); only signed JWTs are supported"));
        }
        if segments != 3 {
            return Err(cx.error("is not a compact JWS (expected three dot-separated parts)"));
        }
        let encoded = token.split('.').next().unwrap_or_default();
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| cx.error("header is not unpadded base64url"))?;
        let header: Object = serde_json::from_slice(&bytes)
            .map_err(|_| cx.error("header is not a JSON object with unique member names"))?;
        let alg_name = match header.str("alg") {
            Ok(Some(alg)) => alg,
            Ok(None) => return Err(cx.error("header lacks alg")),
            Err(()) => return Err(cx.error("header has a non-string alg")),
        };
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(cx.error("uses alg none; it must be signed"));
        }
        if header.str("kid").is_err() {
            return Err(cx.error("header has a non-string kid"));
        }
        if header.str("typ").is_err() {
            return Err(cx.error("header has a non-string typ"));
        }
        if header.contains("crit") {
            return Err(cx.error("header has crit; no JWS extensions are supported"));
        }
        let (allowed, names) = policy.allowed();
        let alg = alg_from_name(alg_name)
            .filter(|alg| allowed.contains(alg))
            .ok_or_else(|| {
                let reason = match policy {
                    AlgPolicy::Hmac { fapi2: false } if alg_from_name(alg_name).is_some() => {
                        " (the client is registered with a shared secret)"
                    }
                    AlgPolicy::Asymmetric { .. }
                        if alg_from_name(alg_name).is_some_and(|a| HMAC.contains(&a)) =>
                    {
                        " (an HMAC alg is never accepted where public keys verify)"
                    }
                    _ => "",
                };
                cx.error(format!(
                    "uses alg {}, which is not accepted here{reason}; allowed: {names}",
                    quoted(alg_name)
                ))
            })?;
        // The library parses the header again into its own type; refuse here what it would
        // refuse there, so that a later library error can only be about the signature or claims.
        jsonwebtoken::decode_header(token)
            .map_err(|_| cx.error("header is not a valid JOSE header"))?;
        Ok(Self { token, header, alg })
    }

    /// The header `typ`, compared as RFC 7515 §4.1.9 says: case-insensitively, with an optional
    /// `application/` prefix. `Err` when it is not a string.
    pub(super) fn typ(&self) -> Result<Option<String>, ()> {
        Ok(self.header.str("typ")?.map(|typ| {
            let typ = typ.to_ascii_lowercase();
            match typ.strip_prefix("application/") {
                Some(rest) => rest.to_owned(),
                None => typ,
            }
        }))
    }

    /// Verifies the signature with the client's credential and returns the claims.
    pub(super) fn verify_with(
        &self,
        credential: ClientCredential<'_>,
        cx: Context,
    ) -> Result<Object, JwtError> {
        match credential {
            ClientCredential::Secrets(secrets) => {
                // RFC 7518 §3.2: "A key of the same size as the hash output ... or larger MUST
                // be used with this algorithm."
                let min = match self.alg {
                    Algorithm::HS384 => 48,
                    Algorithm::HS512 => 64,
                    _ => 32,
                };
                let mut long_enough = secrets.iter().filter(|s| s.len() >= min).peekable();
                if long_enough.peek().is_none() {
                    return Err(cx.error(format!(
                        "uses {:?}, which needs a client secret of at least {min} bytes \
                         (RFC 7518 section 3.2); the registered secret is shorter",
                        self.alg
                    )));
                }
                // During a rotation any registered secret may have signed it.
                let mut first_error = None;
                for secret in long_enough {
                    match self.verify_key(&DecodingKey::from_secret(secret), cx) {
                        Ok(claims) => return Ok(claims),
                        Err(err) => {
                            first_error.get_or_insert(err);
                        }
                    }
                }
                Err(first_error.unwrap_or_else(|| cx.error("signature does not verify")))
            }
            ClientCredential::Keys(keys) => {
                let kid = match self.header.str("kid") {
                    Ok(kid) => kid,
                    Err(()) => return Err(cx.error("header has a non-string kid")),
                };
                if let Some(kid) = kid {
                    let key = keys
                        .keys()
                        .iter()
                        .find(|k| k.kid.as_deref() == Some(kid))
                        .ok_or_else(|| cx.error(format!("names unknown kid {}", quoted(kid))))?;
                    if !key.fits(self.alg) {
                        return Err(cx.error(format!(
                            "names kid {}, a key that does not fit alg {:?}",
                            quoted(kid),
                            self.alg
                        )));
                    }
                    return self.verify_key(&key.decoding, cx);
                }
                self.verify_any(keys.keys(), cx)
            }
        }
    }

    /// Without `kid`: tries every key that fits `alg`; exactly one must verify.
    fn verify_any(&self, keys: &[PublicKey], cx: Context) -> Result<Object, JwtError> {
        let mut fitting = keys.iter().filter(|k| k.fits(self.alg)).peekable();
        if fitting.peek().is_none() {
            return Err(cx.error(format!(
                "uses alg {:?}, but no registered key fits it",
                self.alg
            )));
        }
        let mut verified = None;
        let mut first_error = None;
        for key in fitting {
            match self.verify_key(&key.decoding, cx) {
                Ok(claims) if verified.is_none() => verified = Some(claims),
                Ok(_) => {
                    return Err(
                        cx.error("verifies with more than one registered key; send a kid header")
                    )
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        match (verified, first_error) {
            (Some(claims), _) => Ok(claims),
            (None, Some(err)) => Err(err),
            (None, None) => Err(cx.error("signature does not verify")),
        }
    }

    /// One signature check by the JOSE library, claims left to the caller.
    pub(super) fn verify_key(&self, key: &DecodingKey, cx: Context) -> Result<Object, JwtError> {
        let mut validation = Validation::new(self.alg);
        // Claims are checked by the callers against an explicit `now` and their own aud rules;
        // the library's checks use the wall clock and a 60 s default leeway.
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        match jsonwebtoken::decode::<Object>(self.token, key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(err) => Err(match err.kind() {
                ErrorKind::InvalidSignature => cx.error("signature does not verify"),
                ErrorKind::Base64(_) => cx.error("is not valid base64url"),
                ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    cx.error("claims are not a JSON object with unique member names")
                }
                _ => cx.error("signature could not be verified with the key"),
            }),
        }
    }
}
