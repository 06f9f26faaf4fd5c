//! In-process benchmarks of the layer (issue 8): no sockets, a current-thread tokio runtime,
//! `ready().call()` on one long-lived service so neither side pays for a clone per request.
//!
//! Groups, each reported side by side:
//! 1. `pass_through`: GET /other through `ParLayer` vs the same trivial inner service bare
//!    (goal: layered/bare <= 1.03), a body-rewrapping layer that routes nothing (the floor of
//!    any such layer), and the same pair around an axum `Router` for a realistic denominator;
//! 2. `push`: POST /as/par, a 300-byte code + PKCE form, `client_secret_basic`, memory store;
//!    without a metrics recorder, and with the Prometheus recorder `par_server --metrics`
//!    installs (`_prometheus`);
//! 3. `redeem`: GET /as/authorize with `client_id` + a fresh pre-pushed `request_uri`, swap,
//!    inner call; and the same inner service reached through the layer by the plain request the
//!    swap writes (`plain_parameters`: the parameters in the query, no `request_uri`), so that
//!    the pair differs only by the swap;
//! 4. `parse_form`: the PAR endpoint's form decoding + duplicate check alone, 300 B and 900 KiB.
//!
//! ```text
//! cargo bench --bench layer -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Fixed-count mode for `valgrind --tool=callgrind` (deterministic instruction counts, no
//! criterion machinery in the profile):
//!
//! ```text
//! cargo bench --bench layer --no-run   # prints the bench binary's path
//! PAR_BENCH_FIXED=push:20000 valgrind --tool=callgrind <binary>
//! ```
//!
//! Scenarios for `PAR_BENCH_FIXED=<scenario>:<iterations>`: `bare`, `layered`, `rewrap_only`,
//! `router_bare`, `router_layered`, `push`, `push_prometheus` (the same with the Prometheus
//! recorder installed globally), `redeem`, `authorize_plain` (the plain request of the redeem
//! pair), `parse_small`, `parse_large`. Run each at 0 and at N iterations and divide the
//! difference by N: that removes the setup (for `redeem`, subtract `push` at N: its handles are
//! pushed first). The swap's own instructions are `redeem` minus `authorize_plain`.

use std::{
    convert::Infallible,
    future::{ready, Ready},
    hint::black_box,
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Either, Full};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer as _, Service, ServiceExt as _};
use tower_par::{store::StoreLimits, MemoryStore, ParLayer, RequestBody, StaticClients};

const ISSUER: &str = "https://as.example.com";
/// Big enough that no iteration of a run meets a full store, nor the client's share of it (half).
const STORE_CAPACITY: u64 = 10_000_000;
/// The byte budget to match: 2 KiB a record (a push weighs about 800 bytes).
const STORE_BYTES: u64 = STORE_CAPACITY * 2048;
const BASIC_CREDENTIALS: &str = "web-app:web-app-secret";
const PUSH_FORM_LEN: usize = 300;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn layer() -> ParLayer {
    let clients = StaticClients::from_json_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/clients.json"
    ))
    .expect("the demo clients");
    ParLayer::builder()
        .issuer(ISSUER)
        .clients(clients)
        .store(MemoryStore::with_limits(StoreLimits::new(
            STORE_CAPACITY,
            STORE_BYTES,
        )))
        .build()
        .expect("a valid layer")
}

/// The trivial inner service: a fixed 200, whatever the body type. Both sides of the
/// pass-through pair use this one function, so they differ only by the layer.
fn fixed_ok<B>(_req: Request<B>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
}

/// The inner authorization endpoint of the redeem pair: answers 200 to a request that carries
/// exactly the parameters of `push_form` in the query, as the swap writes them (`PLAIN_URI`), and
/// 500 to anything else, so that neither benchmark can silently measure an error page. Both
/// sides of the pair call this one function: they differ only by the swap.
fn authorize_plain_only<B>(req: Request<B>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let plain = PLAIN_URI.get().is_some_and(|plain| req.uri() == plain);
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    if !plain {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    ready(Ok(response))
}

/// The authorization request the swap of a `push_form` push hands the inner service, recorded
/// from one real swap (`plain_uri`).
static PLAIN_URI: std::sync::OnceLock<Uri> = std::sync::OnceLock::new();

/// Pushes `push_form` once, redeems it, and returns the URI the inner service received: the
/// plain authorization request with the same parameters (`client_id` first, then the pushed
/// parameters in the canonical encoding).
async fn plain_uri(layer: &ParLayer, form: &Bytes, basic: &HeaderValue) -> Uri {
    if let Some(uri) = PLAIN_URI.get() {
        return uri.clone();
    }
    let received = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = std::sync::Arc::clone(&received);
    let mut recording = layer.layer(service_fn(move |req: Request<RequestBody<Full<Bytes>>>| {
        assert!(
            req.extensions()
                .get::<tower_par::PushedAuthorizationRequest>()
                .is_some(),
            "the setup redemption was swapped"
        );
        *seen.lock().expect("not poisoned") = Some(req.uri().clone());
        ready(Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))))
    }));
    let uris = push_handles(&mut recording, form, basic, 1).await;
    assert_eq!(
        call_status(&mut recording, get(&uris[0])).await,
        StatusCode::OK
    );
    let uri = received
        .lock()
        .expect("not poisoned")
        .take()
        .expect("the inner service was called");
    assert!(
        uri.query()
            .is_some_and(|q| q.starts_with("client_id=web-app&") && !q.contains("request_uri")),
        "{uri}"
    );
    PLAIN_URI.get_or_init(|| uri).clone()
}

