//! The agent's local API: HTTP/1.1 over a unix socket (mode 0600, so only root and whoever
//! root lets in can watch the node's traffic). Observe answers with newline-delimited JSON so
//! that a follow stream and a bounded query read the same way.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use fathom_model::{FlowFilter, Timestamp};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::hub::{Hub, RecentQuery};
use crate::status::StatusSource;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObserveRequest {
    #[serde(default)]
    pub filter: FlowFilter,
    pub last: Option<usize>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    #[serde(default)]
    pub follow: bool,
}

#[derive(Clone)]
pub struct ApiState {
    pub hub: Arc<Hub>,
    pub status: Arc<dyn StatusSource>,
    /// Flow history for what the in-memory ring no longer (or never) held.
    pub store: Option<Arc<fathom_store::StoreReader>>,
    /// The XDP shield, when enabled: block/unblock only on the unix socket.
    pub shield: Option<Arc<crate::shield::ShieldService>>,
}

/// Everything the CLI uses, on the unix socket.
pub fn router(state: ApiState) -> Router {
    read_only_router(state.clone()).merge(crate::shield_api::router(state))
}

/// The endpoints that only read: safe to also offer on the web listener.
pub fn read_only_router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(|| async { "ok\n" }))
        .route("/v1/status", get(status))
        .route("/v1/observe", post(observe))
        .with_state(state)
}

async fn status(State(s): State<ApiState>) -> impl IntoResponse {
    // Blocking: the status waits briefly for fresh map entry counts from the kernel thread.
    let src = Arc::clone(&s.status);
    match tokio::task::spawn_blocking(move || src.status()).await {
        Ok(st) => Json(st).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status: {e}\n")).into_response(),
    }
}

fn line(v: &impl Serialize) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

async fn observe(State(s): State<ApiState>, Json(req): Json<ObserveRequest>) -> Response {
    if let (Some(a), Some(b)) = (req.since, req.until) {
        if a > b {
            return (StatusCode::BAD_REQUEST, "since is after until\n").into_response();
        }
    }
    // Subscribe before reading the ring so nothing published in between is missed; the ring's
    // high-water sequence number tells the live part what it may skip.
    let rx = req.follow.then(|| s.hub.subscribe());
    let q = RecentQuery {
        last: None,
        since: req.since,
        until: req.until,
    };
    let (recent, high) = s.hub.recent(&req.filter, &q);
    let mut lines: Vec<Bytes> = Vec::new();
    // Older than the ring (earlier runs, or records the ring has let go): from the store, up to
    // the ring's oldest record so that nothing is returned twice.
    let ring_oldest = s.hub.oldest();
    let wants_older = req
        .since
        .is_some_and(|since| ring_oldest.is_none_or(|o| since < o))
        || req.last.is_some_and(|n| n > recent.len());
    if let (Some(store), true) = (s.store.clone(), wants_older) {
        let until = match (req.until, ring_oldest) {
            (Some(u), Some(o)) => Some(u.min(Timestamp(o.0.saturating_sub(1)))),
            (None, Some(o)) => Some(Timestamp(o.0.saturating_sub(1))),
            (u, None) => u,
        };
        let filter = req.filter.clone();
        let (since, want) = (req.since, req.last.map(|n| n.saturating_sub(recent.len())));
        let older =
            tokio::task::spawn_blocking(move || store.query(&filter, since, until, want)).await;
        match older {
            Ok(Ok(older)) => lines.extend(older.iter().map(line)),
            Ok(Err(e)) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading the flow history: {e}\n"),
                )
                    .into_response()
            }
            Err(e) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading the flow history: {e}\n"),
                )
                    .into_response()
            }
        }
    }
    lines.extend(recent.iter().map(|p| line(&*p.record)));
    if let Some(n) = req.last {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let head = futures_util::stream::iter(lines.into_iter().map(Ok::<_, Infallible>));
    let ndjson = [(header::CONTENT_TYPE, "application/x-ndjson")];
    let Some(rx) = rx else {
        return (ndjson, Body::from_stream(head)).into_response();
    };
    let filter = req.filter;
    let until = req.until;
    let live = BroadcastStream::new(rx).filter_map(move |item| {
        let out = match item {
            Ok(p)
                if p.seq > high
                    && filter.matches(&p.record)
                    && until.is_none_or(|u| p.record.time() <= u) =>
            {
                Some(Ok(line(&*p.record)))
            }
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                // The reader fell behind: say so in-band rather than silently skipping.
                Some(Ok(line(&serde_json::json!({"type": "lost", "records": n}))))
            }
        };
        std::future::ready(out)
    });
    (ndjson, Body::from_stream(head.chain(live))).into_response()
}

/// Bind the unix socket: remove a stale one (nobody answering), refuse if an agent is live.
pub async fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            anyhow::bail!(
                "another agent is serving {} (stop it first, or pass --socket)",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}
