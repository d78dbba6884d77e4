//! The SCIM endpoint: an axum [`Router`] for `/scim/v2` over a [`ScimRecord`].
//!
//! Every request, discovery included (Okta and Entra send the token there too), must carry
//! `Authorization: Bearer <token>`; the token is checked in constant time by a layer that
//! runs before any extractor, so no body is read without it (401 with a SCIM error and
//! `WWW-Authenticate: Bearer`). A declared `Content-Length` over the body cap is refused
//! (413) before reading; a chunked body is cut at the cap (413). `application/scim+json` and
//! `application/json` are accepted; every answer is `application/scim+json`.
//!
//! A write answers 2xx only after the record committed it; then the [`ChangeHook`] runs, so
//! the daemon wakes its applier. A refused or failed request changes nothing and calls no
//! hook. Logs carry the method, the route template and the status, never the token, a body
//! or a detail that could hold a user's name.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::Clock;

use super::protocol::{
    GroupAttrs, GroupPatch, QueryParams, ResourceKind, ScimError, UserAttrs, discovery,
    list::list_response, parse_patch, resource::location,
};
use super::record::{GroupAttrsUpdate, GroupUpdate, RecordError, ScimRecord, UserUpdate};

/// Where the endpoint is served.
pub const BASE_PATH: &str = "/scim/v2";
/// The default body cap: SCIM bodies are small (a 1,000-member PATCH is about 60 KiB).
pub const DEFAULT_BODY_LIMIT: usize = 512 * 1024;
/// The media type of every answer.
pub const SCIM_JSON: &str = "application/scim+json";

/// What a committed write changed, for the [`ChangeHook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimChange {
    pub kind: ResourceKind,
    pub op: ChangeOp,
    pub id: String,
    /// The change sequence number the write committed.
    pub seq: u64,
}

/// The write a [`ScimChange`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Create,
    Replace,
    Patch,
    Delete,
}

/// Called after each write the record committed (never for a refused, failed or no-op
/// request). It runs on the request's task: keep it short (notify, send on a channel).
#[derive(Clone)]
pub struct ChangeHook(Arc<dyn Fn(&ScimChange) + Send + Sync>);

impl ChangeHook {
    pub fn new(f: impl Fn(&ScimChange) + Send + Sync + 'static) -> ChangeHook {
        ChangeHook(Arc::new(f))
    }

    /// Wakes one waiter of `notify` per change (a permit is stored when nobody waits, so a
    /// burst of changes wakes the applier once).
    pub fn notify(notify: Arc<tokio::sync::Notify>) -> ChangeHook {
        ChangeHook::new(move |_| notify.notify_one())
    }

    /// Does nothing.
    pub fn none() -> ChangeHook {
        ChangeHook::new(|_| {})
    }

    fn call(&self, change: ScimChange) {
        (self.0)(&change);
    }
}

impl std::fmt::Debug for ChangeHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeHook")
    }
}

/// How the endpoint is served.
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// The bearer token the IdP sends.
    pub token: SecretString,
    /// Largest request body, in bytes (413 beyond).
    pub body_limit: usize,
    /// The public URL of [`BASE_PATH`] (`https://q-sync.example.test/scim/v2`), for
    /// `meta.location` and `Location`; `None`: built from the request's `Host` (or
    /// `X-Forwarded-Host`) and `X-Forwarded-Proto` (default `http`).
    pub base_url: Option<String>,
}

impl ScimSettings {
    pub fn new(token: SecretString) -> ScimSettings {
        ScimSettings {
            token,
            body_limit: DEFAULT_BODY_LIMIT,
            base_url: None,
        }
    }
}

/// The state of the routes.
struct Scim<R> {
    record: Arc<R>,
    /// SHA-256 of the token: compared in constant time, and the token itself is not kept.
    /// `None` for an empty token: every request is refused.
    token_digest: Option<[u8; 32]>,
    body_limit: usize,
    base_url: Option<String>,
    clock: Arc<dyn Clock>,
    hook: ChangeHook,
}

