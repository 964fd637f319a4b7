//! `/api/v1/ca/...`: the built-in CA's actions, over `sealgate_ca::Ca` as
//! `sealgate ca` uses it.

use crate::{ApiError, WebState};
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use sealgate_ca::{handler, KeySpec, NewCa, NewCrl, Request, SigAlg};
use serde::Deserialize;
use serde_json::{json, Value};

type Answer = Result<Json<Value>, ApiError>;

fn rejected(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(e.to_string())
}

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/v1/ca", get(list).post(create))
        .route("/v1/ca/config", get(config))
        .route("/v1/ca/config/{name}", put(config_set))
        .route("/v1/ca/default/{thumbprint}", put(set_default))
        .route("/v1/ca/requests", post(request))
        .route("/v1/ca/bulk", post(bulk))
        .route("/v1/ca/pending", get(pending))
        .route("/v1/ca/pending/upload", post(upload))
        .route("/v1/ca/pending/{id}", axum::routing::delete(pending_delete))
        .route("/v1/ca/pending/{id}/csr", get(pending_csr))
        .route("/v1/ca/pending/{id}/reschedule", post(pending_reschedule))
        .route("/v1/ca/crl", post(crl))
        .route("/v1/ca/send", post(send))
}

fn value<T: serde::Serialize>(v: T) -> Answer {
    Ok(Json(serde_json::to_value(v).unwrap_or_default()))
}

async fn list(State(s): State<WebState>) -> Answer {
    value(s.ca.list().await?)
}

async fn config(State(s): State<WebState>) -> Answer {
    value(s.ca.config().await?)
}

#[derive(Deserialize)]
struct NewCaBody {
    root_cn: String,
    intermediate_cn: String,
    email: Option<String>,
    days: Option<u32>,
    key: Option<String>,
    signature: Option<String>,
    #[serde(default)]
    default: bool,
}

async fn create(State(s): State<WebState>, body: Result<Json<NewCaBody>, JsonRejection>) -> Answer {
    let Json(b) = body.map_err(rejected)?;
    let view =
        s.ca.create(&NewCa {
            root_name: b.root_cn,
            intermediate_name: b.intermediate_cn,
            email: b.email,
            validity_days: b.days.unwrap_or(3650),
            key: KeySpec::parse(b.key.as_deref().unwrap_or("rsa4096"))?,
            signature_algorithm: SigAlg::parse(b.signature.as_deref().unwrap_or("sha256"))?,
            make_default: b.default,
        })
        .await?;
    value(view)
}

#[derive(Deserialize)]
struct SetBody {
    value: Value,
}

