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
//! `--max-stored-bytes N` (default 268435456, 256 MiB), `--store memory|redis://HOST:PORT/`
//! (default memory), `--consume strict|completion` (default strict), `--require-par` (every
//! client must push).

use std::{net::SocketAddr, process::ExitCode, time::Duration};

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
use tower::{make::Shared, Layer as _, ServiceExt};
use tower_par::{
    store::{StoreLimits, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_STORED_BYTES},
    Consumption, MemoryStore, ParLayer, PushedAuthorizationRequest, StaticClients,
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
    listen: SocketAddr,
    clients: Option<String>,
    issuer: Option<String>,
    inner: Inner,
    lifetime: u64,
    capacity: u64,
    max_stored_bytes: u64,
    store: String,
    consume: Consumption,
    require_par: bool,
}

const USAGE: &str = "usage: par_server [--listen ADDR] [--clients PATH] [--issuer URL] [--inner redirect|echo|login] \
[--lifetime SECS] [--capacity N] [--max-stored-bytes N] [--store memory|redis://HOST:PORT/] [--consume strict|completion] \
[--require-par]";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        clients: None,
        issuer: None,
        inner: Inner::Redirect,
        lifetime: 60,
        capacity: DEFAULT_MAX_ENTRIES,
        max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
        store: "memory".into(),
        consume: Consumption::Strict,
        require_par: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--require-par" {
            options.require_par = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        const WITH_VALUE: [&str; 9] = [
            "--listen",
            "--clients",
            "--issuer",
            "--inner",
            "--lifetime",
            "--capacity",
            "--max-stored-bytes",
            "--store",
            "--consume",
        ];
        if !WITH_VALUE.contains(&flag.as_str()) {
            return Err(format!("unknown flag {flag}\n{USAGE}"));
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag} {value}: {what}\n{USAGE}");
        match flag.as_str() {
            "--listen" => {
                options.listen = value
                    .parse()
                    .map_err(|_| bad("not an address like 127.0.0.1:3000"))?
            }
            "--clients" => options.clients = Some(value),
            "--issuer" => options.issuer = Some(value),
            "--inner" => {
                options.inner = match value.as_str() {
                    "redirect" => Inner::Redirect,
                    "echo" => Inner::Echo,
                    "login" => Inner::Login,
                    _ => return Err(bad("expected redirect, echo or login")),
                }
            }
            "--lifetime" => {
                options.lifetime = value.parse().map_err(|_| bad("not a number of seconds"))?
            }
            "--capacity" => {
                options.capacity = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("not a positive number"))?;
            }
            "--max-stored-bytes" => {
                options.max_stored_bytes = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("not a positive number of bytes"))?;
            }
            "--store" => {
                if value != "memory"
                    && !value.starts_with("redis://")
                    && !value.starts_with("rediss://")
                {
                    return Err(bad("expected memory or a redis:// URL"));
                }
                options.store = value;
            }
            "--consume" => {
                options.consume = match value.as_str() {
                    "strict" => Consumption::Strict,
                    "completion" => Consumption::at_completion(),
                    _ => return Err(bad("expected strict or completion")),
                }
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
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
    let clients = match &options.clients {
        Some(path) => StaticClients::from_json_file(path),
        None => StaticClients::from_json_str(DEMO_CLIENTS),
    };
    let clients = match clients {
        Ok(clients) => clients,
        Err(err) => {
            eprintln!("par_server: {err}");
            return ExitCode::from(2);
        }
    };
    // Bound first, so that the default issuer names the real port (`--listen 127.0.0.1:0`).
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("par_server: cannot listen on {}: {err}", options.listen);
            return ExitCode::from(2);
        }
    };
    let addr = listener.local_addr().map_or(options.listen, |a| a);
    let issuer = options
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let issuer = issuer.trim_end_matches('/').to_owned();
    let builder = ParLayer::builder()
        .par_path("/as/par")
        .authorize_path("/as/authorize")
        .issuer(issuer.clone())
        .clients(clients.clone())
        .default_lifetime(Duration::from_secs(options.lifetime))
        .require_par(options.require_par)
        .consumption(options.consume)
        .serve_metadata(json!({
            "response_types_supported": ["code", "token", "id_token", "code id_token", "id_token token", "code token", "code id_token token"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "implicit"],
            "authorization_response_iss_parameter_supported": true,
            "request_uri_parameter_supported": true,
            "require_request_uri_registration": false,
        }));
    let limits = StoreLimits::new(options.capacity, options.max_stored_bytes);
    let builder = match options.store.as_str() {
        "memory" => builder.store(MemoryStore::with_limits(limits)),
        url => match redis_store(url, &issuer, limits).await {
            Ok(builder_with) => builder_with(builder),
            Err(message) => {
                eprintln!("par_server: {message}");
                return ExitCode::from(2);
            }
        },
    };
    let par = match builder.build() {
        Ok(par) => par,
        Err(err) => {
            eprintln!("par_server: {err}");
            return ExitCode::from(2);
        }
    };

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
    // shape is the faster one for the PAR endpoint, which the load benchmark drives.
    let service =
        ServiceExt::<Request>::map_response(par.layer(router), IntoResponse::into_response);

    let shutdown = shutdown_signal();
    println!("listening on http://{addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    match axum::serve(listener, Shared::new(service))
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("par_server: {err}");
            ExitCode::FAILURE
        }
    }
}

type BuilderFn = Box<dyn FnOnce(tower_par::ParLayerBuilder) -> tower_par::ParLayerBuilder>;

#[cfg(feature = "redis")]
async fn redis_store(url: &str, issuer: &str, limits: StoreLimits) -> Result<BuilderFn, String> {
    let config = tower_par::store::RedisStoreConfig::new(url)
        .prefix(format!("tower-par:{issuer}"))
        .max_entries(limits.max_entries())
        .max_stored_bytes(limits.max_bytes());
    let store = tower_par::store::RedisStore::connect(config)
        .await
        .map_err(|e| format!("redis store {url}: {e}"))?;
    Ok(Box::new(move |builder| builder.store(store)))
}

#[cfg(not(feature = "redis"))]
async fn redis_store(url: &str, _issuer: &str, _limits: StoreLimits) -> Result<BuilderFn, String> {
    Err(format!(
        "--store {url}: this build has no Redis support (feature `redis`)"
    ))
}

/// Resolves on SIGINT or SIGTERM. The SIGTERM handler is installed when this is called, not when
/// the future is first polled: a SIGTERM right after `listening on` must shut down gracefully
/// rather than kill the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    #[cfg(unix)]
    let terminate = async move {
        match sigterm {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    async move {
        tokio::select! {
            () = interrupt => {},
            () = terminate => {},
        }
    }
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
