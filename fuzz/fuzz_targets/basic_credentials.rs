//! The `Authorization: Basic` decoder of the PAR endpoint (RFC 6749 §2.3.1).
//!
//! Properties: no header value panics; every refusal is `401 invalid_client` with an allowed
//! description; and credentials encoded as the RFC says (each half form-urlencoded, joined by a
//! colon, base64) decode to exactly the client id and secret, in any case of the scheme name.
#![no_main]

use base64::{engine::general_purpose::STANDARD, Engine as _};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use tower_par::__fuzz::decode_basic;

fuzz_target!(|data: &[u8]| {
    if let Err(err) = decode_basic(data) {
        assert_eq!(err.code(), "invalid_client");
        assert_eq!(err.status(), 401);
        tower_par_fuzz::assert_description_allowed(err.description());
    }

    let mut u = Unstructured::new(data);
    let (Ok(client_id), Ok(secret), Ok(scheme)) = (
        u.arbitrary::<String>(),
        u.arbitrary::<String>(),
        u.choose(&["Basic", "basic", "BASIC", "bAsIc"]),
    ) else {
        return;
    };
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let header = format!(
        "{scheme} {}",
        STANDARD.encode(format!("{}:{}", encode(&client_id), encode(&secret)))
    );
    match decode_basic(header.as_bytes()) {
        Ok(decoded) => assert_eq!(decoded, (client_id, secret)),
        Err(err) => assert!(client_id.is_empty(), "{header}: {err}"),
    }
});
