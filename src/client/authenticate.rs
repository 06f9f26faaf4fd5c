//! Client authentication at the PAR endpoint (RFC 9126 §2, RFC 6749 §2.3).

use std::{borrow::Cow, sync::Arc};

use base64::{engine::general_purpose::STANDARD, DecodeSliceError, Engine as _};
use http::{header, HeaderMap};

use super::{AuthMethod, Client};
use crate::{
    error::OAuthError,
    layer::Config,
    params::{self, Pair},
    trace,
};

/// The credentials a request presents; at most one kind is allowed (AUTH-05).
enum Presented<'a> {
    Basic {
        client_id: Cow<'a, str>,
        secret: Cow<'a, str>,
    },
    Post {
        secret: &'a str,
    },
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    Assertion {
        assertion_type: Option<&'a str>,
        assertion: Option<&'a str>,
    },
    Nothing,
}

/// Authenticates the client of a PAR request with exactly one method, the one it registered.
pub(crate) async fn authenticate(
    config: &Config,
    headers: &HeaderMap,
    pairs: &[Pair<'_>],
) -> Result<Arc<Client>, OAuthError> {
    let challenge = |err: OAuthError| err.with_basic_challenge(Arc::clone(&config.realm));
    let body_client_id = params::first(pairs, "client_id");

    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(BasicCredentials::decode(value.as_bytes()).map_err(&challenge)?),
        None => None,
    };
    let presented = presented(basic.as_ref(), pairs).map_err(&challenge)?;
    let used_basic = matches!(presented, Presented::Basic { .. });
    // RFC 6749 §5.2: a 401 answers the scheme the client used.
    let fail = |err: OAuthError| if used_basic { challenge(err) } else { err };

    let client_id: &str = match &presented {
        Presented::Basic { client_id, .. } => {
            if body_client_id.is_none() {
                // The PAR endpoint recorded the form's client_id already.
                trace::record_client_id(client_id);
            }
            client_id
        }
        Presented::Assertion { .. } => {
            #[cfg(feature = "jwt")]
            {
                return super::authenticate_assertion(config, pairs, presented_assertion(&presented)).await;
            }
            #[cfg(not(feature = "jwt"))]
            return Err(OAuthError::invalid_client(
                "client assertions (private_key_jwt, client_secret_jwt) are not enabled on this server",
            ));
        }
        Presented::Post { .. } | Presented::Nothing => body_client_id.ok_or_else(|| {
            OAuthError::invalid_client("no client authentication: send client credentials or, for a public client, client_id")
        })?,
    };
    if body_client_id.is_some_and(|body| body != client_id) {
        // AUTH-09: the authorization request must name the client that authenticated.
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }

    let client = lookup(config, client_id)
        .await?
        .ok_or_else(|| fail(OAuthError::invalid_client("unknown client")))?;
    let registered = client.auth_method();
    let method_error = || {
        fail(OAuthError::invalid_client(format!(
            "client is registered for {registered}, not the method this request used"
        )))
    };
    match presented {
        Presented::Basic { secret, .. } if registered == AuthMethod::ClientSecretBasic => {
            verify_secret(&client, secret.as_bytes()).map_err(fail)?;
        }
        Presented::Post { secret } if registered == AuthMethod::ClientSecretPost => {
            verify_secret(&client, secret.as_bytes())?;
        }
        Presented::Nothing if registered == AuthMethod::None => {}
        Presented::Nothing => {
            return Err(OAuthError::invalid_client(format!(
                "client authentication is required (registered method {registered})"
            )))
        }
        _ => return Err(method_error()),
    }
    Ok(client)
}

#[cfg(feature = "jwt")]
fn presented_assertion<'a>(presented: &Presented<'a>) -> (Option<&'a str>, Option<&'a str>) {
    match presented {
        Presented::Assertion {
            assertion_type,
            assertion,
        } => (*assertion_type, *assertion),
        _ => (None, None),
    }
}

/// The registered client, `None` when there is none; each endpoint names that its own way. A
/// registry failure is `503 temporarily_unavailable` everywhere.
pub(crate) async fn lookup(
    config: &Config,
    client_id: &str,
) -> Result<Option<Arc<Client>>, OAuthError> {
    config.clients.client(client_id).await.map_err(|err| {
        OAuthError::unavailable("the client registry is unavailable, retry later")
            .failure(format_args!("client registry lookup failed: {err}"))
    })
}

fn verify_secret(client: &Client, presented: &[u8]) -> Result<(), OAuthError> {
    if client.secret_matches(presented) {
        Ok(())
    } else {
        Err(OAuthError::invalid_client(
            "client authentication failed: wrong client secret",
        ))
    }
}

fn presented<'a>(
    basic: Option<&'a BasicCredentials>,
    pairs: &'a [Pair<'a>],
) -> Result<Presented<'a>, OAuthError> {
    let basic = basic.map(BasicCredentials::halves).transpose()?;
    let post = params::first(pairs, "client_secret");
    let assertion = params::first(pairs, "client_assertion");
    let assertion_type = params::first(pairs, "client_assertion_type");
    let has_assertion = assertion.is_some() || assertion_type.is_some();
    if usize::from(basic.is_some()) + usize::from(post.is_some()) + usize::from(has_assertion) > 1 {
        return Err(OAuthError::invalid_request(
            "the request uses more than one client authentication method",
        ));
    }
    Ok(match (basic, post) {
        (Some((client_id, secret)), _) => Presented::Basic { client_id, secret },
        (None, Some(secret)) => Presented::Post { secret },
        (None, None) if has_assertion => Presented::Assertion {
            assertion_type,
            assertion,
        },
        (None, None) => Presented::Nothing,
    })
}

