//! The target edge: the only way q-group-sync changes Amazon Q Business, behind [`GroupSink`].

pub mod credentials;
pub mod probe;
pub mod qbusiness;
pub mod readings;
mod tracking;

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::model::{GroupName, Members};
use crate::plan::explain::AccessAnswer;
pub use qbusiness::QBusinessSink;
pub use readings::Readings;
pub use tracking::ReadingsLoader;

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// Q Business had no such group (404): the goal is reached all the same.
    AlreadyGone,
}

/// A group's processing state, from GetGroup (PutGroup is asynchronous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupState {
    Processing,
    Succeeded,
    /// The write failed after it was accepted; `code` and `message` are the service's.
    Failed {
        code: String,
        message: String,
    },
    Deleting,
    Deleted,
    /// No such group.
    Missing,
}

/// One page of ListGroups: group names only (Q Business lists no members).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPage {
    pub names: Vec<GroupName>,
    /// The token of the next page; `None` on the last one.
    pub next: Option<String>,
}

/// Bounded classification of a failed call, after the client's own retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// 429 ThrottlingException.
    Throttled,
    /// 5xx InternalServerException (or another server error).
    Server,
    /// 409 ConflictException, e.g. an earlier write to the group is still processing.
    Conflict,
    /// 400 ValidationException: the request breaks Q's rules.
    Validation,
    /// 403 AccessDeniedException: the IAM role lacks a permission.
    AccessDenied,
    /// 404 ResourceNotFoundException: wrong application, index or data source.
    NotFound,
    /// No AWS credentials: the default chain found none (or its configuration is invalid).
    Credentials,
    /// 402 ServiceQuotaExceededException.
    QuotaExceeded,
    /// The call timed out.
    Timeout,
    /// Connection or TLS failure, or the request could not be built.
    Transport,
    /// A write not sent, or abandoned, because this replica does not lead (any more).
    Fenced,
    /// Anything else.
    Other,
}

impl SinkErrorKind {
    /// Bounded label for metrics and status.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkErrorKind::Throttled => "throttled",
            SinkErrorKind::Server => "server",
            SinkErrorKind::Conflict => "conflict",
            SinkErrorKind::Validation => "validation",
            SinkErrorKind::AccessDenied => "access_denied",
            SinkErrorKind::NotFound => "not_found",
            SinkErrorKind::Credentials => "credentials",
            SinkErrorKind::QuotaExceeded => "quota_exceeded",
            SinkErrorKind::Timeout => "timeout",
            SinkErrorKind::Transport => "transport",
            SinkErrorKind::Fenced => "fenced",
            SinkErrorKind::Other => "other",
        }
    }

    /// What to change when the error is the setup's (credentials, permissions, the
    /// application's ids): retrying does not help. `None` for the kinds the next run retries.
    pub fn fix(self) -> Option<&'static str> {
        Some(match self {
            SinkErrorKind::AccessDenied => {
                "allow qbusiness:ListGroups, GetGroup, PutGroup and DeleteGroup on the application in the IAM policy of the role q-group-sync runs with"
            }
            SinkErrorKind::NotFound => {
                "check qbusiness.application_id, index_id and region (aws qbusiness list-applications, list-indices)"
            }
            SinkErrorKind::Validation => "check the [qbusiness] ids and data_source_id",
            SinkErrorKind::Credentials => credentials::CREDENTIAL_FIX,
            _ => return None,
        })
    }

    /// True when no other write can succeed either (permissions, wrong application or index).
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            SinkErrorKind::AccessDenied | SinkErrorKind::NotFound | SinkErrorKind::Credentials
        )
    }
}

/// A failed write to Q Business.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SinkError {
    pub kind: SinkErrorKind,
    /// `PutGroup`, `DeleteGroup`, ...
    pub operation: &'static str,
    /// The service's message (no member ids, no credentials).
    pub message: String,
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed ({}): {}",
            self.operation,
            self.kind.as_str(),
            self.message
        )
    }
}

impl SinkError {
    /// What to change when the error is the setup's ([`SinkErrorKind::fix`]), for the member
    /// files in S3 (`PutObject`, `DeleteObject`) in their own terms.
    pub fn fix(&self) -> Option<&'static str> {
        match (self.operation, self.kind) {
            ("PutObject" | "DeleteObject", SinkErrorKind::AccessDenied) => Some(
                "allow s3:PutObject and s3:DeleteObject on qbusiness.s3_bucket to the role q-group-sync runs with, and set qbusiness.s3_bucket_owner to the account that owns the bucket",
            ),
            ("PutObject" | "DeleteObject", SinkErrorKind::NotFound) => {
                Some("check qbusiness.s3_bucket: the bucket does not exist")
            }
            (_, kind) => kind.fix(),
        }
    }
}

/// The only way q-group-sync changes Amazon Q Business.
pub trait GroupSink: Send + Sync {
    /// Creates group `name`, or replaces its members with exactly `users` and `groups`
    /// (PutGroup, INDEX type, `memberUsers` and `memberGroups`; an empty list is left out).
    /// A group with neither may be deleted instead where Q Business keeps no empty group;
    /// [`GroupSink::group_state`] then reports it done once it is gone.
    fn put_group(
        &self,
        name: &GroupName,
        users: &Members,
        groups: &[GroupName],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Deletes group `name` (DeleteGroup); a group that is already gone is not an error.
    fn delete_group(
        &self,
        name: &GroupName,
    ) -> impl Future<Output = Result<DeleteOutcome, SinkError>> + Send;

    /// The processing state of group `name` (GetGroup).
    fn group_state(
        &self,
        name: &GroupName,
    ) -> impl Future<Output = Result<GroupState, SinkError>> + Send;

    /// One page (at most 10 names, ListGroups' largest page) of the groups in the index last
    /// written before `updated_before`, continuing after `token` (`None`: the first page).
    /// Every page of one listing must be asked with the same `updated_before`. A cutoff
    /// ahead of the service's clock may be sent as the service's own time instead (ListGroups
    /// may refuse a cutoff in its future).
    fn list_groups_page(
        &self,
        updated_before: DateTime<Utc>,
        token: Option<String>,
    ) -> impl Future<Output = Result<GroupPage, SinkError>> + Send;
}

/// Q Business's own view of one user and one document, for `explain` (read-only; IAM
/// `qbusiness:CheckDocumentAccess`).
pub trait DocumentAccess: Send + Sync {
    /// CheckDocumentAccess for `user_id` and `document_id` (in `data_source_id`, or the
    /// configured one). `Ok(None)`: Q Business has no such document.
    fn check_document_access(
        &self,
        user_id: &str,
        document_id: &str,
        data_source_id: Option<&str>,
    ) -> impl Future<Output = Result<Option<AccessAnswer>, SinkError>> + Send;
}
