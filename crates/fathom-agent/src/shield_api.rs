//! Mutating shield routes. Mounted only on the unix socket (mode 0600, root): the web listener
//! never offers them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::api::ApiState;
use crate::shield::{BlockRequest, UnblockRequest};
use fathom_bpf::shield::ORIGIN_OPERATOR;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/shield/blocks", get(blocks))
        .route("/v1/shield/block", post(block))
        .route("/v1/shield/unblock", post(unblock))
        .with_state(state)
}

fn disabled() -> Response {
    (
        StatusCode::CONFLICT,
        "the XDP shield is not enabled on this agent (set shield.enabled: true in its config)\n",
    )
        .into_response()
}

async fn blocks(State(s): State<ApiState>) -> Response {
    match &s.shield {
        Some(sh) => Json(sh.blocks()).into_response(),
        None => disabled(),
    }
}

async fn block(State(s): State<ApiState>, Json(req): Json<BlockRequest>) -> Response {
    let Some(sh) = s.shield.clone() else {
        return disabled();
    };
    match tokio::task::spawn_blocking(move || sh.block(&req, ORIGIN_OPERATOR)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn unblock(State(s): State<ApiState>, Json(req): Json<UnblockRequest>) -> Response {
    let Some(sh) = s.shield.clone() else {
        return disabled();
    };
    match tokio::task::spawn_blocking(move || sh.unblock(&req.cidr)).await {
        Ok(Ok(true)) => Json(serde_json::json!({"unblocked": true})).into_response(),
        Ok(Ok(false)) => (StatusCode::NOT_FOUND, "not in the blocklist\n").into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
