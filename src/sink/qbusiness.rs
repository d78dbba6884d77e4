//! Amazon Q Business through aws-sdk-qbusiness: PutGroup (INDEX type) and DeleteGroup.
//!
//! Credentials come from the standard AWS chain (environment, web identity / IRSA, ECS task
//! role, instance profile). Throttling and 5xx answers are retried by the SDK's standard retry
//! mode: with a small, fixed number of group writes in flight, adaptive mode's client-side rate
//! limiter adds nothing but latency, while standard mode's jittered exponential backoff and
//! retry quota are exactly what a batch writer needs.

use std::time::{Duration, SystemTime};

use aws_sdk_qbusiness::Client;
use aws_sdk_qbusiness::config::http::HttpResponse;
use aws_sdk_qbusiness::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_qbusiness::config::retry::RetryConfig;
use aws_sdk_qbusiness::config::timeout::TimeoutConfig;
use aws_sdk_qbusiness::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_qbusiness::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_qbusiness::error::BoxError;
use aws_sdk_qbusiness::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_qbusiness::operation::delete_group::DeleteGroupError;
use aws_sdk_qbusiness::operation::get_group::GetGroupError;
use aws_sdk_qbusiness::primitives::DateTime as AwsDateTime;
use aws_sdk_qbusiness::types::error::ResourceNotFoundException;
use aws_sdk_qbusiness::types::{GroupMembers, MemberGroup, MemberUser, MembershipType};
use aws_smithy_runtime_api::client::orchestrator::Metadata;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{DeleteOutcome, GroupPage, GroupSink, GroupState, SinkError, SinkErrorKind};
use crate::config::{LargeGroups, QBusinessConfig};
use crate::model::{GroupName, Members};
use crate::pacing::{Pacer, per_second, until_ready};
use sha2::{Digest, Sha256};

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct QBusinessTarget {
    pub application_id: String,
    pub index_id: String,
    pub data_source_id: Option<String>,
    /// PutGroup's inline member limit, checked before sending.
    pub member_limit: usize,
    /// PutGroup + DeleteGroup calls per second at most.
    pub max_writes_per_second: u32,
}

impl QBusinessTarget {
    pub fn from_config(q: &QBusinessConfig) -> QBusinessTarget {
        QBusinessTarget {
            application_id: q.application_id.clone(),
            index_id: q.index_id.clone(),
            data_source_id: q.data_source_id.clone(),
            member_limit: q.inline_member_limit,
            max_writes_per_second: q.max_writes_per_second,
        }
    }
}

/// The [`GroupSink`] that talks to Amazon Q Business.
#[derive(Clone)]
pub struct QBusinessSink {
    client: Client,
    target: QBusinessTarget,
    /// Paces PutGroup and DeleteGroup to `qbusiness.max_writes_per_second`.
    writes: Arc<Pacer>,
    /// `large_groups = "s3"`: where member lists over the inline limit go.
    files: Option<MemberFiles>,
}

/// Member files in S3 for groups over the inline limit (experimental: Q Business does not
/// document the file format; this writes the shape of Kendra's sample member file).
#[derive(Clone)]
struct MemberFiles {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    role_arn: String,
}

impl MemberFiles {
    /// One file per group, named by a hash of the group name (names may hold any character).
    fn key(&self, group: &GroupName) -> String {
        let digest = Sha256::digest(group.as_str().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{hex}.json", self.prefix)
    }
}

/// A PutGroup request part the SDK would not build (a required field missing).
fn unbuildable(e: aws_sdk_qbusiness::error::BuildError) -> SinkError {
    SinkError {
        kind: SinkErrorKind::Transport,
        operation: "PutGroup",
        message: e.to_string(),
    }
}

/// The member file: `{"memberUsers": [{"userId": "...", "type": "USER"}, ...]}`.
fn member_file(members: &Members) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(serde::Serialize)]
    struct User<'a> {
        #[serde(rename = "userId")]
        user_id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        #[serde(rename = "memberUsers")]
        member_users: Vec<User<'a>>,
    }
    let file = File {
        member_users: members
            .iter()
            .map(|m| User {
                user_id: m.as_str(),
                kind: "USER",
            })
            .collect(),
    };
    serde_json::to_vec(&file)
}

