//! Pushed requests sealed at rest: what a store holds is useless without the live `request_uri`.
//!
//! The handle inside a `request_uri` is 32 random bytes that only the client holds; the store sees
//! its SHA-256 digest ([`StoreKey::derive`]) and never the handle. The payload (the compact
//! encoding of `crate::payload`) is sealed with a key derived from the handle, so a dump of the
//! store, a replica, a backup or a `MONITOR` session reveals neither the handles nor what was
//! pushed (`login_hint`, `claims`, `authorization_details`, `state`, `code_challenge`…), and
//! nothing needs key management: there is no server secret to provision, rotate or leak.
//!
//! ```text
//! key    = HKDF-Expand(PRK = handle, info = "tower-par/seal/v1", L = 32)      (HKDF-SHA256)
//! aad    = FORMAT || store key (32 bytes) || expires_at milliseconds (8 bytes, big-endian)
//! sealed = FORMAT || AES-256-GCM(key, nonce = 12 zero bytes, aad, payload) || tag (16 bytes)
//! ```
//!
//! **The key.** HKDF-SHA256 (RFC 5869) with a label of its own, so the sealing key and the store
//! key (SHA-256 under the label `tower-par/request_uri/v1`) are unrelated values of one handle:
//! the store key says nothing about the sealing key. The handle is already a uniformly random
//! 256-bit key, which is what HKDF-Extract would produce, so it is used as the pseudorandom key
//! directly and only HKDF-Expand runs (RFC 5869 §3.3: "the extract part can be skipped" for
//! input that is already a cryptographically strong key). That halves the SHA-256 work of a
//! derivation (four compressions instead of eight).
//!
//! **The nonce is constant, because every key seals exactly one message.** A fresh handle is
//! drawn from the operating system's CSPRNG for every record written, and its key seals that
//! record once. Every path that writes a record was checked for this:
//!
//! * the push seals under the handle it is about to issue; when a partitioned store refuses the
//!   put as full, the retry draws a fresh handle and seals again under *its* key (the refused
//!   record, sealed under the discarded handle, was never stored);
//! * consumption at completion (`ParStore::open`) rewrites the slot's state (its window, its
//!   marker) but hands back and keeps the sealed bytes as they were: no store can re-seal, it
//!   has no key; reading again only opens again, and opening never encrypts;
//! * nothing else writes a record (replay memory for JWT ids stores no payload).
//!
//! The rule an AEAD needs is one message per key and nonce; with one message per key a fixed
//! nonce meets it, and a random one would only add 12 stored bytes a record. age wraps its file
//! keys the same way (an HKDF-derived one-time key, twelve zero bytes of nonce; c2sp.org/age).
//! The rule matters most for GCM, where a repeated nonce gives away the authentication key: that
//! is why the handle, not anything a store or a client could replay, is what keys the cipher.
//!
//! **The cipher: AES-256-GCM.** Both AEADs of the issue were measured in the push and the
//! redemption (perf samples of `benches/layer.rs`, x86-64 with AES-NI and CLMUL):
//! ChaCha20-Poly1305 (`chacha20poly1305` 0.10, the last release for the crate's Rust 1.80) took
//! 18% of their CPU, AES-256-GCM 7%: the AVX2 Poly1305 precomputes powers of its key for every
//! message, which a one-time key pays each time. On CPUs without AES-NI and CLMUL, RustCrypto
//! falls back to constant-time software (fixsliced AES, constant-time POLYVAL): slower, never
//! leaky.
//!
//! **What the tag binds (the associated data).**
//!
//! * The store key, which is the digest of issuer, `client_id` and handle: a record moved to
//!   another key, another client's or another issuer's, fails to open.
//! * `expires_at`, which the store keeps in clear beside the payload because it must judge
//!   liveness without a key. A deadline pushed into the future in Redis would extend a handle's
//!   life; bound as associated data, it makes the record fail to open instead. The layer also
//!   re-checks the authenticated deadline after opening (`now < expires_at`, or
//!   `now < expires_at + window` at completion, which bounds any window that started before
//!   `expires_at`), so a store that hands back a record past its life, such as an old copy
//!   restored from a backup, is refused too.
//! * The format byte. The sealed bytes start with [`FORMAT`], `2`: format `1` was the unsealed
//!   compact payload of the releases before sealing, whose first byte is the payload version.
//!   A record written by another version (an unsealed one from a node still on an older release
//!   during a rolling upgrade, or a later format) fails closed, as `invalid_request_uri`, and is
//!   logged as such.
//!
//! A record that fails to open at the authorization endpoint is `400 invalid_request_uri`, never
//! a redirect or a 5xx, counted as such (`tower_par_redemptions_total`), and its one log event is
//! at `error` level with the cause `store integrity error: …`, which names a prefix of the store
//! key (not a secret) beside the span's client and handle fingerprint, never the handle or a
//! value.
//!
//! **Cost.** A sealed payload is the compact payload plus 17 bytes (format byte and tag), a fixed
//! overhead per record: a stored request still takes at most `1 + 1/128` bytes per pushed byte.
//! Sealing and opening are each one HKDF-Expand, an AES-256 key schedule, one AES-CTR and one
//! GHASH pass over the payload, about 7% of a push's CPU and of a redemption's; `BENCHMARKS.md`
//! has the figures. One code path for every store: the memory store's share of that cost is not
//! worth a setting that would leave pushed data readable in a core dump or swap.

