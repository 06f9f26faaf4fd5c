//! The form decoder and encoder (`src/params.rs`), as both endpoints use them.
//!
//! Properties: no input panics; whatever decodes re-encodes canonically and decodes back to the
//! same pairs; the duplicate check agrees with a naive count; and for any pairs (read from the
//! same bytes as structured data) decode(encode(pairs)) == pairs, minus the pairs with an empty
//! name or value, which the decoder treats as omitted (RFC 6749 §3.1); and the compact payload
//! the PAR endpoint stores (`src/payload.rs`) gives back exactly the decoded pairs.
#![no_main]

use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use tower_par::__fuzz::{form, payload};

fuzz_target!(|data: &[u8]| {
    decoded_bytes_round_trip(data);
    encoded_pairs_round_trip(data);
});

fn decoded_bytes_round_trip(data: &[u8]) {
    let Ok(pairs) = form::parse(data) else {
        return;
    };
    let mut encoded = String::new();
    for (name, value) in &pairs {
        assert!(
            !name.is_empty() && !value.is_empty(),
            "empty pairs are dropped"
        );
        form::append_pair(&mut encoded, name, value);
    }
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)),
        "canonical encoding: {encoded}"
    );
    assert_eq!(form::parse(encoded.as_bytes()).unwrap(), pairs);

    for repeatable in [&[][..], form::REPEATABLE] {
        let naive = pairs.iter().enumerate().find(|(i, (name, _))| {
            !repeatable.contains(&name.as_ref()) && pairs[..*i].iter().any(|(n, _)| n == name)
        });
        match (form::reject_duplicates(&pairs, repeatable), naive) {
            (Ok(()), None) => {}
            (Err(err), Some((_, (name, _)))) => {
                let shown: String = name.chars().take(64).collect();
                assert_eq!(err, format!("parameter {shown} is included more than once"));
            }
            (got, want) => panic!("duplicate check {got:?}, naive model {want:?}"),
        }
    }

    // What the PAR endpoint stores: the compact payload gives back exactly these pairs.
    let stored = payload::encode(
        &pairs
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect::<Vec<_>>(),
    );
    let restored = payload::decode(&stored).expect("a payload the layer wrote decodes");
    assert!(restored
        .iter()
        .map(|&(n, v)| (n, v))
        .eq(pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))));
}

fn encoded_pairs_round_trip(data: &[u8]) {
    let Ok(pairs) = Unstructured::new(data).arbitrary::<Vec<(String, String)>>() else {
        return;
    };
    let mut encoded = String::new();
    for (name, value) in &pairs {
        form::append_pair(&mut encoded, name, value);
    }
    let decoded: Vec<(String, String)> = form::parse(encoded.as_bytes())
        .expect("the canonical encoding always decodes")
        .into_iter()
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let kept: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .collect();
    assert_eq!(decoded, kept);
}
