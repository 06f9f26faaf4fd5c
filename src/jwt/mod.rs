//! Signed JWTs at the PAR endpoint (feature `jwt`): client assertions (`private_key_jwt`,
//! `client_secret_jwt`, RFC 7523 §3), request objects (RFC 9101, RFC 9126 §3) and DPoP proofs
//! (RFC 9449 §4.3).
//!
//! Every function here is pure: time is passed in, replay memory (`jti`) is the caller's job, and
//! the only I/O is none. Signatures are checked by `jsonwebtoken` with its pure-Rust RustCrypto
//! backend; this module adds what the library leaves to applications: which algorithms a given
//! credential may use, key selection by `kid`, the audience rules of RFC 9126 §2 and FAPI 2.0, and
//! claim checks against an explicit `now`.
//!
//! Design rules that hold throughout:
//!
//! * `alg` is never taken from the key or the token alone: the allow-list comes from the kind of
//!   credential (asymmetric keys or a shared secret) and, for keys, the key type must fit the
//!   `alg` (no RSA key used for `ES256`, no public key used as an HMAC secret). `none` is refused.
//! * Token headers and claim sets with duplicate member names are refused (RFC 7515 §5.2 allows
//!   rejecting them; taking "the last one" would let two parsers disagree).
//! * Headers with `crit` are refused: no JWS extension is understood here (RFC 7515 §4.1.11).
//! * Error descriptions say what was wrong without echoing the token, and contain only the
//!   characters RFC 6749 §5.2 allows in `error_description`.
//!
//! Process-wide crypto provider: `jsonwebtoken` picks its backend from its crate features. If
//! another crate in the same build also enables `jsonwebtoken/aws_lc_rs`, the application must
//! install a provider (`jsonwebtoken::crypto::CryptoProvider::install_default`) before the first
//! verification, as jsonwebtoken documents.

mod assertion;
mod claims;
mod dpop;
mod jws;
mod keys;
mod request_object;

#[cfg(test)]
mod tests;

use std::fmt;

#[cfg(test)]
pub(crate) use self::assertion::VerifiedAssertion;
pub(crate) use self::assertion::{unverified_subject, verify_client_assertion, AssertionPolicy};
pub(crate) use self::dpop::verify_dpop_proof;
#[cfg(test)]
pub(crate) use self::dpop::DpopProof;
pub use self::keys::{ClientKeys, KeyError};
pub(crate) use self::request_object::verify_request_object_with_profile;
#[cfg(test)]
pub(crate) use self::request_object::{verify_request_object, RequestObject};

/// The secret or keys a JWT from one client is verified with.
#[derive(Clone, Copy)]
pub(crate) enum ClientCredential<'a> {
    /// The client's registered public keys (`private_key_jwt`; request objects of such clients).
    Keys(&'a ClientKeys),
    /// The client's shared secrets (`client_secret_jwt`; HMAC-signed request objects): a JWT
    /// signed with any of them verifies, so secrets can be rotated.
    Secrets(&'a [&'a [u8]]),
}

impl fmt::Debug for ClientCredential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keys(keys) => f.debug_tuple("Keys").field(keys).finish(),
            Self::Secrets(secrets) => write!(f, "Secrets([{} redacted])", secrets.len()),
        }
    }
}

/// Which OAuth error a failed verification maps to.
// The variants mirror the OAuth error codes, which all start with "invalid".
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JwtErrorKind {
    /// RFC 6749 §5.2 `invalid_client` (client assertion failures).
    InvalidClient,
    /// RFC 9101 §6.2 `invalid_request_object`.
    InvalidRequestObject,
    /// RFC 9449 §7.1 `invalid_dpop_proof`.
    InvalidDpopProof,
}

impl JwtErrorKind {
    /// The `error` code for the response body.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::InvalidDpopProof => "invalid_dpop_proof",
        }
    }
}

/// A refused JWT: the error code and a description for `error_description`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JwtError {
    pub(crate) kind: JwtErrorKind,
    /// Safe for `error_description`: RFC 6749 §5.2 characters only, never the token itself.
    pub(crate) description: String,
}

impl JwtError {
    /// Builds an error; the description is filtered to the `error_description` character set
    /// so that values copied from a token (an `alg`, a `kid`) can never break the JSON or the
    /// grammar.
    pub(crate) fn new(kind: JwtErrorKind, description: impl AsRef<str>) -> Self {
        Self {
            kind,
            description: description_safe(description.as_ref(), 300),
        }
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.description)
    }
}

impl std::error::Error for JwtError {}

/// Keeps only RFC 6749 §5.2 `error_description` characters (%x20-21 / %x23-5B / %x5D-7E),
/// replacing others with `?`, and cuts the text to `max` characters.
pub(crate) fn description_safe(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        let allowed = matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E');
        out.push(if allowed { c } else { '?' });
    }
    out
}

/// A value copied from a token into a description: short and harmless.
pub(crate) fn quoted(value: &str) -> String {
    format!("'{}'", description_safe(value, 64))
}
