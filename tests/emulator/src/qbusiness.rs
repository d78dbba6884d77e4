//! Amazon Q Business group API emulator (restJson1, as `aws-sdk-qbusiness` 1.136 sends it):
//! PutGroup, GetGroup, DeleteGroup and ListGroups, with asynchronous PROCESSING status, AWS
//! validation rules, `x-amzn-errortype` errors, injectable faults, a call log, and
//! `/_emulator/*` control endpoints; CheckDocumentAccess over documents with ACLs a test sets
//! up ([`QEmulator::put_document`] or `PUT /_emulator/documents/{id}`), see [`crate::document_acl`].
//!
//! The raw path is split on `/` first and each segment percent-decoded afterwards, so an encoded
//! `%2F` stays inside a group name. Signatures are not verified.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use percent_encoding::percent_decode_str;
use rand::Rng;
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::document_acl::{DocumentAcl, Resolvable, fold_user, groups_of, has_access};
use crate::server::{Bound, Server};
use crate::timefmt::{epoch_f64, epoch_millis, parse_iso_millis};

/// Largest request body read (a 1000-member PutGroup is well under 1 MiB).
const BODY_LIMIT: usize = 32 << 20;
/// Status entries kept per group for `statusHistory`.
const HISTORY: usize = 10;
/// Field errors listed in one ValidationException.
const MAX_FIELD_ERRORS: usize = 10;

/// `\P{C}*`: no control, format, surrogate, private-use or unassigned characters.
static OTHER_CHARS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\p{C}").expect("static regex compiles"));
/// applicationId / indexId / dataSourceId.
static RESOURCE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9-]{35}$").expect("static regex compiles"));
static S3_BUCKET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9][\.\-a-z0-9]{1,61}[a-z0-9]$").expect("static regex compiles")
});
static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:[a-z0-9-\.]{1,63}:[a-z0-9-\.]{0,63}:[a-z0-9-\.]{0,63}:[a-z0-9-\.]{0,63}:[^/].{0,1023}$")
        .expect("static regex compiles")
});

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// Behaviour knobs of the Q Business emulator.
#[derive(Clone, Debug)]
pub struct QOptions {
    /// The only application id that exists; others get 404 ResourceNotFoundException.
    pub application_id: String,
    /// The only index id that exists.
    pub index_id: String,
    /// PutGroup with more `memberUsers` + `memberGroups` than this: 400 ValidationException.
    pub member_limit: usize,
    /// A PUT stays PROCESSING this long, then SUCCEEDED (or FAILED); zero: done at once.
    pub processing_time: Duration,
    /// PutGroup on a PROCESSING group answers 409 ConflictException (the real behaviour is unconfirmed).
    pub conflict_while_processing: bool,
    /// Added before every response.
    pub latency: Duration,
    /// The account owning every emulated S3 bucket: a call whose `x-amz-expected-bucket-owner`
    /// names another answers 403 AccessDenied, as S3 does.
    pub s3_bucket_owner: String,
    /// The readings of what AWS leaves open that the emulator starts with; switchable later
    /// ([`QEmulator::set_modes`], `POST /_emulator/modes`).
    pub modes: QModes,
}

/// How the emulator answers where the AWS documentation leaves the behaviour open. Each field
/// is one reading; the default is the most convenient one, the others are what a product must
/// also be right under.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QModes {
    /// GetGroup keeps answering the status the group had before a put for this long after it
    /// (eventual consistency; 404 for a group the put created). Zero: read-after-write.
    #[serde(with = "millis")]
    pub status_lag: Duration,
    /// Whether a put that changes nothing (the same users and groups) gets a status of its own
    /// (PROCESSING, then SUCCEEDED). `false`: the group keeps its last status untouched.
    pub noop_moves_status: bool,
    /// Which PutGroup with no member at all is accepted.
    pub empty_members: EmptyMembers,
    /// Whether ListGroups accepts an `updatedEarlierThan` later than the service's own clock.
    pub future_cutoff: bool,
    /// The service's clock against the host's, in seconds (negative: behind). Applies to the
    /// `Date` header, every `lastUpdatedAt` and the ListGroups cutoff.
    pub clock_skew_secs: i64,
    /// CheckDocumentAccess `userGroups`: every group the user is in through nesting (`true`),
    /// or only the groups that list the user directly (`false`).
    pub nested_user_groups: bool,
}

impl Default for QModes {
    fn default() -> Self {
        QModes {
            status_lag: Duration::ZERO,
            noop_moves_status: true,
            empty_members: EmptyMembers::Accept,
            future_cutoff: true,
            clock_skew_secs: 0,
            nested_user_groups: true,
        }
    }
}

/// Which empty PutGroup the emulator accepts (the model sets no minimum; Kendra's twin
/// requires at least one item per list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyMembers {
    /// `memberUsers: []` and a `groupMembers` without lists are both accepted.
    #[default]
    Accept,
    /// An empty list is refused (ValidationException, length at least 1); a `groupMembers`
    /// without the list is accepted and empties the group.
    OmitOnly,
    /// No group without a member: every empty put is refused (ValidationException).
    Refuse,
}

impl std::str::FromStr for EmptyMembers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "accept" => Ok(EmptyMembers::Accept),
            "omit-only" => Ok(EmptyMembers::OmitOnly),
            "refuse" => Ok(EmptyMembers::Refuse),
            other => Err(format!(
                "unknown reading {other:?}: accept, omit-only or refuse"
            )),
        }
    }
}

/// A `Duration` as whole milliseconds in the control endpoint's JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// One logged call to the emulated S3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Call {
    /// `PUT`, `GET` or `DELETE`.
    pub method: String,
    /// The bucket of the path-style URL.
    pub bucket: String,
    /// The object key (decoded).
    pub key: String,
    /// `x-amz-expected-bucket-owner`, if sent.
    pub expected_owner: Option<String>,
    /// Status answered.
    pub status: u16,
}

impl Default for QOptions {
    fn default() -> Self {
        QOptions {
            application_id: "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa".into(),
            index_id: "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb".into(),
            member_limit: 1000,
            processing_time: Duration::ZERO,
            conflict_while_processing: false,
            latency: Duration::ZERO,
            s3_bucket_owner: "123456789012".into(),
            modes: QModes::default(),
        }
    }
}

/// A group as the emulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QGroupView {
    /// `memberUsers[].userId` of the last PUT that did not fail.
    pub users: BTreeSet<String>,
    /// `memberGroups[].groupName` of the last PUT that did not fail.
    pub groups: BTreeSet<String>,
    /// `PROCESSING`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    /// Accepted PutGroup calls for this group (0 for a seeded group).
    pub put_count: u32,
}

/// A fault to inject into matching calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QFault {
    /// `PutGroup`, `GetGroup`, `DeleteGroup` or `ListGroups`; `None`: any operation.
    pub op: Option<String>,
    /// Only calls on this group name; `None`: any (ListGroups has no group).
    pub group: Option<String>,
    /// What matching calls get.
    pub action: QFaultAction,
    /// `None`: every matching call; `Some(n)`: the next `n`.
    pub times: Option<u32>,
    /// Only calls signed with this access key id (one client among several); `None`: any.
    pub access_key: Option<String>,
}

impl QFault {
    /// A fault on every call.
    pub fn always(action: QFaultAction) -> QFault {
        QFault {
            op: None,
            group: None,
            action,
            times: None,
            access_key: None,
        }
    }

    /// A fault on the next `n` calls.
    pub fn times(action: QFaultAction, n: u32) -> QFault {
        QFault {
            times: Some(n),
            ..QFault::always(action)
        }
    }

