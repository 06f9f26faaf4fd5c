//! The shared harness of tower-par's fuzz targets: the oracles every target applies, an in-process
//! authorization endpoint, and real keys for the JWT targets.
//!
//! Each target in `fuzz_targets/` is a few lines on top of this crate; `examples/make_seeds.rs`
//! writes the seed corpora in the input formats defined here.

pub mod endpoint;
pub mod jwt;

/// The fixed "now" of the JWT targets: 2027-01-15, as in `src/jwt/tests.rs`, so that seeds can
/// carry literal `iat`/`exp` values.
pub const NOW_SECS: u64 = 1_800_000_000;
/// The issuer every target's server has.
pub const ISSUER: &str = "https://as.example.com";
/// Its PAR endpoint.
pub const PAR_ENDPOINT: &str = "https://as.example.com/as/par";
/// Its token endpoint.
pub const TOKEN_ENDPOINT: &str = "https://as.example.com/as/token";
/// The client whose JWTs the JWT targets verify.
pub const CLIENT_ID: &str = "client-1";

/// Asserts that `description` may be sent as an RFC 6749 §5.2 `error_description`: only
/// `%x20-21 / %x23-5B / %x5D-7E`, so it can neither break the JSON nor the grammar.
#[track_caller]
pub fn assert_description_allowed(description: &str) {
    assert!(
        description
            .chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')),
        "error_description {description:?} has characters RFC 6749 section 5.2 forbids"
    );
}

/// `data` up to its first NUL byte, and what follows that byte (empty when there is none).
/// Targets that take two byte strings (a JWT header and its claims) read them this way: JSON text
/// never holds a raw NUL.
#[must_use]
pub fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// `haystack` with every `needle` replaced by `with`.
#[must_use]
pub fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}
