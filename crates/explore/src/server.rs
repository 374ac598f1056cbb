//! The HTTP side: the page's three files, embedded in the binary, and a small JSON API.
//!
//! - `GET /api/meta`: protocols, limits, planted bugs (and whether this build has them).
//! - `POST /api/view`: a [`ViewRequest`] in, a [`View`](crate::View) out.
//! - `GET /api/scenarios`: the guided scenarios, each a spec and narrated actions.
//! - `POST /api/trace`: a trace file's text in, the session that replays it out.
//!
//! Every refusal is `{"error": "..."}` with status 400; a browser's input never panics the
//! server (bodies are parsed here, not by an extractor with its own error format).

use crate::model::{ViewRequest, ACTIONS_MAX, NODES_MAX, NODES_MIN, TEXT_MAX, UNITS_MAX};
use crate::session::Cache;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::future::Future;
use std::sync::{Arc, Mutex};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Largest request body: a trace's first records or a long session.
const BODY_BYTES_MAX: usize = 4 << 20;

#[derive(Clone, Default)]
struct AppState {
    cache: Arc<Mutex<Cache>>,
}

/// The explorer's routes.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { page(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/api/meta", get(meta))
        .route("/api/view", post(view))
        .route("/api/scenarios", get(scenarios))
        .route("/api/trace", post(open_trace))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(AppState::default())
}

/// Serves the explorer on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

fn page(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn refuse(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.to_string() })),
    )
        .into_response()
}

async fn meta() -> Response {
    let bugs: Vec<&str> = paxos::Bug::ALL
        .into_iter()
        // The log's own bug needs the simulator's disk; it exists in Multi-Paxos only.
        .map(|b| b.name())
        .collect();
    Json(json!({
        "protocols": [
            { "id": "synod", "name": "Single-decree Paxos (Synod)" },
            { "id": "multi", "name": "Multi-Paxos" },
            { "id": "fast", "name": "Fast Paxos" },
            { "id": "epaxos", "name": "EPaxos" },
            { "id": "commit", "name": "Paxos Commit" },
        ],
        "nodes_min": NODES_MIN,
        "nodes_max": NODES_MAX,
        "actions_max": ACTIONS_MAX,
        "units_max": UNITS_MAX,
        "text_max": TEXT_MAX,
        "planted_bugs_available": sim::planted_bugs_available(),
        "bugs": bugs,
    }))
    .into_response()
}

async fn view(State(state): State<AppState>, body: Bytes) -> Response {
    let request: ViewRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(format!("bad request: {e}")),
    };
    // Replays are CPU work: keep them off the async workers.
    let outcome = tokio::task::spawn_blocking(move || {
        let mut cache = state
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.view(&request)
    })
    .await;
    match outcome {
        Ok(Ok(view)) => Json(view).into_response(),
        Ok(Err(e)) => refuse(e),
        Err(e) => refuse(format!("the replay failed: {e}")),
    }
}

async fn scenarios() -> Response {
    let list = tokio::task::spawn_blocking(crate::scenarios::all).await;
    match list {
        Ok(list) => Json(list).into_response(),
        Err(e) => refuse(format!("building the scenarios failed: {e}")),
    }
}

async fn open_trace(body: Bytes) -> Response {
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return refuse("trace: the file is not UTF-8 text");
    };
    match tokio::task::spawn_blocking(move || crate::trace::open(&text)).await {
        Ok(Ok(opened)) => Json(opened).into_response(),
        Ok(Err(e)) => refuse(e),
        Err(e) => refuse(format!("opening the trace failed: {e}")),
    }
}