/// The SCIM routes under [`BASE_PATH`], every one behind the token (an empty token refuses
/// every request). `clock` stamps writes; `hook` runs after each committed write.
pub fn router<R: ScimRecord + 'static>(
    record: Arc<R>,
    settings: ScimSettings,
    clock: Arc<dyn Clock>,
    hook: ChangeHook,
) -> Router {
    let state = Arc::new(Scim {
        record,
        token_digest: Some(settings.token.expose_secret().trim())
            .filter(|t| !t.is_empty())
            .map(|t| Sha256::digest(t.as_bytes()).into()),
        body_limit: settings.body_limit,
        base_url: settings
            .base_url
            .map(|b| b.trim_end_matches('/').to_owned()),
        clock,
        hook,
    });
    let p = |rest: &str| format!("{BASE_PATH}{rest}");
    Router::new()
        .route(&p("/Users"), get(list_users).post(create_user))
        .route(
            &p("/Users/{id}"),
            get(get_user)
                .put(put_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route(&p("/Groups"), get(list_groups).post(create_group))
        .route(
            &p("/Groups/{id}"),
            get(get_group)
                .put(put_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route(&p("/ServiceProviderConfig"), get(service_provider_config))
        .route(&p("/ResourceTypes"), get(resource_types))
        .route(&p("/ResourceTypes/{id}"), get(resource_type))
        .route(&p("/Schemas"), get(schemas))
        .route(&p("/Schemas/{id}"), get(schema))
        .route(&p("/Bulk"), post(not_implemented))
        .route(
            &p("/Me"),
            get(not_implemented)
                .post(not_implemented)
                .put(not_implemented)
                .patch(not_implemented)
                .delete(not_implemented),
        )
        .fallback(not_found)
        .layer(middleware::map_response(scim_method_not_allowed))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .layer(middleware::from_fn(log))
        .with_state(state)
}

// ---- layers --------------------------------------------------------------------------------

/// Logs method, route template and status; never the token, a body or the query string.
async fn log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unknown route)".to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    crate::metrics::scim_request(method.as_str(), &route, status);
    if status >= 500 {
        tracing::warn!(%method, route, status, ms, "SCIM request failed");
    } else if status >= 400 || method != Method::GET {
        tracing::info!(%method, route, status, ms, "SCIM request");
    } else {
        tracing::debug!(%method, route, status, ms, "SCIM request");
    }
    response
}

/// The token first, then a declared body size over the cap; both before any body is read.
async fn guard<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim());
    let ok = match (presented.filter(|t| !t.is_empty()), &s.token_digest) {
        (Some(t), Some(expected)) => {
            let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            constant_time_eq::constant_time_eq_32(&digest, expected)
        }
        _ => false,
    };
    if !ok {
        let mut r = error(&ScimError::unauthorized(
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ));
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"q-group-sync SCIM\""),
        );
        return r;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.body_limit as u64) {
        return error(&too_large(s.body_limit));
    }
    next.run(request).await
}

/// axum's 405 (an empty body) as a SCIM error; its `Allow` header is kept.
async fn scim_method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().get(header::CONTENT_TYPE).is_some()
    {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut r = error(&ScimError::method_not_allowed(
        "this method is not supported on this endpoint",
    ));
    if let Some(a) = allow {
        r.headers_mut().insert(header::ALLOW, a);
    }
    r
}

fn too_large(limit: usize) -> ScimError {
    ScimError::too_large(format!("request bodies are limited to {limit} bytes"))
}

// ---- helpers -------------------------------------------------------------------------------

fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    r
}

fn error(e: &ScimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    scim_json(status, &e.body())
}

/// The response for a record error; a store failure is logged here, once, with its cause.
fn record_error(e: &RecordError) -> Response {
    if let RecordError::Store(cause) = e {
        tracing::error!(kind = cause.kind(), error = %crate::error::error_chain(cause), "the SCIM record failed; the request was not acknowledged");
    }
    error(&e.to_scim())
}

