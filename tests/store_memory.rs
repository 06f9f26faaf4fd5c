//! `MemoryStore` against the shared store test-suite.
#![cfg(feature = "test-suite")]

use std::sync::Arc;

use tower_par::store::{test_suite, MemoryStore};

fn store() -> MemoryStore {
    MemoryStore::with_limits(test_suite::STORE_LIMITS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite() {
    test_suite::run(|limits| async move { MemoryStore::with_limits(limits) }).await;
}

#[tokio::test]
async fn reports_its_limits() {
    test_suite::check_reports_its_limits(
        MemoryStore::with_limits(test_suite::SMALL_STORE_LIMITS),
        test_suite::SMALL_STORE_LIMITS,
    )
    .await;
}

#[tokio::test]
async fn byte_budget() {
    test_suite::check_byte_budget(MemoryStore::with_limits(test_suite::BYTE_BUDGET_LIMITS)).await;
}

#[tokio::test]
async fn client_share() {
    test_suite::check_client_share(store()).await;
}

#[tokio::test]
async fn group_share() {
    test_suite::check_group_share(store()).await;
}

#[tokio::test]
async fn full_is_not_a_share() {
    test_suite::check_full_is_not_a_share(MemoryStore::with_limits(test_suite::SMALL_STORE_LIMITS))
        .await;
}

#[tokio::test]
async fn shares_are_given_back() {
    test_suite::check_shares_are_given_back(store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_puts_within_a_share() {
    test_suite::check_parallel_puts_within_a_share(Arc::new(store())).await;
}

#[tokio::test]
async fn put_then_take() {
    test_suite::check_put_then_take(store()).await;
}

#[tokio::test]
async fn take_unknown_key() {
    test_suite::check_take_unknown_key(store()).await;
}

#[tokio::test]
async fn put_existing_key() {
    test_suite::check_put_existing_key(store()).await;
}

#[tokio::test]
async fn expiry_at_exact_deadline() {
    test_suite::check_expiry_at_exact_deadline(store()).await;
}

#[tokio::test]
async fn capacity_refusal() {
    test_suite::check_capacity_refusal(MemoryStore::with_limits(test_suite::SMALL_STORE_LIMITS))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_takes() {
    test_suite::check_parallel_takes(Arc::new(store())).await;
}

#[tokio::test]
async fn open_then_complete() {
    test_suite::check_open_then_complete(store()).await;
}

#[tokio::test]
async fn open_after_expiry() {
    test_suite::check_open_after_expiry(store()).await;
}

#[tokio::test]
async fn reopen_after_window() {
    test_suite::check_reopen_after_window(store()).await;
}

#[tokio::test]
async fn complete_without_open() {
    test_suite::check_complete_without_open(store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_completes() {
    test_suite::check_parallel_completes(Arc::new(store())).await;
}

#[tokio::test]
async fn remember() {
    test_suite::check_remember(store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_remember() {
    test_suite::check_parallel_remember(Arc::new(store())).await;
}

#[tokio::test]
async fn races_on_threads() {
    test_suite::check_races_on_threads(Arc::new(store())).await;
}

#[tokio::test]
async fn keys_are_independent() {
    test_suite::check_keys_are_independent(store()).await;
}

#[tokio::test]
async fn payload_round_trip() {
    test_suite::check_payload_round_trip(store()).await;
}

#[tokio::test]
async fn stored_requests_are_counted_exactly() {
    test_suite::check_stored_requests(store()).await;
}
