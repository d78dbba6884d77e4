//! The one HTTP port of `serve`: /metrics, /livez, /readyz, /status, POST /sync and /approve,
//! GET /explain.
//! On a standby (PostgreSQL), the admin endpoints answer 503 naming the leader.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Daemon, Enqueued};

/// Routes over a running daemon.
pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/sync", post(sync))
        .route("/approve", post(approve))
        .route("/explain", get(explain))
        .with_state(daemon)
}

async fn metrics(State(d): State<Arc<Daemon>>) -> Response {
    match d.render_metrics() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response(),
    }
}

async fn livez(State(d): State<Arc<Daemon>>) -> Response {
    if d.is_live() || d.is_shutting_down() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "scheduler or runner stopped\n",
        )
            .into_response()
    }
}

async fn readyz(State(d): State<Arc<Daemon>>) -> Response {
    if d.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "first pass not attempted yet\n",
        )
            .into_response()
    }
}

async fn status(State(d): State<Arc<Daemon>>) -> Response {
    axum::Json(d.status()).into_response()
}

/// Parameters of POST /sync, from the query string or the body (JSON or form).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncParams {
    /// One group: Okta id, Okta name or Q name.
    group: Option<String>,
    /// Return the plan instead of applying it.
    #[serde(default, deserialize_with = "flexible_bool")]
    dry_run: Option<bool>,
}

fn flexible_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::Bool(b)) => Ok(Some(b)),
        Some(B::Str(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" | "" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!(
                "dry_run must be true or false, not {other:?}"
            ))),
        },
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// On a standby, the 503 that refuses an admin request and names the leader; `None` on the
/// leader. (Admin requests are not forwarded: the leader's address is in the answer.)
fn refuse_on_standby(d: &Daemon) -> Option<Response> {
    if d.is_leader() {
        return None;
    }
    let view = d.leader_view();
    let message = match &view.leader {
        Some(l) => format!(
            "this replica ({}) is a standby; replica {}{} leads: send admin requests to it",
            view.replica,
            l.replica,
            l.address
                .as_ref()
                .map(|a| format!(" at {a}"))
                .unwrap_or_default()
        ),
        None => format!(
            "this replica ({}) is a standby and no replica leads right now{}; retry in a few seconds",
            view.replica,
            view.fenced_reason
                .as_ref()
                .or(view.error.as_ref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    };
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "error": message, "leader": view })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    Some(r)
}

/// Checks the admin bearer token; `Err` is the response to send.
fn authorize(d: &Daemon, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if !d.admin_enabled() {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "admin endpoints are disabled: set server.admin_token_file or Q_GROUP_SYNC_SERVER__ADMIN_TOKEN",
        )));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    if !presented.is_some_and(|t| d.admin_token_matches(t)) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"q-group-sync\""),
        );
        return Err(Box::new(r));
    }
    Ok(())
}

/// Authorizes an admin request and reads its parameters from the query string and from the
/// body (JSON, or a form); the handler decides how the two combine. `Err` is the response.
fn admin_request<T: DeserializeOwned + Default>(
    d: &Daemon,
    query: Result<Query<T>, QueryRejection>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(T, T), Box<Response>> {
    authorize(d, headers)?;
    let Query(from_query) =
        query.map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("query: {e}"))))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((from_query, T::default()));
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let from_body = if form {
        serde_urlencoded::from_bytes(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }
    .map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("body (JSON or a form): {e}"),
        ))
    })?;
    Ok((from_query, from_body))
}

/// Parameters of POST /approve.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveParams {
    plan_id: Option<String>,
}

async fn approve(
    State(d): State<Arc<Daemon>>,
    query: Result<Query<ApproveParams>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (from_query, from_body) = match admin_request(&d, query, &headers, &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if let Some(r) = refuse_on_standby(&d) {
        return r;
    }
    let Some(plan_id) = from_query
        .plan_id
        .or(from_body.plan_id)
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "plan_id is required (GET /status shows the held plan)",
        );
    };
    match d.held_status(&plan_id).await {
        Ok(Some(crate::store::HoldStatus::Held)) => {}
        Ok(Some(status)) => {
            return error(
                StatusCode::CONFLICT,
                &format!("held plan {plan_id} is {status}, not waiting for approval"),
            );
        }
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no held plan has the id {plan_id:?}"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
    match d.enqueue_approval(plan_id.clone()) {
        Enqueued::Queued(id) | Enqueued::Coalesced(id) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "pass_id": id, "plan_id": plan_id })),
        )
            .into_response(),
        Enqueued::ShuttingDown => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        Enqueued::Standby(_) => refuse_on_standby(&d)
            .unwrap_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "leadership changed; retry")),
    }
}

async fn sync(
    State(d): State<Arc<Daemon>>,
    query: Result<Query<SyncParams>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (from_query, from_body) = match admin_request(&d, query, &headers, &body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let group = from_query
        .group
        .or(from_body.group)
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty());
    let dry_run = from_query.dry_run.or(from_body.dry_run).unwrap_or(false);
    if d.is_shutting_down() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if let Some(r) = refuse_on_standby(&d) {
        return r;
    }
    if dry_run {
        let report = d.dry_run(group).await;
        let status = if report.error.is_some() {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::OK
        };
        return (
            status,
            axum::Json(json!({
                "pass_id": report.pass_id,
                "dry_run": true,
                "outcome": report.outcome.as_str(),
                "error": report.error,
                "plan": report.plan,
            })),
        )
            .into_response();
    }
    match d.enqueue(crate::report::Trigger::Admin, group.clone()) {
        Enqueued::Queued(id) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "pass_id": id, "coalesced": false, "group": group })),
        )
            .into_response(),
        Enqueued::Coalesced(id) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "pass_id": id, "coalesced": true, "group": group })),
        )
            .into_response(),
        Enqueued::ShuttingDown => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        Enqueued::Standby(_) => refuse_on_standby(&d)
            .unwrap_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "leadership changed; retry")),
    }
}

/// Parameters of GET /explain.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainParams {
    user: Option<String>,
    document: Option<String>,
    data_source: Option<String>,
}

/// `GET /explain?user=&document=[&data_source=]`: `explain` for a helpdesk tool. Admin token
/// required (it reveals group memberships); reads only, so a standby answers too.
async fn explain(
    State(d): State<Arc<Daemon>>,
    query: Result<Query<ExplainParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&d, &headers) {
        return *r;
    }
    let Query(params) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("query: {e}")),
    };
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (Some(user), Some(document)) = (nonempty(params.user), nonempty(params.document)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "user and document are required: GET /explain?user=<email, login or Okta id>&document=<id>",
        );
    };
    let data_source = nonempty(params.data_source);
    let question = crate::explain::Question {
        user: &user,
        document: &document,
        data_source: data_source.as_deref(),
    };
    match d.explain(&question).await {
        Ok(e) => axum::Json(e).into_response(),
        Err(e) => {
            use crate::explain::ExplainError;
            let status = match &e {
                ExplainError::UnknownUser(_) | ExplainError::UnknownDocument { .. } => {
                    StatusCode::NOT_FOUND
                }
                ExplainError::AmbiguousUser { .. } => StatusCode::CONFLICT,
                _ => StatusCode::BAD_GATEWAY,
            };
            let message = crate::error::error_chain(&e);
            (
                status,
                axum::Json(json!({ "error": message, "kind": e.kind() })),
            )
                .into_response()
        }
    }
}
