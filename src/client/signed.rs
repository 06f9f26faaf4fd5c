//! Signed JWTs at the PAR endpoint (feature `jwt`): the glue between the pure verifiers in
//! `crate::jwt` and the endpoint — client lookup, replay memory in the store, DPoP binding.

use std::{borrow::Cow, sync::Arc, time::Duration};

use http::{request::Parts, StatusCode};
use serde_json::{json, Map, Value};

use super::{authenticate::lookup, AuthMethod, Client};
use crate::{
    error::OAuthError,
    jwt::{self, AssertionPolicy, ClientCredential, JwtError, JwtErrorKind},
    layer::Config,
    params::{self, Pair},
    push::Pushed,
    store::StoreKey,
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ASYMMETRIC_ALGS: [&str; 5] = ["ES256", "ES384", "PS256", "RS256", "EdDSA"];
const FAPI2_ALGS: [&str; 3] = ["PS256", "ES256", "EdDSA"];
const HMAC_ALGS: [&str; 3] = ["HS256", "HS384", "HS512"];

/// Settings for signed JWTs at the PAR endpoint (feature `jwt`).
///
/// ```
/// use std::time::Duration;
/// use tower_par::JwtSettings;
///
/// let settings = JwtSettings::default()
///     .token_endpoint("https://as.example.com/token")
///     .fapi2(true) // client assertion `aud` must be exactly the issuer
///     .max_assertion_lifetime(Duration::from_secs(120));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct JwtSettings {
    token_endpoint: Option<String>,
    fapi2: bool,
    pub(crate) max_assertion_lifetime: Duration,
    pub(crate) max_clock_skew: Duration,
    dpop_max_age: Duration,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            token_endpoint: None,
            fapi2: false,
            max_assertion_lifetime: Duration::from_secs(300),
            max_clock_skew: Duration::from_secs(10),
            dpop_max_age: Duration::from_secs(60),
        }
    }
}

impl JwtSettings {
    /// The token endpoint URL, accepted as a client-assertion `aud` (RFC 9126 §2).
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// The FAPI 2.0 profile (Security Profile §5.3.2.1, §5.4.1): assertion `aud` only the
    /// issuer, as a string; only PS256, ES256 and EdDSA; no HMAC.
    pub const fn fapi2(mut self, on: bool) -> Self {
        self.fapi2 = on;
        self
    }

    /// Longest accepted client-assertion lifetime (`exp - iat`, `exp - now`; default 5 min).
    pub const fn max_assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_assertion_lifetime = lifetime;
        self
    }

    /// How far a client clock may run ahead (`iat`/`nbf`; default 10 s, never more than 60 s).
    pub const fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    /// How old (or early) a DPoP proof's `iat` may be (default 60 s).
    pub const fn dpop_proof_max_age(mut self, age: Duration) -> Self {
        self.dpop_max_age = age;
        self
    }
}