impl<R: ScimRecord> Scim<R> {
    /// The public URL of [`BASE_PATH`] for this request.
    fn base(&self, headers: &HeaderMap) -> String {
        if let Some(b) = &self.base_url {
            return b.clone();
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let proto = match header("x-forwarded-proto") {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        let host = header("x-forwarded-host")
            .or_else(|| header(header::HOST.as_str()))
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or("localhost");
        format!("{proto}://{host}{BASE_PATH}")
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    fn changed(&self, kind: ResourceKind, op: ChangeOp, id: &str, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.hook.call(ScimChange {
                kind,
                op,
                id: id.to_owned(),
                seq,
            });
        }
    }

    /// Reads the body (cut at the cap) and parses it as JSON.
    async fn json(&self, headers: &HeaderMap, body: Body) -> Result<Value, ScimError> {
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let media = ct.split(';').next().unwrap_or("").trim();
            if !(media == "application/json" || media.ends_with("+json")) {
                return Err(ScimError::unsupported_media_type(
                    "send application/scim+json or application/json",
                ));
            }
        }
        let bytes = read_body(body, self.body_limit).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax("the request has no body"));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON ({e})")))
    }
}

/// The body, refused (413) once it passes `limit` bytes, without reading further.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ScimError> {
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| ScimError::invalid_syntax("the request body could not be read"))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn params(query: Option<&str>, kind: ResourceKind) -> Result<QueryParams, ScimError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    QueryParams::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), kind)
}

/// A new resource id: a random (version 4) UUID.
pub fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn created(base: &str, kind: ResourceKind, id: &str, body: &Value) -> Response {
    let mut r = scim_json(StatusCode::CREATED, body);
    if let Ok(v) = HeaderValue::from_str(&location(base, kind, id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return error(&e),
        }
    };
}

macro_rules! stored {
    ($e:expr) => {
        match $e.await {
            Ok(v) => v,
            Err(e) => return record_error(&e),
        }
    };
}

// ---- users ---------------------------------------------------------------------------------

async fn list_users<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::User));
    let page = stored!(s.record.query_users(&p.list));
    let base = s.base(&headers);
    let items = page
        .items
        .iter()
        .map(|u| p.projection.apply(u.render(&base)))
        .collect();
    scim_json(
        StatusCode::OK,
        &list_response(page.total, p.list.start_index, p.list.count, items),
    )
}

async fn get_user<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::User));
    match stored!(s.record.get_user(&id)) {
        Some(u) => scim_json(
            StatusCode::OK,
            &p.projection.apply(u.render(&s.base(&headers))),
        ),
        None => record_error(&RecordError::user_not_found(&id)),
    }
}

async fn create_user<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::User));
    let json = attempt!(s.json(&headers, body).await);
    let attrs = attempt!(UserAttrs::from_body(&json));
    let id = new_id();
    let w = stored!(s.record.create_user(s.now(), &id, attrs));
    s.changed(ResourceKind::User, ChangeOp::Create, &id, w.seq);
    let base = s.base(&headers);
    created(
        &base,
        ResourceKind::User,
        &id,
        &p.projection.apply(w.value.render(&base)),
    )
}

async fn put_user<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::User));
    let json = attempt!(s.json(&headers, body).await);
    let attrs = attempt!(UserAttrs::from_body(&json));
    let w = stored!(
        s.record
            .update_user(s.now(), &id, UserUpdate::Replace(attrs))
    );
    s.changed(ResourceKind::User, ChangeOp::Replace, &id, w.seq);
    scim_json(
        StatusCode::OK,
        &p.projection.apply(w.value.render(&s.base(&headers))),
    )
}

async fn patch_user<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::User));
    let json = attempt!(s.json(&headers, body).await);
    let ops = attempt!(parse_patch(&json, ResourceKind::User));
    let w = stored!(s.record.update_user(s.now(), &id, UserUpdate::Patch(ops)));
    s.changed(ResourceKind::User, ChangeOp::Patch, &id, w.seq);
    scim_json(
        StatusCode::OK,
        &p.projection.apply(w.value.render(&s.base(&headers))),
    )
}

async fn delete_user<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    Path(id): Path<String>,
) -> Response {
    let w = stored!(s.record.remove_user(s.now(), &id));
    s.changed(ResourceKind::User, ChangeOp::Delete, &id, w.seq);
    StatusCode::NO_CONTENT.into_response()
}

// ---- groups --------------------------------------------------------------------------------

async fn list_groups<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::Group));
    let members = p.projection.wants("members");
    let page = stored!(s.record.query_groups(&p.list, members));
    let base = s.base(&headers);
    let items = page
        .items
        .iter()
        .map(|g| p.projection.apply(g.render(&base)))
        .collect();
    scim_json(
        StatusCode::OK,
        &list_response(page.total, p.list.start_index, p.list.count, items),
    )
}

