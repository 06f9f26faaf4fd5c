//! Metrics (issue 12 item 1): the names, labels and values are a contract. In process, each test
//! installs its own Prometheus recorder for its thread and reads the exact values it rendered;
//! against the `par_server` binary, `--metrics` serves them over HTTP after a scripted sequence of
//! pushes, redemptions and a completion race.

mod common;
#[path = "common/par_server.rs"]
mod par_server;

use std::{collections::BTreeMap, sync::Arc};

use axum::{extract::State, response::IntoResponse, routing::get, Router};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use metrics::LocalRecorderGuard;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::sync::Barrier;
use tower_par::{
    metrics::{PUSH_DURATION_BUCKETS, PUSH_DURATION_SECONDS},
    Consumption, ManualClock, ParLayer,
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
fn record_on_this_thread() -> (PrometheusHandle, LocalRecorderGuard<'static>) {
    let recorder: &'static PrometheusRecorder = Box::leak(Box::new(recorder()));
    (
        recorder.handle(),
        metrics::set_default_local_recorder(recorder),
    )
}

/// `name{labels}` → value, from the Prometheus text format.
fn samples(text: &str) -> BTreeMap<String, f64> {
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
fn contract(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .filter(|(key, _)| !key.contains("_bucket{") && !key.ends_with("_sum"))
        .collect()
}

/// Updates the layer's gauges, then asserts what `handle` renders of the contract.
async fn assert_scraped(layer: &ParLayer, handle: &PrometheusHandle, pairs: &[(&str, f64)]) {
    layer.update_gauges().await.unwrap();
    let want: BTreeMap<String, f64> = pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(contract(&handle.render()), want);
}

const UNKNOWN_HANDLE: &str =
    "urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[tokio::test]
async fn every_push_and_redemption_is_counted_once_by_outcome() {
    let (handle, _recording) = record_on_this_thread();
    let layer = builder(&ManualClock::new())
        .max_body_bytes(2_000)
        .build()
        .unwrap();
    let server = serve(layer.clone(), InnerMode::Echo).await;

    let first = server.push_web("").await.request_uri();
    let second = server.push_web("").await.request_uri();
    server.push_post("").await.request_uri();
    server
        .push(Some("web-app:wrong"), "response_type=code")
        .await
        .assert_error(401, "invalid_client");
    server
        .push_web("state=twice")
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(server.get("/as/par").await.status, 405);
    assert_eq!(server.push_web(&"x".repeat(3_000)).await.status, 413);
    server
        .push(Some("web-app:web-app-secret"), "response_type=teapot")
        .await
        .assert_error(400, "unsupported_response_type");
    // A CORS preflight pushes nothing.
    let preflight = http::Request::options(server.url("/as/par"))
        .header("origin", "http://127.0.0.1:8080")
        .header("access-control-request-method", "POST")
        .body(Full::default())
        .unwrap();
    assert_eq!(server.send(preflight).await.status, 204);

    assert_eq!(server.redeem("web-app", &first).await.status, 200);
    server
        .redeem("web-app", &first)
        .await
        .assert_error(400, "invalid_request_uri");
    server
        .redeem("web-app", UNKNOWN_HANDLE)
        .await
        .assert_error(400, "invalid_request_uri");
    server
        .get(&format!("/as/authorize?request_uri={}", enc(&second)))
        .await
        .assert_error(400, "invalid_request");
    // Not redemptions: a plain authorization request, and one refused by require_par.
    assert_eq!(
        server.get("/as/authorize?client_id=web-app").await.status,
        200
    );
    server
        .get("/as/authorize?client_id=par-required")
        .await
        .assert_error(400, "invalid_request");

    assert_scraped(
        &layer,
        &handle,
        &[
            ("tower_par_pushes_total{outcome=\"created\"}", 3.0),
            ("tower_par_pushes_total{outcome=\"invalid_client\"}", 1.0),
            ("tower_par_pushes_total{outcome=\"invalid_request\"}", 3.0),
            (
                "tower_par_pushes_total{outcome=\"unsupported_response_type\"}",
                1.0,
            ),
            ("tower_par_push_duration_seconds_count", 8.0),
            ("tower_par_redemptions_total{outcome=\"swapped\"}", 1.0),
            (
                "tower_par_redemptions_total{outcome=\"invalid_request_uri\"}",
                2.0,
            ),
            (
                "tower_par_redemptions_total{outcome=\"invalid_request\"}",
                1.0,
            ),
            ("tower_par_stored_requests", 2.0),
        ],
    )
    .await;
    let text = handle.render();
    assert!(
        text.contains("# TYPE tower_par_push_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("tower_par_push_duration_seconds_bucket{le=\"+Inf\"} 8"),
        "{text}"
    );
}

/// The inner authorization endpoint of the race: both requests wait for each other, so both have
/// opened the handle before either answers with the authorization response.
async fn both_then_redirect(State(barrier): State<Arc<Barrier>>) -> impl IntoResponse {
    barrier.wait().await;
    (
        http::StatusCode::SEE_OTHER,
        [("location", format!("{WEB_CB}?code=c&state=xyz"))],
    )
}

#[tokio::test]
async fn a_completion_race_has_one_completed_and_one_lost_race() {
    let (handle, _recording) = record_on_this_thread();
    let logs = Logs::capture();
    let layer = builder(&ManualClock::new())
        .consumption(Consumption::at_completion())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/as/authorize", get(both_then_redirect))
        .with_state(Arc::new(Barrier::new(2)));
    let server = serve_app(layer.clone(), app).await;
    let uri = server.push_web("").await.request_uri();
    logs.take();

    let (a, b) = tokio::join!(
        server.redeem("web-app", &uri),
        server.redeem("web-app", &uri)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [303, 400],
        "one authorization response, one withheld"
    );
    let withheld = if a.status == 400 { &a } else { &b };
    withheld.assert_error(400, "invalid_request_uri");

    // Per request one event for the redemption; per completion attempt one for its outcome.
    let text = logs.take();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" tower_par::"))
        .collect();
    assert_eq!(events.len(), 4, "{text}");
    assert_eq!(
        text.matches("pushed authorization request redeemed")
            .count(),
        2
    );
    assert_eq!(
        text.matches("pushed authorization request completed")
            .count(),
        1
    );
    assert_eq!(
        text.matches("pushed authorization request not completed")
            .count(),
        1
    );

    // The layer's completion from anywhere counts too: a consent page's late try.
    assert!(!layer.complete("web-app", &uri).await.unwrap());
    assert_scraped(
        &layer,
        &handle,
        &[
            ("tower_par_pushes_total{outcome=\"created\"}", 1.0),
            ("tower_par_push_duration_seconds_count", 1.0),
            ("tower_par_redemptions_total{outcome=\"swapped\"}", 2.0),
            ("tower_par_completions_total{outcome=\"completed\"}", 1.0),
            ("tower_par_completions_total{outcome=\"lost_race\"}", 2.0),
            ("tower_par_stored_requests", 0.0),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_client_id_label_is_opt_in_and_names_registered_clients_only() {
    let (handle, _recording) = record_on_this_thread();

    let unlabelled = serve_echo(builder(&ManualClock::new())).await;
    unlabelled.push_web("").await.request_uri();
    assert!(!handle.render().contains("client_id"));

    let layer: ParLayer = builder(&ManualClock::new())
        .metrics_client_id_label(true)
        .build()
        .unwrap();
    let labelled = serve(layer, InnerMode::Echo).await;
    let uri = labelled.push_web("").await.request_uri();
    labelled
        .push(
            None,
            "response_type=code&client_id=stranger-4711&client_secret=x",
        )
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(labelled.redeem("web-app", &uri).await.status, 200);
    labelled
        .redeem("stranger-4711", &uri)
        .await
        .assert_error(400, "invalid_request");

    let samples = contract(&handle.render());
    for (key, value) in [
        ("tower_par_pushes_total{outcome=\"created\"}", 1.0),
        (
            "tower_par_pushes_total{outcome=\"created\",client_id=\"web-app\"}",
            1.0,
        ),
        (
            "tower_par_pushes_total{outcome=\"invalid_client\",client_id=\"\"}",
            1.0,
        ),
        (
            "tower_par_redemptions_total{outcome=\"swapped\",client_id=\"web-app\"}",
            1.0,
        ),
        (
            "tower_par_redemptions_total{outcome=\"invalid_request\",client_id=\"\"}",
            1.0,
        ),
    ] {
        assert_eq!(samples.get(key), Some(&value), "{key} in {samples:#?}");
    }
    assert!(
        !samples.keys().any(|k| k.contains("stranger")),
        "{samples:#?}"
    );
}

/// What one client of the scripted sequence saw of a redemption in completion mode.
#[derive(Default, Debug)]
struct Seen {
    completed: u32,
    lost_race: u32,
    invalid_request_uri: u32,
}

async fn get_text(url: &str) -> (u16, String) {
    let reply = send_with_new_client(
        http::Request::get(url)
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await;
    (
        reply.status,
        String::from_utf8(reply.body.to_vec()).unwrap(),
    )
}

async fn push_to(base: &str, basic: Option<&str>, form: &str) -> Reply {
    let mut request = http::Request::post(format!("{base}/as/par"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(credentials) = basic {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        request = request.header("authorization", format!("Basic {encoded}"));
    }
    send_with_new_client(
        request
            .body(Full::new(Bytes::from(form.to_owned())))
            .unwrap(),
    )
    .await
}

fn web_form() -> String {
    format!("response_type=code&redirect_uri={}&state=s", enc(WEB_CB))
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A redemption by `web-app` of `uri`, classified by what the client got.
async fn redeem_at(client: &HttpClient, base: &str, uri: &str, seen: &mut Seen) {
    let url = format!(
        "{base}/as/authorize?client_id=web-app&request_uri={}",
        enc(uri)
    );
    let response = client
        .request(http::Request::get(url).body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let reply = Reply {
        status,
        headers: http::HeaderMap::new(),
        body,
    };
    match reply.status {
        303 => seen.completed += 1,
        400 => {
            assert_eq!(reply.json()["error"], "invalid_request_uri");
            if reply.json()["error_description"] == "request_uri was already used" {
                seen.lost_race += 1;
            } else {
                seen.invalid_request_uri += 1;
            }
        }
        other => panic!("unexpected {other}: {:?}", reply.body),
    }
}

/// Concurrent redemptions of one handle in a race.
const RACERS: usize = 8;
/// Races tried at most before the test gives up on seeing a completion lost.
const MAX_RACES: u32 = 400;

/// The contract over HTTP: `par_server --metrics` after pushes that succeed and fail for
/// different reasons, redemptions that succeed and fail, and completion races.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn par_server_serves_the_exact_counts_on_its_metrics_listener() {
    let binary = par_server::par_server_binary();
    let node = par_server::Node::start(
        &binary,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--consume",
            "completion",
            "--inner",
            "redirect",
        ],
    );
    let base = node.base.clone();
    let metrics = node
        .metrics
        .clone()
        .expect("par_server printed its metrics URL");
    let basic = Some("web-app:web-app-secret");

    let mut created = 0u32;
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(push_to(&base, basic, &web_form()).await.request_uri());
        created += 1;
    }
    push_to(&base, Some("web-app:wrong"), &web_form())
        .await
        .assert_error(401, "invalid_client");
    push_to(&base, basic, &format!("{}&state=again", web_form()))
        .await
        .assert_error(400, "invalid_request");
    push_to(&base, basic, "response_type=teapot")
        .await
        .assert_error(400, "unsupported_response_type");
    assert_eq!(get_text(&format!("{base}/as/par")).await.0, 405);
    let oversize = format!("{}&x={}", web_form(), "x".repeat(1024 * 1024));
    assert_eq!(push_to(&base, basic, &oversize).await.status, 413);
    let refused_pushes = 5;

    // Redemptions: one completes, the same again is refused, one without client_id is refused.
    let clients: Vec<HttpClient> = (0..RACERS)
        .map(|_| Client::builder(TokioExecutor::new()).build_http())
        .collect();
    let mut seen = Seen::default();
    redeem_at(&clients[0], &base, &handles[0], &mut seen).await;
    redeem_at(&clients[0], &base, &handles[0], &mut seen).await;
    assert_eq!((seen.completed, seen.invalid_request_uri), (1, 1));
    let (status, _) = get_text(&format!(
        "{base}/as/authorize?request_uri={}",
        enc(&handles[1])
    ))
    .await;
    assert_eq!(status, 400);

    // Completion races: concurrent redemptions of one handle, until one has opened it before
    // another completed it (the window is microseconds wide: a few percent of the tries).
    let mut raced = 0;
    while seen.lost_race == 0 && raced < MAX_RACES {
        let uri = push_to(&base, basic, &web_form()).await.request_uri();
        created += 1;
        raced += 1;
        let start = Arc::new(Barrier::new(RACERS));
        let mut tasks = tokio::task::JoinSet::new();
        for client in &clients {
            let (client, base, uri, start) = (
                client.clone(),
                base.clone(),
                uri.clone(),
                Arc::clone(&start),
            );
            tasks.spawn(async move {
                let mut seen = Seen::default();
                start.wait().await;
                redeem_at(&client, &base, &uri, &mut seen).await;
                seen
            });
        }
        while let Some(one) = tasks.join_next().await {
            let one = one.unwrap();
            seen.completed += one.completed;
            seen.lost_race += one.lost_race;
            seen.invalid_request_uri += one.invalid_request_uri;
        }
    }
    assert!(
        seen.lost_race > 0,
        "no completion race was lost in {raced} tries: {seen:?}"
    );
    assert_eq!(
        seen.completed,
        1 + raced,
        "one completion per handle: {seen:?}"
    );

    let (status, text) = get_text(&metrics).await;
    assert_eq!(status, 200);
    let swapped = seen.completed + seen.lost_race;
    let pushes = created + refused_pushes;
    let mut want = vec![
        (
            "tower_par_pushes_total{outcome=\"created\"}".to_owned(),
            f64::from(created),
        ),
        (
            "tower_par_pushes_total{outcome=\"invalid_client\"}".to_owned(),
            1.0,
        ),
        (
            "tower_par_pushes_total{outcome=\"invalid_request\"}".to_owned(),
            3.0,
        ),
        (
            "tower_par_pushes_total{outcome=\"unsupported_response_type\"}".to_owned(),
            1.0,
        ),
        (
            "tower_par_push_duration_seconds_count".to_owned(),
            f64::from(pushes),
        ),
        (
            "tower_par_redemptions_total{outcome=\"swapped\"}".to_owned(),
            f64::from(swapped),
        ),
        (
            "tower_par_redemptions_total{outcome=\"invalid_request\"}".to_owned(),
            1.0,
        ),
        (
            "tower_par_completions_total{outcome=\"completed\"}".to_owned(),
            f64::from(seen.completed),
        ),
        (
            "tower_par_completions_total{outcome=\"lost_race\"}".to_owned(),
            f64::from(seen.lost_race),
        ),
        // Pushed and not completed: handles[1] and handles[2].
        (
            "tower_par_stored_requests".to_owned(),
            f64::from(created - seen.completed),
        ),
    ];
    want.push((
        "tower_par_redemptions_total{outcome=\"invalid_request_uri\"}".to_owned(),
        f64::from(seen.invalid_request_uri),
    ));
    let want: BTreeMap<String, f64> = want.into_iter().collect();
    assert_eq!(contract(&text), want, "scraped:\n{text}");
    assert!(
        text.contains("# TYPE tower_par_push_duration_seconds histogram"),
        "{text}"
    );

    // The listener serves /metrics only.
    assert_eq!(
        get_text(&metrics.replace("/metrics", "/other")).await.0,
        404
    );
}
