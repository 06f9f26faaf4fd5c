//! tower-par in front of an axum authorization handler (the README's example, kept identical by
//! tests/readme.rs).
//!
//! ```text
//! cargo run --example axum
//! curl -s -u web-app:web-app-secret -d response_type=code http://127.0.0.1:3000/as/par
//! curl -s "http://127.0.0.1:3000/as/authorize?client_id=web-app&request_uri=<request_uri>"
//! ```

use axum::{extract::Form, routing::get, Router};
use std::collections::HashMap;
use tower_par::{ParLayer, StaticClients};

// `Form` reads the query of a GET and the form body of a POST: after a redemption the layer puts
// the pushed parameters in the one the method uses.
async fn authorize(Form(p): Form<HashMap<String, String>>) -> String {
    format!(
        "authorize {:?} for {:?}",
        p.get("response_type"),
        p.get("client_id")
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let par = ParLayer::builder()
        .issuer("http://127.0.0.1:3000")
        .clients(StaticClients::from_json_str(include_str!("clients.json"))?)
        .build()?;
    let app = Router::new()
        .route("/as/authorize", get(authorize).post(authorize))
        .layer(par);
    axum::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
    Ok(())
}
