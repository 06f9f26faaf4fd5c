//! A Prometheus recorder per test thread, and the samples it renders: how a test reads the exact
//! values of the metrics contract (issue 12 item 1) in process.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use std::collections::BTreeMap;

use metrics::LocalRecorderGuard;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tower_par::{
    metrics::{PUSH_DURATION_BUCKETS, PUSH_DURATION_SECONDS},
    ParLayer,
};

/// A recorder like the reference server's: the push duration as a histogram.
fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(PUSH_DURATION_SECONDS.into()),
            &PUSH_DURATION_BUCKETS,
        )
        .unwrap()
        .build_recorder()
}

/// A fresh recorder for this thread (the test's runtime, its servers included) while the guard
/// lives, and the handle that renders it.
pub fn record_on_this_thread() -> (PrometheusHandle, LocalRecorderGuard<'static>) {
    let recorder: &'static PrometheusRecorder = Box::leak(Box::new(recorder()));
    (
        recorder.handle(),
        metrics::set_default_local_recorder(recorder),
    )
}

/// `name{labels}` → value, from the Prometheus text format.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap();
            (key.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// The samples of the counters and the histogram's count, the gauge if set: what the contract
/// fixes (the buckets and the sum depend on the machine's speed).
pub fn contract(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .filter(|(key, _)| !key.contains("_bucket{") && !key.ends_with("_sum"))
        .collect()
}

/// Updates the layer's gauges, then asserts what `handle` renders of the contract.
pub async fn assert_scraped(layer: &ParLayer, handle: &PrometheusHandle, pairs: &[(&str, f64)]) {
    layer.update_gauges().await.unwrap();
    let want: BTreeMap<String, f64> = pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(contract(&handle.render()), want);
}
