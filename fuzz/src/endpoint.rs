//! The layer in front of an in-process authorization endpoint, driven without sockets or a
//! runtime: the memory store and the static registry never wait, so every future completes when
//! polled.
//!
//! The inner endpoint answers a redeemed request with the authorization response (a `303` to the
//! pushed `redirect_uri` with a `code`, which also completes a handle in `AtCompletion` mode),
//! names the `request_uri` it redeemed in `x-redeemed` and hands the
//! [`PushedAuthorizationRequest`] back in the response extensions; any other request gets `200`.
//!
//! The clients are those of the reference server (`examples/clients.json`) plus `jwt-app`
//! (`client_secret_jwt` with [`crate::jwt::SECRET`]); the clock stands at [`crate::NOW_SECS`], so
//! seeds can carry signed assertions and DPoP proofs, and handles never expire within a run: a
//! handle that is gone was taken.

use std::{
    convert::Infallible,
    future::{ready, Future, Ready},
    pin::pin,
    sync::OnceLock,
    task::{Context, Poll, Waker},
    time::{Duration, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use tower_layer::Layer as _;
use tower_par::{
    Consumption, ManualClock, MemoryStore, ParLayer, ParService, PushedAuthorizationRequest,
    RequestBody, StaticClients,
};
use tower_service::Service;

/// The confidential client the harness pushes as, and its registered redirect URI.
pub const CLIENT_ID: &str = "web-app";
const CLIENT_CREDENTIALS: &str = "Basic d2ViLWFwcDp3ZWItYXBwLXNlY3JldA=="; // web-app:web-app-secret
pub const REDIRECT_URI: &str = "https://client.example.org/cb";

/// The clients of the reference server.
const CLIENTS: &str = include_str!("../../examples/clients.json");
/// The `client_secret_jwt` client added to them.
pub const JWT_CLIENT_ID: &str = "jwt-app";

fn clients() -> StaticClients {
    let mut file: serde_json::Value = serde_json::from_str(CLIENTS).expect("the demo clients");
    let secret = std::str::from_utf8(crate::jwt::SECRET).expect("an ASCII secret");
    file["clients"]
        .as_array_mut()
        .expect("a clients array")
        .push(serde_json::json!({
            "client_id": JWT_CLIENT_ID, "client_secret": secret, "auth_method": "client_secret_jwt",
            "redirect_uris": ["https://jwt.example.org/cb"], "grant_types": ["authorization_code"],
        }));
    StaticClients::from_json_str(&file.to_string()).expect("the clients load")
}

/// Polls `future` to completion with a waker that does nothing: fine for futures that never
/// wait, and a clear panic for one that would.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a future of the layer waited although nothing it uses can wait here");
}

/// The inner authorization endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Inner;

impl Service<Request<RequestBody<Full<Bytes>>>> for Inner {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody<Full<Bytes>>>) -> Self::Future {
        let Some(pushed) = req.extensions().get::<PushedAuthorizationRequest>() else {
            return ready(Ok(Response::new(Full::new(Bytes::from_static(
                b"front channel",
            )))));
        };
        // Reads every parameter: the extension decodes the stored payload lazily.
        let state = pushed.iter().find(|(n, _)| *n == "state").map(|(_, v)| v);
        let redirect = pushed.get("redirect_uri").unwrap_or(REDIRECT_URI);
        let mut location = format!("{redirect}?code=fuzz-code");
        if let Some(state) = state {
            location.push_str("&state=");
            location.extend(form_urlencoded::byte_serialize(state.as_bytes()));
        }
        let mut response = Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, location)
            .header("x-redeemed", pushed.request_uri())
            .body(Full::new(Bytes::new()))
            .expect("a valid redirect");
        response.extensions_mut().insert(pushed.clone());
        ready(Ok(response))
    }
}

/// What came back from the layer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// What the inner endpoint received, when it redeemed a pushed request.
    pub pushed: Option<PushedAuthorizationRequest>,
}