impl std::fmt::Debug for QBusinessSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QBusinessSink")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl QBusinessSink {
    /// Builds a client from the standard AWS credential chain and the `[qbusiness]` config.
    pub async fn from_config(q: &QBusinessConfig) -> QBusinessSink {
        QBusinessSink::build(q, None).await
    }

    /// Like [`QBusinessSink::from_config`] with fixed credentials instead of the AWS chain
    /// (the demo and tests against the emulator).
    pub async fn with_credentials(q: &QBusinessConfig, credentials: Credentials) -> QBusinessSink {
        QBusinessSink::build(q, Some(credentials)).await
    }

    async fn build(q: &QBusinessConfig, credentials: Option<Credentials>) -> QBusinessSink {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(q.region.clone()));
        if let Some(c) = credentials {
            loader = loader.credentials_provider(c);
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_qbusiness::config::Builder::from(&shared)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(q.max_attempts)
                    .with_initial_backoff(q.retry_initial_backoff)
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            );
        builder = builder.interceptor(RequestMetrics);
        if let Some(url) = &q.endpoint_url {
            builder = builder.endpoint_url(url.as_str().trim_end_matches('/'));
        }
        let mut sink = QBusinessSink::from_client(
            Client::from_conf(builder.build()),
            QBusinessTarget::from_config(q),
        );
        if q.large_groups == LargeGroups::S3
            && let (Some(bucket), Some(role_arn)) = (&q.s3_bucket, &q.role_arn)
        {
            let mut s3 = aws_sdk_s3::config::Builder::from(&shared)
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(q.max_attempts)
                        .with_initial_backoff(q.retry_initial_backoff)
                        .with_max_backoff(Duration::from_secs(20)),
                )
                // A plain body with a checksum only where S3 requires one.
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                );
            if let Some(url) = &q.s3_endpoint_url {
                // The SDK appends "bucket/key" to an endpoint's path as it is: a path needs its
                // trailing slash, a bare host must not have one.
                let endpoint = if url.path() == "/" {
                    url.as_str().trim_end_matches('/').to_owned()
                } else if url.path().ends_with('/') {
                    url.to_string()
                } else {
                    format!("{url}/")
                };
                s3 = s3.endpoint_url(endpoint).force_path_style(true);
            }
            sink.files = Some(MemberFiles {
                client: aws_sdk_s3::Client::from_conf(s3.build()),
                bucket: bucket.clone(),
                prefix: q.s3_prefix.clone(),
                role_arn: role_arn.clone(),
            });
        }
        sink
    }

    /// Wraps an already configured client (tests with static credentials).
    pub fn from_client(client: Client, target: QBusinessTarget) -> QBusinessSink {
        // A burst of a few writes, then the configured rate.
        let rate = target.max_writes_per_second;
        let writes = Arc::new(per_second(rate, rate.min(4)));
        QBusinessSink {
            client,
            target,
            writes,
            files: None,
        }
    }

    /// PutGroup with the members in an S3 file (`large_groups = "s3"`).
    async fn put_via_file(
        &self,
        name: &GroupName,
        members: &Members,
        files: &MemberFiles,
    ) -> Result<(), SinkError> {
        let key = files.key(name);
        // Never an empty file in place of a member list.
        let body = member_file(members).map_err(|e| SinkError {
            kind: SinkErrorKind::Other,
            operation: "PutObject",
            message: format!("member file not written: {e}"),
        })?;
        files
            .client
            .put_object()
            .bucket(&files.bucket)
            .key(&key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("PutObject", e))?;
        let path = aws_sdk_qbusiness::types::S3::builder()
            .bucket(&files.bucket)
            .key(&key)
            .build()
            .map_err(unbuildable)?;
        let group_members = GroupMembers::builder()
            .s3_path_for_group_members(path)
            .build();
        self.send_put(name, group_members, Some(&files.role_arn))
            .await
    }

    /// Paces and sends one PutGroup (INDEX type) with these members.
    async fn send_put(
        &self,
        name: &GroupName,
        members: GroupMembers,
        role_arn: Option<&str>,
    ) -> Result<(), SinkError> {
        self.pace_write().await;
        let mut req = self
            .client
            .put_group()
            .application_id(&self.target.application_id)
            .index_id(&self.target.index_id)
            .group_name(name.as_str())
            .r#type(MembershipType::Index)
            .group_members(members)
            .set_role_arn(role_arn.map(str::to_owned));
        if let Some(ds) = &self.target.data_source_id {
            req = req.data_source_id(ds);
        }
        req.send().await.map_err(|e| classify("PutGroup", e))?;
        Ok(())
    }

    /// Waits for a write slot under `qbusiness.max_writes_per_second`.
    async fn pace_write(&self) {
        let waited = until_ready(&self.writes).await;
        if waited >= Duration::from_millis(1) {
            crate::metrics::rate_limit_wait("qbusiness", "pacing", waited);
        }
    }

    /// Every group name in the index (ListGroups, all pages), for `reconcile`.
    pub async fn list_group_names(&self) -> Result<Vec<GroupName>, SinkError> {
        let until = list_cutoff(Utc::now());
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_groups_page(until, token.take()).await?;
            names.extend(page.names);
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Read-only reachability check for `check-config`: one ListGroups call with one result.
    pub async fn check(&self) -> Result<usize, SinkError> {
        let mut req = self
            .client
            .list_groups()
            .application_id(&self.target.application_id)
            .index_id(&self.target.index_id)
            .updated_earlier_than(AwsDateTime::from(SystemTime::now()))
            .max_results(1);
        if let Some(ds) = &self.target.data_source_id {
            req = req.data_source_id(ds);
        }
        let out = req.send().await.map_err(|e| classify("ListGroups", e))?;
        Ok(out.items().len())
    }
}

