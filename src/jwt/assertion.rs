//! Client assertions: `private_key_jwt` and `client_secret_jwt` (RFC 7523 §3, RFC 9126 §2,
//! FAPI 2.0 §5.3.2.1). Spec-checklist AUTH-06, AUTH-07, FAPI-07, FAPI-08, FAPI-10, C-1.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{
    claims::{self, after},
    jws::{AlgPolicy, Context, Jws},
    quoted, ClientCredential, JwtError, JwtErrorKind,
};

/// FAPI 2.0 §5.3.2.1-13: `iat`/`nbf` more than 60 s ahead are always refused (FAPI-08).
const FUTURE_SKEW_CAP: Duration = Duration::from_secs(60);

const CX: Context = Context {
    kind: JwtErrorKind::InvalidClient,
    what: "client assertion",
};

/// What a client assertion must satisfy besides its signature.
#[derive(Clone, Debug)]
pub(crate) struct AssertionPolicy {
    /// This server's issuer identifier, e.g. `https://as.example.com`.
    pub(crate) issuer: String,
    /// The absolute PAR endpoint URL (accepted as `aud` unless `fapi2`).
    pub(crate) par_endpoint: String,
    /// The token endpoint URL, when the server has one (accepted as `aud` unless `fapi2`).
    pub(crate) token_endpoint: Option<String>,
    /// FAPI 2.0: `aud` only the issuer, as a string (FAPI-07); algorithms PS256, ES256, EdDSA
    /// only (FAPI-10).
    pub(crate) fapi2: bool,
    /// Upper bound for `exp - now` and `exp - iat`.
    pub(crate) max_lifetime: Duration,
    /// How far in the future `iat`/`nbf` may be (client clocks run ahead); capped at 60 s.
    pub(crate) max_future_skew: Duration,
}

impl AssertionPolicy {
    /// The defaults: RFC 9126 audiences, 5 minute lifetime, 10 s skew.
    #[cfg(test)]
    pub(crate) fn new(issuer: impl Into<String>, par_endpoint: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            par_endpoint: par_endpoint.into(),
            token_endpoint: None,
            fapi2: false,
            max_lifetime: Duration::from_secs(300),
            max_future_skew: Duration::from_secs(10),
        }
    }

    fn skew(&self) -> Duration {
        self.max_future_skew.min(FUTURE_SKEW_CAP)
    }
}

/// A client assertion that passed every check; the caller still has to record `jti`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VerifiedAssertion {
    /// The assertion's `jti`: remember it until `expires_at` and refuse it a second time.
    pub(crate) jti: String,
    /// The assertion's `exp`.
    pub(crate) expires_at: SystemTime,
}

