//! What the Redis store tests share: fresh key prefixes, store keys, a charge without limits.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use std::sync::atomic::{AtomicU64, Ordering};

use tower_par::store::{Charge, Share, StoreKey};

/// A prefix no other store in this process uses, so tests on one server never share keys.
pub fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("test-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The `n`-th store key of a test.
pub fn key(n: u32) -> StoreKey {
    StoreKey::derive("https://as.example.com", "client", &n.to_be_bytes())
}

/// A charge without share limits, for tests about other rules.
pub fn free() -> Charge {
    Charge::new(Share::unlimited(StoreKey::derive_tagged(
        b"test/share",
        "https://as.example.com",
        "client",
        b"",
    )))
}
