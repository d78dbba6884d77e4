//! Amazon Q Business through aws-sdk-qbusiness: PutGroup (INDEX type) and DeleteGroup.
//!
//! Credentials come from the standard AWS chain (environment, web identity / IRSA, ECS task
//! role, instance profile). Throttling and 5xx answers are retried by the SDK's standard retry
//! mode: with a small, fixed number of group writes in flight, adaptive mode's client-side rate
//! limiter adds nothing but latency, while standard mode's jittered exponential backoff and
//! retry quota are exactly what a batch writer needs.

use std::time::Duration;

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

use super::readings::Readings;
use super::tracking::{
    Entry, Observe, PutMark, ReadingsLoader, Tracker, WriteGuard, since_put, state_of,
};
use super::{
    DeleteOutcome, DocumentAccess, GroupPage, GroupSink, GroupState, SinkError, SinkErrorKind,
};
use crate::config::{LargeGroups, QBusinessConfig};
use crate::leader::Leadership;
use crate::model::{GroupName, Members};
use crate::pacing::{Pacer, per_second, until_ready};
use crate::plan::explain::{AccessAnswer, AclCondition, AclList, DocumentAcl, Relation};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

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
    /// The service's clock, the puts awaiting confirmation and the readings in force.
    tracker: Arc<Tracker>,
    /// Bounds every write (deadline, leadership lease); none: writes are not bounded.
    guard: Option<WriteGuard>,
}