/// Verifies an RFC 7523 §3 client assertion for `client_id`.
///
/// Checks, in order: header (`alg` allowed for the credential kind and profile, never `none`,
/// no HMAC with keys and no asymmetric `alg` with a secret, `typ` not that of another kind of
/// JWT), signature (`kid` selects the key; without `kid` exactly one fitting key must verify),
/// `iss` = `sub` = `client_id`, `aud`, `exp` (required, future, at most `max_lifetime` ahead),
/// `iat`/`nbf` (not more than the skew ahead), `jti` (required, non-empty). Every failure is
/// `invalid_client`. The caller does the `jti` replay check.
pub(crate) fn verify_client_assertion(
    assertion: &str,
    client_id: &str,
    credential: ClientCredential<'_>,
    policy: &AssertionPolicy,
    now: SystemTime,
) -> Result<VerifiedAssertion, JwtError> {
    let jws = Jws::parse(
        assertion,
        AlgPolicy::for_credential(&credential, policy.fapi2),
        CX,
    )?;
    // RFC 8725 §3.11: a request object or DPoP proof signed by the same client must not pass as
    // a client assertion.
    match jws.typ() {
        Err(()) => return Err(CX.error("header has a non-string typ")),
        Ok(Some(typ)) if typ == "dpop+jwt" || typ == "oauth-authz-req+jwt" => {
            return Err(CX.error(format!(
                "has typ {}, which marks another kind of JWT",
                quoted(&typ)
            )))
        }
        Ok(_) => {}
    }
    let claims = jws.verify_with(credential, CX)?;

    for name in ["iss", "sub"] {
        match claims.str(name) {
            Ok(Some(value)) if value == client_id => {}
            Ok(Some(_)) => return Err(CX.error(format!("{name} is not the client_id"))),
            Ok(None) => return Err(CX.error(format!("lacks {name}"))),
            Err(()) => return Err(CX.error(format!("{name} is not a string"))),
        }
    }
    check_audience(claims.get("aud"), policy)?;

    let skew = policy.skew();
    let latest_start = now.checked_add(skew).unwrap_or(now);
    let exp = claims::date(&claims, "exp", CX)?.ok_or_else(|| CX.error("lacks exp"))?;
    if exp <= now {
        return Err(CX.error("has expired"));
    }
    // The skew allowance also applies here: a client clock that runs ahead moves exp too.
    if after(exp, now) > policy.max_lifetime.saturating_add(skew) {
        return Err(CX.error(format!(
            "expires too far in the future: exp may be at most {} s from now",
            policy.max_lifetime.as_secs()
        )));
    }
    if let Some(iat) = claims::date(&claims, "iat", CX)? {
        if iat > latest_start {
            return Err(CX.error("iat is in the future"));
        }
        if after(exp, iat) > policy.max_lifetime {
            return Err(CX.error(format!(
                "lifetime exp - iat exceeds {} s",
                policy.max_lifetime.as_secs()
            )));
        }
    }
    if let Some(nbf) = claims::date(&claims, "nbf", CX)? {
        if nbf > latest_start {
            return Err(CX.error("is not valid yet (nbf is in the future)"));
        }
    }
    let jti = claims::jti(&claims, CX)?;
    Ok(VerifiedAssertion {
        jti,
        expires_at: exp,
    })
}

/// RFC 9126 §2: issuer, PAR URL or token URL, as a string or within an array (AUTH-07);
/// FAPI 2.0 §5.3.2.1-8: only the issuer, only as a string (FAPI-07). Spec-checklist C-1.
fn check_audience(aud: Option<&Value>, policy: &AssertionPolicy) -> Result<(), JwtError> {
    let accepted = |candidate: &str| {
        candidate == policy.issuer
            || (!policy.fapi2
                && (candidate == policy.par_endpoint
                    || policy.token_endpoint.as_deref() == Some(candidate)))
    };
    let wrong = || {
        if policy.fapi2 {
            CX.error("aud does not name this server: it must be the issuer identifier")
        } else {
            CX.error(
                "aud does not name this server: expected the issuer identifier, the PAR \
                 endpoint URL or the token endpoint URL",
            )
        }
    };
    match aud {
        None => Err(CX.error("lacks aud")),
        Some(Value::String(aud)) if accepted(aud) => Ok(()),
        Some(Value::String(_)) => Err(wrong()),
        Some(Value::Array(_)) if policy.fapi2 => Err(CX.error(
            "aud is an array; this server accepts only its issuer identifier as a single string",
        )),
        Some(Value::Array(items)) => {
            let mut found = false;
            for item in items {
                let Value::String(item) = item else {
                    return Err(CX.error("aud array contains a non-string"));
                };
                found |= accepted(item);
            }
            if found {
                Ok(())
            } else {
                Err(wrong())
            }
        }
        Some(_) => Err(CX.error("aud is neither a string nor an array of strings")),
    }
}

/// The `sub` of an assertion, read without verification, to find the client whose keys verify
/// it when the request carries no `client_id` (RFC 7523 §3 makes `client_id` optional).
pub(crate) fn unverified_subject(assertion: &str) -> Option<String> {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}
