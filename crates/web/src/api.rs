//! `/api/v1`: JSON over the same library calls the CLI makes (the policy
//! layer, the queue's admin view, the trust stores, the CA). Every route
//! needs a bearer token ([`crate::auth`]); [`crate::openapi`] describes
//! them all, and a test checks the description against the running
//! daemon.

use crate::{ApiError, WebState};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

type Answer = Result<Json<Value>, ApiError>;

pub(crate) fn router(state: WebState) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route("/v1/policy", get(policy_list))
        .route("/v1/policy/{address}", get(policy_show))
        .route(
            "/v1/policy/{scope}/{name}",
            put(policy_set).delete(policy_unset),
        )
        .route("/v1/queue", get(queue_list))
        .route("/v1/queue/{id}", get(queue_show))
        .route("/v1/queue/{id}/{action}", post(queue_act))
        .route("/v1/certs", get(certs_list))
        .route("/v1/roots", get(roots_list))
        .route("/v1/ctl", get(ctl_list))
        .route("/v1/verify/{address}", get(verify))
        .route("/v1/crls", get(crls_list))
        .route("/v1/keys", get(keys_list))
        .route("/v1/certs/import", post(certs_import))
        .route("/v1/roots/import", post(roots_import))
        .route("/v1/audit", get(audit))
        .route("/v1/harvest", get(harvest_log))
        .merge(crate::api_ca::routes())
        .fallback(unknown)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