/// Member files in S3 for groups over the inline limit (experimental: Q Business does not
/// document the file format; this writes the shape of Kendra's sample member file).
#[derive(Clone)]
struct MemberFiles {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// The account that must own `bucket` (`x-amz-expected-bucket-owner` on every call).
    owner: String,
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
            && let (Some(bucket), Some(role_arn), Some(owner)) =
                (&q.s3_bucket, &q.role_arn, q.s3_bucket_owner())
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
                owner,
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
            tracker: Arc::default(),
            guard: None,
        }
    }

    /// Bounds every write (PutGroup, DeleteGroup, a member file): abandoned after `timeout`
    /// (SDK retries included), and, with `leadership`, refused unless this replica leads and
    /// abandoned as soon as its lease could pass to another replica.
    pub fn guard_writes(mut self, timeout: Duration, leadership: Option<Leadership>) -> Self {
        self.guard = Some(WriteGuard {
            timeout,
            leadership,
        });
        self
    }

    /// Reads the write probe's findings with `loader` before the first call that uses them.
    pub fn load_readings_with(self, loader: ReadingsLoader) -> Self {
        self.tracker.set_loader(loader);
        self
    }

    /// What is known of Q Business's behaviour now (probed, or learnt while working).
    pub fn readings(&self) -> Readings {
        self.tracker.readings()
    }

    /// Replaces what is known of Q Business's behaviour.
    pub fn set_readings(&self, readings: Readings) {
        self.tracker.set_readings(readings);
    }

    /// The service's clock (from the `Date` of its answers), if it answered yet.
    pub fn service_now(&self) -> Option<DateTime<Utc>> {
        self.tracker.service_now()
    }

    /// Runs one write under the guard, if any.
    async fn guarded<T>(
        &self,
        operation: &'static str,
        write: impl Future<Output = Result<T, SinkError>>,
    ) -> Result<T, SinkError> {
        match &self.guard {
            Some(guard) => guard.run(operation, write).await,
            None => write.await,
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
            .expected_bucket_owner(&files.owner)
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

    /// Paces and sends one PutGroup (INDEX type) with these members, and notes the put for
    /// its confirmation: from the service's `Date` on the answer on, a status is this put's.
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
        let observe = Observe::new(&self.tracker);
        let seen_before = self.tracker.seen(name);
        req.customize()
            .interceptor(observe.clone())
            .send()
            .await
            .map_err(|e| classify("PutGroup", e))?;
        self.note_put(name, observe.date(), false, seen_before);
        Ok(())
    }

    /// Notes a put (or the deletion of an emptied group) answered at service time `date`;
    /// `seen_before` is the newest status of the group seen before it was sent.
    fn note_put(
        &self,
        name: &GroupName,
        date: Option<i64>,
        deleted: bool,
        seen_before: Option<f64>,
    ) {
        // Without a Date on the answer: the service's clock as last seen, else ours.
        let at = date
            .or_else(|| self.tracker.service_secs())
            .unwrap_or_else(|| wall_clock().timestamp());
        self.tracker.set_mark(
            name,
            PutMark {
                at,
                answered: std::time::Instant::now(),
                deleted,
                seen_before,
            },
        );
    }

    /// A group with no member at all. Q Business's model sets no minimum, Kendra's twin
    /// requires an item: `memberUsers: []` is tried first (unambiguous), then a `groupMembers`
    /// without any list, and where Q Business keeps no empty group, the group is deleted (a
    /// group that does not exist grants nothing; the snapshot keeps owning its name, and the
    /// next put with members creates it again). What was refused is remembered.
    async fn put_empty(&self, name: &GroupName) -> Result<(), SinkError> {
        let known = self.tracker.readings();
        if known.empty_list != Some(false) {
            let empty_list = GroupMembers::builder()
                .set_member_users(Some(Vec::new()))
                .build();
            match self.send_put(name, empty_list, None).await {
                Ok(()) => {
                    self.tracker.learn(|r| {
                        r.empty_list.get_or_insert(true);
                    });
                    return Ok(());
                }
                Err(e) if e.kind == SinkErrorKind::Validation => {
                    self.tracker.learn(|r| r.empty_list = Some(false));
                    warn!(group = %name, error = %e,
                        "Q Business refused an empty member list; trying a group without one");
                }
                Err(e) => return Err(e),
            }
        }
        if known.empty_group != Some(false) {
            match self
                .send_put(name, GroupMembers::builder().build(), None)
                .await
            {
                Ok(()) => {
                    self.tracker.learn(|r| {
                        r.empty_group.get_or_insert(true);
                    });
                    return Ok(());
                }
                Err(e) if e.kind == SinkErrorKind::Validation => {
                    self.tracker.learn(|r| r.empty_group = Some(false));
                    warn!(group = %name, error = %e,
                        "Q Business refused a group without members; deleting it instead");
                }
                Err(e) => return Err(e),
            }
        }
        let (outcome, date) = self.send_delete(name).await?;
        self.note_put(name, date, true, None);
        info!(group = %name, already_gone = outcome == DeleteOutcome::AlreadyGone,
            "Q Business keeps no empty group: the emptied group was deleted (it is created again when it has members)");
        Ok(())
    }

    /// Paces and sends one DeleteGroup (then the group's member file); the service's `Date`.
    async fn send_delete(
        &self,
        name: &GroupName,
    ) -> Result<(DeleteOutcome, Option<i64>), SinkError> {
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
        let observe = Observe::new(&self.tracker);
        let outcome = match req.customize().interceptor(observe.clone()).send().await {
            Ok(_) => DeleteOutcome::Deleted,
            Err(SdkError::ServiceError(e)) if matches!(e.err(), DeleteGroupError::ResourceNotFoundException(nf) if names_group(nf, name)) => {
                DeleteOutcome::AlreadyGone
            }
            Err(e) => return Err(classify("DeleteGroup", e)),
        };
        // The group's member file goes with it (an absent file is no error); if this fails the
        // delete is not recorded, so the next pass deletes the file again.
        if let Some(files) = &self.files {
            files
                .client
                .delete_object()
                .bucket(&files.bucket)
                .expected_bucket_owner(&files.owner)
                .key(files.key(name))
                .send()
                .await
                .map_err(|e| classify("DeleteObject", e))?;
        }
        Ok((outcome, observe.date()))
    }

    /// Waits for a write slot under `qbusiness.max_writes_per_second`.
    async fn pace_write(&self) {
        let waited = until_ready(&self.writes).await;
        if waited >= Duration::from_millis(1) {
            crate::metrics::rate_limit_wait("qbusiness", "pacing", waited);
        }
    }

    /// Read-only reachability check for `check-config`: one ListGroups call with one result
    /// (asked again with the service's own time if it refuses a cutoff ahead of its clock).
    pub async fn check(&self, now: DateTime<Utc>) -> Result<usize, SinkError> {
        let out = Box::pin(self.list_first(list_cutoff(now), 1)).await?;
        Ok(out.items().len())
    }

    /// The first page of a listing of the groups written before `asked`, with a cutoff Q
    /// Business accepts whether or not it takes one in its future: the service's own time
    /// (from the `Date` of its answers; one listing with a cutoff in 1970 learns it when no
    /// answer came yet), taken at least a second after the listing began: `Date` counts whole
    /// seconds, so the cutoff then covers every group written before the listing began and is
    /// never ahead of the service. Only where the write probe found that a future cutoff is
    /// accepted is `asked` sent as it is (callers ask ahead of their clock, so a clock behind
    /// Q Business's hides nothing).
    async fn list_first(
        &self,
        asked: DateTime<Utc>,
        max_results: i32,
    ) -> Result<aws_sdk_qbusiness::operation::list_groups::ListGroupsOutput, SinkError> {
        let began = tokio::time::Instant::now();
        let cutoff = if self.tracker.readings().future_cutoff == Some(true) {
            asked
        } else {
            if self.tracker.service_now().is_none() {
                // Accepted under every reading: nothing was written before it.
                let epoch = DateTime::<Utc>::from_timestamp(1, 0).unwrap_or(asked);
                self.list_raw(epoch, None, 1).await?;
            }
            self.service_cutoff(asked, began).await
        };
        self.tracker.set_listing_cutoff(asked, cutoff);
        match self.list_raw(cutoff, None, max_results).await {
            // The probe's answer no longer holds (or the clocks moved): its own time, once.
            Err(e) if self.refused_future(&e, cutoff) => {
                self.tracker.learn(|r| r.future_cutoff = Some(false));
                info!(
                    "Q Business refused a ListGroups cutoff ahead of its clock; listings ask with its own time"
                );
                let cutoff = self.service_cutoff(asked, began).await;
                self.tracker.set_listing_cutoff(asked, cutoff);
                self.list_raw(cutoff, None, max_results).await
            }
            other => other,
        }
    }

    /// The service's time, at least a second after `began`, capped at `asked`.
    async fn service_cutoff(
        &self,
        asked: DateTime<Utc>,
        began: tokio::time::Instant,
    ) -> DateTime<Utc> {
        tokio::time::sleep_until(began + Duration::from_secs(1)).await;
        asked.min(self.tracker.service_now().unwrap_or_else(wall_clock))
    }

    /// Whether ListGroups refused `cutoff` as ahead of its clock (a ValidationException, and
    /// the cutoff is ahead of the service's time as its answer dated it).
    fn refused_future(&self, err: &SinkError, cutoff: DateTime<Utc>) -> bool {
        err.kind == SinkErrorKind::Validation
            && self
                .tracker
                .service_now()
                .is_some_and(|service| service < cutoff)
    }

    /// One ListGroups call.
    async fn list_raw(
        &self,
        cutoff: DateTime<Utc>,
        token: Option<String>,
        max_results: i32,
    ) -> Result<aws_sdk_qbusiness::operation::list_groups::ListGroupsOutput, SinkError> {
        let until = AwsDateTime::from_millis(cutoff.timestamp_millis());
        let mut req = self
            .client
            .list_groups()
            .application_id(&self.target.application_id)
            .index_id(&self.target.index_id)
            .updated_earlier_than(until)
            .max_results(max_results)
            .set_next_token(token);
        if let Some(ds) = &self.target.data_source_id {
            req = req.data_source_id(ds);
        }
        req.customize()
            .interceptor(Observe::new(&self.tracker))
            .send()
            .await
            .map_err(|e| classify("ListGroups", e))
    }

    /// GetGroup: the answer, or `None` for a group Q Business does not have.
    async fn get_raw(
        &self,
        name: &GroupName,
    ) -> Result<Option<aws_sdk_qbusiness::operation::get_group::GetGroupOutput>, SinkError> {
        let mut req = self
            .client
            .get_group()
            .application_id(&self.target.application_id)
            .index_id(&self.target.index_id)
            .group_name(name.as_str());
        if let Some(ds) = &self.target.data_source_id {
            req = req.data_source_id(ds);
        }
        match req
            .customize()
            .interceptor(Observe::new(&self.tracker))
            .send()
            .await
        {
            Ok(out) => {
                let newest = out
                    .status()
                    .into_iter()
                    .chain(out.status_history())
                    .filter_map(|d| d.last_updated_at().map(|t| t.as_secs_f64()))
                    .fold(None::<f64>, |a, b| Some(a.map_or(b, |a| a.max(b))));
                if let Some(at) = newest {
                    self.tracker.note_seen(name, at);
                }
                Ok(Some(out))
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetGroupError::ResourceNotFoundException(nf) if names_group(nf, name)) => {
                Ok(None)
            }
            Err(e) => Err(classify("GetGroup", e)),
        }
    }

    /// The state of the put `mark` notes, from one GetGroup answer (`None`: no such group).
    fn state_since(
        &self,
        name: &GroupName,
        mark: PutMark,
        answer: Option<&aws_sdk_qbusiness::operation::get_group::GetGroupOutput>,
    ) -> GroupState {
        if mark.deleted {
            // An emptied group Q Business keeps none of: done once it is gone.
            return match answer.map(|out| state_of(out.status())) {
                None | Some(GroupState::Deleted) => GroupState::Succeeded,
                Some(_) => GroupState::Processing,
            };
        }
        // Not visible yet (eventual consistency): still processing, as far as we can tell.
        let Some(out) = answer else {
            return GroupState::Processing;
        };
        let current = out.status().map(Entry::of);
        let history: Vec<Entry> = out.status_history().iter().map(Entry::of).collect();
        if current.iter().chain(&history).any(|e| e.at.is_none()) && self.tracker.first_untimed() {
            warn!(group = %name, "GetGroup answered a status without lastUpdatedAt: such a status never confirms a put");
        }
        if let Some(state) = since_put(mark.at, mark.seen_before, current.as_ref(), &history) {
            return state;
        }
        // Only statuses from before the put. Where the probe found that a put changing
        // nothing leaves the status as it was, an unmoved SUCCEEDED is taken as this put's
        // once the delay the probe saw for a put's status to show has long passed.
        if let Some(settle) = self.tracker.readings().noop_settle()
            && current
                .as_ref()
                .is_some_and(|c| c.state == GroupState::Succeeded)
            && mark.answered.elapsed() >= settle
        {
            info!(group = %name, settle_secs = settle.as_secs(),
                "no status newer than the put: taken as a put that changed nothing (the write probe found such a put leaves the status as it was)");
            return GroupState::Succeeded;
        }
        GroupState::Processing
    }
}