impl GroupSink for QBusinessSink {
    async fn put_group(
        &self,
        name: &GroupName,
        members: &Members,
        groups: &[GroupName],
    ) -> Result<(), SinkError> {
        if members.len() > self.target.member_limit
            && groups.is_empty()
            && let Some(files) = &self.files
        {
            return self.put_via_file(name, members, files).await;
        }
        if members.len() > self.target.member_limit || groups.len() > self.target.member_limit {
            return Err(SinkError {
                kind: SinkErrorKind::Validation,
                operation: "PutGroup",
                message: format!(
                    "{} users or {} groups exceed the inline limit of {}; not sent",
                    members.len(),
                    groups.len(),
                    self.target.member_limit
                ),
            });
        }
        let users = members
            .iter()
            .map(|m| {
                MemberUser::builder()
                    .user_id(m.as_str())
                    .r#type(MembershipType::Index)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(unbuildable)?;
        let member_groups = groups
            .iter()
            .map(|g| {
                MemberGroup::builder()
                    .group_name(g.as_str())
                    .r#type(MembershipType::Index)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(unbuildable)?;
        // A chunked group carries only its chunk list; PutGroup replaces both lists.
        let group_members = GroupMembers::builder()
            .set_member_users(Some(users))
            .set_member_groups((!member_groups.is_empty()).then_some(member_groups))
            .build();
        self.send_put(name, group_members, None).await
    }

    async fn delete_group(&self, name: &GroupName) -> Result<DeleteOutcome, SinkError> {
        self.pace_write().await;
        let mut req = self
            .client
            .delete_group()
            .application_id(&self.target.application_id)
            .index_id(&self.target.index_id)
            .group_name(name.as_str());
        if let Some(ds) = &self.target.data_source_id {
            req = req.data_source_id(ds);
        }
        match req.send().await {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), DeleteGroupError::ResourceNotFoundException(nf) if names_group(nf, name)) => {
                Ok(DeleteOutcome::AlreadyGone)
            }
            Err(e) => Err(classify("DeleteGroup", e)),
        }
    }

    async fn group_state(&self, name: &GroupName) -> Result<GroupState, SinkError> {
        let mut req = self
            .client
            .get_group()
            .application_id(&self.target.application_id)
            .index_id(&self.target.index_id)
            .group_name(name.as_str());
        if let Some(ds) = &self.target.data_source_id {
            req = req.data_source_id(ds);
        }
        match req.send().await {
            Ok(out) => Ok(state_of(out.status())),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetGroupError::ResourceNotFoundException(nf) if names_group(nf, name)) => {
                Ok(GroupState::Missing)
            }
            Err(e) => Err(classify("GetGroup", e)),
        }
    }

    async fn list_groups_page(
        &self,
        updated_before: DateTime<Utc>,
        token: Option<String>,
    ) -> Result<GroupPage, SinkError> {
        let until = AwsDateTime::from_millis(updated_before.timestamp_millis());
        let mut req = self
            .client
            .list_groups()
            .application_id(&self.target.application_id)
            .index_id(&self.target.index_id)
            .updated_earlier_than(until)
            .max_results(10)
            .set_next_token(token);
        if let Some(ds) = &self.target.data_source_id {
            req = req.data_source_id(ds);
        }
        let out = req.send().await.map_err(|e| classify("ListGroups", e))?;
        Ok(GroupPage {
            names: out
                .items()
                .iter()
                .filter_map(|g| g.group_name())
                .map(GroupName::new)
                .collect(),
            next: out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        })
    }
}

/// `updatedEarlierThan` for a listing of every group at `now`: ListGroups requires it and
/// compares it with each group's last write, so it is set ahead of `now` by a margin that also
/// covers a clock behind Q Business's.
pub fn list_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::TimeDelta::hours(1)
}

/// Maps GetGroup's status onto [`GroupState`].
fn state_of(status: Option<&aws_sdk_qbusiness::types::GroupStatusDetail>) -> GroupState {
    use aws_sdk_qbusiness::types::GroupStatus;
    let Some(detail) = status else {
        return GroupState::Processing;
    };
    match detail.status() {
        Some(GroupStatus::Succeeded) => GroupState::Succeeded,
        Some(GroupStatus::Failed) => {
            let (code, message) = detail.error_detail().map_or_else(
                || ("unknown".to_owned(), "no error detail".to_owned()),
                |d| {
                    (
                        d.error_code()
                            .map_or_else(|| "unknown".to_owned(), |c| c.as_str().to_owned()),
                        d.error_message().unwrap_or("no error message").to_owned(),
                    )
                },
            );
            GroupState::Failed { code, message }
        }
        Some(GroupStatus::Deleting) => GroupState::Deleting,
        Some(GroupStatus::Deleted) => GroupState::Deleted,
        // PROCESSING, or a status this SDK does not know yet: not done.
        _ => GroupState::Processing,
    }
}

