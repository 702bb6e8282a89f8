//! The web UI: static assets compiled into the binary (no CDN, no build step) and the endpoints
//! only the UI needs. The read API it also uses (`/v1/status`, `/v1/observe`) is merged in by
//! `web::router`.
//!
//! - `GET /`, `GET /ui/<asset>`: the page, its ES modules and stylesheet.
//! - `GET /ui/api/map?window=SECONDS&group=pod|workload`: the service map of the hub's recent
//!   records ([`map::aggregate`]).
//! - `POST /ui/api/filter`: the flow table's form (strings, as typed) → a `FlowFilter` for
//!   `/v1/observe`, parsed exactly like the CLI's flags, or 400 with the parser's message.

pub mod filter;
pub mod map;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fathom_model::{FlowFilter, Timestamp};
use serde::Deserialize;

use crate::api::ApiState;
use crate::hub::RecentQuery;

/// (path under /ui/, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    ("style.css", "text/css", include_str!("../../ui/style.css")),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../ui/favicon.svg"),
    ),
    ("js/app.js", JS, include_str!("../../ui/js/app.js")),
    ("js/api.js", JS, include_str!("../../ui/js/api.js")),
    ("js/dom.js", JS, include_str!("../../ui/js/dom.js")),
    ("js/map.js", JS, include_str!("../../ui/js/map.js")),
    ("js/mapdraw.js", JS, include_str!("../../ui/js/mapdraw.js")),
    ("js/mapside.js", JS, include_str!("../../ui/js/mapside.js")),
    ("js/layout.js", JS, include_str!("../../ui/js/layout.js")),
    ("js/edges.js", JS, include_str!("../../ui/js/edges.js")),
    ("js/flows.js", JS, include_str!("../../ui/js/flows.js")),
    ("js/records.js", JS, include_str!("../../ui/js/records.js")),
    ("js/detail.js", JS, include_str!("../../ui/js/detail.js")),
    ("js/drops.js", JS, include_str!("../../ui/js/drops.js")),
    ("js/policy.js", JS, include_str!("../../ui/js/policy.js")),
];
const JS: &str = "text/javascript";
const INDEX_HTML: &str = include_str!("../../ui/index.html");

/// Pod names, labels and (later) HTTP paths are chosen by whoever sends traffic: the page
/// builds its DOM with textContent only, and this policy forbids inline script as a backstop.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const DEFAULT_WINDOW: u64 = 300;
const MAX_WINDOW: u64 = 7 * 24 * 3600;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(asset))
        .route("/ui/api/map", get(service_map))
        .route("/ui/api/filter", post(parse_filter))
        .with_state(state)
}

async fn index() -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        // no-cache, not no-store: the browser revalidates, so an upgraded agent's assets are
        // never mixed with the old ones.
        Some((_, ctype, body)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct MapParams {
    window: Option<u64>,
    #[serde(default)]
    group: map::Grouping,
}

async fn service_map(State(s): State<ApiState>, Query(p): Query<MapParams>) -> Response {
    let window = p.window.unwrap_or(DEFAULT_WINDOW).clamp(1, MAX_WINDOW);
    let now = Timestamp::now();
    let since = Timestamp(now.as_nanos().saturating_sub(window * 1_000_000_000));
    let hub = s.hub.clone();
    // A full ring is 100k records: aggregate off the async workers.
    let built = tokio::task::spawn_blocking(move || {
        let q = RecentQuery {
            since: Some(since),
            ..Default::default()
        };
        let (recs, _) = hub.recent(&FlowFilter::default(), &q);
        // Record times come from the kernel clock; one a hair ahead of ours still belongs.
        let until = recs
            .iter()
            .map(|p| p.record.time())
            .max()
            .map_or(now, |t| t.max(now));
        map::aggregate(recs.iter().map(|p| &*p.record), since, until, p.group)
    })
    .await;
    match built {
        Ok(m) => Json(m).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("map: {e}\n")).into_response(),
    }
}

async fn parse_filter(body: axum::body::Bytes) -> Response {
    let form = match serde_json::from_slice::<filter::FilterForm>(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(format!("filter form: {e}")),
    };
    match form.parse() {
        Ok(f) => Json(serde_json::json!({ "filter": f })).into_response(),
        Err(e) => bad_request(e),
    }
}

fn bad_request(error: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": error })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use crate::status::{AgentStatus, StatusSource};
    use axum::body::Body;
    use axum::extract::Request;
    use std::sync::Arc;
    use tower::ServiceExt;

    struct NoStatus;
    impl StatusSource for NoStatus {
        fn status(&self) -> AgentStatus {
            unreachable!("the UI routes do not read the status")
        }
    }

    fn app() -> Router {
        router(ApiState {
            hub: Hub::new(8),
            status: Arc::new(NoStatus),
            store: None,
            shield: None,
        })
    }

    async fn call(req: Request) -> (StatusCode, String, String) {
        let r = app().oneshot(req).await.expect("response");
        let status = r.status();
        let ctype = r
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    fn get(uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn every_asset_the_page_imports_is_served() {
        let (st, ct, html) = call(get("/")).await;
        assert_eq!(
            (st, ct.as_str()),
            (StatusCode::OK, "text/html; charset=utf-8")
        );
        assert!(html.contains("/ui/js/app.js"));
        for (path, ctype, _) in ASSETS {
            let (st, ct, _) = call(get(&format!("/ui/{path}"))).await;
            assert_eq!((st, ct.as_str()), (StatusCode::OK, *ctype), "{path}");
        }
        // Every relative import in the modules names a served file.
        for (path, _, body) in ASSETS.iter().filter(|a| a.0.ends_with(".js")) {
            for imp in body.lines().filter_map(|l| l.split("from './").nth(1)) {
                let file = imp.split('\'').next().unwrap_or("");
                assert!(
                    ASSETS.iter().any(|a| a.0 == format!("js/{file}")),
                    "{path} imports {file}, which is not served"
                );
            }
        }
        assert_eq!(call(get("/ui/nope.js")).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn empty_hub_gives_an_empty_map() {
        let (st, _, body) = call(get("/ui/api/map?window=60&group=workload")).await;
        assert_eq!(st, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["window_seconds"], 60);
        assert_eq!(v["grouping"], "workload");
        assert_eq!(v["nodes"], serde_json::json!([]));
        let (st, _, _) = call(get("/ui/api/map?group=galaxy")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn filter_form_is_parsed_or_explained() {
        let post = |body: &str| {
            Request::builder()
                .method("POST")
                .uri("/ui/api/filter")
                .body(Body::from(body.to_string()))
                .expect("request")
        };
        let (st, _, body) = call(post(r#"{"from_pod":["x/a"],"port":["80"]}"#)).await;
        assert_eq!(st, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            v["filter"],
            serde_json::json!({"from_pod": [{"namespace": "x", "pod": "a"}], "port": [80]})
        );
        let (st, _, body) = call(post(r#"{"protocol":["igmp"]}"#)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(body.contains("bad protocol"), "{body}");
    }
}