    /// Restricts the fault to operation `op` (e.g. `"PutGroup"`).
    pub fn on_op(mut self, op: &str) -> QFault {
        self.op = Some(op.to_owned());
        self
    }

    /// Restricts the fault to group `name`.
    pub fn on_group(mut self, name: &str) -> QFault {
        self.group = Some(name.to_owned());
        self
    }

    /// Restricts the fault to calls signed with access key id `key`.
    pub fn on_access_key(mut self, key: &str) -> QFault {
        self.access_key = Some(key.to_owned());
        self
    }

    fn hits(&self, op: &str, group: Option<&str>, access_key: Option<&str>) -> bool {
        let fail_async_ok = !matches!(
            self.action,
            QFaultAction::FailAsync { .. } | QFaultAction::Processing(_)
        ) || op == "PutGroup";
        fail_async_ok
            && self.op.as_deref().is_none_or(|want| want == op)
            && self.group.as_deref().is_none_or(|want| Some(want) == group)
            && self
                .access_key
                .as_deref()
                .is_none_or(|want| Some(want) == access_key)
    }
}

/// What a matching call gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QFaultAction {
    /// 429 ThrottlingException.
    Throttle,
    /// 500 InternalServerException.
    InternalError,
    /// 409 ConflictException.
    Conflict,
    /// 402 ServiceQuotaExceededException.
    QuotaExceeded,
    /// 403 AccessDeniedException.
    AccessDenied,
    /// PutGroup only: accepted (200), but the group then reports FAILED with this `errorDetail`
    /// and keeps its previous members.
    FailAsync {
        /// `InternalError`, `InvalidRequest`, `ResourceInactive` or `ResourceNotFound`.
        error_code: String,
        /// `errorDetail.errorMessage`.
        message: String,
    },
    /// The normal answer, after this delay.
    Delay(Duration),
    /// An answer that is not from Q Business: this status with an HTML body and a `set-cookie`
    /// header, as a proxy or load balancer sends; both carry [`PROXY_MARKER`] (which an error
    /// message must not repeat).
    ProxyPage(u16),
    /// PutGroup only: accepted (200), and the group stays PROCESSING this long (instead of
    /// `processing_time`) before SUCCEEDED.
    Processing(Duration),
}

/// What [`QFaultAction::ProxyPage`] puts in its body and headers.
pub const PROXY_MARKER: &str = "proxy-session-7f3a9c";

/// The `kind` of a [`QError`] that is a proxy's page, not an AWS error.
const PROXY_KIND: &str = "";

/// One logged call (control endpoints are not logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QCall {
    /// `PutGroup`, `GetGroup`, `DeleteGroup`, `ListGroups` or `Unknown`.
    pub op: String,
    /// Group name (decoded), when the call names one.
    pub group: Option<String>,
    /// Status answered.
    pub status: u16,
    /// `x-amzn-errortype` answered, if an error.
    pub error_type: Option<String>,
    /// `memberUsers` + `memberGroups` sent (PutGroup), else 0.
    pub member_count: usize,
    /// `attempt=` of the `amz-sdk-request` header (1 on the first try).
    pub attempt: Option<u32>,
    /// The access key id the SigV4 `Authorization` header names (`Credential=AKID/...`): who
    /// sent the call, when several clients share the emulator.
    pub access_key: Option<String>,
}

/// A running Q Business emulator on `127.0.0.1`. Dropping it stops the server.
pub struct QEmulator {
    shared: Arc<Shared>,
    server: Server,
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Shared {
    options: QOptions,
    /// std Mutex: critical sections are short and never span an `.await`.
    state: Mutex<QState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, QState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn modes(&self) -> QModes {
        self.lock().modes.clone()
    }

    /// The service's clock: the host's, moved by `clock_skew_secs`.
    fn now(&self) -> SystemTime {
        skewed(SystemTime::now(), self.lock().modes.clock_skew_secs)
    }
}

/// `t` moved by `secs` seconds (either way).
fn skewed(t: SystemTime, secs: i64) -> SystemTime {
    let by = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        t.checked_add(by).unwrap_or(t)
    } else {
        t.checked_sub(by).unwrap_or(t)
    }
}

#[derive(Default)]
struct QState {
    /// The readings in force.
    modes: QModes,
    groups: BTreeMap<String, QGroup>,
    faults: Vec<QFault>,
    calls: Vec<QCall>,
    /// ListGroups `nextToken` -> the last group name of the previous page.
    tokens: BTreeMap<String, String>,
    /// S3 objects by (bucket, key), for PutGroup's `s3PathForGroupMembers` (served path-style
    /// under `/_s3/`).
    objects: BTreeMap<(String, String), Vec<u8>>,
    s3_calls: Vec<S3Call>,
    /// Documents by id, for CheckDocumentAccess.
    documents: BTreeMap<String, Document>,
}

/// A document CheckDocumentAccess knows: its data source (none: uploaded with
/// BatchPutDocument) and its ACL.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    #[serde(default)]
    data_source_id: Option<String>,
    #[serde(default)]
    document_acl: DocumentAcl,
}

/// Most members an S3 member file may list (the documented S3 limit).
const S3_FILE_MEMBER_LIMIT: usize = 100_000;

struct QGroup {
    users: BTreeSet<String>,
    groups: BTreeSet<String>,
    data_source_id: Option<String>,
    /// Recent accepted PUTs, oldest first (at most [`HISTORY`]).
    puts: Vec<PutRecord>,
    put_count: u32,
}

struct PutRecord {
    at: SystemTime,
    /// How long this PUT stays PROCESSING, when a Processing fault set it.
    processing: Option<Duration>,
    /// `(errorCode, errorMessage)` when a FailAsync fault hit this PUT.
    failure: Option<(String, String)>,
}

impl QGroup {
    fn updated_at(&self) -> SystemTime {
        self.puts.last().map_or(SystemTime::UNIX_EPOCH, |p| p.at)
    }

    /// Status entries, oldest first: PROCESSING at each PUT, then its outcome once reached.
    fn history(&self, now: SystemTime, processing: Duration) -> Vec<Value> {
        let mut entries = Vec::new();
        for put in &self.puts {
            entries.push(status_json("PROCESSING", put.at, None));
            let done = put.at + put.processing.unwrap_or(processing);
            if now >= done {
                let status = if put.failure.is_some() {
                    "FAILED"
                } else {
                    "SUCCEEDED"
                };
                entries.push(status_json(status, done, put.failure.as_ref()));
            }
        }
        let skip = entries.len().saturating_sub(HISTORY);
        entries.split_off(skip)
    }

    fn current(
        &self,
        now: SystemTime,
        processing: Duration,
    ) -> (&'static str, SystemTime, Option<&(String, String)>) {
        match self.puts.last() {
            None => ("SUCCEEDED", SystemTime::UNIX_EPOCH, None),
            Some(put) if now < put.at + put.processing.unwrap_or(processing) => {
                ("PROCESSING", put.at, None)
            }
            Some(put) => {
                let done = put.at + put.processing.unwrap_or(processing);
                match &put.failure {
                    Some(failure) => ("FAILED", done, Some(failure)),
                    None => ("SUCCEEDED", done, None),
                }
            }
        }
    }

    fn view(&self, now: SystemTime, processing: Duration) -> QGroupView {
        QGroupView {
            users: self.users.clone(),
            groups: self.groups.clone(),
            status: self.current(now, processing).0.to_owned(),
            put_count: self.put_count,
        }
    }
}

