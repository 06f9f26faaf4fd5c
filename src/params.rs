//! Strict `application/x-www-form-urlencoded` decoding and lossless re-encoding.
//!
//! `form_urlencoded` and `serde_urlencoded` replace invalid UTF-8 with U+FFFD and let the last of
//! two duplicates win (rust-notes D11, D12), so a PAR endpoint built on them stores something
//! other than what the client sent. This module decodes strictly: invalid percent-encoding or
//! invalid UTF-8 is an error, duplicates are found explicitly, and the re-encoding writes only RFC
//! 3986 unreserved bytes and `%XX` (space as `%20`), which every decoder reads back exactly.

use std::{borrow::Cow, collections::HashSet, fmt, sync::OnceLock};

use bytes::Bytes;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A decoded name/value pair that borrows from the input when no decoding was needed.
pub(crate) type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Why a form could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormError {
    PercentEncoding,
    Utf8,
    Duplicate(String),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PercentEncoding => f.write_str("the form has invalid percent-encoding"),
            Self::Utf8 => f.write_str("the form is not valid UTF-8"),
            Self::Duplicate(name) => {
                write!(f, "parameter {} is included more than once", truncate(name))
            }
        }
    }
}

fn truncate(name: &str) -> &str {
    match name.char_indices().nth(64) {
        Some((at, _)) => &name[..at],
        None => name,
    }
}

/// Decodes a form body or query string, keeping the order of the pairs.
///
/// Parameters sent without a value are treated as omitted (RFC 6749 §3.1) and dropped, as are
/// pairs without a name.
///
/// A form whose raw bytes are UTF-8 (every form a client sends in practice) is checked as a whole
/// once and split in one pass; only its percent-encoded or `+` components are decoded, each on
/// its own. Per component, the searches and UTF-8 checks of [`parse_bytes`] cost more than the
/// whole form's bytes (benches/layer.rs). Any other input goes through [`parse_bytes`], whose
/// answer this always is: the same pairs, or the same first error.
pub(crate) fn parse(input: &[u8]) -> Result<Vec<Pair<'_>>, FormError> {
    let Ok(text) = std::str::from_utf8(input) else {
        // Raw bytes that are not UTF-8 may sit in a segment that is dropped (no `=`, or an
        // empty name or value), which is no error; the component-wise decoder tells them apart.
        return parse_bytes(input);
    };
    let bytes = text.as_bytes();
    let mut pairs = Vec::with_capacity(PAIRS_AT_HAND);
    let mut start = 0;
    while start < bytes.len() {
        // One segment: its name up to the first `=`, its value up to the next `&`, each noting
        // whether it has an escape (`%`, `+`) to decode.
        let name_start = start;
        let (mut escaped_name, mut escaped_value) = (false, false);
        let mut at = next_special(bytes, start, true);
        while matches!(bytes.get(at), Some(b'%' | b'+')) {
            escaped_name = true;
            at = next_special(bytes, at + 1, true);
        }
        if bytes.get(at) != Some(&b'=') {
            // No `=` in the segment: dropped, like an empty name or value.
            start = at + 1;
            continue;
        }
        let eq = at;
        at = next_special(bytes, eq + 1, false);
        while matches!(bytes.get(at), Some(b'%' | b'+')) {
            escaped_value = true;
            at = next_special(bytes, at + 1, false);
        }
        let end = at;
        start = end + 1;
        if eq == name_start || eq + 1 == end {
            continue;
        }
        // Both ends of each component are at ASCII bytes (or the ends of the input), so these
        // are `str` slices.
        let component =
            |from: usize, to: usize, escaped: bool| -> Result<Cow<'_, str>, FormError> {
                if escaped {
                    decode(&bytes[from..to])
                } else {
                    Ok(Cow::Borrowed(&text[from..to]))
                }
            };
        // Value first, then name: the order of `parse_bytes`, so the first error is the same.
        let value = component(eq + 1, end, escaped_value)?;
        let name = component(name_start, eq, escaped_name)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The index of the first byte at or after `at` that is `&`, `%`, `+`, or, with `or_equals`,
