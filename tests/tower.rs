//! The layer as a tower citizen: axum integration, Send + Sync + Clone, Infallible errors,
//! backpressure.

mod common;

use std::{
    convert::Infallible,
    task::{Context, Poll},
};

use axum::{body::Body, routing::get, Router};
use common::*;
use http_body_util::BodyExt as _;
use tower::{Layer as _, Service, ServiceExt as _};
use tower_par::{ManualClock, ParService, RequestBody};

fn assert_service_traits<S: Clone + Send + Sync + 'static>(_: &S) {}

#[tokio::test]
async fn router_layer_reaches_the_par_path_through_the_fallback() {
    // The README's headline shape: Router::route(..).layer(par).
    let par = builder(&ManualClock::new()).build().unwrap();
    let app: Router = Router::new()
        .route("/as/authorize", get(|| async { "inner" }))
        .layer(par);
    let request = http::Request::post("/as/par")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA==")
        .body(Body::from("response_type=code"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 201);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let uri = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();

    let request = http::Request::get(format!(
        "/as/authorize?client_id=web-app&request_uri={}",
        enc(&uri)
    ))
    .body(Body::empty())
    .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        &response.into_body().collect().await.unwrap().to_bytes()[..],
        b"inner"
    );
}

#[tokio::test]
async fn wrapping_a_whole_router_keeps_it_clone_send_sync_and_infallible() {
    let par = builder(&ManualClock::new()).build().unwrap();
    let service: ParService<Router> = par.layer(inner_app(InnerMode::Echo));
    assert_service_traits(&service);
    let response = service
        .oneshot(http::Request::get("/other").body(Body::empty()).unwrap())
        .await;
    // Compiles only if the error type is still `Infallible`.
    let response: http::Response<_> = match response {
        Ok(response) => response,
        Err(never) => match never {},
    };
    assert_eq!(response.status(), 200);
}

/// An inner service that is not ready until told.
#[derive(Clone)]
struct NotReady;

impl Service<http::Request<RequestBody<Body>>> for NotReady {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, _: http::Request<RequestBody<Body>>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(Body::empty())))
    }
}

#[tokio::test]
async fn backpressure_of_the_inner_service_is_propagated() {
    let mut service = builder(&ManualClock::new())
        .build()
        .unwrap()
        .layer(NotReady);
    let waker = futures_task_noop();
    let mut cx = Context::from_waker(&waker);
    assert!(Service::<http::Request<Body>>::poll_ready(&mut service, &mut cx).is_pending());
}

fn futures_task_noop() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}
