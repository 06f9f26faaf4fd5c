//! The compact payload pushed requests are stored in (`src/payload.rs`).
//!
//! Properties: no input panics `decode`; encodings are unique (whatever decodes re-encodes to the
//! same bytes); and for any pairs (read from the same bytes as structured data)
//! decode(encode(pairs)) == pairs, in at most the bytes the form they came from would take plus
//! the fixed overhead.
#![no_main]

use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use tower_par::__fuzz::payload;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = payload::decode(data) {
        assert_eq!(payload::encode(&pairs), data, "encodings are unique");
    }
    let Ok(pairs) = Unstructured::new(data).arbitrary::<Vec<(String, String)>>() else {
        return;
    };
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let encoded = payload::encode(&borrowed);
    assert_eq!(
        payload::decode(&encoded).expect("what encode wrote decodes"),
        borrowed
    );
    // `name=value&` per pair as pushed (decoded bytes; percent-encoding only adds), and one
    // varint byte per 128 bytes of a field beyond the first.
    let pushed: usize = borrowed.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    assert!(
        encoded.len() <= pushed + pushed / 128 + 2,
        "{} > bound for {pushed}",
        encoded.len()
    );
});
