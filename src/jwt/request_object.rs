//! Pushed request objects (RFC 9101, RFC 9126 §3). Spec-checklist JAR-02..JAR-08, VAL-01.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::push::REPEATABLE;

use super::{
    claims::{self, after},
    jws::{AlgPolicy, Context, Jws},
    quoted, ClientCredential, JwtError, JwtErrorKind,
};

const CX: Context = Context {
    kind: JwtErrorKind::InvalidRequestObject,
    what: "request object",
};

/// Clock skew for `nbf`/`iat` (JAR-07: `nbf` 8-10 s ahead must be accepted).
const FUTURE_SKEW: Duration = Duration::from_secs(10);
/// FAPI 2.0 Message Signing (JAR-07): `exp - nbf` at most 60 minutes. With `exp` in the future
/// this also keeps `nbf` within 60 minutes in the past.
const FAPI2_WINDOW: Duration = Duration::from_secs(3600);

/// JWT claims that describe the object itself rather than the authorization request.
const ENVELOPE_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "iat", "nbf", "jti"];

/// The authorization request carried by a verified request object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestObject {
    /// Authorization parameters in claim order: strings as they are, numbers and booleans as
    /// their JSON text, objects and arrays (`claims`, `authorization_details`, ...) as compact
    /// JSON, except that an array of a repeatable parameter (`resource`) becomes one parameter
    /// per element. `iss`, `aud`, `exp`, `iat`, `nbf`, `jti` are left out, `client_id` is
    /// kept. Claims that are `null` or the empty string are left out, as an empty form parameter
    /// is treated as omitted (RFC 6749 §3.1), so the inner service sees the same as with a plain
    /// push.
    pub(crate) params: Vec<(String, String)>,
    /// The object's `exp`, which caps the `request_uri` lifetime.
    pub(crate) expires_at: Option<SystemTime>,
}

/// Verifies a request object pushed by the authenticated `client_id` (baseline profile).
///
/// See [`verify_request_object_with_profile`].
#[cfg(test)]
pub(crate) fn verify_request_object(
    jws: &str,
    client_id: &str,
    credential: ClientCredential<'_>,
    issuer: &str,
    now: SystemTime,
) -> Result<RequestObject, JwtError> {
    verify_request_object_with_profile(jws, client_id, credential, issuer, false, now)
}

/// Verifies a request object pushed by the authenticated `client_id`.
///
/// Header: signed (`alg: none` refused), `alg` allowed for the credential kind (FAPI 2.0: PS256,
/// ES256, EdDSA only, FAPI-10), `typ` absent, `JWT` or `oauth-authz-req+jwt` (JAR-08). Claims:
/// `iss` = `client_id`; `aud` = `issuer` or an array containing it (the PAR URL is refused,
/// JAR-06); `client_id` present and equal (JAR-05); no `request_uri` or `request` (VAL-01);
/// `exp` and `nbf` enforced when present, `nbf`/`iat` up to 10 s ahead accepted (JAR-07). With
/// `fapi2`, `exp` and `nbf` are required and `exp - nbf` ≤ 60 min (so `nbf` is at most 60 min
/// in the past; FAPI 2.0 Message Signing), and HMAC is refused. Every failure is `invalid_request_object`.
pub(crate) fn verify_request_object_with_profile(
    jws: &str,
    client_id: &str,
    credential: ClientCredential<'_>,
    issuer: &str,
    fapi2: bool,
    now: SystemTime,
) -> Result<RequestObject, JwtError> {
    let jws = Jws::parse(jws, AlgPolicy::for_credential(&credential, fapi2), CX)?;
    match jws.typ() {
        Ok(None) => {}
        Ok(Some(typ)) if typ == "jwt" || typ == "oauth-authz-req+jwt" => {}
        Ok(Some(typ)) => {
            return Err(CX.error(format!(
                "has typ {}; expected none, JWT or oauth-authz-req+jwt",
                quoted(&typ)
            )))
        }
        Err(()) => return Err(CX.error("header has a non-string typ")),
    }
    let claims = jws.verify_with(credential, CX)?;

    match claims.str("iss") {
        Ok(Some(iss)) if iss == client_id => {}
        Ok(Some(_)) => return Err(CX.error("iss is not the client_id")),
        Ok(None) => return Err(CX.error("lacks iss (it must be the client_id)")),
        Err(()) => return Err(CX.error("iss is not a string")),
    }
    let aud_ok = match claims.get("aud") {
        None => return Err(CX.error("lacks aud (it must be the issuer identifier)")),
        Some(Value::String(aud)) => aud == issuer,
        Some(Value::Array(items)) => items.iter().any(|item| item.as_str() == Some(issuer)),
        Some(_) => return Err(CX.error("aud is neither a string nor an array of strings")),
    };
    if !aud_ok {
        return Err(CX.error("aud does not name this server: it must be the issuer identifier"));
    }
    match claims.str("client_id") {
        Ok(Some(inner)) if inner == client_id => {}
        Ok(Some(_)) => {
            return Err(CX.error("client_id claim does not match the authenticated client"))
        }
        Ok(None) => return Err(CX.error("lacks the client_id claim")),
        Err(()) => return Err(CX.error("client_id claim is not a string")),
    }
    if claims.contains("request_uri") {
        return Err(CX.error("must not contain request_uri"));
    }
    if claims.contains("request") {
        return Err(CX.error("must not contain a nested request"));
    }

    let latest_start = now.checked_add(FUTURE_SKEW).unwrap_or(now);
    let exp = claims::date(&claims, "exp", CX)?;
    if exp.is_some_and(|exp| exp <= now) {
        return Err(CX.error("has expired"));
    }
    let nbf = claims::date(&claims, "nbf", CX)?;
    if nbf.is_some_and(|nbf| nbf > latest_start) {
        return Err(CX.error("is not valid yet (nbf is in the future)"));
    }
    if claims::date(&claims, "iat", CX)?.is_some_and(|iat| iat > latest_start) {
        return Err(CX.error("iat is in the future"));
    }
    if fapi2 {
        let exp = exp.ok_or_else(|| CX.error("lacks exp"))?;
        let nbf = nbf.ok_or_else(|| CX.error("lacks nbf"))?;
        if after(exp, nbf) > FAPI2_WINDOW {
            return Err(CX.error("lifetime exp - nbf exceeds 60 minutes"));
        }
    }

    let mut params = Vec::with_capacity(claims.0.len());
    for (name, value) in claims.0 {
        if ENVELOPE_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        match value {
            Value::Null => {}
            Value::String(text) if text.is_empty() => {}
            Value::String(text) => params.push((name, text)),
            // RFC 8707 §2: a repeatable parameter (`resource`) is an array in a JWT and repeated
            // in a form; the inner service gets the form shape, as with a plain push (VAL-06).
            Value::Array(items) if REPEATABLE.contains(&name.as_str()) => {
                for item in items {
                    match item {
                        Value::String(text) if !text.is_empty() => {
                            params.push((name.clone(), text));
                        }
                        _ => {
                            return Err(CX.error(format!(
                                "{name} must be a string or an array of non-empty strings"
                            )))
                        }
                    }
                }
            }
            other => params.push((name, other.to_string())),
        }
    }
    Ok(RequestObject {
        params,
        expires_at: exp,
    })
}