/// `=`; `bytes.len()` when there is none. Eight bytes at a time: most of a form is letters and
/// digits, and a byte-by-byte loop cost more than the rest of the parse (benches/layer.rs).
fn next_special(bytes: &[u8], mut at: usize, or_equals: bool) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const LOW7: u64 = u64::from_le_bytes([0x7f; 8]);
    // The high bit of each byte of `word` that equals `byte`, and no other bit (exact, unlike
    // the shorter borrow trick, so the lowest set bit is always the first match).
    let equal = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        !(((x & LOW7) + LOW7) | x | LOW7)
    };
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let mut found = equal(word, b'&') | equal(word, b'%') | equal(word, b'+');
        if or_equals {
            found |= equal(word, b'=');
        }
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let special = |b: &u8| matches!(b, b'&' | b'%' | b'+') || (or_equals && *b == b'=');
    bytes[at.min(bytes.len())..]
        .iter()
        .position(special)
        .map_or(bytes.len(), |offset| at + offset)
}

/// The pairs a `Vec` holds before it first grows: a push has about ten.
const PAIRS_AT_HAND: usize = 16;

/// [`parse`], one component at a time: searches each segment for its separators and escapes,
/// decodes each component on its own and checks its UTF-8. For input that is not UTF-8 as a whole.
fn parse_bytes(input: &[u8]) -> Result<Vec<Pair<'_>>, FormError> {
    // One counting pass is cheaper than growing the vector three or four times.
    let mut pairs = Vec::with_capacity(memchr::memchr_iter(b'&', input).count() + 1);
    let mut rest = input;
    while !rest.is_empty() {
        let end = memchr::memchr(b'&', rest).unwrap_or(rest.len());
        let segment = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        let Some(eq) = memchr::memchr(b'=', segment) else {
            continue;
        };
        let (name, value) = (&segment[..eq], &segment[eq + 1..]);
        if name.is_empty() || value.is_empty() {
            continue;
        }
        let value = decode(value)?;
        if value.is_empty() {
            continue;
        }
        pairs.push((decode(name)?, value));
    }
    Ok(pairs)
}

/// Fails on the first name that occurs twice, except names in `repeatable` (RFC 8707 `resource`).
pub(crate) fn reject_duplicates(pairs: &[Pair<'_>], repeatable: &[&str]) -> Result<(), FormError> {
    let counted = |name: &str| !repeatable.contains(&name);
    // A handful of parameters is the common case: a quadratic scan beats hashing there, and a
    // set keeps a 1 MiB body of tiny parameters from turning quadratic.
    if pairs.len() <= 24 {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if counted(name) && pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(FormError::Duplicate(name.to_string()));
            }
        }
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(pairs.len());
    for (name, _) in pairs {
        if counted(name) && !seen.insert(name.as_ref()) {
            return Err(FormError::Duplicate(name.to_string()));
        }
    }
    Ok(())
}

/// Decodes one component: `+` is a space, `%XX` a byte, and the result must be UTF-8.
pub(crate) fn decode(raw: &[u8]) -> Result<Cow<'_, str>, FormError> {
    let Some(first) = memchr::memchr2(b'+', b'%', raw) else {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| FormError::Utf8);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut rest = &raw[first..];
    // Runs of plain bytes are copied whole; only `+` and `%XX` are looked at one by one.
    while let Some((&b, tail)) = rest.split_first() {
        rest = match (b, tail) {
            (b'+', _) => {
                out.push(b' ');
                tail
            }
            (b'%', [hi, lo, more @ ..]) => match (hex(*hi), hex(*lo)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    more
                }
                _ => return Err(FormError::PercentEncoding),
            },
            (b'%', _) => return Err(FormError::PercentEncoding),
            _ => {
                let run = memchr::memchr2(b'+', b'%', rest).unwrap_or(rest.len());
                out.extend_from_slice(&rest[..run]);
                &rest[run..]
            }
        };
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| FormError::Utf8)
}

const fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `name=value` (with a leading `&` unless `out` is empty) in the canonical encoding.
pub(crate) fn append_pair(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    out.extend(percent_encoding::utf8_percent_encode(name, COMPONENT));
    out.push('=');
    out.extend(percent_encoding::utf8_percent_encode(value, COMPONENT));
}