use std::time::SystemTime;

use aes_gcm::{
    aead::{consts::U12, AeadInPlace, KeyInit},
    aes::Aes256Enc,
    AesGcm, Key, Nonce, Tag,
};
use bytes::Bytes;
use hkdf::Hkdf;
use sha2::Sha256;

use crate::{
    layer::{Config, Consumption},
    store::{unix_millis, Record, StoreKey},
};

/// The first byte of every sealed payload: the record format (1 was the unsealed payload).
pub(crate) const FORMAT: u8 = 2;

/// HKDF's `info`: distinct from the store key's label, so the two derivations never meet.
const LABEL: &[u8] = b"tower-par/seal/v1";

/// GCM's tag.
const TAG_LEN: usize = 16;

/// What sealing adds to a payload: the format byte and the tag.
pub(crate) const OVERHEAD: usize = 1 + TAG_LEN;

/// One message per key, so one nonce for all (see the module docs).
const NONCE: [u8; 12] = [0; 12];

/// The associated data: format, store key, deadline.
type Aad = [u8; 1 + 32 + 8];

/// Why stored bytes did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// The first byte names another format (`None`: no bytes at all).
    Format(Option<u8>),
    /// Shorter than a format byte and a tag.
    Truncated,
    /// The tag does not match: altered, cut, moved from another key, another deadline, or sealed
    /// under another handle.
    Forged,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Format(Some(1)) => {
                f.write_str("an unsealed record, written by a release before sealing")
            }
            Self::Format(Some(byte)) => write!(f, "record format {byte}, not {FORMAT}"),
            Self::Format(None) => f.write_str("an empty record"),
            Self::Truncated => f.write_str("a record too short to hold its tag"),
            Self::Forged => f.write_str(
                "the tag does not match: altered, truncated, moved from another key, or another deadline",
            ),
        }
    }
}

/// AES-256-GCM with the encryption half of AES only: GCM never decrypts a block, so the inverse
/// key schedule that `aes_gcm::Aes256Gcm` also computes would be wasted on every one-time key.
type Cipher = AesGcm<Aes256Enc, U12>;

/// The one-time cipher of `handle`.
fn cipher(handle: &[u8; 32]) -> Cipher {
    let mut key = Key::<Cipher>::default();
    Hkdf::<Sha256>::from_prk(handle)
        .expect("a 32-byte handle is a valid HKDF-SHA256 pseudorandom key")
        .expand(LABEL, key.as_mut_slice())
        .expect("32 bytes are within HKDF-SHA256's output limit");
    Cipher::new(&key)
}

fn associated_data(store_key: &StoreKey, expires_at_ms: u64) -> Aad {
    let mut aad = [0u8; 1 + 32 + 8];
    aad[0] = FORMAT;
    aad[1..33].copy_from_slice(store_key.as_bytes());
    aad[33..].copy_from_slice(&expires_at_ms.to_be_bytes());
    aad
}

/// Seals `payload` for the record stored under `store_key` with the deadline `expires_at_ms`.
///
/// `handle` must be fresh, drawn for this record and used for no other: its key seals one
/// message, under a constant nonce (module docs).
#[cfg(test)]
pub(crate) fn seal(
    handle: &[u8; 32],
    store_key: &StoreKey,
    expires_at_ms: u64,
    payload: &[u8],
) -> Bytes {
    seal_written(handle, store_key, expires_at_ms, payload.len(), |out| {
        out.extend_from_slice(payload);
    })
}

