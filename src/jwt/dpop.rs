//! DPoP proofs at the PAR endpoint (RFC 9449 §4.3, §10.1). Spec-checklist DPOP-02, DPOP-03.

use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::ThumbprintHash;

use super::{
    claims::{self, after},
    jws::{AlgPolicy, Context, Jws},
    keys::{parse_public_jwk, PublicKey},
    quoted, JwtError, JwtErrorKind,
};

const CX: Context = Context {
    kind: JwtErrorKind::InvalidDpopProof,
    what: "DPoP proof",
};

/// A DPoP proof that passed the RFC 9449 §4.3 checks; the caller still has to record `jti`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DpopProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's `jwk`, base64url: the `dpop_jkt` value.
    pub(crate) jkt: String,
    /// The proof's `jti`, for replay detection.
    pub(crate) jti: String,
    /// The proof's `iat`.
    pub(crate) issued_at: SystemTime,
}

/// Verifies a DPoP proof for a request with method `htm` to URL `htu` (RFC 9449 §4.3).
///
/// `typ` must be `dpop+jwt`; `alg` asymmetric (ES256, ES384, PS256, RS256, EdDSA); the `jwk`
/// header a public key of a supported type that fits `alg`; the signature must verify with it;
/// `htm` must equal `htm`; `htu` must equal `htu` ignoring query and fragment (step 9) after
/// case-normalising scheme and host and dropping a default port; `iat` within `max_age` of `now`
/// either way; `jti` present. Every failure is `invalid_dpop_proof`. The caller does the `jti`
/// replay check.
pub(crate) fn verify_dpop_proof(
    proof: &str,
    htm: &str,
    htu: &str,
    now: SystemTime,
    max_age: Duration,
) -> Result<DpopProof, JwtError> {
    let jws = Jws::parse(proof, AlgPolicy::Asymmetric { fapi2: false }, CX)?;
    match jws.typ() {
        Ok(Some(typ)) if typ == "dpop+jwt" => {}
        Ok(Some(typ)) => {
            return Err(CX.error(format!("has typ {}; expected dpop+jwt", quoted(&typ))))
        }
        Ok(None) => return Err(CX.error("header lacks typ dpop+jwt")),
        Err(()) => return Err(CX.error("header has a non-string typ")),
    }
    let jwk = jws
        .header
        .get("jwk")
        .ok_or_else(|| CX.error("header lacks jwk"))?;
    let key = parse_public_jwk(jwk).map_err(|reason| CX.error(format!("jwk {reason}")))?;
    if !key.fits(jws.alg) {
        return Err(CX.error(format!("jwk does not fit alg {:?}", jws.alg)));
    }
    let claims = jws.verify_key(&key.decoding, CX)?;

    match claims.str("htm") {
        Ok(Some(value)) if value == htm => {}
        Ok(Some(_)) => return Err(CX.error("htm does not match the request method")),
        Ok(None) => return Err(CX.error("lacks htm")),
        Err(()) => return Err(CX.error("htm is not a string")),
    }
    match claims.str("htu") {
        Ok(Some(value)) if same_target(value, htu) => {}
        Ok(Some(_)) => return Err(CX.error("htu does not match the request URL")),
        Ok(None) => return Err(CX.error("lacks htu")),
        Err(()) => return Err(CX.error("htu is not a string")),
    }
    let iat = claims::date(&claims, "iat", CX)?.ok_or_else(|| CX.error("lacks iat"))?;
    if after(now, iat) > max_age {
        return Err(CX.error(format!(
            "iat is more than {} s in the past",
            max_age.as_secs()
        )));
    }
    if after(iat, now) > max_age {
        return Err(CX.error(format!(
            "iat is more than {} s in the future",
            max_age.as_secs()
        )));
    }
    let jti = claims::jti(&claims, CX)?;
    let jkt = thumbprint(&key).ok_or_else(|| CX.error("jwk thumbprint could not be computed"))?;
    Ok(DpopProof {
        jkt,
        jti,
        issued_at: iat,
    })
}

/// The RFC 7638 SHA-256 thumbprint of a key, base64url (RFC 9449 §6.1 `jkt`).
pub(super) fn thumbprint(key: &PublicKey) -> Option<String> {
    key.jwk.thumbprint(ThumbprintHash::SHA256).ok()
}

/// RFC 9449 §4.3 step 9: compares two absolute URLs without their query and fragment, with
/// scheme and host compared case-insensitively and a default port equal to none (RFC 3986
/// §6.2.2.1, §6.2.3).
pub(super) fn same_target(a: &str, b: &str) -> bool {
    match (target_parts(a), target_parts(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `(scheme, authority, path)`, normalised; `None` for anything but an absolute URL.
fn target_parts(url: &str) -> Option<(String, String, &str)> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let (scheme, rest) = url[..end].split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => Some(":443"),
        "http" => Some(":80"),
        _ => None,
    };
    if let Some(port) = default_port {
        if authority.ends_with(port) {
            authority.truncate(authority.len() - port.len());
        }
    }
    Some((scheme, authority, path))
}