/// Decodes `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1, AUTH-03), as
/// owned strings (the PAR endpoint borrows them from [`BasicCredentials`] instead).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_basic(value: &[u8]) -> Result<(String, String), OAuthError> {
    let credentials = BasicCredentials::decode(value)?;
    let (client_id, secret) = credentials.halves()?;
    Ok((client_id.into_owned(), secret.into_owned()))
}

/// Room for the credentials of `Authorization: Basic` on the stack: every client id and secret
/// of a sane length fits, and a push then allocates nothing for them.
const INLINE_CREDENTIALS: usize = 192;

/// The credentials of an `Authorization: Basic` field, base64-decoded, each half still
/// form-encoded.
pub(crate) struct BasicCredentials {
    decoded: Decoded,
    colon: usize,
}

enum Decoded {
    Inline {
        bytes: [u8; INLINE_CREDENTIALS],
        len: usize,
    },
    Heap(Vec<u8>),
}

impl BasicCredentials {
    /// The scheme (any case) and the base64 of `Basic <credentials>`, which must hold a colon.
    pub(crate) fn decode(value: &[u8]) -> Result<Self, OAuthError> {
        let bad = |why: &'static str| OAuthError::invalid_client(why);
        let (scheme, credentials) = match value.iter().position(|&b| b == b' ') {
            Some(at) => (&value[..at], value[at + 1..].trim_ascii()),
            None => (value, &value[value.len()..]),
        };
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return Err(bad("only the Basic authorization scheme is supported here"));
        }
        let not_base64 = || bad("the Basic credentials are not valid base64");
        let mut bytes = [0u8; INLINE_CREDENTIALS];
        let decoded = match STANDARD.decode_slice(credentials, &mut bytes) {
            Ok(len) => Decoded::Inline { bytes, len },
            Err(DecodeSliceError::OutputSliceTooSmall) => {
                Decoded::Heap(STANDARD.decode(credentials).map_err(|_| not_base64())?)
            }
            Err(DecodeSliceError::DecodeError(_)) => return Err(not_base64()),
        };
        let colon = decoded
            .as_slice()
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("the Basic credentials have no colon"))?;
        Ok(Self { decoded, colon })
    }

    /// The user-id (the client id) and the password (the secret), form-decoded.
    fn halves(&self) -> Result<(Cow<'_, str>, Cow<'_, str>), OAuthError> {
        let bad = |why: &'static str| OAuthError::invalid_client(why);
        let bytes = self.decoded.as_slice();
        let client_id = params::decode(&bytes[..self.colon])
            .map_err(|_| bad("the Basic user-id is not form-urlencoded UTF-8"))?;
        let secret = params::decode(&bytes[self.colon + 1..])
            .map_err(|_| bad("the Basic password is not form-urlencoded UTF-8"))?;
        if client_id.is_empty() {
            return Err(bad("the Basic user-id is empty"));
        }
        Ok((client_id, secret))
    }
}

impl Decoded {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { bytes, len } => &bytes[..*len],
            Self::Heap(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_halves_are_form_decoded() {
        // AUTH-03: id `a:b c`, secret `p+q%r`
        let (id, secret) = decode_basic(basic("a%3Ab+c:p%2Bq%25r").as_bytes()).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("a:b c", "p+q%r"));
    }

    #[test]
    fn basic_scheme_is_case_insensitive_and_split_on_the_first_colon() {
        let (id, secret) =
            decode_basic(format!("bAsIc {}", STANDARD.encode("id:se:cret")).as_bytes()).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("id", "se:cret"));
    }

    #[test]
    fn credentials_past_the_inline_buffer_decode_the_same() {
        // AUTH-03: the stack buffer is an optimisation, never a limit.
        for len in [
            INLINE_CREDENTIALS - 10,
            INLINE_CREDENTIALS,
            4 * INLINE_CREDENTIALS,
        ] {
            let secret = "s".repeat(len);
            let (id, decoded) = decode_basic(basic(&format!("id:{secret}")).as_bytes()).unwrap();
            assert_eq!((id.as_str(), decoded.len()), ("id", len));
        }
        let long_garbage = format!("Basic {}", "!".repeat(4 * INLINE_CREDENTIALS));
        let err = decode_basic(long_garbage.as_bytes()).unwrap_err();
        assert_eq!(err.code(), "invalid_client");
    }

    #[test]
    fn malformed_basic_credentials_are_invalid_client() {
        for value in [
            "Bearer abc",
            "Basic !!!",
            &basic("no-colon"),
            &basic(":secret"),
            &basic("a%ZZ:b"),
            "Basic",
        ] {
            let err = decode_basic(value.as_bytes()).unwrap_err();
            assert_eq!(err.code(), "invalid_client", "{value}");
        }
    }

    proptest::proptest! {
        #[test]
        fn basic_credentials_encoded_per_rfc_6749_decode_to_themselves(
            client_id in proptest::prelude::any::<String>(),
            secret in proptest::prelude::any::<String>(),
        ) {
            // AUTH-03: form-urlencode each half (App. B), join with a colon, base64.
            let urlencode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let header = basic(&format!("{}:{}", urlencode(&client_id), urlencode(&secret)));
            match decode_basic(header.as_bytes()) {
                Ok(decoded) => proptest::prop_assert_eq!(decoded, (client_id, secret)),
                Err(err) => {
                    proptest::prop_assert!(client_id.is_empty(), "{}", err);
                    proptest::prop_assert_eq!(err.code(), "invalid_client");
                }
            }
        }

        #[test]
        fn any_authorization_value_is_decoded_or_refused_as_invalid_client(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
        ) {
            if let Err(err) = decode_basic(&value) {
                proptest::prop_assert_eq!(err.code(), "invalid_client");
            }
        }
    }
}