fn status_json(status: &str, at: SystemTime, failure: Option<&(String, String)>) -> Value {
    let mut detail = json!({ "status": status, "lastUpdatedAt": epoch_f64(at) });
    if let Some((code, message)) = failure {
        detail["errorDetail"] = json!({ "errorCode": code, "errorMessage": message });
    }
    detail
}

// ---------------------------------------------------------------------------------------------
// Emulator API
// ---------------------------------------------------------------------------------------------

impl QEmulator {
    /// Starts the emulator on `127.0.0.1:0`.
    pub async fn start(options: QOptions) -> std::io::Result<QEmulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options).await
    }

    /// Starts the emulator on `addr` (the standalone binary's `--q-listen`).
    pub async fn start_on(addr: SocketAddr, options: QOptions) -> std::io::Result<QEmulator> {
        let bound = Bound::bind(addr).await?;
        let state = QState {
            modes: options.modes.clone(),
            ..QState::default()
        };
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(state),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        Ok(QEmulator {
            shared,
            server: bound.serve(router),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the SDK's `endpoint_url`.
    pub fn url(&self) -> String {
        self.server.url().to_owned()
    }

    /// The application id that exists.
    pub fn application_id(&self) -> String {
        self.shared.options.application_id.clone()
    }

    /// The index id that exists.
    pub fn index_id(&self) -> String {
        self.shared.options.index_id.clone()
    }

    /// The options it runs with.
    pub fn options(&self) -> &QOptions {
        &self.shared.options
    }

    /// Current groups by name (deleted groups are absent).
    pub fn groups(&self) -> BTreeMap<String, QGroupView> {
        let now = self.shared.now();
        let processing = self.shared.options.processing_time;
        self.shared
            .lock()
            .groups
            .iter()
            .map(|(name, group)| (name.clone(), group.view(now, processing)))
            .collect()
    }

    /// One group, if it exists.
    pub fn group(&self, name: &str) -> Option<QGroupView> {
        let processing = self.shared.options.processing_time;
        let now = self.shared.now();
        self.shared
            .lock()
            .groups
            .get(name)
            .map(|g| g.view(now, processing))
    }

    /// Users of `name`, including those of its `memberGroups`, recursively (cycle-safe; missing
    /// sub-groups contribute nothing). `None` if `name` does not exist.
    pub fn effective_members(&self, name: &str) -> Option<BTreeSet<String>> {
        let state = self.shared.lock();
        state.groups.get(name)?;
        let mut users = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.to_owned()];
        while let Some(current) = stack.pop() {
            if !seen.insert(current.clone()) {
                continue;
            }
            if let Some(group) = state.groups.get(&current) {
                users.extend(group.users.iter().cloned());
                stack.extend(group.groups.iter().filter(|g| !seen.contains(*g)).cloned());
            }
        }
        Some(users)
    }

    /// An object stored through the emulated S3 (`/_s3/{bucket}/{key}`).
    pub fn s3_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.shared
            .lock()
            .objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Every call to the emulated S3 so far.
    pub fn s3_calls(&self) -> Vec<S3Call> {
        self.shared.lock().s3_calls.clone()
    }

    /// The keys stored in `bucket`.
    pub fn s3_keys(&self, bucket: &str) -> Vec<String> {
        self.shared
            .lock()
            .objects
            .keys()
            .filter(|(b, _)| b == bucket)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// The endpoint to give an S3 client (path-style) for the emulated S3.
    pub fn s3_url(&self) -> String {
        format!("{}/_s3", self.url())
    }

    /// Creates (or replaces) a group "someone else" made: these users, status SUCCEEDED,
    /// `put_count` 0, last updated now. Also `POST /_emulator/groups`.
    pub fn seed_group(&self, name: &str, users: &[&str]) {
        seed(
            &self.shared,
            name,
            users.iter().map(|u| (*u).to_owned()).collect(),
        );
    }

    /// Creates (or replaces) document `id` with `acl`, in no data source, for CheckDocumentAccess.
    pub fn put_document(&self, id: &str, acl: DocumentAcl) {
        self.put_document_in(id, None, acl);
    }

    /// Creates (or replaces) document `id` of data source `data_source_id` with `acl`.
    pub fn put_document_in(&self, id: &str, data_source_id: Option<&str>, acl: DocumentAcl) {
        let document = Document {
            data_source_id: data_source_id.map(str::to_owned),
            document_acl: acl,
        };
        self.shared.lock().documents.insert(id.to_owned(), document);
    }

    /// The readings in force.
    pub fn modes(&self) -> QModes {
        self.shared.modes()
    }

    /// Switches to other readings (also `POST /_emulator/modes` with the JSON of [`QModes`]);
    /// groups and faults are kept.
    pub fn set_modes(&self, modes: QModes) {
        self.shared.lock().modes = modes;
    }

    /// Adds a fault; faults are tried in the order added, and the first match applies.
    pub fn add_fault(&self, fault: QFault) {
        self.shared.lock().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every call since the last reset, oldest first.
    pub fn calls(&self) -> Vec<QCall> {
        self.shared.lock().calls.clone()
    }

    /// Successful (200) PutGroup calls since the last reset.
    pub fn put_count(&self) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.op == "PutGroup" && c.status == 200)
            .count()
    }

    /// Call counters since the last reset (what `GET /_emulator/stats?detail=true` answers).
    pub fn stats(&self) -> QStats {
        stats(&self.shared)
    }

    /// Clears the call log (and so [`put_count`](Self::put_count)).
    pub fn reset_calls(&self) {
        self.shared.lock().calls.clear();
    }

    /// Stops the server, letting in-flight requests finish. Dropping the emulator also stops it.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An AWS error answer: status, `x-amzn-errortype`, JSON body.
#[derive(Debug)]
struct QError {
    status: u16,
    kind: &'static str,
    body: Value,
}

impl QError {
    fn simple(status: u16, kind: &'static str, message: &str) -> QError {
        QError {
            status,
            kind,
            body: json!({ "message": message }),
        }
    }

    fn resource(
        status: u16,
        kind: &'static str,
        message: &str,
        id: &str,
        resource_type: &str,
    ) -> QError {
        QError {
            status,
            kind,
            body: json!({ "message": message, "resourceId": id, "resourceType": resource_type }),
        }
    }

    fn not_found(id: &str, resource_type: &str) -> QError {
        let message = format!("The {resource_type} {id} doesn't exist.");
        QError::resource(
            404,
            "ResourceNotFoundException",
            &message,
            id,
            resource_type,
        )
    }

    fn validation(reason: &str, fields: &[(String, String)]) -> QError {
        let message = match fields {
            [] => "Request could not be parsed".to_owned(),
            _ => format!(
                "{} validation error{} detected: {}",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                fields
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let fields: Vec<Value> = fields
            .iter()
            .map(|(name, message)| json!({ "name": name, "message": message }))
            .collect();
        QError {
            status: 400,
            kind: "ValidationException",
            body: json!({ "message": message, "reason": reason, "fields": fields }),
        }
    }

    /// One field error: `Value at '{field}' failed to satisfy constraint: {constraint}`.
    fn invalid(field: &str, constraint: &str) -> QError {
        let mut errors = FieldErrors::default();
        errors.require(false, field, constraint);
        QError::validation("FIELD_VALIDATION_FAILED", &errors.0)
    }

    fn cannot_parse(message: &str) -> QError {
        QError {
            status: 400,
            kind: "ValidationException",
            body: json!({ "message": message, "reason": "CANNOT_PARSE", "fields": [] }),
        }
    }

    fn from_fault(action: &QFaultAction, group: Option<&str>) -> Option<QError> {
        let id = group.unwrap_or("");
        Some(match action {
            QFaultAction::Throttle => QError::simple(429, "ThrottlingException", "Rate exceeded"),
            QFaultAction::InternalError => QError::simple(
                500,
                "InternalServerException",
                "An internal server error occurred. Retry your request.",
            ),
            QFaultAction::Conflict => QError::resource(
                409,
                "ConflictException",
                "A conflicting operation is in progress on this group.",
                id,
                "GROUP",
            ),
            QFaultAction::QuotaExceeded => QError::resource(
                402,
                "ServiceQuotaExceededException",
                "The service quota for groups has been exceeded.",
                id,
                "GROUP",
            ),
            QFaultAction::AccessDenied => QError::simple(
                403,
                "AccessDeniedException",
                "User is not authorized to perform this action.",
            ),
            QFaultAction::ProxyPage(status) => QError {
                status: *status,
                kind: PROXY_KIND,
                body: Value::String(format!(
                    "<html><body><h1>{status} Bad Gateway</h1><p>session {PROXY_MARKER}</p></body></html>"
                )),
            },
            QFaultAction::FailAsync { .. }
            | QFaultAction::Delay(_)
            | QFaultAction::Processing(_) => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------------------------

/// The operation a request addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Put,
    Get(String),
    Delete(String),
    List,
    CheckAccess { user: String, document: String },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Put => "PutGroup",
            Op::Get(_) => "GetGroup",
            Op::Delete(_) => "DeleteGroup",
            Op::List => "ListGroups",
            Op::CheckAccess { .. } => "CheckDocumentAccess",
        }
    }
}

/// Routes on the raw path: split on `/` first, then percent-decode each segment.
/// Anything else is a 404 UnknownOperationException.
fn route(method: &Method, raw_path: &str) -> Result<(Op, String, String), QError> {
    let segments = raw_path
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8().map(|c| c.into_owned()))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|_| QError::cannot_parse("The request path is not valid UTF-8."))?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (app, index, op) = match (method, segments.as_slice()) {
        (&Method::PUT, ["", "applications", app, "indices", index, "groups"]) => {
            (app, index, Op::Put)
        }
        (&Method::GET, ["", "applications", app, "indices", index, "groups"]) => {
            (app, index, Op::List)
        }
        (&Method::GET, ["", "applications", app, "indices", index, "groups", name]) => {
            (app, index, Op::Get((*name).to_owned()))
        }
        (&Method::DELETE, ["", "applications", app, "indices", index, "groups", name]) => {
            (app, index, Op::Delete((*name).to_owned()))
        }
        // NB: this one operation says `index`, not `indices`.
        (
            &Method::GET,
            [
                "",
                "applications",
                app,
                "index",
                index,
                "users",
                user,
                "documents",
                document,
                "check-document-access",
            ],
        ) => (
            app,
            index,
            Op::CheckAccess {
                user: (*user).to_owned(),
                document: (*document).to_owned(),
            },
        ),
        _ => {
            let message = format!("No operation matches {method} {raw_path}");
            return Err(QError::simple(404, "UnknownOperationException", &message));
        }
    };
    Ok((op, (*app).to_owned(), (*index).to_owned()))
}

/// `attempt=N` of `amz-sdk-request: attempt=1; max=3`.
fn sdk_attempt(headers: &HeaderMap) -> Option<u32> {
    let value = headers.get("amz-sdk-request")?.to_str().ok()?;
    value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("attempt="))
        .and_then(|n| n.trim().parse().ok())
}

fn sigv4_access_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let credential = value.split_once("Credential=")?.1;
    Some(credential.split('/').next()?.trim().to_owned()).filter(|k| !k.is_empty())
}

fn random_request_id() -> String {
    let mut rng = rand::rng();
    let hex: String = (0..32)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn respond(status: u16, body: &Value, error_type: Option<&str>) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json");
    set("date", &httpdate::fmt_http_date(SystemTime::now()));
    set("x-amzn-requestid", &random_request_id());
    if let Some(kind) = error_type {
        set("x-amzn-errortype", kind);
    }
    response
}

/// A proxy's error page ([`QFaultAction::ProxyPage`]).
fn proxy_page(status: u16, html: &str) -> Response {
    let mut response = Response::new(Body::from(html.to_owned()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/html"));
    if let Ok(cookie) = HeaderValue::from_str(&format!("LBSESSION={PROXY_MARKER}; Path=/")) {
        headers.insert("set-cookie", cookie);
    }
    response
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if let Some(id) = path.strip_prefix("/_emulator/documents/") {
        let id = percent_decode_str(id).decode_utf8_lossy().into_owned();
        let method = req.method().clone();
        let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await;
        return document_control(&shared, &method, &id, body.as_deref().unwrap_or_default());
    }
    if req.method() == Method::POST && path == "/_emulator/groups" {
        let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await;
        return seed_control(&shared, body.ok().as_deref());
    }
    if path == "/_emulator/modes" {
        let method = req.method().clone();
        let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await;
        return modes_control(&shared, &method, body.ok().as_deref());
    }
    if path.starts_with("/_emulator/") {
        return control(&shared, req.method(), &path, req.uri().query());
    }
    if let Some(rest) = path.strip_prefix("/_s3/") {
        return s3_object(&shared, req, rest.to_owned()).await;
    }
    if !shared.options.latency.is_zero() {
        tokio::time::sleep(shared.options.latency).await;
    }
    let attempt = sdk_attempt(req.headers());
    let access_key = sigv4_access_key(req.headers());
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_owned);
    let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await;

    let mut call = QCall {
        op: "Unknown".into(),
        group: None,
        status: 200,
        error_type: None,
        member_count: 0,
        attempt,
        access_key,
    };
    let result = match body {
        Ok(body) => process(&shared, &method, &path, query.as_deref(), &body, &mut call).await,
        Err(_) => Err(QError::cannot_parse("The request body could not be read.")),
    };
    let response = match result {
        Ok(body) => respond(200, &body, None),
        Err(error) if error.kind == PROXY_KIND => {
            call.status = error.status;
            proxy_page(error.status, error.body.as_str().unwrap_or_default())
        }
        Err(error) => {
            call.status = error.status;
            call.error_type = Some(error.kind.to_owned());
            respond(error.status, &error.body, Some(error.kind))
        }
    };
    shared.lock().calls.push(call);
    let mut response = response;
    // The service's own clock, as every AWS answer carries it.
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(shared.now())) {
        response.headers_mut().insert("date", date);
    }
    response
}

/// `GET /_emulator/modes`: the readings in force; `POST` with a (partial) [`QModes`] JSON
/// switches to them (fields left out take their defaults).
fn modes_control(shared: &Shared, method: &Method, body: Option<&[u8]>) -> Response {
    if *method == Method::POST {
        match body.map(serde_json::from_slice::<QModes>) {
            Some(Ok(modes)) => shared.lock().modes = modes,
            Some(Err(e)) => return respond(400, &json!({ "error": e.to_string() }), None),
            None => return respond(400, &json!({ "error": "unreadable body" }), None),
        }
    }
    match serde_json::to_value(shared.modes()) {
        Ok(body) => respond(200, &body, None),
        Err(e) => respond(500, &json!({ "error": e.to_string() }), None),
    }
}

/// A minimal path-style S3: `PUT /_s3/{bucket}/{key}` stores the body (plain or
/// `aws-chunked` without trailers is not decoded: clients must send plain bodies), `GET` returns
/// it. Enough for the SDK's PutObject with checksums only when required.
async fn s3_object(shared: &Shared, req: Request, rest: String) -> Response {
    let decoded = percent_decode_str(&rest).decode_utf8_lossy().into_owned();
    let Some((bucket, key)) = decoded
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
    else {
        return s3_error(400, "InvalidRequest", "path-style /{bucket}/{key} expected");
    };
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    let method = req.method().clone();
    let expected_owner = req
        .headers()
        .get("x-amz-expected-bucket-owner")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = s3_answer(shared, req, &bucket, &key, expected_owner.as_deref()).await;
    shared.lock().s3_calls.push(S3Call {
        method: method.to_string(),
        bucket,
        key,
        expected_owner,
        status: response.status().as_u16(),
    });
    response
}

async fn s3_answer(
    shared: &Shared,
    req: Request,
    bucket: &str,
    key: &str,
    expected_owner: Option<&str>,
) -> Response {
    if expected_owner.is_some_and(|o| o != shared.options.s3_bucket_owner) {
        return s3_error(403, "AccessDenied", "Access Denied");
    }
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    let method = req.method().clone();
    if method == Method::DELETE {
        // S3 answers 204 whether or not the key existed.
        shared.lock().objects.remove(&(bucket, key));
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        return response;
    }
    if method == Method::PUT {
        if req
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("aws-chunked"))
        {
            return s3_error(501, "NotImplemented", "aws-chunked bodies are not emulated");
        }
        let Ok(body) = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await else {
            return s3_error(400, "IncompleteBody", "the body could not be read");
        };
        let etag = format!("\"{:x}\"", <sha2::Sha256 as sha2::Digest>::digest(&body));
        shared.lock().objects.insert((bucket, key), body.to_vec());
        let mut response = Response::new(Body::empty());
        if let Ok(v) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert("etag", v);
        }
        return response;
    }
    if method == Method::GET {
        return match shared.lock().objects.get(&(bucket, key)) {
            Some(bytes) => Response::new(Body::from(bytes.clone())),
            None => s3_error(404, "NoSuchKey", "The specified key does not exist."),
        };
    }
    s3_error(
        405,
        "MethodNotAllowed",
        "only PUT, GET and DELETE are emulated",
    )
}

