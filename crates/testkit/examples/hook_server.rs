//! A fast stand-in for an application's hooks, for measuring what the
//! publish hook and webhooks cost (docs/benchmarks.md): `POST /hook`
//! answers `{"action":"allow"}`, `POST /webhook` answers 204 and counts.
//!
//! `cargo run --release -p chorus-testkit --example hook_server -- 127.0.0.1:9100`

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let taken = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/hook", post(|| async { Json(json!({"action": "allow"})) }))
        .route(
            "/webhook",
            post(
                |State(taken): State<Arc<AtomicU64>>, _: Json<Value>| async move {
                    taken.fetch_add(1, Ordering::Relaxed);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(taken.clone());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("binding");
    println!("hook server on http://{addr}");
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            let now = taken.load(Ordering::Relaxed);
            if now != last {
                println!("webhooks taken: {now}");
                last = now;
            }
        }
    });
    axum::serve(listener, app).await.expect("serving");
}