impl GroupSink for QBusinessSink {
    async fn put_group(
        &self,
        name: &GroupName,
        members: &Members,
        groups: &[GroupName],
    ) -> Result<(), SinkError> {
        self.tracker.ensure_loaded().await;
        self.tracker.clear_mark(name);
        // Boxed: the retries of an emptied group nest deep enough to strain type layout.
        Box::pin(self.guarded("PutGroup", self.put_unguarded(name, members, groups))).await
    }

    async fn delete_group(&self, name: &GroupName) -> Result<DeleteOutcome, SinkError> {
        self.tracker.clear_mark(name);
        let (outcome, _) = Box::pin(self.guarded("DeleteGroup", self.send_delete(name))).await?;
        Ok(outcome)
    }

    async fn group_state(&self, name: &GroupName) -> Result<GroupState, SinkError> {
        self.tracker.ensure_loaded().await;
        let mark = self.tracker.mark(name);
        let answer = Box::pin(self.get_raw(name)).await?;
        let Some(mark) = mark else {
            return Ok(answer.map_or(GroupState::Missing, |out| state_of(out.status())));
        };
        let state = self.state_since(name, mark, answer.as_ref());
        if state != GroupState::Processing {
            self.tracker.clear_mark(name);
        }
        Ok(state)
    }