fn s3_error(status: u16, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    response
}

/// The users and groups of an S3 member file, in the shape of Kendra's sample member file
/// (`memberUsers[].userId` with `type` `USER`, `memberGroups[].groupName` with `type`
/// `GROUP`): Q Business does not document its own. An error is the asynchronous FAILED detail.
fn read_member_file(
    shared: &Shared,
    path: &S3Path,
) -> Result<(BTreeSet<String>, BTreeSet<String>), (String, String)> {
    let (Some(bucket), Some(key)) = (&path.bucket, &path.key) else {
        return Err(("InvalidS3Path".into(), "bucket and key are required".into()));
    };
    let bytes = shared
        .lock()
        .objects
        .get(&(bucket.clone(), key.clone()))
        .cloned()
        .ok_or_else(|| {
            (
                "S3ObjectNotFound".to_owned(),
                format!("s3://{bucket}/{key} does not exist or is not readable by the role"),
            )
        })?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct File {
        #[serde(default)]
        member_users: Vec<FileUser>,
        #[serde(default)]
        member_groups: Vec<FileGroup>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct FileUser {
        user_id: String,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct FileGroup {
        group_name: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let file: File = serde_json::from_slice(&bytes).map_err(|e| {
        (
            "InvalidS3File".to_owned(),
            format!("member file is not valid: {e}"),
        )
    })?;
    if file.member_users.len() + file.member_groups.len() > S3_FILE_MEMBER_LIMIT {
        return Err((
            "InvalidS3File".into(),
            format!("a member file lists at most {S3_FILE_MEMBER_LIMIT} members"),
        ));
    }
    if let Some(bad) = file.member_users.iter().find(|u| u.kind != "USER") {
        return Err((
            "InvalidS3File".into(),
            format!("user {:?}: type must be USER", bad.user_id),
        ));
    }
    if let Some(bad) = file.member_groups.iter().find(|g| g.kind != "GROUP") {
        return Err((
            "InvalidS3File".into(),
            format!("group {:?}: type must be GROUP", bad.group_name),
        ));
    }
    Ok((
        file.member_users.into_iter().map(|u| u.user_id).collect(),
        file.member_groups
            .into_iter()
            .map(|g| g.group_name)
            .collect(),
    ))
}

/// Faults, resource checks and the operation itself; fills in `call` as it learns more.
async fn process(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    call: &mut QCall,
) -> Result<Value, QError> {
    let (op, app, index) = route(method, path)?;
    call.op = op.name().to_owned();
    let mut put_body = None;
    match &op {
        Op::Get(name) | Op::Delete(name) => call.group = Some(name.clone()),
        Op::Put => {
            let value: Value = serde_json::from_slice(body)
                .map_err(|_| QError::cannot_parse("The request body is not valid JSON."))?;
            call.group = value
                .get("groupName")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let members = &value["groupMembers"];
            call.member_count = [&members["memberUsers"], &members["memberGroups"]]
                .iter()
                .filter_map(|list| list.as_array())
                .map(Vec::len)
                .sum();
            put_body = Some(value);
        }
        Op::List | Op::CheckAccess { .. } => {}
    }

    // Faults apply before anything else, like a throttling or failing front end.
    let action = take_fault(
        shared,
        call.op.as_str(),
        call.group.as_deref(),
        call.access_key.as_deref(),
    );
    let mut fail_async = None;
    let mut slow = None;
    match &action {
        Some(QFaultAction::Processing(time)) => slow = Some(*time),
        Some(QFaultAction::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(QFaultAction::FailAsync {
            error_code,
            message,
        }) => {
            fail_async = Some((error_code.clone(), message.clone()));
        }
        Some(other) => {
            if let Some(error) = QError::from_fault(other, call.group.as_deref()) {
                return Err(error);
            }
        }
        None => {}
    }

    let options = &shared.options;
    if app != options.application_id {
        return Err(QError::not_found(&app, "APPLICATION"));
    }
    if index != options.index_id {
        return Err(QError::not_found(&index, "INDEX"));
    }
    let params = parse_query(query);
    let mut errors = FieldErrors::default();
    if let Some(ds) = params.get("dataSourceId") {
        errors.resource_id("dataSourceId", ds);
    }
    if let Op::Get(name) | Op::Delete(name) = &op {
        errors.name("groupName", Some(name));
    }
    if let Op::CheckAccess { user, document } = &op {
        let (u, d) = (user.chars().count(), document.chars().count());
        errors.require(
            (1..=2048).contains(&u),
            "userId",
            "Member must have length between 1 and 2048",
        );
        errors.require(
            (1..=1825).contains(&d),
            "documentId",
            "Member must have length between 1 and 1825",
        );
        errors.require(
            !OTHER_CHARS.is_match(document),
            "documentId",
            "Member must satisfy regular expression pattern: \\P{C}*",
        );
    }
    errors.into_result()?;
    match op {
        Op::Put => {
            let value = put_body.unwrap_or(Value::Null);
            put_group(shared, value, fail_async, slow)
        }
        Op::Get(name) => get_group(shared, &name),
        Op::Delete(name) => match shared.lock().groups.remove(&name) {
            Some(_) => Ok(json!({})),
            None => Err(QError::not_found(&name, "GROUP")),
        },
        Op::List => list_groups(shared, &params),
        Op::CheckAccess { user, document } => check_document_access(
            shared,
            &user,
            &document,
            params.get("dataSourceId").map(String::as_str),
        ),
    }
}

/// CheckDocumentAccess: the user's groups (nested groups resolved, in the data source asked
/// about or in none), the document's ACL as stored, and the evaluation
/// ([`crate::document_acl`] states the assumptions). An unknown document is a 404
/// ResourceNotFoundException; an unknown user is not an error (no groups, no aliases).
fn check_document_access(
    shared: &Shared,
    user: &str,
    document: &str,
    data_source: Option<&str>,
) -> Result<Value, QError> {
    let state = shared.lock();
    let doc = state
        .documents
        .get(document)
        .filter(|d| data_source.is_none_or(|ds| d.data_source_id.as_deref() == Some(ds)))
        .ok_or_else(|| QError::not_found(document, "DOCUMENT"))?;
    let visible: BTreeMap<&str, Resolvable<'_>> = state
        .groups
        .iter()
        .filter(|(_, g)| g.data_source_id.is_none() || g.data_source_id.as_deref() == data_source)
        .map(|(name, g)| {
            (
                name.as_str(),
                Resolvable {
                    users: &g.users,
                    groups: &g.groups,
                },
            )
        })
        .collect();
    let user = fold_user(user);
    let groups = groups_of(&user, &visible);
    // The reading where `userGroups` names only the groups listing the user themselves.
    let nested = state.modes.nested_user_groups;
    let user_groups: Vec<Value> = groups
        .iter()
        .filter(|name| {
            nested
                || visible
                    .get(name.as_str())
                    .is_some_and(|g| g.users.iter().any(|u| fold_user(u) == user))
        })
        .map(|name| {
            let kind = match state
                .groups
                .get(name)
                .and_then(|g| g.data_source_id.as_ref())
            {
                Some(_) => "DATASOURCE",
                None => "INDEX",
            };
            json!({ "name": name, "type": kind })
        })
        .collect();
    Ok(json!({
        "userGroups": user_groups,
        "userAliases": [],
        "hasAccess": has_access(&doc.document_acl, &user, &groups),
        "documentAcl": doc.document_acl,
    }))
}

/// The first matching fault's action; uses up one of its `times`.
fn take_fault(
    shared: &Shared,
    op: &str,
    group: Option<&str>,
    access_key: Option<&str>,
) -> Option<QFaultAction> {
    let mut state = shared.lock();
    let index = state
        .faults
        .iter()
        .position(|f| f.hits(op, group, access_key))?;
    let fault = &mut state.faults[index];
    let action = fault.action.clone();
    if let Some(n) = fault.times.as_mut() {
        *n = n.saturating_sub(1);
        if *n == 0 {
            state.faults.remove(index);
        }
    }
    Some(action)
}

fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        params
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    params
}

/// Field errors of one request, as AWS words them.
#[derive(Default)]
struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// Records `Value at '{field}' failed to satisfy constraint: {constraint}` unless `ok`.
    fn require(&mut self, ok: bool, field: &str, constraint: &str) {
        if !ok && self.0.len() < MAX_FIELD_ERRORS {
            let message = format!("Value at '{field}' failed to satisfy constraint: {constraint}");
            self.0.push((field.to_owned(), message));
        }
    }

    /// A required `groupName` / `userId`: 1..=1024 characters matching `\P{C}*`.
    fn name(&mut self, field: &str, value: Option<&str>) {
        let Some(value) = value else {
            return self.require(false, field, "Member must not be null");
        };
        let len = value.chars().count();
        self.require(
            len >= 1,
            field,
            "Member must have length greater than or equal to 1",
        );
        self.require(
            len <= 1024,
            field,
            "Member must have length less than or equal to 1024",
        );
        self.require(
            !OTHER_CHARS.is_match(value),
            field,
            "Member must satisfy regular expression pattern: \\P{C}*",
        );
    }

    /// `applicationId`-style ids: 36 characters, `[a-zA-Z0-9][a-zA-Z0-9-]{35}`.
    fn resource_id(&mut self, field: &str, value: &str) {
        self.require(
            RESOURCE_ID.is_match(value),
            field,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9][a-zA-Z0-9-]{35}",
        );
    }

    /// `INDEX` or `DATASOURCE`.
    fn membership_type(&mut self, field: &str, value: Option<&str>, required: bool) {
        match value {
            Some("INDEX" | "DATASOURCE") => {}
            None if !required => {}
            None => self.require(false, field, "Member must not be null"),
            Some(_) => self.require(
                false,
                field,
                "Member must satisfy enum value set: [INDEX, DATASOURCE]",
            ),
        }
    }

    fn into_result(self) -> Result<(), QError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(QError::validation("FIELD_VALIDATION_FAILED", &self.0))
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutGroupRequest {
    group_name: Option<String>,
    #[serde(rename = "type")]
    membership_type: Option<String>,
    data_source_id: Option<String>,
    group_members: Option<GroupMembers>,
    role_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupMembers {
    member_users: Option<Vec<MemberUser>>,
    member_groups: Option<Vec<MemberGroup>>,
    s3_path_for_group_members: Option<S3Path>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberUser {
    user_id: Option<String>,
    #[serde(rename = "type")]
    membership_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberGroup {
    group_name: Option<String>,
    #[serde(rename = "type")]
    membership_type: Option<String>,
}

#[derive(Deserialize)]
struct S3Path {
    bucket: Option<String>,
    key: Option<String>,
}

/// Every field error of a PutGroup request (at most [`MAX_FIELD_ERRORS`]), in field order.
fn validate_put(req: &PutGroupRequest, member_limit: usize) -> Result<(), QError> {
    let mut errors = FieldErrors::default();
    errors.name("groupName", req.group_name.as_deref());
    errors.membership_type("type", req.membership_type.as_deref(), true);
    if let Some(ds) = &req.data_source_id {
        errors.resource_id("dataSourceId", ds);
    }
    if let Some(arn) = &req.role_arn {
        let ok = arn.is_empty() || (arn.chars().count() <= 1284 && ROLE_ARN.is_match(arn));
        errors.require(
            ok,
            "roleArn",
            "Member must satisfy regular expression pattern: arn:...",
        );
    }
    let Some(members) = &req.group_members else {
        errors.require(false, "groupMembers", "Member must not be null");
        return errors.into_result();
    };
    for (i, user) in members.member_users.iter().flatten().enumerate() {
        errors.name(
            &format!("groupMembers.memberUsers[{i}].userId"),
            user.user_id.as_deref(),
        );
        let field = format!("groupMembers.memberUsers[{i}].type");
        errors.membership_type(&field, user.membership_type.as_deref(), false);
    }
    for (i, group) in members.member_groups.iter().flatten().enumerate() {
        let field = format!("groupMembers.memberGroups[{i}].groupName");
        errors.name(&field, group.group_name.as_deref());
        let field = format!("groupMembers.memberGroups[{i}].type");
        errors.membership_type(&field, group.membership_type.as_deref(), false);
    }
    if let Some(s3) = &members.s3_path_for_group_members {
        errors.require(
            s3.bucket.as_deref().is_some_and(|b| S3_BUCKET.is_match(b)),
            "groupMembers.s3PathForGroupMembers.bucket",
            "Member must satisfy regular expression pattern: [a-z0-9][\\.\\-a-z0-9]{1,61}[a-z0-9]",
        );
        errors.require(
            s3.key
                .as_deref()
                .is_some_and(|k| (1..=1024).contains(&k.chars().count())),
            "groupMembers.s3PathForGroupMembers.key",
            "Member must have length between 1 and 1024",
        );
    }
    // NB: the docs give 1000 inline members; whether users and groups count together is
    // unconfirmed, so the emulator counts them together (the stricter reading).
    let count = members.member_users.as_ref().map_or(0, Vec::len)
        + members.member_groups.as_ref().map_or(0, Vec::len);
    errors.require(
        count <= member_limit,
        "groupMembers",
        &format!(
            "Member must have at most {member_limit} memberUsers + memberGroups inline (got {count}); use s3PathForGroupMembers"
        ),
    );
    errors.into_result()
}

/// Refuses the empty puts the `empty_members` reading does not accept (inline lists only).
fn check_empty(members: &GroupMembers, reading: EmptyMembers) -> Result<(), QError> {
    if members.s3_path_for_group_members.is_some() {
        return Ok(());
    }
    let users = members.member_users.as_ref();
    let groups = members.member_groups.as_ref();
    match reading {
        EmptyMembers::Accept => Ok(()),
        EmptyMembers::OmitOnly => {
            for (field, empty) in [
                ("groupMembers.memberUsers", users.is_some_and(Vec::is_empty)),
                (
                    "groupMembers.memberGroups",
                    groups.is_some_and(Vec::is_empty),
                ),
            ] {
                if empty {
                    return Err(QError::invalid(
                        field,
                        "Member must have length greater than or equal to 1",
                    ));
                }
            }
            Ok(())
        }
        EmptyMembers::Refuse => {
            let count = users.map_or(0, Vec::len) + groups.map_or(0, Vec::len);
            if count == 0 {
                return Err(QError::invalid(
                    "groupMembers",
                    "Member must contain at least one memberUsers or memberGroups item",
                ));
            }
            Ok(())
        }
    }
}

fn put_group(
    shared: &Shared,
    value: Value,
    failure: Option<(String, String)>,
    slow: Option<Duration>,
) -> Result<Value, QError> {
    let req: PutGroupRequest = serde_json::from_value(value)
        .map_err(|e| QError::cannot_parse(&format!("The request body could not be parsed: {e}")))?;
    validate_put(&req, shared.options.member_limit)?;
    let (Some(name), Some(members)) = (req.group_name, req.group_members) else {
        return Err(QError::invalid("groupName", "Member must not be null"));
    };
    let modes = shared.modes();
    check_empty(&members, modes.empty_members)?;
    let mut failure = failure;
    let (users, groups) = match &members.s3_path_for_group_members {
        Some(path) => {
            if req.role_arn.as_deref().is_none_or(str::is_empty) {
                return Err(QError::invalid(
                    "roleArn",
                    "roleArn is required with groupMembers.s3PathForGroupMembers",
                ));
            }
            // Q Business reads the file while the group is PROCESSING: problems surface as
            // FAILED, not as an error of the call.
            match read_member_file(shared, path) {
                Ok(found) => found,
                Err(e) => {
                    failure = failure.or(Some(e));
                    (BTreeSet::new(), BTreeSet::new())
                }
            }
        }
        None => (
            members
                .member_users
                .into_iter()
                .flatten()
                .filter_map(|u| u.user_id)
                .collect(),
            members
                .member_groups
                .into_iter()
                .flatten()
                .filter_map(|g| g.group_name)
                .collect(),
        ),
    };

    let now = shared.now();
    let processing = shared.options.processing_time;
    let mut state = shared.lock();
    // A put that changes nothing, under the reading that it leaves the status as it was.
    if !modes.noop_moves_status
        && failure.is_none()
        && slow.is_none()
        && let Some(group) = state.groups.get_mut(&name)
        && group.users == users
        && group.groups == groups
        && group.current(now, processing).0 != "PROCESSING"
    {
        group.put_count += 1;
        return Ok(json!({}));
    }
    let existing = state.groups.get(&name);
    if shared.options.conflict_while_processing
        && existing.is_some_and(|g| g.current(now, processing).0 == "PROCESSING")
    {
        return Err(QError::resource(
            409,
            "ConflictException",
            "The group is still processing an earlier PutGroup request.",
            &name,
            "GROUP",
        ));
    }
    let group = state.groups.entry(name).or_insert_with(|| QGroup {
        users: BTreeSet::new(),
        groups: BTreeSet::new(),
        data_source_id: None,
        puts: Vec::new(),
        put_count: 0,
    });
    if failure.is_none() {
        group.users = users;
        group.groups = groups;
    }
    group.data_source_id = req.data_source_id;
    group.puts.push(PutRecord {
        at: now,
        processing: slow,
        failure,
    });
    let skip = group.puts.len().saturating_sub(HISTORY);
    group.puts.drain(..skip);
    group.put_count += 1;
    Ok(json!({}))
}

fn get_group(shared: &Shared, name: &str) -> Result<Value, QError> {
    let now = shared.now();
    let lag = shared.modes().status_lag;
    let state = shared.lock();
    let group = state
        .groups
        .get(name)
        .ok_or_else(|| QError::not_found(name, "GROUP"))?;
    let processing = shared.options.processing_time;
    // Eventual consistency: the puts of the last `status_lag` are not visible yet.
    let visible = group
        .puts
        .iter()
        .position(|p| now < p.at + lag)
        .unwrap_or(group.puts.len());
    if visible < group.puts.len() {
        if visible == 0 && group.put_count > 0 {
            return Err(QError::not_found(name, "GROUP"));
        }
        let earlier = QGroup {
            users: BTreeSet::new(),
            groups: BTreeSet::new(),
            data_source_id: None,
            puts: group.puts[..visible]
                .iter()
                .map(|p| PutRecord {
                    at: p.at,
                    processing: p.processing,
                    failure: p.failure.clone(),
                })
                .collect(),
            put_count: 0,
        };
        let (status, at, failure) = earlier.current(now, processing);
        return Ok(json!({
            "status": status_json(status, at, failure),
            "statusHistory": earlier.history(now, processing),
        }));
    }
    let (status, at, failure) = group.current(now, processing);
    Ok(json!({
        "status": status_json(status, at, failure),
        "statusHistory": group.history(now, processing),
    }))
}

fn list_groups(shared: &Shared, params: &BTreeMap<String, String>) -> Result<Value, QError> {
    let Some(raw) = params.get("updatedEarlierThan") else {
        return Err(QError::invalid(
            "updatedEarlierThan",
            "Member must not be null",
        ));
    };
    let cutoff = parse_iso_millis(raw).ok_or_else(|| {
        QError::invalid("updatedEarlierThan", "Member must be an ISO-8601 timestamp")
    })?;
    if !shared.modes().future_cutoff && cutoff > epoch_millis(shared.now()) {
        return Err(QError::invalid(
            "updatedEarlierThan",
            "Member must not be later than the current time",
        ));
    }
    let max_results = match params.get("maxResults").map(|raw| raw.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=10).contains(&n) => n,
        Some(_) => {
            let constraint = "Member must have value between 1 and 10";
            return Err(QError::invalid("maxResults", constraint));
        }
    };
    let data_source = params.get("dataSourceId");
    let mut state = shared.lock();
    let after = match params.get("nextToken") {
        None => None,
        Some(token) => Some(state.tokens.get(token).cloned().ok_or_else(|| {
            QError::invalid(
                "nextToken",
                "Member must be a token from a previous response",
            )
        })?),
    };
    let mut matching = state
        .groups
        .iter()
        .filter(|(name, _)| after.as_ref().is_none_or(|a| *name > a))
        .filter(|(_, g)| epoch_millis(g.updated_at()) < cutoff)
        .filter(|(_, g)| data_source.is_none_or(|ds| g.data_source_id.as_ref() == Some(ds)))
        .map(|(name, _)| name.clone());
    let items: Vec<String> = matching.by_ref().take(max_results).collect();
    let more = matching.next().is_some();
    let mut body = json!({
        "items": items.iter().map(|name| json!({ "groupName": name })).collect::<Vec<_>>(),
    });
    if let (true, Some(last)) = (more, items.last()) {
        let token = format!("tok{:016x}", rand::rng().random::<u64>());
        state.tokens.insert(token.clone(), last.clone());
        body["nextToken"] = token.into();
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Control endpoints
// ---------------------------------------------------------------------------------------------

/// Call counters since the last reset: `GET /_emulator/stats?detail=true`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QStats {
    /// Every call (any operation, any status).
    pub calls: usize,
    /// Calls by operation (`PutGroup`, `GetGroup`, `DeleteGroup`, `ListGroups`, `Unknown`).
    pub by_op: BTreeMap<String, usize>,
    /// Accepted (200) PutGroup calls.
    pub puts: usize,
    /// Accepted (200) DeleteGroup calls.
    pub deletes: usize,
    /// 429 ThrottlingException answers.
    pub throttled: usize,
    /// Groups held now.
    pub groups: usize,
}

fn stats(shared: &Shared) -> QStats {
    let state = shared.lock();
    let mut out = QStats {
        calls: state.calls.len(),
        groups: state.groups.len(),
        ..QStats::default()
    };
    for call in &state.calls {
        *out.by_op.entry(call.op.clone()).or_default() += 1;
        out.puts += usize::from(call.op == "PutGroup" && call.status == 200);
        out.deletes += usize::from(call.op == "DeleteGroup" && call.status == 200);
        out.throttled += usize::from(call.status == 429);
    }
    out
}

/// `PUT /_emulator/documents/{id}` with `{"dataSourceId": ..., "documentAcl": {...}}` creates
/// or replaces a document; `DELETE` removes it.
fn document_control(shared: &Shared, method: &Method, id: &str, body: &[u8]) -> Response {
    if id.is_empty() {
        return respond(400, &json!({ "error": "document id missing" }), None);
    }
    match *method {
        Method::PUT => match serde_json::from_slice::<Document>(body) {
            Ok(document) => {
                shared.lock().documents.insert(id.to_owned(), document);
                respond(200, &json!({ "document": id }), None)
            }
            Err(e) => respond(400, &json!({ "error": e.to_string() }), None),
        },
        Method::DELETE => match shared.lock().documents.remove(id) {
            Some(_) => respond(200, &json!({ "deleted": id }), None),
            None => respond(404, &json!({ "error": "no such document" }), None),
        },
        _ => respond(404, &json!({ "error": "unknown control endpoint" }), None),
    }
}

/// A group made outside the product, as [`QEmulator::seed_group`] makes it.
fn seed(shared: &Shared, name: &str, users: BTreeSet<String>) {
    let processing = shared.options.processing_time;
    let now = shared.now();
    let at = now.checked_sub(processing).unwrap_or(now);
    let group = QGroup {
        users,
        groups: BTreeSet::new(),
        data_source_id: None,
        puts: vec![PutRecord {
            at,
            processing: None,
            failure: None,
        }],
        put_count: 0,
    };
    shared.lock().groups.insert(name.to_owned(), group);
}

/// `POST /_emulator/groups` with `{"name": "Sales & Marketing", "users": ["ana@example.test"]}`:
/// a group made by hand before the product's first sync.
fn seed_control(shared: &Shared, body: Option<&[u8]>) -> Response {
    #[derive(Deserialize)]
    struct Seed {
        name: String,
        #[serde(default)]
        users: BTreeSet<String>,
    }
    match body.map(serde_json::from_slice::<Seed>) {
        Some(Ok(seed_req)) if !seed_req.name.is_empty() => {
            seed(shared, &seed_req.name, seed_req.users);
            respond(200, &json!({ "seeded": seed_req.name }), None)
        }
        Some(Ok(_)) => respond(400, &json!({ "error": "name must not be empty" }), None),
        Some(Err(e)) => respond(400, &json!({ "error": e.to_string() }), None),
        None => respond(400, &json!({ "error": "unreadable body" }), None),
    }
}

fn control(shared: &Shared, method: &Method, path: &str, query: Option<&str>) -> Response {
    if method == Method::POST && path == "/_emulator/reset-stats" {
        shared.lock().calls.clear();
        return respond(200, &json!({ "reset": true }), None);
    }
    if method != Method::GET {
        return respond(404, &json!({ "error": "unknown control endpoint" }), None);
    }
    match path {
        "/_emulator/groups" => {
            let now = shared.now();
            let processing = shared.options.processing_time;
            let state = shared.lock();
            let groups: serde_json::Map<String, Value> = state
                .groups
                .iter()
                .map(|(name, g)| {
                    let view = g.view(now, processing);
                    (name.clone(), json!({ "users": view.users, "groups": view.groups, "status": view.status }))
                })
                .collect();
            respond(200, &Value::Object(groups), None)
        }
        // The four totals, unless `?detail=true` (which adds calls by operation).
        "/_emulator/stats" if !query.is_some_and(|q| q.contains("detail=true")) => {
            let stats = stats(shared);
            let body = json!({
                "calls": stats.calls,
                "puts": stats.puts,
                "deletes": stats.deletes,
                "throttled": stats.throttled,
            });
            respond(200, &body, None)
        }
        "/_emulator/stats" => match serde_json::to_value(stats(shared)) {
            Ok(body) => respond(200, &body, None),
            Err(err) => respond(500, &json!({ "error": err.to_string() }), None),
        },
        _ => respond(404, &json!({ "error": "unknown control endpoint" }), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_before_decoding() {
        let (op, app, index) = route(
            &Method::GET,
            "/applications/a/indices/b/groups/Eng%20Team%2F%CE%B1",
        )
        .expect("routes");
        assert_eq!(
            (op, app.as_str(), index.as_str()),
            (Op::Get("Eng Team/α".into()), "a", "b")
        );
        let (op, ..) =
            route(&Method::DELETE, "/applications/a/indices/b/groups/x").expect("routes");
        assert_eq!(op, Op::Delete("x".into()));
        let unknown = route(&Method::GET, "/applications/a/indices/b/groups/x/y");
        assert_eq!(
            unknown.map_err(|e| e.kind),
            Err("UnknownOperationException")
        );
        assert!(route(&Method::GET, "/applications/a/indices/b/groups/%FF").is_err());
    }

    #[test]
    fn names_reject_category_c() {
        let ok = |name: &str| {
            let mut errors = FieldErrors::default();
            errors.name("groupName", Some(name));
            errors.0.is_empty()
        };
        assert!(ok("Eng Team/α"));
        assert!(!ok(""));
        assert!(!ok("tab\there"));
        assert!(!ok("zero\u{200B}width"));
        assert!(!ok("private\u{E000}"));
        assert!(ok(&"x".repeat(1024)));
        assert!(!ok(&"é".repeat(1025)));
    }

    #[test]
    fn parses_sdk_attempt_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "amz-sdk-request",
            HeaderValue::from_static("attempt=2; max=3"),
        );
        assert_eq!(sdk_attempt(&headers), Some(2));
        assert_eq!(sdk_attempt(&HeaderMap::new()), None);
    }
}