/// DeleteGroup answers 404 both for a missing group (the goal is reached) and for a wrong
/// application, index or data source (a configuration error that must not pass silently).
/// `resourceType` tells them apart; without it, the message is checked with the group's own
/// name removed, so a group called "Application Admins" is not mistaken for the application.
fn names_group(nf: &ResourceNotFoundException, group: &GroupName) -> bool {
    let resource_type = nf.resource_type().trim();
    if !resource_type.is_empty() {
        return resource_type.eq_ignore_ascii_case("group")
            || resource_type.to_ascii_lowercase().contains("group");
    }
    let message = nf
        .message()
        .replace(group.as_str(), "")
        .to_ascii_lowercase();
    !(message.contains("application")
        || message.contains("index")
        || message.contains("data source"))
}

/// Counts every HTTP attempt the SDK makes (retries included) by operation and status class.
#[derive(Debug)]
struct RequestMetrics;

impl Intercept for RequestMetrics {
    fn name(&self) -> &'static str {
        "QGroupSyncRequestMetrics"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = match cfg.load::<Metadata>().map(Metadata::name) {
            Some("PutGroup") => "PutGroup",
            Some("DeleteGroup") => "DeleteGroup",
            Some("GetGroup") => "GetGroup",
            Some("ListGroups") => "ListGroups",
            _ => "other",
        };
        let status = context.response().map(|r| r.status().as_u16());
        crate::metrics::api_request("qbusiness", operation, status);
        Ok(())
    }
}

/// Maps an SDK error onto a bounded [`SinkErrorKind`] plus the service's message.
fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, message) = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let kind = match e.code() {
                Some("ThrottlingException") => SinkErrorKind::Throttled,
                Some("InternalServerException") => SinkErrorKind::Server,
                Some("ConflictException") => SinkErrorKind::Conflict,
                Some("ValidationException") => SinkErrorKind::Validation,
                Some("AccessDeniedException") => SinkErrorKind::AccessDenied,
                Some("ResourceNotFoundException") => SinkErrorKind::NotFound,
                Some("ServiceQuotaExceededException") => SinkErrorKind::QuotaExceeded,
                // S3 (member files).
                Some("AccessDenied") => SinkErrorKind::AccessDenied,
                Some("NoSuchBucket") => SinkErrorKind::NotFound,
                Some("SlowDown") => SinkErrorKind::Throttled,
                Some("InternalError") => SinkErrorKind::Server,
                Some(code) if code.contains("Throttl") => SinkErrorKind::Throttled,
                _ => SinkErrorKind::Other,
            };
            let message = match (e.code(), e.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_owned(),
                (None, Some(msg)) => msg.to_owned(),
                (None, None) => "unknown service error".to_owned(),
            };
            (kind, message)
        }
        SdkError::TimeoutError(_) => (SinkErrorKind::Timeout, "the call timed out".to_owned()),
        SdkError::DispatchFailure(d) => {
            let kind = if d.is_timeout() {
                SinkErrorKind::Timeout
            } else {
                SinkErrorKind::Transport
            };
            (
                kind,
                format!(
                    "could not reach Q Business: {}",
                    aws_sdk_qbusiness::error::DisplayErrorContext(&err)
                ),
            )
        }
        SdkError::ResponseError(_) => (
            SinkErrorKind::Server,
            format!(
                "unreadable response: {}",
                aws_sdk_qbusiness::error::DisplayErrorContext(&err)
            ),
        ),
        SdkError::ConstructionFailure(_) => (
            SinkErrorKind::Transport,
            format!(
                "request could not be built: {}",
                aws_sdk_qbusiness::error::DisplayErrorContext(&err)
            ),
        ),
        _ => (
            SinkErrorKind::Other,
            aws_sdk_qbusiness::error::DisplayErrorContext(&err).to_string(),
        ),
    };
    // An unmodelled error code still tells by its status whether it was the server's fault.
    let kind = match (kind, err.raw_response().map(|r| r.status().as_u16())) {
        (SinkErrorKind::Other, Some(500..=599)) => SinkErrorKind::Server,
        (SinkErrorKind::Other, Some(429)) => SinkErrorKind::Throttled,
        (k, _) => k,
    };
    SinkError {
        kind,
        operation,
        message,
    }
}
