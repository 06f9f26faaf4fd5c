//! tower-par in front of an axum authorization handler.
//!
//! ```text
//! cargo run --example axum
//! curl -s -u web-app:web-app-secret -d response_type=code -d state=s1 http://127.0.0.1:3000/as/par
//! curl -si "http://127.0.0.1:3000/as/authorize?client_id=web-app&request_uri=<request_uri>"
//! ```

use axum::{extract::Query, routing::get, Router};
use std::collections::HashMap;
use tower_par::{ParLayer, StaticClients};

/// The existing authorization endpoint: it reads an ordinary authorization request.
async fn authorize(Query(params): Query<HashMap<String, String>>) -> String {
    format!(
        "authorize {} for {} (state {})",
        params.get("response_type").map_or("?", String::as_str),
        params.get("client_id").map_or("?", String::as_str),
        params.get("state").map_or("-", String::as_str),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let par = ParLayer::builder()
        .par_path("/as/par")
        .authorize_path("/as/authorize")
        .issuer("http://127.0.0.1:3000")
        .clients(StaticClients::from_json_str(include_str!("clients.json"))?)
        .build()?;
    let app = Router::new()
        .route("/as/authorize", get(authorize).post(authorize))
        .layer(par);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
