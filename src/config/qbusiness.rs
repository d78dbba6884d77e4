//! `[qbusiness]`: the target application and index, write pacing, large groups, verification.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{ConfigError, check_endpoint};

/// `[qbusiness]`: the target application and index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QBusinessConfig {
    pub application_id: String,
    pub index_id: String,
    pub region: String,
    #[serde(default)]
    pub data_source_id: Option<String>,
    /// Endpoint override (emulators, VPC endpoints). Default: the regional endpoint.
    #[serde(default)]
    pub endpoint_url: Option<Url>,
    /// Group writes in flight at most.
    #[serde(default = "default_q_concurrency")]
    pub max_concurrency: usize,
    /// PutGroup and DeleteGroup calls per second at most (Q Business's quotas are per account).
    #[serde(default = "default_q_writes_per_second")]
    pub max_writes_per_second: u32,
    /// Attempts per call, SDK retries included (throttling and 5xx are retried).
    #[serde(default = "default_q_attempts")]
    pub max_attempts: u32,
    /// First backoff between attempts; doubles with jitter up to 20 s.
    #[serde(default = "default_q_backoff", with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Members one PutGroup may carry; larger groups are chunked (or refused, never truncated).
    #[serde(default = "default_inline_member_limit")]
    pub inline_member_limit: usize,
    /// Groups over `inline_member_limit`: `chunks` (nested chunk sub-groups), `s3`
    /// (experimental: a member file in S3) or `refuse`.
    #[serde(default)]
    pub large_groups: LargeGroups,
    /// `large_groups = "s3"`: the bucket member files are written to.
    #[serde(default)]
    pub s3_bucket: Option<String>,
    /// `large_groups = "s3"`: key prefix of the member files (one file per group).
    #[serde(default = "default_s3_prefix")]
    pub s3_prefix: String,
    /// `large_groups = "s3"`: the IAM role Q Business assumes to read the member files.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// `large_groups = "s3"`: S3 endpoint override (VPC endpoints, emulators; path-style).
    #[serde(default)]
    pub s3_endpoint_url: Option<Url>,
    /// `large_groups = "s3"`: the AWS account (12 digits) that must own `s3_bucket`; every
    /// PutObject and DeleteObject sends it as the expected bucket owner. Default: the account
    /// of `role_arn`.
    #[serde(default, deserialize_with = "account_id")]
    pub s3_bucket_owner: Option<String>,
    /// Whether a put is confirmed with GetGroup before it is recorded: `always`, `sample`, `never`.
    #[serde(default)]
    pub verify: VerifyMode,
    /// With `verify = "sample"`: the share of puts (percent, by group name) that are confirmed.
    #[serde(default = "default_verify_sample")]
    pub verify_sample_percent: u8,
    /// How long a put may stay PROCESSING before it counts as unverified (retried next pass).
    #[serde(default = "default_verify_timeout", with = "humantime_serde")]
    pub verify_timeout: Duration,
}

/// `qbusiness.large_groups`: what happens to a group over the inline member limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LargeGroups {
    /// Written as a parent group whose `memberGroups` are chunk sub-groups of at most the
    /// limit each.
    #[default]
    Chunks,
    /// Not written; reported as an issue (`over_member_limit`).
    Refuse,
    /// Experimental: the members go to a file in `s3_bucket` that Q Business reads with
    /// `role_arn` (`s3PathForGroupMembers`; the file format is not documented by AWS).
    S3,
}

/// How puts are confirmed (PutGroup is asynchronous).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// Every put is confirmed SUCCEEDED before it is recorded.
    #[default]
    Always,
    /// A fixed share of groups (by name) is confirmed; the rest are recorded when accepted.
    Sample,
    /// Puts are recorded when Q Business accepts them.
    Never,
}

fn default_q_concurrency() -> usize {
    4
}
fn default_q_writes_per_second() -> u32 {
    20
}
fn default_q_attempts() -> u32 {
    3
}
fn default_q_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_s3_prefix() -> String {
    "q-group-sync/members/".to_owned()
}

fn default_inline_member_limit() -> usize {
    1000
}
fn default_verify_sample() -> u8 {
    10
}
fn default_verify_timeout() -> Duration {
    Duration::from_secs(300)
}