async fn config_set(
    State(s): State<WebState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<SetBody>, JsonRejection>,
) -> Answer {
    let Path(name) = name.map_err(rejected)?;
    let Json(b) = body.map_err(rejected)?;
    let raw = match b.value {
        Value::String(t) => t,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    value(s.ca.set_config(&name, &raw).await?)
}

async fn set_default(State(s): State<WebState>, t: Result<Path<String>, PathRejection>) -> Answer {
    let Path(t) = t.map_err(rejected)?;
    value(s.ca.set_default(&t).await?)
}

#[derive(Deserialize)]
struct RequestBody {
    email: String,
    cn: Option<String>,
    organisation: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    days: Option<u32>,
    key: Option<String>,
    signature: Option<String>,
    crl_distribution_point: Option<bool>,
    ca: Option<String>,
    handler: Option<String>,
}

async fn request(
    State(s): State<WebState>,
    body: Result<Json<RequestBody>, JsonRejection>,
) -> Answer {
    let Json(b) = body.map_err(rejected)?;
    let r = Request {
        email: b.email,
        common_name: b.cn,
        organisation: b.organisation,
        given_name: b.first_name,
        surname: b.last_name,
        validity_days: b.days,
        key: b.key.as_deref().map(KeySpec::parse).transpose()?,
        signature_algorithm: b.signature.as_deref().map(SigAlg::parse).transpose()?,
        crl_distribution_point: b.crl_distribution_point,
        ca: b.ca,
    };
    let name = match b.handler {
        Some(h) => h,
        None => s.ca.config().await?.default_handler,
    };
    let h = handler::by_name(&name)?;
    Ok(Json(outcome(h.submit(&s.ca, &r).await?)))
}

fn outcome(o: handler::Outcome) -> Value {
    match o {
        handler::Outcome::Issued(i) => json!({"outcome": "issued", "certificate": *i}),
        handler::Outcome::Pending(p) => json!({"outcome": "pending", "pending": p}),
    }
}

#[derive(Deserialize)]
struct BulkQuery {
    #[serde(default)]
    preview: bool,
    handler: Option<String>,
}

async fn bulk(
    State(s): State<WebState>,
    q: Result<Query<BulkQuery>, QueryRejection>,
    body: Bytes,
) -> Answer {
    let Query(q) = q.map_err(rejected)?;
    if q.preview {
        return value(s.ca.bulk_plan(&body).await?);
    }
    let name = match q.handler {
        Some(h) => h,
        None => s.ca.config().await?.default_handler,
    };
    let h = handler::by_name(&name)?;
    let (plan, done) = s.ca.bulk(&body, h.as_ref()).await?;
    let results: Vec<Value> = done
        .into_iter()
        .map(|(row, o)| {
            let mut v = outcome(o);
            v["row"] = json!(row);
            v
        })
        .collect();
    Ok(Json(json!({"results": results, "skipped": plan.skipped})))
}

async fn pending(State(s): State<WebState>) -> Answer {
    value(s.ca.pending_list().await?)
}

async fn pending_csr(
    State(s): State<WebState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(rejected)?;
    let p = s.ca.pending(&id).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/pkcs10")],
        p.csr_pem,
    )
        .into_response())
}

async fn pending_reschedule(
    State(s): State<WebState>,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let Path(id) = id.map_err(rejected)?;
    value(s.ca.pending_reschedule(&id).await?)
}

async fn pending_delete(
    State(s): State<WebState>,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    let Path(id) = id.map_err(rejected)?;
    value(s.ca.pending_delete(&id).await?)
}

async fn upload(State(s): State<WebState>, body: Bytes) -> Answer {
    let done = s.ca.pending_upload(&body).await?;
    let out: Vec<Value> = done
        .into_iter()
        .map(|(id, sha)| json!({"request": id, "certificate": sha}))
        .collect();
    Ok(Json(Value::Array(out)))
}

#[derive(Deserialize)]
struct CrlBody {
    ca: Option<String>,
    #[serde(default)]
    serials: Vec<String>,
    next_update_days: Option<u32>,
    #[serde(default)]
    replace: bool,
    signature: Option<String>,
}

async fn crl(State(s): State<WebState>, body: Result<Json<CrlBody>, JsonRejection>) -> Answer {
    let Json(b) = body.map_err(rejected)?;
    let (crl, listed) =
        s.ca.create_crl(&NewCrl {
            ca: b.ca,
            serials: b.serials,
            next_update_days: b.next_update_days.unwrap_or(30),
            update_existing: !b.replace,
            signature_algorithm: b.signature.as_deref().map(SigAlg::parse).transpose()?,
        })
        .await?;
    Ok(Json(json!({
        "number": crl.number,
        "this_update": crl.this_update,
        "next_update": crl.next_update,
        "serials": listed,
    })))
}

#[derive(Deserialize)]
struct SendBody {
    address: String,
    #[serde(default)]
    certificates: Vec<String>,
    #[serde(default)]
    allow_mismatch: bool,
    #[serde(default)]
    legacy: bool,
}

async fn send(State(s): State<WebState>, body: Result<Json<SendBody>, JsonRejection>) -> Answer {
    let Json(b) = body.map_err(rejected)?;
    let sent =
        s.ca.send(
            &s.schedule,
            &s.hostname,
            &b.address,
            &b.certificates,
            b.allow_mismatch,
            None,
            b.legacy,
        )
        .await?;
    // The password goes back to the admin, and nowhere else.
    let mut v = serde_json::to_value(&sent).unwrap_or_default();
    v["pkcs12_password"] = json!(sent.password);
    Ok(Json(v))
}