/// A GET without allocation beyond what both sides of a pair share.
///
/// The body is an empty `Full`, not `Empty`: `Empty` is zero-sized, so axum boxes it for free
/// while it must allocate for the layer's `RequestBody`; a server's real body (hyper's
/// `Incoming`) is never zero-sized, and `Full` keeps the pair honest.
fn get(uri: &Uri) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = uri.clone();
    req
}

/// A 300-byte authorization-code + PKCE form, as a confidential web client pushes it.
fn push_form() -> Bytes {
    let mut form = String::from(
        "response_type=code&client_id=web-app\
         &redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb\
         &scope=openid%20profile%20email\
         &state=af0ifjsldkj-Qm9vW2xX1w\
         &nonce=n-0S6_WzA2Mj-8a9zKq3fT\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
         &code_challenge_method=S256\
         &ui_locales=en-GB&acr_values=",
    );
    // Pad to exactly PUSH_FORM_LEN bytes; the value is opaque to the layer.
    let pad = PUSH_FORM_LEN.saturating_sub(form.len());
    form.extend(std::iter::repeat('x').take(pad));
    assert_eq!(
        form.len(),
        PUSH_FORM_LEN,
        "the base form grew past 300 bytes"
    );
    Bytes::from(form)
}

/// About 900 KiB of many distinct, partly percent-encoded parameters after the push form: the
/// worst case under the 1 MiB cap for decoding and the hashed duplicate check.
fn large_form_many_params() -> Bytes {
    let mut form = String::from_utf8(push_form().to_vec()).expect("ASCII");
    let mut i = 0u32;
    while form.len() < 900 * 1024 {
        form.push_str(&format!("&x_param_{i}=value%20{i}%2Fwith+escapes"));
        i += 1;
    }
    Bytes::from(form)
}

/// About 900 KiB in one percent-encoded value (a large `claims` or `authorization_details`).
fn large_form_one_value() -> Bytes {
    let mut form = String::from_utf8(push_form().to_vec()).expect("ASCII");
    form.push_str("&authorization_details=");
    while form.len() < 900 * 1024 {
        form.push_str("%7B%22type%22%3A%22account_information%22%7D%2C");
    }
    Bytes::from(form)
}

fn basic_header() -> HeaderValue {
    let encoded = format!("Basic {}", STANDARD.encode(BASIC_CREDENTIALS));
    HeaderValue::from_maybe_shared(Bytes::from(encoded)).expect("a valid header value")
}

fn push_request(form: &Bytes, basic: &HeaderValue) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(form.clone()));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = Uri::from_static("/as/par");
    let headers = req.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(header::AUTHORIZATION, basic.clone());
    req
}

/// Calls a ready service once and returns the status.
async fn call_status<S, Req, B>(svc: &mut S, req: Req) -> StatusCode
where
    S: Service<Req, Response = Response<B>, Error = Infallible>,
{
    let Ok(ready) = svc.ready().await;
    let Ok(res) = ready.call(req).await;
    res.status()
}

/// Pushes `n` requests and returns the authorization URIs that redeem them.
async fn push_handles<S, B>(svc: &mut S, form: &Bytes, basic: &HeaderValue, n: u64) -> Vec<Uri>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut uris = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for _ in 0..n {
        let Ok(ready) = svc.ready().await;
        let Ok(res) = ready.call(push_request(form, basic)).await;
        assert_eq!(res.status(), StatusCode::CREATED, "setup push failed");
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let request_uri = json["request_uri"].as_str().expect("request_uri");
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", "web-app")
            .append_pair("request_uri", request_uri)
            .finish();
        uris.push(
            format!("/as/authorize?{query}")
                .parse()
                .expect("a valid URI"),
        );
    }
    uris
}