/// [`seal`] of the `len` bytes of payload that `write` appends to the buffer it is given: the
/// payload is written, encrypted and stored in one buffer, allocated once at its final size.
pub(crate) fn seal_written(
    handle: &[u8; 32],
    store_key: &StoreKey,
    expires_at_ms: u64,
    len: usize,
    write: impl FnOnce(&mut Vec<u8>),
) -> Bytes {
    let mut sealed = Vec::with_capacity(OVERHEAD + len);
    sealed.push(FORMAT);
    write(&mut sealed);
    debug_assert_eq!(sealed.len(), 1 + len, "the payload is as long as announced");
    let tag = cipher(handle)
        .encrypt_in_place_detached(
            Nonce::from_slice(&NONCE),
            &associated_data(store_key, expires_at_ms),
            &mut sealed[1..],
        )
        .expect("a pushed request is far below GCM's 64 GiB message limit");
    sealed.extend_from_slice(&tag);
    Bytes::from(sealed)
}

/// Opens what [`seal`] made for this handle, store key and deadline; the payload, or why not.
pub(crate) fn open(
    handle: &[u8; 32],
    store_key: &StoreKey,
    expires_at_ms: u64,
    sealed: &[u8],
) -> Result<Bytes, OpenError> {
    match sealed.first() {
        Some(&FORMAT) => {}
        other => return Err(OpenError::Format(other.copied())),
    }
    if sealed.len() < OVERHEAD {
        return Err(OpenError::Truncated);
    }
    let (body, tag) = sealed[1..].split_at(sealed.len() - OVERHEAD);
    let mut payload = body.to_vec();
    cipher(handle)
        .decrypt_in_place_detached(
            Nonce::from_slice(&NONCE),
            &associated_data(store_key, expires_at_ms),
            &mut payload,
            Tag::from_slice(tag),
        )
        .map_err(|_| OpenError::Forged)?;
    Ok(Bytes::from(payload))
}

/// Why a record that the store handed back is refused: a store integrity error. It is the
/// `cause` of the refusal's one `error` event (`crate::outcome`), so it names the problem and a
/// prefix of the store key (not a secret, and where an operator finds the record), never the
/// handle or a pushed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntegrityError {
    store_key: StoreKey,
    problem: Problem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    /// The sealed bytes do not open under the handle, this key and the deadline.
    Unopened(OpenError),
    /// It opened, but the store handed it back past its authenticated deadline.
    PastDeadline,
}

impl std::fmt::Display for IntegrityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.store_key;
        match self.problem {
            Problem::Unopened(err) => write!(
                f,
                "store integrity error: the pushed request stored under {key:?} does not open under its request_uri: {err}"
            ),
            Problem::PastDeadline => write!(
                f,
                "store integrity error: the store handed back the pushed request stored under {key:?} past its deadline"
            ),
        }
    }
}

