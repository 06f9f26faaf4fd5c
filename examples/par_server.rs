//! The reference server: tower-par in front of a plain authorization endpoint that knows
//! nothing about PAR.
//!
//! ```text
//! cargo run --release --example par_server -- --listen 127.0.0.1:3000
//! ```
//!
//! Flags: `--listen ADDR` (default 127.0.0.1:3000), `--clients PATH` (default: the bundled demo
//! clients), `--issuer URL` (default `http://<listen address>`), `--inner redirect|echo|login`
//! (default redirect), `--lifetime SECS` (default 60), `--capacity N` (default 1000000),
//! `--max-stored-bytes N` (default 268435456, 256 MiB), `--store memory|redis://HOST:PORT/|
//! redis-cluster://HOST:PORT[,HOST:PORT…]` (default memory), `--redis-wait-replicas N` (replicas
//! that must hold each write of a Redis store, default 0), `--consume strict|completion`
//! (default strict), `--require-par` (every client must push), `--body-timeout SECS` (default
//! 10), `--header-read-timeout SECS` (default 10), `--metrics ADDR` (`/metrics` in the
//! Prometheus text format on its own listener; it prints `metrics on http://ADDR/metrics`). The
//! flags it shares with `par-proxy`, the store they name, the metrics endpoint and the serving
//! loop (header-read timeout, lingering close, graceful shutdown) are library code:
//! `tower_par::server`.

use std::{net::SocketAddr, process::ExitCode};

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::Layer as _;
use tower_par::{
    server::{self, CommonFlags, FlagError},
    PushedAuthorizationRequest, StaticClients,
};

const DEMO_CLIENTS: &str = include_str!("clients.json");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inner {
    Redirect,
    Echo,
    Login,
}

#[derive(Debug)]
struct Options {
    common: CommonFlags,
    inner: Inner,
}

fn usage() -> String {
    format!(
        "usage: par_server {} [--inner redirect|echo|login]",
        CommonFlags::USAGE
    )
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        common: CommonFlags::new(SocketAddr::from(([127, 0, 0, 1], 3000))),
        inner: Inner::Redirect,
    };
    let with_usage = |err: FlagError| format!("{err}\n{}", usage());
    while let Some(flag) = args.next() {
        if options
            .common
            .parse_flag(&flag, &mut args)
            .map_err(with_usage)?
        {
            continue;
        }
        match flag.as_str() {
            "--help" | "-h" => return Err(usage()),
            "--inner" => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
                options.inner = match value.as_str() {
                    "redirect" => Inner::Redirect,
                    "echo" => Inner::Echo,
                    "login" => Inner::Login,
                    _ => {
                        return Err(format!(
                            "{flag} {value}: expected redirect, echo or login\n{}",
                            usage()
                        ))
                    }
                };
            }
            _ => return Err(format!("unknown flag {flag}\n{}", usage())),
        }
    }
    Ok(options)
}

#[derive(Clone)]
struct App {
    clients: StaticClients,
    issuer: String,
    inner: Inner,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("par_server: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("par_server: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options))
}

async fn run(options: Options) -> ExitCode {
    match start(options).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("par_server: {err}");
            ExitCode::from(2)
        }
    }
}

async fn start(options: Options) -> Result<ExitCode, FlagError> {
    let common = &options.common;
    for warning in common.warnings() {
        eprintln!("par_server: warning: {warning}");
    }
    let clients = common.load_clients(DEMO_CLIENTS)?;
    // Bound first, so that the default issuer names the real port (`--listen 127.0.0.1:0`).
    let (listener, issuer) = common.bind().await?;
    let par = common
        .layer_builder(&issuer, clients.clone())
        .await?
        .par_path("/as/par")
        .authorize_path("/as/authorize")
        .serve_metadata(json!({
            "response_types_supported": ["code", "token", "id_token", "code id_token", "id_token token", "code token", "code id_token token"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "implicit"],
            "authorization_response_iss_parameter_supported": true,
            "request_uri_parameter_supported": true,
            "require_request_uri_registration": false,
        }))
        .build()
        .map_err(|err| FlagError::new(err.to_string()))?;

    if let Some(metrics) = common.start_metrics(&par).await? {
        println!("metrics on http://{metrics}/metrics");
    }

    let app = App {
        clients,
        issuer,
        inner: options.inner,
    };
    let router = Router::new()
        .route("/as/authorize", get(authorize).post(authorize))
        .route("/login", get(login))
        .with_state(app);
    // The layer wraps the whole router: PAR requests are answered before any routing, and the
    // handler sees the rewritten request (rust-notes D10). `Router::layer(par)` works too; this
    // shape is the faster one for the PAR endpoint, which the load benchmark drives. hyper sends
    // the layer's response body as it is (no conversion into axum's boxed body).
    let service = par.layer(router);

    let addr = listener
        .local_addr()
        .map_err(|err| FlagError::new(err.to_string()))?;
    // Installed before the announcement: a SIGTERM right after it must shut down gracefully.
    let shutdown = server::shutdown_signal();
    println!("listening on http://{addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    Ok(
        match server::serve(listener, service, common.serve_config(), shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("par_server: {err}");
                ExitCode::FAILURE
            }
        },
    )
}