    async fn list_groups_page(
        &self,
        updated_before: DateTime<Utc>,
        token: Option<String>,
    ) -> Result<GroupPage, SinkError> {
        self.tracker.ensure_loaded().await;
        let out = match token {
            None => Box::pin(self.list_first(updated_before, 10)).await?,
            Some(token) => {
                let cutoff = self.tracker.listing_cutoff(updated_before);
                Box::pin(self.list_raw(cutoff, Some(token), 10)).await?
            }
        };
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

/// The member list of one of the write probe's puts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeForm<'a> {
    /// `memberUsers` with this one user.
    User(&'a str),
    /// `memberUsers: []`.
    EmptyList,
    /// A `groupMembers` without any list.
    NoList,
}

impl QBusinessSink {
    /// The write probe's PutGroup of `name` in `form`, exactly as given (no fallback), noted
    /// for [`QBusinessSink::put_status`].
    pub async fn probe_put(&self, name: &GroupName, form: ProbeForm<'_>) -> Result<(), SinkError> {
        let members = match form {
            ProbeForm::User(id) => GroupMembers::builder()
                .member_users(
                    MemberUser::builder()
                        .user_id(id)
                        .r#type(MembershipType::Index)
                        .build()
                        .map_err(unbuildable)?,
                )
                .build(),
            ProbeForm::EmptyList => GroupMembers::builder()
                .set_member_users(Some(Vec::new()))
                .build(),
            ProbeForm::NoList => GroupMembers::builder().build(),
        };
        self.tracker.clear_mark(name);
        Box::pin(self.send_put(name, members, None)).await
    }

    /// What GetGroup shows of the last put of `name` this sink sent: `None` while it shows
    /// nothing of it (only earlier statuses, or no group yet). Leaves the put noted.
    pub async fn put_status(&self, name: &GroupName) -> Result<Option<GroupState>, SinkError> {
        let Some(mark) = self.tracker.mark(name) else {
            return Ok(None);
        };
        let Some(out) = Box::pin(self.get_raw(name)).await? else {
            return Ok(None);
        };
        let current = out.status().map(Entry::of);
        let history: Vec<Entry> = out.status_history().iter().map(Entry::of).collect();
        Ok(since_put(
            mark.at,
            mark.seen_before,
            current.as_ref(),
            &history,
        ))
    }

    /// Whether ListGroups accepts a cutoff an hour ahead of the service's clock (`Err`: it
    /// failed for another reason).
    pub async fn future_cutoff_accepted(&self) -> Result<bool, SinkError> {
        let now = match self.tracker.service_now() {
            Some(now) => now,
            None => wall_clock(),
        };
        match Box::pin(self.list_raw(now + chrono::TimeDelta::hours(1), None, 1)).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == SinkErrorKind::Validation => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A put, unguarded: the member file, the inline lists, or an emptied group.
    async fn put_unguarded(
        &self,
        name: &GroupName,
        members: &Members,
        groups: &[GroupName],
    ) -> Result<(), SinkError> {
        if members.is_empty() && groups.is_empty() {
            return self.put_empty(name).await;
        }
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
        // A chunked group carries only its chunk list (no empty user list, which a reading
        // of the model refuses); PutGroup replaces the whole membership.
        let group_members = GroupMembers::builder()
            .set_member_users((!users.is_empty()).then_some(users))
            .set_member_groups((!member_groups.is_empty()).then_some(member_groups))
            .build();
        self.send_put(name, group_members, None).await
    }
}

/// This machine's clock, where the service's is not known yet (its `Date` is preferred).
pub(crate) fn wall_clock() -> DateTime<Utc> {
    crate::clock::Clock::now(&crate::clock::SystemClock)
}

/// `updatedEarlierThan` for a listing of every group at `now`: ListGroups requires it and
/// compares it with each group's last write. An hour ahead, so a clock behind Q Business's
/// misses nothing; where ListGroups refuses a cutoff in its future, the sink sends the
/// service's own time in its place.
pub fn list_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::TimeDelta::hours(1)
}

impl DocumentAccess for QBusinessSink {
    async fn check_document_access(
        &self,
        user_id: &str,
        document_id: &str,
        data_source_id: Option<&str>,
    ) -> Result<Option<AccessAnswer>, SinkError> {
        use aws_sdk_qbusiness::operation::check_document_access::CheckDocumentAccessError;
        let mut req = self
            .client
            .check_document_access()
            .application_id(&self.target.application_id)
            .index_id(&self.target.index_id)
            .user_id(user_id)
            .document_id(document_id);
        // `none`: no dataSourceId at all (documents added with BatchPutDocument, which AWS says
        // to ask about without one); a real id is 36 characters, so it cannot be "none".
        let data_source = match data_source_id {
            Some(ds) if ds.eq_ignore_ascii_case(NO_DATA_SOURCE) => None,
            Some(ds) => Some(ds),
            None => self.target.data_source_id.as_deref(),
        };
        if let Some(ds) = data_source {
            req = req.data_source_id(ds);
        }
        let configured = [
            Some(self.target.application_id.as_str()),
            Some(self.target.index_id.as_str()),
            data_source,
        ];
        match req.send().await {
            Ok(out) => Ok(Some(AccessAnswer {
                has_access: out.has_access().unwrap_or(false),
                user_groups: out
                    .user_groups()
                    .iter()
                    .filter_map(|g| g.name().map(str::to_owned))
                    .collect(),
                user_aliases: out
                    .user_aliases()
                    .iter()
                    .filter_map(|u| u.id().map(str::to_owned))
                    .collect(),
                document_acl: out.document_acl().map(acl_of).unwrap_or_default(),
            })),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), CheckDocumentAccessError::ResourceNotFoundException(nf) if names_document(nf, &configured, document_id)) => {
                Ok(None)
            }
            Err(e) => Err(classify("CheckDocumentAccess", e)),
        }
    }
}