fn oauth_error(err: JwtError) -> OAuthError {
    let status = match err.kind {
        JwtErrorKind::InvalidClient => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    OAuthError::new(status, err.kind.code(), err.description)
}

fn replay_unavailable(err: &crate::store::StoreError) -> OAuthError {
    let refused = OAuthError::unavailable("the replay memory is unavailable, retry later");
    match err {
        crate::store::StoreError::Full => refused.warning("the store is full (replay memory)"),
        other => refused.failure(format_args!("replay memory unavailable: {other}")),
    }
}

/// `private_key_jwt` / `client_secret_jwt` (RFC 7523 §3, RFC 9126 §2).
pub(crate) async fn authenticate_assertion(
    config: &Config,
    pairs: &[Pair<'_>],
    (assertion_type, assertion): (Option<&str>, Option<&str>),
) -> Result<Arc<Client>, OAuthError> {
    if assertion_type != Some(JWT_BEARER) {
        return Err(OAuthError::invalid_client(format!(
            "client_assertion_type must be {JWT_BEARER}"
        )));
    }
    let assertion =
        assertion.ok_or_else(|| OAuthError::invalid_client("client_assertion is missing"))?;
    let client_id: Cow<'_, str> = match params::first(pairs, "client_id") {
        Some(id) => Cow::Borrowed(id),
        None => {
            let subject = jwt::unverified_subject(assertion).ok_or_else(|| {
                OAuthError::invalid_client("the client assertion names no client (sub)")
            })?;
            crate::trace::record_client_id(&subject);
            Cow::Owned(subject)
        }
    };
    let client = lookup(config, &client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    let secrets = client.hmac_secrets();
    let credential = match (client.auth_method(), client.keys()) {
        (AuthMethod::PrivateKeyJwt, Some(keys)) => ClientCredential::Keys(keys),
        // Several secrets during a rotation: the assertion may be signed with any of them.
        (AuthMethod::ClientSecretJwt, _) if !secrets.is_empty() => {
            ClientCredential::Secrets(&secrets)
        }
        (registered, _) => {
            return Err(OAuthError::invalid_client(format!(
                "client is registered for {registered}, not a client assertion"
            )))
        }
    };
    let policy = AssertionPolicy {
        issuer: config.issuer.to_string(),
        par_endpoint: config.par_endpoint.clone(),
        token_endpoint: config.jwt.token_endpoint.clone(),
        fapi2: config.jwt.fapi2,
        max_lifetime: config.jwt.max_assertion_lifetime,
        max_future_skew: config.jwt.max_clock_skew,
    };
    let now = config.clock.now();
    let verified = jwt::verify_client_assertion(assertion, &client_id, credential, &policy, now)
        .map_err(oauth_error)?;
    // AUTH-06: a jti is single use until the assertion expires, across nodes on a shared store.
    let key = StoreKey::derive_tagged(
        b"tower-par/client_assertion/jti/v1",
        &config.issuer,
        &client_id,
        verified.jti.as_bytes(),
    );
    match config.store.remember(key, verified.expires_at, now).await {
        Ok(true) => Ok(client),
        Ok(false) => Err(OAuthError::invalid_client(
            "the client assertion was already used (jti replay)",
        )),
        Err(err) => Err(replay_unavailable(&err)),
    }
}

/// The parameters to store: from a signed request object when one is pushed (RFC 9126 §3), plus
/// the DPoP key binding (RFC 9449 §10).
pub(crate) async fn pushed_params<'a>(
    config: &Config,
    parts: &Parts,
    client: &Client,
    pairs: Vec<Pair<'a>>,
    now: std::time::SystemTime,
) -> Result<Pushed<'a>, OAuthError> {
    let mut pushed = match params::first(&pairs, "request") {
        Some(request) => {
            let secrets = client.hmac_secrets();
            let credential = match client.keys() {
                Some(keys) => ClientCredential::Keys(keys),
                None if !secrets.is_empty() => ClientCredential::Secrets(&secrets),
                None => {
                    return Err(OAuthError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_object",
                        "the client has no keys or secret to verify request objects with",
                    ))
                }
            };
            let object = jwt::verify_request_object_with_profile(
                request,
                client.client_id(),
                credential,
                &config.issuer,
                config.jwt.fapi2,
                now,
            )
            .map_err(oauth_error)?;
            // JAR-02: only the object's parameters count; outer ones are ignored.
            let mut unpacked: Vec<Pair<'a>> = object
                .params
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n), Cow::Owned(v)))
                .collect();
            if config.forward_request_objects && client.forward_request_object() {
                // RFC 9101 §6.3: the JWT itself, for an inner server that verifies or requires
                // it; the unpacked parameters it must match stay beside it.
                if let Some(jwt) = pairs
                    .into_iter()
                    .find_map(|(n, v)| (n == "request").then_some(v))
                {
                    unpacked.push((Cow::Borrowed("request"), jwt));
                }
            }
            Pushed {
                pairs: unpacked,
                expires_at: object.expires_at,
            }
        }
        None if client.require_signed_request_object() => {
            // VAL-11
            return Err(OAuthError::invalid_request(
                "this client must push a signed request object",
            ));
        }
        None => Pushed {
            pairs,
            expires_at: None,
        },
    };
    bind_dpop(config, parts, &mut pushed.pairs, now).await?;
    Ok(pushed)
}

/// RFC 9449 §10.1: a DPoP proof at PAR is checked and binds the code to its key (`dpop_jkt`).
async fn bind_dpop(
    config: &Config,
    parts: &Parts,
    pairs: &mut Vec<Pair<'_>>,
    now: std::time::SystemTime,
) -> Result<(), OAuthError> {
    let invalid =
        |why: &'static str| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", why);
    let mut proofs = parts.headers.get_all("dpop").iter();
    let Some(proof) = proofs.next() else {
        return Ok(());
    };
    if proofs.next().is_some() {
        return Err(invalid("more than one DPoP header"));
    }
    let proof = proof
        .to_str()
        .map_err(|_| invalid("the DPoP header is not a JWT"))?;
    let max_age = config.jwt.dpop_max_age;
    let verified = jwt::verify_dpop_proof(proof, "POST", &config.par_endpoint, now, max_age)
        .map_err(oauth_error)?;
    let key = StoreKey::derive_tagged(
        b"tower-par/dpop/jti/v1",
        &config.issuer,
        &verified.jkt,
        verified.jti.as_bytes(),
    );
    // A proof is acceptable until `iat + max_age`; remember its jti that long.
    match config
        .store
        .remember(key, verified.issued_at + max_age, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(invalid("the DPoP proof was already used (jti replay)")),
        Err(err) => return Err(replay_unavailable(&err)),
    }
    match params::first(pairs, "dpop_jkt") {
        Some(jkt) if jkt != verified.jkt => {
            Err(invalid("dpop_jkt does not match the key of the DPoP proof"))
        }
        Some(_) => Ok(()),
        None => {
            pairs.push((Cow::Borrowed("dpop_jkt"), Cow::Owned(verified.jkt)));
            Ok(())
        }
    }
}

/// The JWT members of the discovery metadata.
pub(crate) fn metadata(config: &Config, map: &mut Map<String, Value>) {
    let asymmetric: &[&str] = if config.jwt.fapi2 {
        &FAPI2_ALGS
    } else {
        &ASYMMETRIC_ALGS
    };
    let mut with_hmac = asymmetric.to_vec();
    if !config.jwt.fapi2 {
        with_hmac.extend(HMAC_ALGS);
    }
    map.insert(
        "token_endpoint_auth_signing_alg_values_supported".into(),
        json!(with_hmac),
    );
    map.insert(
        "request_object_signing_alg_values_supported".into(),
        json!(with_hmac),
    );
    map.insert("request_parameter_supported".into(), json!(true));
    map.insert(
        "dpop_signing_alg_values_supported".into(),
        json!(ASYMMETRIC_ALGS),
    );
}
