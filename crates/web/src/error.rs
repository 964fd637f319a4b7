//! API errors: JSON with a stable code and a readable message, e.g.
//! `{"code":"not_found","message":"no queued message 19AF..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error the API answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// One of `unauthenticated`, `forbidden`, `invalid`, `not_found`,
    /// `conflict`, `rate_limited`, `unavailable`, `internal`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this needs an API token: Authorization: Bearer sgt_... (sealgate admin token create)",
        )
    }
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn rate_limited(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the store cannot be read now: {e}"),
        )
    }
}

impl From<sealgate_ca::CaError> for ApiError {
    fn from(e: sealgate_ca::CaError) -> Self {
        use sealgate_ca::CaError as E;
        match e {
            E::Invalid(_) | E::Refused(_) => ApiError::invalid(e.to_string()),
            E::NotFound(_) => ApiError::not_found(e.to_string()),
            E::NoKek => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            E::Query(q) => q.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<sealgate_trust::TrustError> for ApiError {
    fn from(e: sealgate_trust::TrustError) -> Self {
        use sealgate_trust::TrustError as E;
        match e {
            E::NotFound(m) => ApiError::not_found(m),
            E::BadThumbprint(m) | E::Format(m) => ApiError::invalid(m),
            E::Query(q) => q.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<sealgate_queue::QueueError> for ApiError {
    fn from(e: sealgate_queue::QueueError) -> Self {
        match e {
            sealgate_queue::QueueError::NotFound(id) => {
                ApiError::not_found(format!("no queued message {id}"))
            }
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                other.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(serde_json::json!({ "code": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"sealgate\""),
            );
        }
        r
    }
}