/// The data source that asks CheckDocumentAccess without any `dataSourceId`.
pub const NO_DATA_SOURCE: &str = "none";

/// The SDK's ACL as the pure core reads it.
fn acl_of(acl: &aws_sdk_qbusiness::types::DocumentAcl) -> DocumentAcl {
    use aws_sdk_qbusiness::types::{DocumentAclMembership, MemberRelation};
    fn relation(r: Option<&MemberRelation>) -> Option<Relation> {
        match r? {
            MemberRelation::And => Some(Relation::And),
            _ => Some(Relation::Or),
        }
    }
    fn list(m: &DocumentAclMembership) -> AclList {
        AclList {
            relation: relation(m.member_relation()),
            conditions: m
                .conditions()
                .iter()
                .map(|c| AclCondition {
                    relation: relation(c.member_relation()),
                    users: c
                        .users()
                        .iter()
                        .filter_map(|u| u.id().map(str::to_owned))
                        .collect(),
                    groups: c
                        .groups()
                        .iter()
                        .filter_map(|g| g.name().map(str::to_owned))
                        .collect(),
                })
                .collect(),
        }
    }
    DocumentAcl {
        allowlist: acl.allowlist().map(list),
        deny_list: acl.deny_list().map(list),
    }
}

/// Whether a CheckDocumentAccess 404 is about the document (not the application, index or
/// data source, which are configuration errors).
fn names_document(
    nf: &ResourceNotFoundException,
    configured: &[Option<&str>],
    document: &str,
) -> bool {
    let id = nf.resource_id().trim();
    let resource_type = nf.resource_type().to_ascii_lowercase();
    if resource_type.contains("document") || (!id.is_empty() && id == document) {
        return true;
    }
    if !id.is_empty() && configured.contains(&Some(id)) {
        return false;
    }
    let message = nf.message().replace(document, "").to_ascii_lowercase();
    !(message.contains("application")
        || message.contains("index")
        || message.contains("data source"))
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

/// The Display texts of an error and its sources, cleaned. Never `DisplayErrorContext` or
/// `Debug`: those print the raw HTTP response, headers and body included.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        parts.push(clean(&e.to_string()));
        next = e.source();
    }
    if parts.is_empty() {
        parts.push(clean(&err.to_string()));
    }
    parts.dedup();
    parts.join(": ")
}