impl Answer {
    /// The `request_uri` the inner endpoint redeemed, if it did.
    #[must_use]
    pub fn redeemed(&self) -> Option<&str> {
        self.headers.get("x-redeemed")?.to_str().ok()
    }

    /// Asserts an RFC 6749 §5.2 error: JSON with an `error` code and an allowed description,
    /// `Cache-Control: no-store`, never a redirect. Returns the code.
    #[track_caller]
    pub fn oauth_error(&self) -> String {
        assert!(
            self.status.is_client_error(),
            "status {} body {:?}",
            self.status,
            self.body
        );
        assert_eq!(
            self.headers.get(header::CACHE_CONTROL),
            Some(&HeaderValue::from_static("no-store"))
        );
        assert!(self.headers.get(header::LOCATION).is_none());
        let json: serde_json::Value =
            serde_json::from_slice(&self.body).expect("an error body is JSON");
        if let Some(description) = json["error_description"].as_str() {
            crate::assert_description_allowed(description);
        }
        json["error"].as_str().expect("an error code").to_owned()
    }
}

/// The layer in both consumption modes around [`Inner`].
pub struct Endpoint {
    strict: ParService<Inner>,
    at_completion: ParService<Inner>,
}

/// The process's endpoint, built on first use.
pub fn endpoint() -> &'static Endpoint {
    static ENDPOINT: OnceLock<Endpoint> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let layer = |consumption| {
            ParLayer::builder()
                .issuer(crate::ISSUER)
                .clients(clients())
                .store(MemoryStore::with_capacity(10_000))
                .clock(ManualClock::at(
                    UNIX_EPOCH + Duration::from_secs(crate::NOW_SECS),
                ))
                .consumption(consumption)
                .build()
                .expect("a valid layer")
                .layer(Inner)
        };
        Endpoint {
            strict: layer(Consumption::Strict),
            at_completion: layer(Consumption::AtCompletion {
                window: Duration::from_secs(600),
            }),
        }
    })
}

impl Endpoint {
    /// Sends `req` through the layer (`at_completion` picks the consumption mode).
    pub fn call(&self, at_completion: bool, req: Request<Full<Bytes>>) -> Answer {
        let mut service = if at_completion {
            self.at_completion.clone()
        } else {
            self.strict.clone()
        };
        let response = match block_on(service.call(req)) {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (mut parts, body) = response.into_parts();
        let body = block_on(body.collect())
            .expect("the layer's bodies cannot fail")
            .to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            pushed: parts.extensions.remove(),
        }
    }

    /// Pushes a code-flow request as [`CLIENT_ID`] and returns its `request_uri`.
    pub fn push(&self, at_completion: bool) -> String {
        let req = Request::post("/as/par")
            .header(header::AUTHORIZATION, CLIENT_CREDENTIALS)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(
                b"response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb\
                  &state=fuzz+state&scope=openid",
            )))
            .expect("a valid push");
        let answer = self.call(at_completion, req);
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
        json["request_uri"]
            .as_str()
            .expect("a request_uri")
            .to_owned()
    }

    /// The clean redemption a browser would make for [`CLIENT_ID`]: `client_id` and
    /// `request_uri` only.
    pub fn redeem(&self, at_completion: bool, request_uri: &str) -> Answer {
        self.redeem_as(at_completion, CLIENT_ID, request_uri)
    }

    /// The clean redemption for any client.
    pub fn redeem_as(&self, at_completion: bool, client_id: &str, request_uri: &str) -> Answer {
        let mut query = String::new();
        tower_par::__fuzz::form::append_pair(&mut query, "client_id", client_id);
        tower_par::__fuzz::form::append_pair(&mut query, "request_uri", request_uri);
        let req = Request::get(format!("/as/authorize?{query}"))
            .body(Full::new(Bytes::new()))
            .expect("a valid URI");
        self.call(at_completion, req)
    }
}
