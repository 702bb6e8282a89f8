//! The agent's TCP listener (127.0.0.1:9965 by default): `/metrics` for Prometheus, the
//! read-only API (`/v1/health`, `/v1/status`, `/v1/observe`) and the web UI. The unix socket
//! stays the CLI's way in; this listener is for browsers and scrapers. Bound beyond loopback,
//! every request must carry the configured token.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::api::{self, ApiState};
use crate::metrics::Metrics;

pub fn router(api_state: ApiState, metrics: Arc<Metrics>, token: Option<String>) -> Router {
    let metrics_route = Router::new().route(
        "/metrics",
        get(move || {
            let m = Arc::clone(&metrics);
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }
        }),
    );
    let app = metrics_route
        .merge(api::read_only_router(api_state.clone()))
        .merge(crate::ui::router(api_state));
    match token {
        Some(t) => {
            let t = Arc::new(t);
            app.layer(middleware::from_fn(move |req: Request, next: Next| {
                let t = Arc::clone(&t);
                async move { require_token(&t, req, next).await }
            }))
        }
        None => app,
    }
}

fn presented_token(req: &Request) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(str::to_string);
    }
    req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token=").map(str::to_string))
    })
}

/// The page and its assets hold no node data; the browser fetches them before it can attach a
/// token. Everything that answers with data (`/v1/*`, `/ui/api/*`, `/metrics`) needs it.
fn is_static_asset(req: &Request) -> bool {
    let p = req.uri().path();
    req.method() == axum::http::Method::GET
        && (p == "/" || (p.starts_with("/ui/") && !p.starts_with("/ui/api/")))
}

async fn require_token(token: &str, req: Request, next: Next) -> Response {
    if is_static_asset(&req) {
        return next.run(req).await;
    }
    // Constant-time comparison: the token guards everything this node sees.
    let ok = presented_token(&req).is_some_and(|p| {
        p.len() == token.len()
            && p.bytes()
                .zip(token.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    });
    if ok {
        next.run(req).await
    } else {
        (StatusCode::UNAUTHORIZED, "missing or wrong token\n").into_response()
    }
}

/// Serve `router` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: std::net::SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("web listener on {addr}: {e}"))?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use crate::kernel::KernelShared;
    use crate::metrics::MetricsContext;
    use crate::pipeline::PipelineStats;
    use crate::status::{AgentStatus, StatusSource};
    use axum::body::Body;
    use std::sync::Mutex;
    use tower::ServiceExt;

    struct NoStatus;
    impl StatusSource for NoStatus {
        fn status(&self) -> AgentStatus {
            serde_json::from_value(serde_json::json!({
                "version": "t", "node": "n", "pid": 1, "uptime_seconds": 0, "socket": "", "features": null,
                "kernel": null, "pipeline": null, "events_received": 0, "events_dropped": 0,
                "records_published": 0, "hub_records": 0, "attach_errors": []
            }))
            .expect("status fixture")
        }
    }

    fn app(token: Option<&str>) -> Router {
        let hub = Hub::new(8);
        let metrics = Arc::new(Metrics::new(
            MetricsContext::None,
            Arc::new(KernelShared::default()),
            Arc::new(Mutex::new(PipelineStats::default())),
            Arc::clone(&hub),
            None,
        ));
        router(
            ApiState {
                hub,
                status: Arc::new(NoStatus),
                store: None,
                shield: None,
            },
            metrics,
            token.map(String::from),
        )
    }

    async fn get(app: Router, uri: &str, auth: Option<&str>) -> StatusCode {
        let mut req = Request::builder().uri(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        app.oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response")
            .status()
    }

    #[tokio::test]
    async fn token_is_required_when_configured() {
        let t = "0123456789abcdef-token";
        assert_eq!(
            get(app(Some(t)), "/v1/health", None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(
                app(Some(t)),
                "/metrics",
                Some("Bearer wrong-token-0123456789")
            )
            .await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(app(Some(t)), "/v1/health", Some(&format!("Bearer {t}"))).await,
            StatusCode::OK
        );
        assert_eq!(
            get(app(Some(t)), &format!("/v1/status?token={t}"), None).await,
            StatusCode::OK
        );
        assert_eq!(
            get(app(Some(t)), "/", None).await,
            StatusCode::OK,
            "the page itself is public"
        );
        assert_eq!(
            get(app(Some(t)), "/ui/api/map", None).await,
            StatusCode::UNAUTHORIZED,
            "its data is not"
        );
        assert_eq!(
            get(app(Some(t)), "/metrics", None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(get(app(None), "/metrics", None).await, StatusCode::OK);
        assert_eq!(get(app(None), "/", None).await, StatusCode::OK);
    }
}