/// The first value of `name`.
pub(crate) fn first<'p>(pairs: &'p [Pair<'_>], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_ref())
}

/// The parameters of a pushed request, as the inner service receives them.
///
/// The layer inserts one into the request extensions whenever it replaces a `request_uri` with
/// the pushed parameters, so the inner service can tell that the request was pushed and read the
/// parameters without parsing them again. It is the complete request even when the rebuilt query
/// would be too long for a URI (see [`PushedAuthorizationRequest::is_complete_in_uri`]).
///
/// ```
/// # use tower_par::PushedAuthorizationRequest;
/// fn authorize(pushed: Option<&PushedAuthorizationRequest>) -> &'static str {
///     match pushed {
///         Some(p) if p.get("response_type") == Some("code") => "pushed code flow",
///         Some(_) => "pushed",
///         None => "front channel",
///     }
/// }
/// assert_eq!(authorize(None), "front channel");
/// ```
#[derive(Clone)]
pub struct PushedAuthorizationRequest {
    client_id: String,
    request_uri: String,
    /// The compact payload the layer stored (`crate::payload`), checked at redemption; decoded
    /// on first access.
    payload: Bytes,
    decoded: OnceLock<Vec<(String, String)>>,
    complete_in_uri: bool,
}

impl PushedAuthorizationRequest {
    pub(crate) fn new(
        client_id: String,
        request_uri: String,
        payload: Bytes,
        complete_in_uri: bool,
    ) -> Self {
        Self {
            client_id,
            request_uri,
            payload,
            decoded: OnceLock::new(),
            complete_in_uri,
        }
    }