async fn get_group<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::Group));
    match stored!(s.record.get_group(&id, p.projection.wants("members"))) {
        Some(g) => scim_json(
            StatusCode::OK,
            &p.projection.apply(g.render(&s.base(&headers))),
        ),
        None => record_error(&RecordError::group_not_found(&id)),
    }
}

async fn create_group<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::Group));
    let json = attempt!(s.json(&headers, body).await);
    let (attrs, members) = attempt!(GroupAttrs::from_body(&json));
    let id = new_id();
    let w = stored!(s.record.create_group(s.now(), &id, attrs, members));
    s.changed(ResourceKind::Group, ChangeOp::Create, &id, w.seq);
    let base = s.base(&headers);
    created(
        &base,
        ResourceKind::Group,
        &id,
        &p.projection.apply(w.value.render(&base)),
    )
}

async fn put_group<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::Group));
    let json = attempt!(s.json(&headers, body).await);
    let (attrs, members) = attempt!(GroupAttrs::from_body(&json));
    let update = GroupUpdate {
        attrs: GroupAttrsUpdate::Replace(attrs),
        members: super::protocol::MemberChange::Replace(members),
    };
    let wants = p.projection.wants("members");
    let w = stored!(s.record.update_group(s.now(), &id, update, wants));
    s.changed(ResourceKind::Group, ChangeOp::Replace, &id, w.seq);
    scim_json(
        StatusCode::OK,
        &p.projection.apply(w.value.render(&s.base(&headers))),
    )
}

async fn patch_group<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let p = attempt!(params(q.as_deref(), ResourceKind::Group));
    let json = attempt!(s.json(&headers, body).await);
    let ops = attempt!(parse_patch(&json, ResourceKind::Group));
    let patch = attempt!(GroupPatch::split(ops));
    let update = GroupUpdate {
        attrs: if patch.ops.is_empty() {
            GroupAttrsUpdate::Keep
        } else {
            GroupAttrsUpdate::Patch(patch.ops)
        },
        members: patch.members,
    };
    let wants = p.projection.wants("members");
    let w = stored!(s.record.update_group(s.now(), &id, update, wants));
    s.changed(ResourceKind::Group, ChangeOp::Patch, &id, w.seq);
    scim_json(
        StatusCode::OK,
        &p.projection.apply(w.value.render(&s.base(&headers))),
    )
}

async fn delete_group<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    Path(id): Path<String>,
) -> Response {
    let w = stored!(s.record.remove_group(s.now(), &id));
    s.changed(ResourceKind::Group, ChangeOp::Delete, &id, w.seq);
    StatusCode::NO_CONTENT.into_response()
}

// ---- discovery and the rest ----------------------------------------------------------------

async fn service_provider_config<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
) -> Response {
    scim_json(
        StatusCode::OK,
        &discovery::service_provider_config(&s.base(&headers)),
    )
}

async fn resource_types<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
) -> Response {
    scim_json(
        StatusCode::OK,
        &discovery::resource_types(&s.base(&headers)),
    )
}

async fn resource_type<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match discovery::resource_type(&id, &s.base(&headers)) {
        Some(v) => scim_json(StatusCode::OK, &v),
        None => error(&ScimError::not_found(format!("no resource type {id:?}"))),
    }
}

async fn schemas<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
) -> Response {
    scim_json(StatusCode::OK, &discovery::schemas(&s.base(&headers)))
}

async fn schema<R: ScimRecord + 'static>(
    State(s): State<Arc<Scim<R>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match discovery::schema(&id, &s.base(&headers)) {
        Some(v) => scim_json(StatusCode::OK, &v),
        None => error(&ScimError::not_found(format!("no schema {id:?}"))),
    }
}

async fn not_implemented() -> Response {
    error(&ScimError::not_implemented(
        "not supported by q-group-sync (see /ServiceProviderConfig)",
    ))
}

async fn not_found() -> Response {
    error(&ScimError::not_found(format!(
        "no such endpoint; the SCIM endpoints are under {BASE_PATH}"
    )))
}

#[cfg(test)]
mod tests;
