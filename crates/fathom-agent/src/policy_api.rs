//! The policy routes of the local API (unix socket only: they change what the kernel drops).
//! Refusals answer 422 with `{"errors": [...]}`, one line per problem.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::policy_engine::{Command, PolicyHandle, Refusal};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// (name the errors use, text) per file.
    pub sources: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExplainRequest {
    pub from: String,
    pub to: String,
    /// `80/tcp`, `53/udp`, `8/icmp`, …
    pub port: String,
}

pub fn router(handle: PolicyHandle) -> Router {
    Router::new()
        .route("/v1/policy", get(list).post(apply))
        .route("/v1/policy/explain", post(explain))
        .route("/v1/policy/maps", get(maps))
        .route("/v1/policy/get", post(get_one))
        .route("/v1/policy/delete", post(remove))
        .with_state(handle)
}

fn answer<T: Serialize>(r: Result<T, Refusal>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, Json(e)).into_response(),
    }
}

async fn list(State(h): State<PolicyHandle>) -> Response {
    answer(h.ask(|reply| Command::List { reply }).await)
}

async fn apply(State(h): State<PolicyHandle>, Json(req): Json<ApplyRequest>) -> Response {
    answer(
        h.ask(|reply| Command::Apply {
            sources: req.sources,
            reply,
        })
        .await
        .and_then(|r| r),
    )
}

/// A policy by `name`, `namespace/name` or `kind/namespace/name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameRequest {
    pub name: String,
}

async fn remove(
    State(h): State<PolicyHandle>,
    Json(NameRequest { name }): Json<NameRequest>,
) -> Response {
    answer(
        h.ask(|reply| Command::Delete { name, reply })
            .await
            .and_then(|r| r),
    )
}

async fn get_one(
    State(h): State<PolicyHandle>,
    Json(NameRequest { name }): Json<NameRequest>,
) -> Response {
    answer(
        h.ask(|reply| Command::Get { name, reply })
            .await
            .and_then(|r| r),
    )
}

async fn explain(State(h): State<PolicyHandle>, Json(req): Json<ExplainRequest>) -> Response {
    answer(
        h.ask(|reply| Command::Explain {
            from: req.from,
            to: req.to,
            port: req.port,
            reply,
        })
        .await
        .and_then(|r| r),
    )
}

async fn maps(State(h): State<PolicyHandle>) -> Response {
    answer(h.ask(|reply| Command::Maps { reply }).await)
}