    fn params(&self) -> &[(String, String)] {
        self.decoded.get_or_init(|| {
            // The layer wrote this payload; a store that hands back something else is refused
            // before the extension is built, so a failure here can only mean no parameters.
            crate::payload::decode(&self.payload)
                .map(|pairs| {
                    pairs
                        .into_iter()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// The client that pushed the request (and redeemed it).
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The `request_uri` the request was redeemed with.
    ///
    /// A handler that sends the browser through a login or consent page and back (with
    /// [`Consumption::AtCompletion`](crate::Consumption::AtCompletion)) returns it to
    /// `authorize?client_id=…&request_uri=…`, the URL the browser came with.
    #[must_use]
    pub fn request_uri(&self) -> &str {
        &self.request_uri
    }

    /// The first value of a parameter.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter (`resource` may repeat, RFC 8707).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params()
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The pushed parameters in their pushed order, without `client_id` and client credentials.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params().iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether the rebuilt request carries every parameter in its URI (GET) or body (POST).
    ///
    /// `false` for a GET whose rebuilt query would pass the 64 KiB limit of an `http::Uri` (the
    /// URI then carries just `client_id`, and this extension is the only complete copy), and for
    /// a request read with [`ParLayer::pushed_request`](crate::ParLayer::pushed_request), which
    /// rebuilt no request.
    #[must_use]
    pub const fn is_complete_in_uri(&self) -> bool {
        self.complete_in_uri
    }
}

impl PartialEq for PushedAuthorizationRequest {
    fn eq(&self, other: &Self) -> bool {
        self.client_id == other.client_id
            && self.request_uri == other.request_uri
            && self.payload == other.payload
            && self.complete_in_uri == other.complete_in_uri
    }
}

impl Eq for PushedAuthorizationRequest {}

impl fmt::Debug for PushedAuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values can hold personal data (RFC 9126 §8); names are enough to debug a flow.
        f.debug_struct("PushedAuthorizationRequest")
            .field("client_id", &self.client_id)
            .field("params", &self.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("complete_in_uri", &self.complete_in_uri)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(input: &str) -> Result<Vec<(String, String)>, FormError> {
        parse(input.as_bytes()).map(|pairs| {
            pairs
                .into_iter()
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect()
        })
    }

    #[test]
    fn plus_and_percent_twenty_both_decode_to_space() {
        // PAR-03
        assert_eq!(
            owned("state=a+b%20c").unwrap(),
            [("state".into(), "a b c".into())]
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_replacement_character() {
        // PAR-03, rust-notes D11
        assert_eq!(owned("state=%FF"), Err(FormError::Utf8));
        assert_eq!(parse(b"state=\xff"), Err(FormError::Utf8));
    }

    #[test]
    fn broken_percent_escapes_are_errors() {
        for input in ["a=%", "a=%4", "a=%G1", "a=%4g", "%zz=1"] {
            assert_eq!(owned(input), Err(FormError::PercentEncoding), "{input}");
        }
    }

    #[test]
    fn empty_values_are_omitted_and_order_is_kept() {
        // VAL-07
        assert_eq!(
            owned("b=2&state=&a=1&&flag&=x").unwrap(),
            [("b".into(), "2".into()), ("a".into(), "1".into())]
        );
        assert_eq!(owned("state=%20").unwrap(), [("state".into(), " ".into())]);
    }

    #[test]
    fn duplicates_are_found_except_repeatable_names() {
        // VAL-06
        let pairs = parse(b"scope=a&resource=x&resource=y").unwrap();
        assert!(reject_duplicates(&pairs, &["resource"]).is_ok());
        let pairs = parse(b"scope=a&state=1&scope=b").unwrap();
        assert_eq!(
            reject_duplicates(&pairs, &["resource"]),
            Err(FormError::Duplicate("scope".into()))
        );
        // Encoded names are compared decoded.
        let pairs = parse(b"scope=a&sc%6Fpe=b").unwrap();
        assert!(reject_duplicates(&pairs, &[]).is_err());
    }

    #[test]
    fn duplicates_are_found_in_large_forms() {
        let mut body: String = (0..1000).map(|i| format!("p{i}=v&")).collect();
        assert!(reject_duplicates(&parse(body.as_bytes()).unwrap(), &[]).is_ok());
        body.push_str("p500=again");
        assert_eq!(
            reject_duplicates(&parse(body.as_bytes()).unwrap(), &[]),
            Err(FormError::Duplicate("p500".into()))
        );
    }

    #[test]
    fn canonical_encoding_round_trips_exactly() {
        let values = [
            "a b+c",
            "https://c.example/cb?x=1&y=2#f",
            "zoë 日本 🎉",
            "%41~-._*",
            "\u{0}",
        ];
        let mut query = String::new();
        for v in values {
            append_pair(&mut query, "p q", v);
        }
        assert!(
            query
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)),
            "{query}"
        );
        assert!(query.contains("a%20b%2Bc"));
        let back: Vec<String> = parse(query.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(back, values);
    }

    #[test]
    fn the_extension_decodes_lazily_and_in_order() {
        let pushed = PushedAuthorizationRequest::new(
            "c".into(),
            "urn:x".into(),
            Bytes::from(crate::payload::encode(&[
                ("b", "2"),
                ("a", "x y"),
                ("b", "3"),
            ])),
            true,
        );
        assert_eq!(pushed.get("a"), Some("x y"));
        assert_eq!(pushed.get_all("b").collect::<Vec<_>>(), ["2", "3"]);
        assert_eq!(
            pushed.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["b", "a", "b"]
        );
        assert!(
            !format!("{pushed:?}").contains("x y"),
            "Debug shows names only"
        );
    }

    #[test]
    fn borrowed_when_nothing_to_decode() {
        let pairs = parse(b"client_id=web-app").unwrap();
        assert!(matches!(pairs[0].1, Cow::Borrowed(_)));
    }

    mod properties {
        use proptest::{collection::vec, prelude::*};

        use super::*;

        fn encode(pairs: &[(String, String)]) -> String {
            let mut out = String::new();
            for (name, value) in pairs {
                append_pair(&mut out, name, value);
            }
            out
        }

        /// Forms made of valid pieces (escapes of reserved and multi-byte characters) with some
        /// broken escapes, invalid UTF-8 and arbitrary bytes mixed in.
        fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
            let valid = [
                "a",
                "b",
                "=",
                "&",
                "+",
                "%2B",
                "%20",
                "%3D",
                "%26",
                "%C3%A9",
                "%F0%9F%8E%89",
            ];
            let broken = ["%", "%4", "%zz", "%FF", "%C3"];
            let piece = prop_oneof![
                8 => proptest::sample::select(valid.to_vec()).prop_map(|s| s.as_bytes().to_vec()),
                1 => proptest::sample::select(broken.to_vec()).prop_map(|s| s.as_bytes().to_vec()),
                1 => any::<u8>().prop_map(|b| vec![b]),
            ];
            vec(piece, 0..40).prop_map(|pieces| pieces.concat())
        }

        /// The first name repeated outside `repeatable`, found the obvious way.
        fn naive_duplicate(pairs: &[(String, String)], repeatable: &[&str]) -> Option<String> {
            pairs.iter().enumerate().find_map(|(i, (name, _))| {
                let repeated = pairs[..i].iter().any(|(earlier, _)| earlier == name);
                (repeated && !repeatable.contains(&name.as_str())).then(|| name.clone())
            })
        }

        proptest! {
            #[test]
            fn any_pairs_come_back_from_their_canonical_encoding(
                pairs in vec((any::<String>(), any::<String>()), 0..12),
            ) {
                // PAR-03: what the store keeps decodes to exactly what was pushed; empty names or
                // values are dropped as omitted (RFC 6749 section 3.1).
                let decoded: Vec<(String, String)> = parse(encode(&pairs).as_bytes())
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect();
                let kept: Vec<_> = pairs
                    .into_iter()
                    .filter(|(n, v)| !n.is_empty() && !v.is_empty())
                    .collect();
                prop_assert_eq!(decoded, kept);
            }

            #[test]
            fn the_one_pass_parse_answers_what_the_component_wise_one_does(
                bytes in form_bytes(),
                text in vec(proptest::sample::select(vec![
                    "a", "é", "=", "&", "+", "%", "%2", "%2B", "%3D", "%26", "%C3%A9", "%FF", "%C3", "%zz",
                ]), 0..40),
            ) {
                // PAR-03: the fast path (UTF-8 input) and the fallback agree on every input, pairs
                // and first error alike.
                let text = text.concat();
                prop_assert_eq!(parse(text.as_bytes()), parse_bytes(text.as_bytes()));
                prop_assert_eq!(parse(&bytes), parse_bytes(&bytes));
            }

            #[test]
            fn the_word_wise_search_finds_the_first_special_byte(
                bytes in vec(prop_oneof![
                    4 => any::<u8>(),
                    1 => proptest::sample::select(b"&=%+".to_vec()),
                ], 0..40),
                at in 0usize..41,
                or_equals in any::<bool>(),
            ) {
                let at = at.min(bytes.len());
                let special = |b: &u8| b"&%+".contains(b) || (or_equals && *b == b'=');
                let naive = bytes[at..].iter().position(special).map_or(bytes.len(), |i| at + i);
                prop_assert_eq!(next_special(&bytes, at, or_equals), naive);
            }

            #[test]
            fn parse_never_panics_and_what_it_accepts_re_encodes_losslessly(bytes in form_bytes()) {
                if let Ok(pairs) = parse(&bytes) {
                    let owned: Vec<(String, String)> = pairs
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect();
                    let encoded = encode(&owned);
                    prop_assert_eq!(parse(encoded.as_bytes()).unwrap(), pairs);
                }
            }

            #[test]
            fn reject_duplicates_agrees_with_a_naive_model(
                // Few names and up to 60 pairs: duplicates are common, and both the small-form
                // scan and the hashed path (over 24 pairs) run.
                names in vec(proptest::sample::select(vec!["scope", "state", "resource", "a", "b", "c"]), 0..60),
                repeatable in proptest::sample::subsequence(vec!["resource", "state"], 0..=2),
            ) {
                // VAL-06, AZ-09
                let pairs: Vec<(String, String)> =
                    names.iter().map(|n| ((*n).to_owned(), "v".to_owned())).collect();
                let borrowed: Vec<Pair<'_>> = pairs
                    .iter()
                    .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v.as_str())))
                    .collect();
                let got = reject_duplicates(&borrowed, &repeatable).err();
                let want = naive_duplicate(&pairs, &repeatable).map(FormError::Duplicate);
                prop_assert_eq!(got, want);
            }
        }
    }
}
