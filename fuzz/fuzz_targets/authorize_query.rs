//! The authorization endpoint: what the layer reads from a query (GET) or form body (POST) —
//! `client_id` and `request_uri` extraction, duplicates, the handle parser — driven through the
//! whole layer with a live handle.
//!
//! Input: one flag byte (bit 0: POST instead of GET, bit 1: `AtCompletion` instead of strict
//! consumption), then the query or body. Every `$uri` in it becomes a `request_uri` the layer has
//! just issued to `web-app`.
//!
//! Properties: no input panics or gets a 5xx; every refusal is RFC 6749 §5.2 JSON with
//! `no-store` and never a redirect; the issued handle is never lost: after the fuzzer's request
//! a clean redemption succeeds unless the fuzzer's request itself was the redemption, and then it
//! fails as used. The handle parser accepts exactly the `request_uri`s the layer issues.
#![no_main]

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower_par::__fuzz::{parse_handle, REQUEST_URI_PREFIX};
use tower_par_fuzz::endpoint::endpoint;

fuzz_target!(init: { endpoint(); }, |data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let (post, at_completion) = (flags & 1 != 0, flags & 2 != 0);

    if let Ok(text) = std::str::from_utf8(input) {
        if let Some(handle) = parse_handle(text) {
            assert_eq!(
                text,
                format!("{REQUEST_URI_PREFIX}{}", URL_SAFE_NO_PAD.encode(handle))
            );
        }
    }

    let endpoint = endpoint();
    let issued = endpoint.push(at_completion);
    let input = tower_par_fuzz::replace_all(input, b"$uri", issued.as_bytes());
    let req = if post {
        Request::post("/as/authorize")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(input)))
    } else {
        let mut uri = b"/as/authorize?".to_vec();
        uri.extend_from_slice(&input);
        Request::get(uri.as_slice()).body(Full::new(Bytes::new()))
    };

    let redeemed_by_fuzzer = match req {
        // A URI that `http` refuses never reaches a service.
        Err(_) => false,
        Ok(req) => {
            let answer = endpoint.call(at_completion, req);
            match answer.status {
                StatusCode::OK => false,
                StatusCode::SEE_OTHER => {
                    let redeemed = answer.redeemed().expect("only a redemption redirects");
                    parse_handle(redeemed) == parse_handle(&issued)
                }
                _ => {
                    let _code = answer.oauth_error();
                    false
                }
            }
        }
    };

    let clean = endpoint.redeem(at_completion, &issued);
    if redeemed_by_fuzzer {
        assert_eq!(
            clean.oauth_error(),
            "invalid_request_uri",
            "a handle redeemed twice"
        );
    } else {
        assert_eq!(
            clean.status,
            StatusCode::SEE_OTHER,
            "an issued handle was lost: {clean:?}"
        );
        assert_eq!(clean.redeemed(), Some(issued.as_str()));
    }
});