/// A message from the wire, made safe to log: no control characters, at most 300 characters.
fn clean(text: &str) -> String {
    const MAX: usize = 300;
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Maps an SDK error onto a bounded [`SinkErrorKind`] plus the service's code and message
/// (never the raw response).
fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, message) = match &err {
        _ if super::credentials::no_credentials(&err) => (
            SinkErrorKind::Credentials,
            super::credentials::CREDENTIAL_CHAIN.to_owned(),
        ),
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
            let status = service.raw().status().as_u16();
            let message = match (e.code(), e.message()) {
                (Some(code), Some(msg)) => format!("{code}: {}", clean(msg)),
                (Some(code), None) => clean(code),
                (None, Some(msg)) => clean(msg),
                (None, None) => {
                    format!("HTTP {status} without an AWS error code (not from the service?)")
                }
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
            (kind, format!("could not reach Q Business: {}", chain(&err)))
        }
        SdkError::ResponseError(r) => (
            SinkErrorKind::Server,
            format!(
                "unreadable response (HTTP {}): {}",
                r.raw().status().as_u16(),
                chain(&err)
            ),
        ),
        SdkError::ConstructionFailure(_) => (
            SinkErrorKind::Transport,
            format!("request could not be built: {}", chain(&err)),
        ),
        _ => (SinkErrorKind::Other, chain(&err)),
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