/// The one way the layer reads a stored request: opens `record`, which the store handed back for
/// `store_key` at `now`, and re-checks its authenticated deadline.
///
/// Every reader goes through here: the redemption at the authorization endpoint (strict or at
/// completion) and [`ParLayer::pushed_request`](crate::ParLayer::pushed_request); each reports
/// an [`IntegrityError`] as one `error` event of its own (`crate::outcome`).
pub(crate) fn open_stored(
    config: &Config,
    handle: &[u8; 32],
    store_key: &StoreKey,
    record: &Record,
    now: SystemTime,
) -> Result<Bytes, IntegrityError> {
    let refused = |problem| IntegrityError {
        store_key: *store_key,
        problem,
    };
    let payload = open(
        handle,
        store_key,
        record.expires_at_millis(),
        record.payload(),
    )
    .map_err(|err| refused(Problem::Unopened(err)))?;
    // The store judged liveness by the deadline in clear; the sealed one is authentic.
    let last_use_ms = match config.consumption {
        Consumption::Strict => 0,
        Consumption::AtCompletion { window } => {
            u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
        }
    };
    if unix_millis(now) >= record.expires_at_millis().saturating_add(last_use_ms) {
        return Err(refused(Problem::PastDeadline));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDLE: [u8; 32] = [7; 32];
    const DEADLINE: u64 = 1_700_000_060_000;

    fn store_key(handle: &[u8; 32]) -> StoreKey {
        StoreKey::derive("https://as.example.com", "web-app", handle)
    }

    fn sealed(payload: &[u8]) -> Bytes {
        seal(&HANDLE, &store_key(&HANDLE), DEADLINE, payload)
    }

    fn open_default(sealed: &[u8]) -> Result<Bytes, OpenError> {
        open(&HANDLE, &store_key(&HANDLE), DEADLINE, sealed)
    }

    #[test]
    fn round_trip_adds_seventeen_bytes() {
        for payload in [&b""[..], b"\x01", &[0x01; 1000]] {
            let sealed = sealed(payload);
            assert_eq!(sealed.len(), payload.len() + OVERHEAD);
            assert_eq!(sealed[0], FORMAT);
            assert_eq!(open_default(&sealed).unwrap(), payload);
        }
    }

    #[test]
    fn the_payload_is_not_in_the_sealed_bytes() {
        let payload = b"\x01\x05state\x14login-hint-0123456789";
        let sealed = sealed(payload);
        assert!(!sealed
            .windows(8)
            .any(|w| payload.windows(8).any(|p| p == w)));
    }

    #[test]
    fn another_handle_store_key_or_deadline_does_not_open() {
        let sealed = sealed(b"\x01\x01a\x01b");
        let other = [8u8; 32];
        let cases = [
            (
                "the right store key, another handle",
                other,
                store_key(&HANDLE),
                DEADLINE,
            ),
            (
                "another handle and its key",
                other,
                store_key(&other),
                DEADLINE,
            ),
            (
                "another client's key",
                HANDLE,
                StoreKey::derive("https://as.example.com", "other-app", &HANDLE),
                DEADLINE,
            ),
            (
                "another issuer's key",
                HANDLE,
                StoreKey::derive("https://other.example.com", "web-app", &HANDLE),
                DEADLINE,
            ),
            ("a later deadline", HANDLE, store_key(&HANDLE), DEADLINE + 1),
            (
                "an hour later",
                HANDLE,
                store_key(&HANDLE),
                DEADLINE + 3_600_000,
            ),
            (
                "an earlier deadline",
                HANDLE,
                store_key(&HANDLE),
                DEADLINE - 1,
            ),
        ];
        for (what, handle, key, deadline) in cases {
            assert_eq!(
                open(&handle, &key, deadline, &sealed),
                Err(OpenError::Forged),
                "{what}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_refused() {
        let sealed = sealed(b"\x01\x05scope\x06openid");
        for at in 1..sealed.len() {
            for bit in 0..8 {
                let mut altered = sealed.to_vec();
                altered[at] ^= 1 << bit;
                assert_eq!(
                    open_default(&altered),
                    Err(OpenError::Forged),
                    "byte {at} bit {bit}"
                );
            }
        }
        for len in 0..sealed.len() {
            let expected = match len {
                0 => OpenError::Format(None),
                1..OVERHEAD => OpenError::Truncated,
                _ => OpenError::Forged,
            };
            assert_eq!(open_default(&sealed[..len]), Err(expected), "{len} bytes");
        }
    }

    #[test]
    fn another_format_is_refused_before_any_work() {
        let mut sealed = sealed(b"\x01\x01a\x01b").to_vec();
        // An unsealed payload of the releases before sealing starts with its version, 1.
        assert_eq!(
            open_default(&crate::payload::encode(&[("scope", "openid")])),
            Err(OpenError::Format(Some(1)))
        );
        sealed[0] = 3;
        assert_eq!(open_default(&sealed), Err(OpenError::Format(Some(3))));
        assert!(OpenError::Format(Some(1))
            .to_string()
            .contains("before sealing"));
    }

    #[test]
    fn one_payload_under_two_handles_shares_no_keystream() {
        let payload = [0x01; 64];
        let a = seal(&HANDLE, &store_key(&HANDLE), DEADLINE, &payload);
        let other = [9u8; 32];
        let b = seal(&other, &store_key(&other), DEADLINE, &payload);
        assert_ne!(a[1..65], b[1..65]);
        assert_ne!(a[65..], b[65..]);
    }
}