impl QBusinessConfig {
    /// The account that must own `s3_bucket`: `s3_bucket_owner`, else the account id in
    /// `role_arn` (`arn:aws:iam::<account>:role/...`); `None` unless it is 12 digits.
    pub fn s3_bucket_owner(&self) -> Option<String> {
        let owner = match &self.s3_bucket_owner {
            Some(owner) => owner.trim().to_owned(),
            None => self.role_arn.as_deref()?.split(':').nth(4)?.to_owned(),
        };
        (owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit())).then_some(owner)
    }

    /// Ids, region, endpoint, ranges, and the keys `large_groups = "s3"` needs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let q = self;
        check_aws_id("qbusiness.application_id", &q.application_id)?;
        check_aws_id("qbusiness.index_id", &q.index_id)?;
        if let Some(ds) = &q.data_source_id {
            check_aws_id("qbusiness.data_source_id", ds)?;
        }
        let region_ok = !q.region.is_empty()
            && q.region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err(ConfigError::key(
                "qbusiness.region",
                format!("{:?} is not an AWS region name", q.region),
            ));
        }
        for (key, url) in [
            ("qbusiness.endpoint_url", &q.endpoint_url),
            ("qbusiness.s3_endpoint_url", &q.s3_endpoint_url),
        ] {
            if let Some(url) = url {
                check_endpoint(key, url)?;
            }
        }
        if !(1..=32).contains(&q.max_concurrency) {
            return Err(ConfigError::key(
                "qbusiness.max_concurrency",
                "must be between 1 and 32",
            ));
        }
        if !(1..=10_000).contains(&q.max_writes_per_second) {
            return Err(ConfigError::key(
                "qbusiness.max_writes_per_second",
                format!(
                    "{} is out of range: 1 to 10000 writes per second",
                    q.max_writes_per_second
                ),
            ));
        }
        if !(1..=10).contains(&q.max_attempts) {
            return Err(ConfigError::key(
                "qbusiness.max_attempts",
                "must be between 1 and 10",
            ));
        }
        if q.large_groups == LargeGroups::S3 {
            let bucket_ok = q.s3_bucket.as_deref().is_some_and(|b| {
                (3..=63).contains(&b.len())
                    && b.bytes().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-'
                    })
                    && !b.starts_with(['.', '-'])
                    && !b.ends_with(['.', '-'])
            });
            if !bucket_ok {
                return Err(ConfigError::key(
                    "qbusiness.s3_bucket",
                    "is required with large_groups = \"s3\" and must be an S3 bucket name (3-63 of a-z 0-9 . -)",
                ));
            }
            if !q.role_arn.as_deref().is_some_and(|a| a.starts_with("arn:")) {
                return Err(ConfigError::key(
                    "qbusiness.role_arn",
                    "is required with large_groups = \"s3\": the ARN of the role Q Business uses to read the member files",
                ));
            }
            if q.s3_bucket_owner().is_none() {
                return Err(ConfigError::key(
                    "qbusiness.s3_bucket_owner",
                    "must be the 12-digit AWS account id that owns s3_bucket (by default the account in role_arn, which has none here)",
                ));
            }
            if q.s3_prefix.chars().count() > 900 {
                return Err(ConfigError::key(
                    "qbusiness.s3_prefix",
                    "is too long (S3 keys are at most 1024 characters)",
                ));
            }
        }
        if !(2..=1000).contains(&q.inline_member_limit) {
            return Err(ConfigError::key(
                "qbusiness.inline_member_limit",
                "must be between 2 and 1000 (PutGroup's inline limit)",
            ));
        }
        if q.verify_sample_percent > 100 {
            return Err(ConfigError::key(
                "qbusiness.verify_sample_percent",
                "must be between 0 and 100",
            ));
        }
        if q.verify_timeout.is_zero() {
            return Err(ConfigError::key(
                "qbusiness.verify_timeout",
                "must be more than zero",
            ));
        }
        Ok(())
    }
}

fn check_aws_id(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = value.len() == 36
        && value
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && c == '-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::key(
            key,
            format!("{value:?} is not a 36-character Q Business id"),
        ))
    }
}

/// An AWS account id, quoted or not: an environment variable's `012345678901` arrives as a
/// number, and account ids are 12 digits, so the leading zeros are put back.
fn account_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Text(text) => text,
        Id::Number(n) => format!("{n:012}"),
    }))
}