fn pass_through(c: &mut Criterion) {
    let rt = runtime();
    let uri = Uri::from_static("/other");
    let layer = layer();

    let mut group = c.benchmark_group("pass_through");
    group.bench_function("service_fn/bare", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = service_fn(fixed_ok::<Full<Bytes>>);
            let uri = uri.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
                start.elapsed()
            }
        });
    });
    group.bench_function("service_fn/layered", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = layer.layer(service_fn(fixed_ok::<RequestBody<Full<Bytes>>>));
            let uri = uri.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
                start.elapsed()
            }
        });
    });

    // The floor of any layer that wraps the request and response bodies (as `ParLayer` must, to
    // hand a rebuilt form to the inner service) but routes nothing: it separates the layer's own
    // routing cost from the cost of the wrapper types.
    group.bench_function("service_fn/rewrap_only", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = rewrap_only();
            let uri = uri.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
                start.elapsed()
            }
        });
    });
    group.bench_function("router/bare", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = router();
            let uri = uri.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
                start.elapsed()
            }
        });
    });
    group.bench_function("router/layered", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = layer.layer(router());
            let uri = uri.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
                start.elapsed()
            }
        });
    });
    group.finish();
}

type Rewrapped = Either<Full<Bytes>, Full<Bytes>>;

/// `fixed_ok` behind request and response body wrappers shaped like the layer's own.
fn rewrap_only() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Rewrapped>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(fixed_ok::<Rewrapped>)
        .map_request(|req: Request<Full<Bytes>>| req.map(Either::Left))
        .map_response(|res: Response<Full<Bytes>>| res.map(Either::<_, Full<Bytes>>::Left))
}

/// A realistic inner service. axum's `Router` boxes every request body, so the same type serves
/// both sides of the pair.
fn router() -> axum::Router {
    axum::Router::new()
        .route("/other", axum::routing::get(|| async { "ok" }))
        .route(
            "/as/authorize",
            axum::routing::get(|| async { "authorize" }),
        )
}

/// The recorder `par_server --metrics` installs: the push duration as a histogram.
fn prometheus_recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                tower_par::metrics::PUSH_DURATION_SECONDS.into(),
            ),
            &tower_par::metrics::PUSH_DURATION_BUCKETS,
        )
        .expect("buckets")
        .build_recorder()
}

fn push(c: &mut Criterion) {
    let rt = runtime();
    let form = push_form();
    let basic = basic_header();
    let mut svc = layer().layer(service_fn(fixed_ok::<RequestBody<Full<Bytes>>>));
    // The benchmark measures the success path only.
    assert_eq!(
        rt.block_on(call_status(&mut svc, push_request(&form, &basic))),
        StatusCode::CREATED
    );

    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Elements(1));
    let recorder = prometheus_recorder();
    // Set when the recorded variant ran (a filter such as `-- redeem` skips both).
    let recorded = std::cell::Cell::new(false);
    for (name, recording) in [
        ("300B_client_secret_basic", false),
        ("300B_client_secret_basic_prometheus", true),
    ] {
        // The runtime is current-thread: the layer records on this thread.
        let _recording = recording.then(|| metrics::set_default_local_recorder(&recorder));
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                recorded.set(recorded.get() || recording);
                let mut svc = svc.clone();
                let (form, basic) = (form.clone(), basic.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(call_status(&mut svc, push_request(&form, &basic)).await);
                    }
                    start.elapsed()
                }
            });
        });
    }
    let rendered = recorder.handle().render();
    assert!(
        !recorded.get() || rendered.contains("tower_par_pushes_total{outcome=\"created\"}"),
        "the recorder saw the pushes: {rendered}"
    );
    group.finish();
}

fn redeem(c: &mut Criterion) {
    let rt = runtime();
    let form = push_form();
    let basic = basic_header();
    let layer = layer();
    let plain = rt.block_on(plain_uri(&layer, &form, &basic));
    let pusher = layer.layer(service_fn(fixed_ok::<RequestBody<Full<Bytes>>>));
    let authorize = layer.layer(service_fn(authorize_plain_only::<RequestBody<Full<Bytes>>>));
    assert_eq!(
        rt.block_on(call_status(&mut authorize.clone(), get(&plain))),
        StatusCode::OK,
        "the plain request must reach the inner"
    );

    let mut group = c.benchmark_group("redeem");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_client_id_request_uri", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (mut pusher, mut svc) = (pusher.clone(), authorize.clone());
            let (form, basic) = (form.clone(), basic.clone());
            async move {
                // Untimed setup: one fresh handle per iteration (each works once).
                let uris = push_handles(&mut pusher, &form, &basic, iters).await;
                let start = Instant::now();
                for uri in &uris {
                    let status = call_status(&mut svc, get(uri)).await;
                    assert_eq!(status, StatusCode::OK, "swapped to the plain request");
                }
                start.elapsed()
            }
        });
    });
    // The same inner service, called through the layer with the plain request the swap writes:
    // the difference to the line above is the swap's own cost.
    group.bench_function("plain_parameters", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut svc = authorize.clone();
            let plain = plain.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(call_status(&mut svc, get(&plain)).await);
                }
                start.elapsed()
            }
        });
    });
    group.finish();
}

