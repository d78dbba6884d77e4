//! The one HTTP port of `serve`: /metrics, /livez, /readyz, /status, POST /sync and /approve,
//! GET /explain.
//! On a standby (PostgreSQL), the admin endpoints answer 503 naming the leader.
//!
//! Admin routes live in [`admin_routes`]: every route there gets the bearer-token check before
//! any of its body is read, and a body cap of [`ADMIN_BODY_MAX`] bytes (413 beyond), by
//! construction. `/status` shows counts, times and outcomes to anyone, and its detail (group
//! names, ids, error texts, traces) only with the admin token.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Daemon, Enqueued};

/// The largest admin request body, in bytes (413 beyond); parameters fit in a few hundred.
pub const ADMIN_BODY_MAX: usize = 4 * 1024;

/// Routes over a running daemon: the public ones and [`admin_routes`].
pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .merge(admin_routes(Arc::clone(&daemon)))
        .with_state(daemon)
}

/// The admin routes. A route added here is refused (401/403) before its body is read unless it
/// carries the admin token, and its body is capped at [`ADMIN_BODY_MAX`] bytes.
fn admin_routes(daemon: Arc<Daemon>) -> Router<Arc<Daemon>> {
    Router::new()
        .route("/sync", post(sync))
        .route("/approve", post(approve))
        .route("/explain", get(explain))
        .route_layer(DefaultBodyLimit::max(ADMIN_BODY_MAX))
        .route_layer(middleware::from_fn_with_state(daemon, require_admin))
}

/// Middleware of [`admin_routes`]: the token first, then a declared body size over the cap is
/// refused (413) without reading it. Chunked bodies are cut at the cap by `DefaultBodyLimit`.
async fn require_admin(State(d): State<Arc<Daemon>>, request: Request, next: Next) -> Response {
    if let Err(r) = authorize(&d, request.headers()) {
        return *r;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > ADMIN_BODY_MAX as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("admin request bodies are limited to {ADMIN_BODY_MAX} bytes"),
        );
    }
    next.run(request).await
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

/// `/status`: the public view, or with the admin token (when one is configured) the detail. A
/// presented but wrong token is refused rather than answered with less.
async fn status(State(d): State<Arc<Daemon>>, headers: HeaderMap) -> Response {
    if headers.contains_key(header::AUTHORIZATION) && d.admin_enabled() {
        return match authorize(&d, &headers) {
            Ok(()) => axum::Json(d.status()).into_response(),
            Err(r) => *r,
        };
    }
    axum::Json(d.status().public()).into_response()
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
    // The token was checked by `require_admin` before the body was read; checked again here
    // so a handler can never be reached without it.
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

/// Limits of the HTTP port against slow or greedy clients (`[server]`).
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    /// A connection that has not sent a request's complete headers within this is closed.
    pub header_read_timeout: std::time::Duration,
    /// A request that has not been answered within this gets 503 (its connection is closed).
    pub request_timeout: std::time::Duration,
    /// Connections open at once; beyond it an idle one is closed for each new one.
    pub max_connections: usize,
}

impl PortLimits {
    /// Connections one address may hold: half of `max_connections` (at least 4), so that
    /// one client cannot take the port from the others (kubelet probes, Prometheus).
    pub fn per_address(&self) -> usize {
        (self.max_connections / 2)
            .max(4)
            .min(self.max_connections.max(1))
    }

    /// The limits `[server]` sets.
    pub fn from_config(s: &crate::config::ServerConfig) -> PortLimits {
        PortLimits {
            header_read_timeout: s.header_read_timeout,
            request_timeout: s.request_timeout,
            max_connections: s.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets requests in flight finish
/// for up to `drain`. HTTP/1.1 only, with hyper's header-read timer on, a request timeout, and at
/// most `max_connections` connections (so at most as many requests) at once.
///
/// A full port never stops accepting: idle or half-sent connections must not keep the
/// probes out until their header timer runs out. A new connection from an address that already
/// holds its share ([`PortLimits::per_address`]) closes that address's oldest connection that
/// is not in the middle of a request; at `max_connections`, the oldest such connection of any
/// address goes. Only when every connection is serving a request is the new one refused.
pub async fn serve_port(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: PortLimits,
    stop: tokio_util::sync::CancellationToken,
    drain: std::time::Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let timeout = limits.request_timeout;
    let router = router.layer(middleware::from_fn(move |request: Request, next: Next| {
        request_deadline(timeout, request, next)
    }));
    let conns = Arc::new(std::sync::Mutex::new(Conns::default()));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Some(conn) = lock(&conns).admit(peer.ip(), &limits) else {
            tracing::debug!(peer = %peer.ip(), "HTTP port full of requests in progress; connection refused");
            drop(stream);
            continue;
        };
        // Busy while a request is being answered: such a connection is never the one closed.
        let busy = Arc::clone(&conn.busy);
        let service = TowerToHyperService::new(router.clone().layer(middleware::from_fn(
            move |request: Request, next: Next| {
                let busy = Arc::clone(&busy);
                async move {
                    busy.fetch_add(1, Ordering::SeqCst);
                    let _done = BusyGuard(busy);
                    next.run(request).await
                }
            },
        )));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        let conns = Arc::clone(&conns);
        tokio::spawn(async move {
            tokio::select! {
                result = watched => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection closed with an error");
                    }
                }
                () = conn.close.cancelled() => {
                    tracing::debug!("idle HTTP connection closed to make room");
                }
            }
            lock(&conns).open.remove(&conn.id);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("HTTP connections still open after the drain period; closing them");
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

use std::sync::atomic::{AtomicUsize, Ordering};

/// Requests being answered on one connection (HTTP/1.1: at most one at a time).
struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The open connections of the port, oldest first (ids grow).
#[derive(Default)]
struct Conns {
    next: u64,
    open: std::collections::BTreeMap<u64, Conn>,
}

/// One open connection.
#[derive(Clone)]
struct Conn {
    id: u64,
    peer: std::net::IpAddr,
    /// Requests in progress on it.
    busy: Arc<AtomicUsize>,
    /// Cancelled to close it.
    close: tokio_util::sync::CancellationToken,
}

impl Conns {
    /// Makes room for a connection from `peer` and registers it; `None` when every connection
    /// that would have to go is serving a request.
    fn admit(&mut self, peer: std::net::IpAddr, limits: &PortLimits) -> Option<Conn> {
        let from_peer = self.open.values().filter(|c| c.peer == peer).count();
        if from_peer >= limits.per_address() && !self.close_oldest_idle(Some(peer)) {
            return None;
        }
        if self.open.len() >= limits.max_connections.max(1) && !self.close_oldest_idle(None) {
            return None;
        }
        let conn = Conn {
            id: self.next,
            peer,
            busy: Arc::default(),
            close: tokio_util::sync::CancellationToken::new(),
        };
        self.next += 1;
        self.open.insert(conn.id, conn.clone());
        Some(conn)
    }

    /// Closes the oldest connection (of `peer`, or of anyone) not serving a request.
    fn close_oldest_idle(&mut self, peer: Option<std::net::IpAddr>) -> bool {
        let victim = self
            .open
            .values()
            .find(|c| peer.is_none_or(|p| c.peer == p) && c.busy.load(Ordering::SeqCst) == 0)
            .map(|c| c.id);
        match victim.and_then(|id| self.open.remove(&id)) {
            Some(c) => {
                c.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// The request timeout: 503 with a JSON error when the handler takes longer.
async fn request_deadline(timeout: std::time::Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "the request took longer than server.request_timeout ({})",
                    humantime::format_duration(timeout)
                ),
            );
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            r
        }
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