/// The session cookie's name.
pub const COOKIE: &str = "sg_session";
/// The header a session's CSRF token comes in, on every change.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn session_cookie(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Every route, the unknown ones too, answers 401 without a valid token or
/// session: what exists is not told to someone without one. Only the login
/// is open. A session's changes (anything but GET) need its CSRF token in
/// `X-CSRF-Token`, else 403.
async fn authenticate(State(state): State<WebState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/v1/login" {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let admin = match token {
        Some(t) => match state.accounts.admin_of_token(t).await {
            Ok(a) => a,
            Err(e) => return e.into_response(),
        },
        None => match session_cookie(&request) {
            Some(id) => match state.accounts.session(&id).await {
                Ok(Some(s)) => {
                    let safe = request.method() == axum::http::Method::GET;
                    let csrf = request
                        .headers()
                        .get(CSRF_HEADER)
                        .and_then(|v| v.to_str().ok());
                    if !safe && !csrf.is_some_and(|c| constant_eq(c.as_bytes(), s.csrf.as_bytes()))
                    {
                        tracing::warn!(admin = %s.admin, path = %request.uri().path(), "api: refused, no or a wrong CSRF token");
                        return ApiError::forbidden(
                            "a change through a session needs its CSRF token in X-CSRF-Token",
                        )
                        .into_response();
                    }
                    Some(s.admin)
                }
                Ok(None) => None,
                Err(e) => return e.into_response(),
            },
            None => None,
        },
    };
    let Some(admin) = admin else {
        tracing::info!(path = %request.uri().path(), "api: refused, no valid token or session");
        return ApiError::unauthenticated().into_response();
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if method != axum::http::Method::GET {
        tracing::info!(admin = %admin, %method, path = %path, status = response.status().as_u16(), "api: change");
    }
    response
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

#[derive(Deserialize)]
struct LoginBody {
    name: String,
    password: String,
}

/// A new session: `Set-Cookie: sg_session=...; HttpOnly; Secure;
/// SameSite=Strict; Path=/`, and its CSRF token in the body.
async fn login(
    State(s): State<WebState>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<sealgate_admin::ClientAddr>>>,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let ip = client
        .map(|c| (c.0).0 .0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if !s.logins.allowed(ip) {
        tracing::warn!(client = %ip, "api: login refused, too many failures");
        return Err(ApiError::rate_limited(format!(
            "too many failed logins from this address; try again in {} minutes",
            crate::auth::LOGIN_WINDOW.as_secs() / 60
        )));
    }
    let Json(b) = body.map_err(rejected)?;
    let Some(session) = s.accounts.login(&b.name, &b.password).await? else {
        s.logins.failed(ip);
        tracing::warn!(client = %ip, admin = %crate::auth::log_safe(&b.name), "api: login failed");
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "wrong name or password",
        ));
    };
    tracing::info!(client = %ip, admin = %session.admin, "api: signed in");
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        session.id,
        crate::auth::SESSION_SECS
    );
    let mut r = Json(json!({ "admin": session.admin, "csrf": session.csrf })).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(axum::http::header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn logout(State(s): State<WebState>, request: Request) -> Result<Response, ApiError> {
    if let Some(id) = session_cookie(&request) {
        s.accounts.logout(&id).await?;
    }
    let mut r = Json(json!({ "signed_out": true })).into_response();
    r.headers_mut().insert(
        axum::http::header::SET_COOKIE,
        axum::http::HeaderValue::from_static(
            "sg_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(r)
}

async fn unknown() -> ApiError {
    ApiError::not_found("no such API route (GET /api/v1/openapi.json lists them)")
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

async fn policy_list(State(s): State<WebState>) -> Answer {
    let rows = s.store.policy_settings().await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    })?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "scope": r.scope,
                "name": r.name,
                "value": serde_json::from_str::<Value>(&r.value).unwrap_or(Value::Null),
                "updated_at": r.updated_at,
            })
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// A rejected path, query or body is a 400 in the API's JSON, not axum's
/// plain text.
fn rejected(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(e.to_string())
}

async fn policy_show(
    State(s): State<WebState>,
    address: Result<Path<String>, PathRejection>,
) -> Answer {
    let Path(address) = address.map_err(rejected)?;
    let file = s.file_policy();
    let shown = sealgate_policy::stored::show(&s.store, &file, &address)
        .await
        .map_err(ApiError::invalid)?;
    Ok(Json(serde_json::to_value(shown).unwrap_or_default()))
}

#[derive(Deserialize)]
struct SetBody {
    value: Value,
}

async fn policy_set(
    State(s): State<WebState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<SetBody>, JsonRejection>,
) -> Answer {
    let Path((scope, name)) = path.map_err(rejected)?;
    let Json(body) = body.map_err(rejected)?;
    let file = s.file_policy();
    let raw = match &body.value {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    let (scope, value) = sealgate_policy::stored::set(&s.store, &file, &scope, &name, &raw)
        .await
        .map_err(ApiError::invalid)?;
    Ok(Json(
        json!({ "scope": scope.key(), "name": name, "value": value }),
    ))
}

async fn policy_unset(
    State(s): State<WebState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let Path((scope, name)) = path.map_err(rejected)?;
    let (scope, removed) = sealgate_policy::stored::unset(&s.store, &scope, &name)
        .await
        .map_err(ApiError::invalid)?;
    if !removed {
        return Err(ApiError::not_found(format!(
            "{} has no stored {name}",
            scope.describe()
        )));
    }
    Ok(Json(
        json!({ "scope": scope.key(), "name": name, "removed": true }),
    ))
}

#[derive(Deserialize)]
struct QueueFilter {
    filter: Option<String>,
}

async fn queue_list(
    State(s): State<WebState>,
    q: Result<Query<QueueFilter>, QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(rejected)?;
    use sealgate_queue::admin::Filter;
    let filter = match q.filter.as_deref().unwrap_or("all") {
        "all" => Filter::All,
        "deferred" => Filter::Deferred,
        "held" => Filter::Held,
        other => {
            return Err(ApiError::invalid(format!(
                "filter {other:?}: give all, deferred or held"
            )))
        }
    };
    let list = sealgate_queue::admin::list(&s.store, filter).await?;
    Ok(Json(serde_json::to_value(list).unwrap_or_default()))
}

async fn queue_show(State(s): State<WebState>, id: Result<Path<String>, PathRejection>) -> Answer {
    let Path(id) = id.map_err(rejected)?;
    match sealgate_queue::admin::show(&s.store, &id).await? {
        Some(d) => Ok(Json(serde_json::to_value(d).unwrap_or_default())),
        None => Err(ApiError::not_found(format!("no queued message {id}"))),
    }
}

async fn queue_act(
    State(s): State<WebState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let Path((id, action)) = path.map_err(rejected)?;
    use sealgate_queue::admin;
    let affected = match action.as_str() {
        "flush" => admin::flush(&s.store, Some(&id)).await?,
        "hold" => admin::hold(&s.store, &id).await?,
        "release" => admin::release(&s.store, &id).await?,
        "delete" => admin::delete(&s.store, &id).await?,
        "bounce" => admin::bounce(&s.store, &s.schedule, &s.hostname, &id).await?,
        other => {
            return Err(ApiError::invalid(format!(
                "action {other:?}: give flush, hold, release, delete or bounce"
            )))
        }
    };
    Ok(Json(
        json!({ "id": id, "action": action, "recipients": affected }),
    ))
}

#[derive(Deserialize)]
struct CertsQuery {
    email: Option<String>,
}

async fn certs_list(
    State(s): State<WebState>,
    q: Result<Query<CertsQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(rejected)?;
    let filter = sealgate_trust::CertFilter {
        email: q.email.map(|e| e.to_lowercase()),
        ..Default::default()
    };
    let list = s.trust.list_certs(&filter).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|v| {
            json!({
                "sha256": v.stored.info.sha256,
                "subject": v.stored.info.subject,
                "issuer": v.stored.info.issuer,
                "emails": v.stored.info.emails,
                "not_after": v.stored.info.not_after,
                "has_key": v.stored.has_key,
                "source": v.stored.source,
                "status": v.verdict.status.label(),
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

async fn roots_list(State(s): State<WebState>) -> Answer {
    let list = s.trust.list_roots().await?;
    let out: Vec<Value> = list
        .iter()
        .map(|r| {
            json!({
                "sha256": r.sha256,
                "subject": r.subject,
                "not_after": r.not_after,
                "source": r.source,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

async fn crls_list(State(s): State<WebState>) -> Answer {
    let list = s.trust.list_crls().await?;
    Ok(Json(Value::Array(
        list.iter().map(|c| c.to_json()).collect(),
    )))
}

#[derive(Deserialize)]
struct AddressQuery {
    address: Option<String>,
    limit: Option<i64>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        e.to_string(),
    )
}

async fn keys_list(
    State(s): State<WebState>,
    q: Result<Query<AddressQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(rejected)?;
    let (bindings, keys) = s
        .store
        .key_report(q.address.as_deref())
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "bindings": bindings, "keys": keys })))
}

async fn certs_import(State(s): State<WebState>, body: axum::body::Bytes) -> Answer {
    let imported = s.trust.import_certs(&body, "api").await?;
    Ok(Json(serde_json::to_value(imported).unwrap_or_default()))
}

async fn roots_import(State(s): State<WebState>, body: axum::body::Bytes) -> Answer {
    let imported = s.trust.import_roots(&body, "api").await?;
    Ok(Json(serde_json::to_value(imported).unwrap_or_default()))
}

/// The limit of a log query: 1 to 1,000, 100 by default.
fn limit(q: &AddressQuery) -> Result<i64, ApiError> {
    match q.limit.unwrap_or(100) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::invalid(format!("limit {n}: give 1 to 1000"))),
    }
}

async fn audit(
    State(s): State<WebState>,
    q: Result<Query<AddressQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(rejected)?;
    let n = limit(&q)?;
    let wanted = q.address.as_deref().map(str::to_lowercase);
    // The newest rows, then those naming the address as sender or recipient.
    let rows = s
        .store
        .recent_audit(if wanted.is_some() { 10_000 } else { n })
        .await
        .map_err(unavailable)?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| {
            wanted.as_deref().is_none_or(|a| {
                r.sender.eq_ignore_ascii_case(a)
                    || r.recipients
                        .iter()
                        .any(|x| x.address.eq_ignore_ascii_case(a))
            })
        })
        .take(n as usize)
        .collect();
    Ok(Json(serde_json::to_value(rows).unwrap_or_default()))
}

async fn harvest_log(
    State(s): State<WebState>,
    q: Result<Query<AddressQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = q.map_err(rejected)?;
    let n = limit(&q)?;
    let address = q.address.as_deref().map(str::to_lowercase);
    let rows = sealgate_harvest::db::recent(s.store.pool(), address.as_deref(), n)
        .await
        .map_err(unavailable)?;
    Ok(Json(serde_json::to_value(rows).unwrap_or_default()))
}

/// S/Notify's "Verify Settings": every source's answer for the address,
/// which key would be used and why others would not, and the decision.
async fn verify(State(s): State<WebState>, address: Result<Path<String>, PathRejection>) -> Answer {
    let Path(address) = address.map_err(rejected)?;
    let ok = address.len() <= 320
        && address
            .rsplit_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !address.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ApiError::invalid(format!(
            "{address:?} is not an address (user@domain)"
        )));
    }
    let Some(f) = s.verify.get() else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the gateway is still starting",
        ));
    };
    f(address).await.map(Json).map_err(unavailable)
}

async fn ctl_list(State(s): State<WebState>) -> Answer {
    Ok(Json(
        serde_json::to_value(s.trust.ctl_list().await?).unwrap_or_default(),
    ))
}