fn parse_form(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_form");
    for (name, form) in [
        ("300B", push_form()),
        ("900KiB_many_params", large_form_many_params()),
        ("900KiB_one_value", large_form_one_value()),
    ] {
        assert!(
            tower_par::__bench::parse_form(&form).is_some(),
            "{name} must parse"
        );
        group.throughput(Throughput::Bytes(form.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &form, |b, form| {
            b.iter(|| tower_par::__bench::parse_form(black_box(form)));
        });
    }
    group.finish();
}

/// `PAR_BENCH_FIXED=<scenario>:<iterations>`: a fixed amount of work for callgrind, then exit.
fn fixed(spec: &str) {
    let (scenario, n) = spec
        .split_once(':')
        .and_then(|(s, n)| Some((s, n.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("PAR_BENCH_FIXED must be <scenario>:<iterations>, got {spec}"));
    let rt = runtime();
    let uri = Uri::from_static("/other");
    let form = push_form();
    let basic = basic_header();
    let started = Instant::now();
    let elapsed: Duration = rt.block_on(async {
        match scenario {
            "bare" => {
                let mut svc = service_fn(fixed_ok::<Full<Bytes>>);
                for _ in 0..n {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
            }
            "layered" => {
                let mut svc = layer().layer(service_fn(fixed_ok::<RequestBody<Full<Bytes>>>));
                for _ in 0..n {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
            }
            "rewrap_only" => {
                let mut svc = rewrap_only();
                for _ in 0..n {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
            }
            "router_bare" => {
                let mut svc = router();
                for _ in 0..n {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
            }
            "router_layered" => {
                let mut svc = layer().layer(router());
                for _ in 0..n {
                    black_box(call_status(&mut svc, get(&uri)).await);
                }
            }
            "push" | "push_prometheus" => {
                if scenario == "push_prometheus" {
                    metrics::set_global_recorder(prometheus_recorder()).expect("one recorder");
                    tower_par::metrics::describe();
                }
                let mut svc = layer().layer(service_fn(fixed_ok::<RequestBody<Full<Bytes>>>));
                for _ in 0..n {
                    let status = call_status(&mut svc, push_request(&form, &basic)).await;
                    assert_eq!(status, StatusCode::CREATED);
                }
            }
            "redeem" => {
                let layer = layer();
                let plain = plain_uri(&layer, &form, &basic).await;
                let mut pusher = layer.layer(service_fn(fixed_ok::<RequestBody<Full<Bytes>>>));
                let mut svc =
                    layer.layer(service_fn(authorize_plain_only::<RequestBody<Full<Bytes>>>));
                let uris = push_handles(&mut pusher, &form, &basic, n).await;
                for uri in &uris {
                    assert_eq!(call_status(&mut svc, get(uri)).await, StatusCode::OK);
                }
                black_box(plain);
            }
            "authorize_plain" => {
                let layer = layer();
                let plain = plain_uri(&layer, &form, &basic).await;
                let mut svc =
                    layer.layer(service_fn(authorize_plain_only::<RequestBody<Full<Bytes>>>));
                for _ in 0..n {
                    assert_eq!(call_status(&mut svc, get(&plain)).await, StatusCode::OK);
                }
            }
            "parse_small" | "parse_large" => {
                let form = if scenario == "parse_small" {
                    form.clone()
                } else {
                    large_form_many_params()
                };
                for _ in 0..n {
                    black_box(tower_par::__bench::parse_form(black_box(&form)));
                }
            }
            other => panic!("unknown scenario {other}"),
        }
        started.elapsed()
    });
    eprintln!("{scenario}: {n} iterations in {elapsed:?}");
}

criterion_group!(benches, pass_through, push, redeem, parse_form);

fn main() {
    if let Ok(spec) = std::env::var("PAR_BENCH_FIXED") {
        fixed(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
