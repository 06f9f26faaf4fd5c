//! Entry points for the fuzz targets in `fuzz/` only (feature `fuzzing`).
//!
//! Not API: hidden from the docs, exempt from semver, and may change or vanish in any release.
//! It exists because the fuzz targets are a separate crate and cannot reach the `pub(crate)`
//! parsers that take attacker bytes. Each function is the parser itself, not a copy; errors come
//! back as text (or as the [`OAuthError`](crate::OAuthError) the endpoint would answer with) so
//! that no private type leaks.

/// Strict `application/x-www-form-urlencoded` decoding and the canonical re-encoding
/// (`src/params.rs`).
pub mod form {
    use std::borrow::Cow;

    /// A decoded name/value pair, borrowed from the input when nothing needed decoding.
    pub type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

    /// Names that may repeat in a pushed request (RFC 8707 `resource`).
    pub const REPEATABLE: &[&str] = crate::push::REPEATABLE;

    /// Decodes a form body or query, as both endpoints do.
    ///
    /// # Errors
    /// Invalid percent-encoding or invalid UTF-8, described.
    pub fn parse(input: &[u8]) -> Result<Vec<Pair<'_>>, String> {
        crate::params::parse(input).map_err(|e| e.to_string())
    }

    /// The PAR endpoint's duplicate check.
    ///
    /// # Errors
    /// The refusal, naming the first repeated parameter.
    pub fn reject_duplicates(pairs: &[Pair<'_>], repeatable: &[&str]) -> Result<(), String> {
        crate::params::reject_duplicates(pairs, repeatable).map_err(|e| e.to_string())
    }

    /// Decodes one component (`+` is a space, `%XX` a byte, UTF-8 required).
    ///
    /// # Errors
    /// Invalid percent-encoding or invalid UTF-8, described.
    pub fn decode(raw: &[u8]) -> Result<Cow<'_, str>, String> {
        crate::params::decode(raw).map_err(|e| e.to_string())
    }

    /// Appends `name=value` in the canonical encoding the store and the inner service get.
    pub fn append_pair(out: &mut String, name: &str, value: &str) {
        crate::params::append_pair(out, name, value);
    }
}

/// The compact form pushed requests are stored in (`src/payload.rs`).
pub mod payload {
    /// Encodes name/value pairs as the store keeps them.
    #[must_use]
    pub fn encode(pairs: &[(&str, &str)]) -> Vec<u8> {
        crate::payload::encode(pairs)
    }

    /// Decodes what [`encode`] wrote.
    ///
    /// # Errors
    /// A payload the layer did not write, described.
    pub fn decode(bytes: &[u8]) -> Result<Vec<(&str, &str)>, String> {
        crate::payload::decode(bytes).map_err(|e| e.to_string())
    }
}

/// `Authorization: Basic` as the PAR endpoint decodes it (RFC 6749 §2.3.1).
///
/// # Errors
/// The `invalid_client` error the endpoint answers with.
pub fn decode_basic(value: &[u8]) -> Result<(String, String), crate::OAuthError> {
    crate::client::authenticate::decode_basic(value)
}

/// The prefix of every `request_uri` the layer issues.
pub const REQUEST_URI_PREFIX: &str = crate::push::REQUEST_URI_PREFIX;

/// The handle inside a `request_uri`, if this layer could have issued it.
#[must_use]
pub fn parse_handle(request_uri: &str) -> Option<[u8; 32]> {
    crate::authorize::parse_handle(request_uri)
}

/// The JWT verifiers of feature `jwt` (`src/jwt/`), with the layer's default settings.
#[cfg(feature = "jwt")]
pub mod jwt {
    use std::time::{Duration, SystemTime};

    use crate::{
        jwt::{self, AssertionPolicy, ClientCredential, JwtError},
        ClientKeys, JwtSettings,
    };

    /// What a client's JWTs are verified with.
    #[derive(Clone, Copy, Debug)]
    pub enum Credential<'a> {
        /// Registered public keys (`private_key_jwt`).
        Keys(&'a ClientKeys),
        /// The client's secrets (`client_secret_jwt`, HMAC request objects): any of them
        /// verifies.
        Secrets(&'a [&'a [u8]]),
    }

    impl<'a> From<Credential<'a>> for ClientCredential<'a> {
        fn from(credential: Credential<'a>) -> Self {
            match credential {
                Credential::Keys(keys) => Self::Keys(keys),
                Credential::Secrets(secrets) => Self::Secrets(secrets),
            }
        }
    }

    /// A refusal: the OAuth `error` code and the `error_description` the endpoint would send.
    pub type Refusal = (&'static str, String);

    fn refusal(err: JwtError) -> Refusal {
        (err.kind.code(), err.description)
    }

    /// Where the verifiers run: the server's URLs and the profile.
    #[derive(Clone, Debug)]
    pub struct Server {
        /// The issuer identifier.
        pub issuer: String,
        /// The PAR endpoint URL.
        pub par_endpoint: String,
        /// The token endpoint URL.
        pub token_endpoint: Option<String>,
        /// FAPI 2.0 profile.
        pub fapi2: bool,
    }

    /// Verifies a client assertion (RFC 7523 §3) as `private_key_jwt` / `client_secret_jwt`
    /// authentication does, with the default lifetime and skew; returns its `jti`.
    ///
    /// # Errors
    /// The refusal.
    pub fn client_assertion(
        token: &str,
        client_id: &str,
        credential: Credential<'_>,
        server: &Server,
        now: SystemTime,
    ) -> Result<String, Refusal> {
        let defaults = JwtSettings::default();
        let policy = AssertionPolicy {
            issuer: server.issuer.clone(),
            par_endpoint: server.par_endpoint.clone(),
            token_endpoint: server.token_endpoint.clone(),
            fapi2: server.fapi2,
            max_lifetime: defaults.max_assertion_lifetime,
            max_future_skew: defaults.max_clock_skew,
        };
        jwt::verify_client_assertion(token, client_id, credential.into(), &policy, now)
            .map(|verified| verified.jti)
            .map_err(refusal)
    }

    /// Verifies a pushed request object (RFC 9101); returns the parameters it carries.
    ///
    /// # Errors
    /// The refusal.
    pub fn request_object(
        token: &str,
        client_id: &str,
        credential: Credential<'_>,
        server: &Server,
        now: SystemTime,
    ) -> Result<Vec<(String, String)>, Refusal> {
        jwt::verify_request_object_with_profile(
            token,
            client_id,
            credential.into(),
            &server.issuer,
            server.fapi2,
            now,
        )
        .map(|object| object.params)
        .map_err(refusal)
    }

    /// Verifies a DPoP proof (RFC 9449 §4.3) for `htm` and `htu`; returns its `jkt`.
    ///
    /// # Errors
    /// The refusal.
    pub fn dpop_proof(
        proof: &str,
        htm: &str,
        htu: &str,
        now: SystemTime,
        max_age: Duration,
    ) -> Result<String, Refusal> {
        jwt::verify_dpop_proof(proof, htm, htu, now, max_age)
            .map(|proof| proof.jkt)
            .map_err(refusal)
    }

    /// The unverified `sub` the PAR endpoint reads to find the client of an assertion.
    #[must_use]
    pub fn unverified_subject(assertion: &str) -> Option<String> {
        jwt::unverified_subject(assertion)
    }
}
