//! `par-proxy`: PAR (RFC 9126) in front of any existing authorization server, as a sidecar
//! reverse proxy. The proxy answers the PAR endpoint and swaps `client_id` + `request_uri` at
//! the authorization endpoint; everything else streams through to the upstream unchanged.
//!
//! ```text
//! cargo run --release --features proxy --bin par-proxy -- \
//!     --upstream http://127.0.0.1:8080 --issuer http://127.0.0.1:4000 --clients clients.json
//! ```
//!
//! Flags, start-up and serving are library code: `tower_par::proxy::ProxyFlags`.

use std::{io::Write as _, process::ExitCode};

use tower_par::{proxy::ProxyFlags, server};

fn main() -> ExitCode {
    let flags = match ProxyFlags::parse(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(err) => {
            eprintln!("par-proxy: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("par-proxy: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let proxy = match flags.start().await {
            Ok(proxy) => proxy,
            Err(err) => {
                eprintln!("par-proxy: {err}");
                return ExitCode::from(2);
            }
        };
        // Installed before the line that tells the world the proxy is up.
        let shutdown = server::shutdown_signal();
        if let Some(metrics) = proxy.metrics_addr() {
            println!("metrics on http://{metrics}/metrics");
        }
        match proxy.local_addr() {
            Ok(addr) => println!("listening on http://{addr}"),
            Err(err) => {
                eprintln!("par-proxy: {err}");
                return ExitCode::from(2);
            }
        }
        let _ = std::io::stdout().flush();
        match proxy.serve(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("par-proxy: {err}");
                ExitCode::FAILURE
            }
        }
    })
}
