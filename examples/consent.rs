//! A consent page on another path, finished on any node: the recipe for
//! [`Consumption::AtCompletion`] when the authorization response is not produced at the
//! authorization endpoint itself (tests/consent.rs runs it on two nodes sharing a store).
//!
//! 1. `GET /as/authorize?client_id=…&request_uri=…`: the layer opens the pushed request; the
//!    existing handler shows a consent page whose form carries only `client_id` and
//!    `request_uri` (the browser has them already; nothing it could tamper with).
//! 2. `POST /consent`, on this node or any other that shares the store: the handler reads the
//!    pushed request from the store (`ParLayer::pushed_request`), consumes it
//!    (`ParLayer::complete`), and only if that returned `true` redirects with a code. A second
//!    POST (double submit, another tab, another node) gets `false` and an error page, never a
//!    second code.
//!
//! ```text
//! cargo run --example consent
//! curl -s -u web-app:web-app-secret -d response_type=code -d state=s1 http://127.0.0.1:3000/as/par
//! curl -s "http://127.0.0.1:3000/as/authorize?client_id=web-app&request_uri=<request_uri>"
//! curl -si -d client_id=web-app -d request_uri=<request_uri> -d decision=approve http://127.0.0.1:3000/consent
//! ```
//!
//! Several nodes share a store (`.store(tower_par::store::RedisStore::connect(…).await?)`); any
//! of them can answer the consent POST.

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Form, Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::Deserialize;
use tower_par::{Consumption, ParLayer, PushedAuthorizationRequest, StaticClients};

#[derive(Clone)]
struct Consent {
    par: ParLayer,
    clients: StaticClients,
}

/// The authorization server's routes behind `par` (built with [`Consumption::AtCompletion`]).
pub(crate) fn app(par: ParLayer, clients: StaticClients) -> Router {
    Router::new()
        .route("/as/authorize", get(authorize).post(authorize))
        .route("/consent", post(consent))
        .with_state(Consent {
            par: par.clone(),
            clients,
        })
        .layer(par)
}

/// The existing authorization endpoint: for a pushed request, a consent page.
async fn authorize(pushed: Option<PushedAuthorizationRequest>) -> Response {
    let Some(pushed) = pushed else {
        return page(
            StatusCode::BAD_REQUEST,
            "Push the authorization request first.",
        );
    };
    // A real page first makes sure a user is signed in.
    let body = format!(
        r#"<!doctype html><title>Consent</title>
<p>{client} asks for: {scope}</p>
<form method="post" action="/consent">
<input type="hidden" name="client_id" value="{client}">
<input type="hidden" name="request_uri" value="{request_uri}">
<button name="decision" value="approve">Allow</button>
<button name="decision" value="deny">Deny</button>
</form>"#,
        client = escape(pushed.client_id()),
        scope = escape(pushed.get("scope").unwrap_or("(nothing)")),
        request_uri = escape(pushed.request_uri()),
    );
    Html(body).into_response()
}

#[derive(Deserialize)]
struct Decision {
    client_id: String,
    request_uri: String,
    decision: String,
}

/// The consent POST, on any node: read the pushed request, consume it, then answer.
async fn consent(State(app): State<Consent>, Form(form): Form<Decision>) -> Response {
    // A real page checks the user's session and a CSRF token here.
    let pushed = match app
        .par
        .pushed_request(&form.client_id, &form.request_uri)
        .await
    {
        Ok(Some(pushed)) => pushed,
        Ok(None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This authorization request is unknown, expired or already answered.",
            )
        }
        Err(_) => return page(StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment."),
    };
    // Pushed and validated at the PAR endpoint; a client with one registered redirect URI may
    // leave it out.
    let redirect_uri = match pushed.get("redirect_uri") {
        Some(uri) => uri.to_owned(),
        None => match app
            .clients
            .get(pushed.client_id())
            .map(|c| c.redirect_uris())
        {
            Some([only]) => only.clone(),
            _ => return page(StatusCode::BAD_REQUEST, "No redirect URI."),
        },
    };
    // Exactly one caller, on any node, gets `true`: only that one may answer with a code.
    match app.par.complete(&form.client_id, &form.request_uri).await {
        Ok(true) => {}
        Ok(false) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This authorization request was already answered.",
            )
        }
        Err(_) => return page(StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment."),
    }
    let mut query = if form.decision == "approve" {
        format!("code={}", random_code())
    } else {
        "error=access_denied".to_owned()
    };
    if let Some(state) = pushed.get("state") {
        query.push_str("&state=");
        query.push_str(&urlencode(state));
    }
    query.push_str("&iss=");
    query.push_str(&urlencode(app.par.issuer()));
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{query}");
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn page(status: StatusCode, message: &str) -> Response {
    let body = format!("<!doctype html><title>Authorization</title><p>{message}</p>");
    (status, Html(body)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn random_code() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clients = StaticClients::from_json_str(include_str!("clients.json"))?;
    let par = ParLayer::builder()
        .issuer("http://127.0.0.1:3000")
        .clients(clients.clone())
        .consumption(Consumption::at_completion())
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app(par, clients)).await?;
    Ok(())
}
