//! The web UI: static assets compiled into the binary (no CDN at run time) and the endpoints
//! only the UI needs. The read API it also uses (`/v1/status`, `/v1/observe`) is merged in by
//! `web::router`.

use axum::http::header;
use axum::routing::get;
use axum::Router;

use crate::api::ApiState;

const INDEX_HTML: &str = include_str!("../../ui/index.html");

pub fn router(_state: ApiState) -> Router {
    Router::new().route(
        "/",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                INDEX_HTML,
            )
        }),
    )
}
