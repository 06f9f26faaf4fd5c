//! The stored form of a pushed request: decoded name/value bytes behind short length prefixes.
//!
//! A store budgets bytes, so the payload must not grow with the content: the canonical query
//! (RFC 3986 unreserved bytes and `%XX`) keeps one byte of `!` as three, so 1 MiB of `!` cost
//! 3 MiB. Here every name and value is kept as its decoded UTF-8 bytes, each behind its length as
//! an unsigned LEB128 varint:
//!
//! ```text
//! payload = version (1 byte, 0x01) *( varint(len name) name varint(len value) value )
//! ```
//!
//! **Size.** Whatever the content, a payload is at most `pushed × (1 + 1/128) + 2` bytes, where
//! `pushed` is the form body the pairs were decoded from: a pair sent as `name=value&` (at least
//! `n + v + 2` bytes, the last pair one less) is kept in `n + v` bytes plus one varint byte per
//! length below 128, and one more per further factor of 128 (so at most `len / 128` extra bytes);
//! the fixed overhead is the version byte plus the `&` the last pair did not send. Decoding a
//! form only shrinks it (`%XX` and `+` become one byte), and credentials are left out.
//!
//! The canonical query the inner service receives is written from this form only at redemption
//! (`params::append_pair`, the same bytes as before), and the
//! [`PushedAuthorizationRequest`](crate::PushedAuthorizationRequest) extension reads it directly.
//!
//! Encodings are unique: [`decode`] refuses an unknown version, a truncated pair, a length that
//! is not minimally encoded or does not fit, and invalid UTF-8, so `encode(decode(p)) == p` for
//! every payload that decodes. The payload stays opaque to stores.

use std::fmt;

/// The format version, the payload's first byte.
pub(crate) const VERSION: u8 = 1;

/// Why stored bytes are not a payload of this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadError {
    /// Empty, or a first byte other than [`VERSION`].
    Version,
    /// A length prefix or a field runs past the end.
    Truncated,
    /// A length prefix is not minimally encoded, or does not fit in `usize`.
    Length,
    /// A name or value is not UTF-8.
    Utf8,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Version => "unknown payload version",
            Self::Truncated => "payload truncated",
            Self::Length => "malformed length in payload",
            Self::Utf8 => "payload field is not UTF-8",
        })
    }
}

impl std::error::Error for PayloadError {}

/// Encodes `pairs` in order. The buffer is allocated once, at its exact size, so that what a
/// store charges is what the payload holds. (The push writes it into its sealed record with
/// [`encode_into`].)
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Vec<u8> {
    let len = encoded_len(pairs);
    let mut out = Vec::with_capacity(len);
    encode_into(pairs, &mut out);
    debug_assert_eq!(out.len(), len);
    out
}

/// The length of [`encode`]'s output for `pairs`.
pub(crate) fn encoded_len<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> usize {
    1 + fields(pairs)
        .map(|field| varint_len(field.len()) + field.len())
        .sum::<usize>()
}

/// Appends [`encode`]'s output for `pairs` to `out` (which the caller sized: the sealed record is
/// written in the buffer it is stored in).
pub(crate) fn encode_into<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)], out: &mut Vec<u8>) {
    out.push(VERSION);
    for field in fields(pairs) {
        put_varint(out, field.len());
        out.extend_from_slice(field);
    }
}

fn fields<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> impl Iterator<Item = &[u8]> {
    pairs
        .iter()
        .flat_map(|(n, v)| [n.as_ref().as_bytes(), v.as_ref().as_bytes()])
}

/// Decodes a payload into its pairs, borrowed from `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<(&str, &str)>, PayloadError> {
    let Some((&VERSION, mut rest)) = bytes.split_first() else {
        return Err(PayloadError::Version);
    };
    let mut pairs = Vec::new();
    while !rest.is_empty() {
        let name = field(&mut rest)?;
        let value = field(&mut rest)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Reads one length-prefixed UTF-8 field off the front of `rest`.
fn field<'a>(rest: &mut &'a [u8]) -> Result<&'a str, PayloadError> {
    let len = get_varint(rest)?;
    if len > rest.len() {
        return Err(PayloadError::Truncated);
    }
    let (field, tail) = rest.split_at(len);
    *rest = tail;
    std::str::from_utf8(field).map_err(|_| PayloadError::Utf8)
}

const fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Unsigned LEB128, minimal encoding only (no trailing zero groups), fitting in `usize`.
fn get_varint(rest: &mut &[u8]) -> Result<usize, PayloadError> {
    let mut value: usize = 0;
    for (i, &byte) in rest.iter().enumerate() {
        let shift = 7 * i;
        let group = usize::from(byte & 0x7f);
        if shift >= usize::BITS as usize || (group << shift) >> shift != group {
            return Err(PayloadError::Length);
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(PayloadError::Length);
            }
            *rest = &rest[i + 1..];
            return Ok(value);
        }
    }
    Err(PayloadError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_version_then_length_prefixed_fields() {
        assert_eq!(encode::<&str, &str>(&[]), [VERSION]);
        assert_eq!(
            encode(&[("state", "a b"), ("x", "")]),
            b"\x01\x05state\x03a b\x01x\x00"
        );
        let long = "é".repeat(100); // 200 bytes: a two-byte length
        let encoded = encode(&[("v", long.as_str())]);
        assert_eq!(&encoded[..5], b"\x01\x01v\xc8\x01");
        assert_eq!(encoded.len(), 1 + 2 + 2 + 200);
        assert_eq!(
            encoded.capacity(),
            encoded.len(),
            "allocated at its exact size"
        );
    }

    #[test]
    fn round_trips_in_order_with_repeats() {
        let pairs = [
            ("resource", "a"),
            ("scope", "openid profile"),
            ("resource", "b"),
        ];
        assert_eq!(decode(&encode(&pairs)).unwrap(), pairs);
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let cases: [(&[u8], PayloadError); 9] = [
            (b"", PayloadError::Version),
            (b"\x02\x01a\x01b", PayloadError::Version),
            // The canonical query this module replaced: not a payload of this format.
            (b"response_type=code", PayloadError::Version),
            (b"\x01\x05abc", PayloadError::Truncated),
            (b"\x01\x01a", PayloadError::Truncated),
            (b"\x01\x80", PayloadError::Truncated),
            (b"\x01\x81\x00a\x00", PayloadError::Length),
            (
                b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
                PayloadError::Length,
            ),
            (b"\x01\x01\xff\x00", PayloadError::Utf8),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(bytes), Err(expected), "{bytes:?}");
        }
    }

    #[test]
    fn worst_case_content_is_kept_at_its_size() {
        // Issue 16: 1 MiB of `!` was kept as 3 MiB by the canonical query.
        let state = "!".repeat(1 << 20);
        let body = format!("response_type=code&state={state}");
        let encoded = encode(&[("response_type", "code"), ("state", state.as_str())]);
        // The 1 MiB value's three-byte length against the `=` it replaces: 4 bytes in all.
        assert_eq!(encoded.len(), body.len() + 4);
        assert!(encoded.len() <= body.len() + body.len() / 128 + 2);
    }

    /// The smallest form body a client can send for `pairs`: bytes that must be escaped in a
    /// form (`%`, `&`, `+`, `=`) as `%XX`, everything else (non-ASCII included) as it is.
    fn tightest_body(pairs: &[(String, String)]) -> String {
        let escape = |s: &str| {
            s.chars()
                .map(|c| match c {
                    '%' | '&' | '+' | '=' => format!("%{:02X}", c as u32),
                    c => c.to_string(),
                })
                .collect::<String>()
        };
        pairs
            .iter()
            .map(|(n, v)| format!("{}={}", escape(n), escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..16)) {
            let encoded = encode(&pairs);
            let decoded = decode(&encoded).unwrap();
            let back: Vec<(String, String)> =
                decoded.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
            prop_assert_eq!(back, pairs);
        }

        #[test]
        fn encode_inverts_decode(
            body in proptest::collection::vec(prop_oneof![0u8..8, 0x80u8..0x82, any::<u8>()], 0..64),
        ) {
            // Whatever decodes is the unique encoding of its pairs (short lengths are likely
            // here, so that many inputs decode); nothing panics.
            let bytes = [&[VERSION][..], &body].concat();
            if let Ok(pairs) = decode(&bytes) {
                prop_assert_eq!(encode(&pairs), bytes);
            }
        }

        #[test]
        fn at_most_one_and_a_tenth_bytes_per_pushed_byte(
            pairs in proptest::collection::vec(("[a-z_]{1,20}", any::<String>().prop_filter("non-empty", |v| !v.is_empty())), 1..12),
            filler in prop_oneof![Just('!'), Just('%'), Just('é'), Just('\u{0}'), Just('~')],
            repeat in 0usize..20_000,
        ) {
            let mut pairs = pairs;
            pairs.push(("state".into(), std::iter::repeat(filler).take(repeat + 1).collect()));
            let body = tightest_body(&pairs);
            let parsed = crate::params::parse(body.as_bytes()).unwrap();
            let encoded = encode(&parsed);
            prop_assert!(encoded.len() <= body.len() + body.len() / 128 + 2,
                "{} bytes kept for a {}-byte body", encoded.len(), body.len());
            prop_assert!(encoded.len() as f64 <= 1.1 * body.len() as f64 + 2.0);
        }
    }
}
