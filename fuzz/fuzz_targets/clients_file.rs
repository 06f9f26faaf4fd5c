//! The clients-file loader (`StaticClients::from_json_str`), including inline JWK Sets.
//!
//! Properties: no input panics; a file that loads holds only registrations `ClientBuilder::build`
//! accepts (non-empty unique ids, lifetimes of 1-600 whole seconds) and builds a layer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_par::{ParLayer, StaticClients};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let clients = match StaticClients::from_json_str(text) {
        Ok(clients) => clients,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    for client in clients.iter() {
        assert!(!client.client_id().is_empty());
        assert!(clients.get(client.client_id()).is_some());
        if let Some(lifetime) = client.par_lifetime() {
            assert!((1..=600).contains(&lifetime.as_secs()) && lifetime.subsec_nanos() == 0);
        }
        let _ = format!("{client:?}");
    }
    ParLayer::builder()
        .issuer(tower_par_fuzz::ISSUER)
        .clients(clients)
        .build()
        .expect("a registry that loaded builds a layer");
});