/// The "existing" authorization endpoint: it validates the request against the client registry
/// itself and knows nothing about PAR, except that it may read the layer's extension.
async fn authorize(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let pushed = parts
        .extensions
        .get::<PushedAuthorizationRequest>()
        .cloned();
    // Like any authorization endpoint, it reads the query (or the form): the layer has already
    // put the pushed parameters there. Only a request too big for a URI is read from the layer's
    // extension.
    let params: Vec<(String, String)> = match &pushed {
        Some(pushed) if !pushed.is_complete_in_uri() => {
            std::iter::once(("client_id".to_owned(), pushed.client_id().to_owned()))
                .chain(pushed.iter().map(|(n, v)| (n.to_owned(), v.to_owned())))
                .collect()
        }
        _ => {
            let raw = if parts.method == axum::http::Method::POST {
                body.collect()
                    .await
                    .map(|c| c.to_bytes().to_vec())
                    .unwrap_or_default()
            } else {
                parts.uri.query().unwrap_or("").as_bytes().to_vec()
            };
            form_urlencoded::parse(&raw).into_owned().collect()
        }
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };

    if app.inner == Inner::Echo {
        let received: Vec<Value> = params.iter().map(|(n, v)| json!([n, v])).collect();
        return Json(json!({
            "method": parts.method.as_str(),
            "params": received,
            "pushed": pushed.is_some(),
            "complete_in_uri": pushed.as_ref().map(PushedAuthorizationRequest::is_complete_in_uri),
        }))
        .into_response();
    }

    let Some(client) = get("client_id").and_then(|id| app.clients.get(id)) else {
        return error_page("unknown client_id");
    };
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if client.has_redirect_uri(uri) => uri.to_owned(),
        Some(_) => return error_page("redirect_uri is not registered for this client"),
        None if client.redirect_uris().len() == 1 => client.redirect_uris()[0].clone(),
        None => return error_page("redirect_uri is required"),
    };
    let response_type = get("response_type").unwrap_or("");
    let in_fragment = response_type
        .split(' ')
        .any(|t| t == "token" || t == "id_token");
    if response_type.is_empty()
        || response_type
            .split(' ')
            .any(|t| !matches!(t, "code" | "token" | "id_token"))
    {
        return error_page("unsupported response_type");
    }

    if app.inner == Inner::Login && !has_session(&parts.headers) {
        // A login round-trip: the user comes back to the URL the browser asked for, which for a
        // pushed request is client_id + request_uri (consumption at completion keeps it usable).
        let back = match &pushed {
            Some(pushed) => format!(
                "/as/authorize?client_id={}&request_uri={}",
                urlencode(pushed.client_id()),
                urlencode(pushed.request_uri())
            ),
            None => parts.uri.to_string(),
        };
        let location = format!("/login?return={}", urlencode(&back));
        return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    }

    let mut response = String::new();
    let mut add = |name: &str, value: &str| {
        if !response.is_empty() {
            response.push('&');
        }
        response.push_str(name);
        response.push('=');
        response.push_str(&urlencode(value));
    };
    if response_type.split(' ').any(|t| t == "code") {
        add("code", &random_token());
    }
    if response_type.split(' ').any(|t| t == "token") {
        add("access_token", &random_token());
        add("token_type", "Bearer");
    }
    if let Some(state) = get("state") {
        add("state", state);
    }
    add("iss", &app.issuer);
    let separator = if in_fragment {
        '#'
    } else if redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{redirect_uri}{separator}{response}");
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Signs the user in (a cookie) and sends the browser back to where it came from.
async fn login(request: Request) -> Response {
    let query = request.uri().query().unwrap_or("");
    let back = form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == "return")
        .map(|(_, v)| v.into_owned())
        .filter(|v| v.starts_with("/as/authorize"))
        .unwrap_or_else(|| "/".into());
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, back),
            (
                header::SET_COOKIE,
                "session=demo-user; Path=/; HttpOnly; SameSite=Lax".into(),
            ),
        ],
    )
        .into_response()
}

fn has_session(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim().starts_with("session="))
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{message}</p>"),
    )
        .into_response()
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 3986 unreserved bytes as they are, everything else `%XX` (space as `%20`).
fn urlencode(value: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let mut out = String::with_capacity(value.len());
    out.extend(percent_encoding::utf8_percent_encode(value, UNRESERVED));
    out
}
