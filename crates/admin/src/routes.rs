//! The endpoints: `/metrics`, `/livez`, `/readyz`; everything else is 404.
//!
//! These three are unauthenticated on purpose (a scraper or an orchestrator
//! probe has no login) and show nothing secret. Every page added later
//! (queue, keys, audit) shows or changes mail data and must sit behind
//! authentication: add it as a separate router with its own auth layer,
//! never on this one.

use crate::ready::run_all;
use crate::AdminState;
use axum::extract::State;
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sealgate_metrics::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use std::sync::atomic::Ordering;
use tower_http::timeout::TimeoutLayer;

pub(crate) fn router(state: AdminState) -> Router {
    let request_timeout = state.limits.request_timeout;
    let extra = state.extra.clone();
    let open = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/crl/{file}", get(crl))
        .fallback(not_found)
        .with_state(state);
    // The admin API under /api: it authenticates every request itself.
    let app = match extra {
        Some(api) => open.nest("/api", api),
        None => open,
    };
    app.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        request_timeout,
    ))
}

/// Does the client take OpenMetrics (Prometheus asks for it first)? Anyone
/// else gets the Prometheus text format 0.0.4.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            media.eq_ignore_ascii_case("application/openmetrics-text")
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        })
}

async fn metrics(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let (body, content_type) = if wants_openmetrics(&headers) {
        (state.metrics.encode(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (state.metrics.encode_prometheus(), PROMETHEUS_CONTENT_TYPE)
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

async fn livez() -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "ok\n",
    )
        .into_response()
}

/// 200 when every check passes, else 503; the JSON body names each check
/// and, for a failed one, why:
/// `{"status":"not ready","failed":["store"],"checks":[{"name":"store","ok":false,"error":"..."}]}`.
async fn readyz(State(state): State<AdminState>) -> Response {
    let mut results = run_all(&state.checks, state.limits.check_timeout).await;
    if state.shutting_down.load(Ordering::SeqCst) {
        results.push(crate::ready::CheckResult {
            name: "shutdown".into(),
            result: Err("the gateway is shutting down".into()),
        });
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.result.is_err())
        .map(|r| r.name.as_str())
        .collect();
    let checks: Vec<serde_json::Value> = results
        .iter()
        .map(|r| match &r.result {
            Ok(()) => serde_json::json!({ "name": r.name, "ok": true }),
            Err(e) => serde_json::json!({ "name": r.name, "ok": false, "error": e }),
        })
        .collect();
    let (status, word) = if failed.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        tracing::debug!(failed = ?failed, "/readyz: not ready");
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    let body = serde_json::json!({ "status": word, "failed": failed, "checks": checks });
    (
        status,
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        format!("{body}\n"),
    )
        .into_response()
}

/// `/crl/<thumbprint>.crl`: the CA's newest CRL, DER, for CRL distribution
/// points (public: a relying party fetches it without a login; a CRL is
/// signed and holds nothing secret).
async fn crl(
    State(state): State<AdminState>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    let Some(source) = &state.crls else {
        return not_found().await;
    };
    let Some(id) = file.strip_suffix(".crl") else {
        return not_found().await;
    };
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found().await;
    }
    match source.crl(&id.to_ascii_uppercase()).await {
        Ok(Some(der)) => (
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/pkix-crl"),
                ),
                (CACHE_CONTROL, HeaderValue::from_static("max-age=300")),
            ],
            der,
        )
            .into_response(),
        Ok(None) => not_found().await,
        Err(e) => {
            tracing::warn!("/crl/{id}.crl: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                "the CRL cannot be read now\n",
            )
                .into_response()
        }
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "not found\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn content_negotiation() {
        assert!(!wants_openmetrics(&HeaderMap::new()));
        assert!(!wants_openmetrics(&accept("*/*")));
        assert!(!wants_openmetrics(&accept("text/plain;version=0.0.4")));
        assert!(wants_openmetrics(&accept(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_openmetrics(&accept(
            "text/plain, Application/OpenMetrics-Text; version=1.0.0"
        )));
        assert!(!wants_openmetrics(&accept(
            "application/openmetrics-text; q=0, text/plain"
        )));
    }
}
