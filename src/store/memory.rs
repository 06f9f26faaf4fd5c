//! Placeholder: replaced by the moka-backed store.
use std::time::{Duration, SystemTime};

use super::{ParStore, Record, StoreFuture, StoreKey};

/// In-memory store (moka).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    _capacity: u64,
}

impl MemoryStore {
    /// A store that holds at most `capacity` live records.
    #[must_use]
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            _capacity: capacity,
        }
    }
}

impl ParStore for MemoryStore {
    fn put(&self, _key: StoreKey, _record: Record, _now: SystemTime) -> StoreFuture<'_, ()> {
        unimplemented!()
    }
    fn take(&self, _key: StoreKey, _now: SystemTime) -> StoreFuture<'_, Option<Record>> {
        unimplemented!()
    }
    fn open(
        &self,
        _key: StoreKey,
        _now: SystemTime,
        _window: Duration,
    ) -> StoreFuture<'_, Option<Record>> {
        unimplemented!()
    }
    fn complete(&self, _key: StoreKey, _now: SystemTime) -> StoreFuture<'_, bool> {
        unimplemented!()
    }
    fn remember(
        &self,
        _key: StoreKey,
        _until: SystemTime,
        _now: SystemTime,
    ) -> StoreFuture<'_, bool> {
        unimplemented!()
    }
}
