//! Okta Management API emulator: `GET /api/v1/groups`, `/api/v1/groups/{id}`,
//! `/api/v1/groups/{id}/users`, `/api/v1/users` (with `filter`), `/api/v1/users/{id}`,
//! `/api/v1/users/{id}/groups` and `/api/v1/logs`, with SSWS or OAuth ([`crate::oauth`]:
//! `POST /oauth2/v1/token`, Bearer/DPoP tokens) auth, `link` paging, rate-limit headers, 429s and
//! injectable faults, plus `/_emulator/*` control endpoints (no auth).
//!
//! Wire shapes follow `shared/docs/okta-api.md` and the recorded responses in
//! `shared/fixtures/okta/`. It serves only what q-group-sync reads; it never writes to Okta state
//! over the API.
//!
//! # Users
//!
//! Every user carries `created`, `lastUpdated` and `statusChanged` (second-granular, like the
//! groups' dates). Status and profile changes move the user's `lastUpdated` but not the
//! `lastMembershipUpdated` of its groups, as in Okta: a deactivated user stays a member, listed
//! by `GET /api/v1/groups/{id}/users` with status DEPROVISIONED. `GET /api/v1/users` (limit
//! 200 at most, `after` cursor in user id order) omits DEPROVISIONED users unless its `filter`
//! has a `status` condition, e.g.
//! `(status eq "ACTIVE" or status eq "DEPROVISIONED") and lastUpdated gt "2024-01-02T03:04:05.000Z"`.
//!
//! # Control endpoints
//!
//! All under `/_emulator/`, JSON in and out:
//!
//! - `GET stats` (`?detail=true` for requests by kind, `&groups=true` for the groups whose
//!   members were read), `POST reset-stats`.
//! - `POST churn` `{"percent": 1.0, "seed": 7, "max_group_size": 1000}`: membership churn
//!   ([`crate::generate::churn`]); answers the changed groups.
//! - `POST members` `{"group_id": "00g...", "add": [...], "remove": [...]}`.
//! - `POST users/{id}/lifecycle/{op}`, `op` one of `suspend`, `unsuspend`, `deactivate`,
//!   `reactivate`, `unlock` ([`OktaOrg::suspend_user`], ...): answers the user's id, status and
//!   dates; 409 `{"error": why}` when the transition is not allowed, 404 for an unknown user.
//! - `POST users/{id}/profile` with a JSON object of profile attributes to set (`null`
//!   removes one), e.g. `{"email": "new@example.test"}`: answers the user and the `changed` keys.
//! - `POST touch-users`: every user's profile rewritten with the same values
//!   ([`OktaOrg::touch_all_users`]); answers `{"touched": n}`.
//! - `POST deactivate` `{"percent": 1.0, "seed": 7}`: deactivates that share of the ACTIVE users
//!   who are in at least one group ([`crate::generate::deactivate_share`]); answers
//!   `{"users": [ids], "groups": n}`.
//!
//! Every change made through them is logged to the System Log like the mutator it calls.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::oauth::{OAuthApp, OAuthState, Rejection, TokenRequest};
use crate::okta_filter::{GroupFilter, UserFilter};
use crate::server::{Bound, Server};
use crate::system_log::{self, LogQuery, SystemLog};
use crate::timefmt::{epoch_millis, epoch_secs, now_secs, okta_date, okta_date_millis};

/// Characters escaped in query values of the links we emit: everything but RFC 3986 unreserved,
/// so a filter reads `lastMembershipUpdated%20gt%20%222024-01-01T00%3A00%3A00.000Z%22` as in the docs.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

// ---------------------------------------------------------------------------------------------
// Org model
// ---------------------------------------------------------------------------------------------

/// An Okta user as the emulator stores it.
///
/// NB: Okta moves `lastUpdated` on every status or profile change, but a group's
/// `lastMembershipUpdated` does not move when one of its members changes; only
/// `GET /api/v1/users?filter=lastUpdated gt ...` sees those changes. An HR import that rewrites
/// profiles with the same values can move `lastUpdated` of many users at once
/// ([`OktaOrg::touch_user`] models it).
#[derive(Clone, Debug, Default)]
pub struct OktaUser {
    /// `00u...`, 20 characters.
    pub id: String,
    /// `ACTIVE`, `DEPROVISIONED`, `STAGED`, ... Free text, so tests can send unknown statuses.
    pub status: String,
    /// `profile` as served: login, email, firstName, lastName, custom attributes; nulls are kept.
    pub profile: Map<String, Value>,
    /// Epoch seconds (`created`; `activated` too, unless the user is STAGED).
    pub created: i64,
    /// Epoch seconds of the last status or profile change (`lastUpdated`).
    pub last_updated: i64,
    /// Milliseconds within that second (always 0 with [`StampPrecision::Seconds`]).
    pub last_updated_ms: u16,
    /// Epoch seconds of the last status change (`statusChanged`); `None` for a user never
    /// activated (STAGED since creation).
    pub status_changed: Option<i64>,
}

/// An Okta group as the emulator stores it.
#[derive(Clone, Debug)]
pub struct OktaGroup {
    /// `00g...`, 20 characters.
    pub id: String,
    /// `profile.name`.
    pub name: String,
    /// `profile.description` (`null` when `None`).
    pub description: Option<String>,
    /// `OKTA_GROUP`, `APP_GROUP` or `BUILT_IN`.
    pub group_type: String,
    /// Epoch seconds.
    pub created: i64,
    /// Epoch seconds of the last profile change.
    pub last_updated: i64,
    /// Milliseconds within that second (always 0 with [`StampPrecision::Seconds`]).
    pub last_updated_ms: u16,
    /// Epoch seconds of the last membership change.
    pub last_membership_updated: i64,
    /// Milliseconds within that second (always 0 with [`StampPrecision::Seconds`]).
    pub last_membership_updated_ms: u16,
    /// Member user ids.
    pub members: BTreeSet<String>,
}

/// The whole emulated org: users and groups by id, and the System Log of their changes.
///
/// The mutators below (`add_*`, `remove_*`, `set_*`, `rename_group`) append the event Okta
/// logs for the change to [`OktaOrg::log`] (while it is recording); writing to `users` or
/// `groups` directly changes the org without a trace, like a change Okta failed to log.
#[derive(Clone, Debug, Default)]
pub struct OktaOrg {
    /// Users by id.
    pub users: BTreeMap<String, OktaUser>,
    /// Groups by id; listings are sorted by id, as the `after` cursor needs.
    pub groups: BTreeMap<String, OktaGroup>,
    /// The System Log (`GET /api/v1/logs`).
    pub log: SystemLog,
    /// How finely the mutators stamp `lastUpdated` and `lastMembershipUpdated`.
    pub stamp_precision: StampPrecision,
}

/// How finely Okta stamps `lastUpdated` and `lastMembershipUpdated`. Okta's documentation is
/// silent: every published example ends in `.000Z`, so the emulator stamps whole seconds by
/// default; [`StampPrecision::Millis`] is the other reading. `filter` compares at millisecond
/// precision under both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StampPrecision {
    /// Whole seconds (`….000Z`), as every published example.
    #[default]
    Seconds,
    /// Milliseconds (`….417Z`).
    Millis,
}

impl StampPrecision {
    /// Now, as (epoch seconds, milliseconds within the second) under this precision.
    fn now(self) -> (i64, u16) {
        let ms = epoch_millis(SystemTime::now());
        match self {
            StampPrecision::Seconds => (ms.div_euclid(1000), 0),
            StampPrecision::Millis => (ms.div_euclid(1000), ms.rem_euclid(1000) as u16),
        }
    }
}

/// A stamp as Okta renders it.
fn stamp_date(secs: i64, ms: u16) -> String {
    okta_date_millis(secs.saturating_mul(1000) + i64::from(ms))
}

/// A `User` event target: alternateId is the login, displayName "first last".
fn user_target(id: &str, user: Option<&OktaUser>) -> Value {
    let text = |key: &str| {
        user.and_then(|u| u.profile.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let display = format!("{} {}", text("firstName"), text("lastName"));
    system_log::target(id, "User", &text("login"), display.trim())
}

/// Logs `user.account.update_profile` for `user`.
fn log_profile_update(log: &mut SystemLog, user_id: &str, user: &OktaUser) {
    let uri = format!("/api/v1/users/{user_id}");
    log.record(
        "user.account.update_profile",
        "Update user profile for Okta",
        vec![user_target(user_id, Some(user))],
        &uri,
    );
}

/// A `UserGroup` event target.
fn group_target(group: &OktaGroup) -> Value {
    system_log::target(&group.id, "UserGroup", "unknown", &group.name)
}

/// The event Okta logs when a user's status goes from `from` to `to` (the closest entry of the
/// event-type catalogue for the statuses without a lifecycle event).
fn status_event(from: &str, to: &str) -> (&'static str, &'static str) {
    match (from, to) {
        ("SUSPENDED", "ACTIVE") => ("user.lifecycle.unsuspend", "Unsuspend Okta user"),
        ("DEPROVISIONED", _) => ("user.lifecycle.reactivate", "Reactivate Okta user"),
        ("LOCKED_OUT", "ACTIVE") => ("user.account.unlock", "Unlock user account"),
        (_, "ACTIVE" | "PROVISIONED") => ("user.lifecycle.activate", "Activate Okta user"),
        (_, "DEPROVISIONED") => ("user.lifecycle.deactivate", "Deactivate Okta user"),
        (_, "SUSPENDED") => ("user.lifecycle.suspend", "Suspend Okta user"),
        (_, "LOCKED_OUT") => ("user.account.lock", "Max sign in attempts exceeded"),
        (_, "PASSWORD_EXPIRED") => ("user.account.expire_password", "Expire user password"),
        (_, "RECOVERY") => (
            "user.account.reset_password",
            "Reset password for Okta user",
        ),
        _ => (
            "user.account.update_profile",
            "Update user profile for Okta",
        ),
    }
}

/// 14 base-62 digits in ASCII order, so ids sort like their numbers.
fn id_digits(mut n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; 14];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[n % 62];
        n /= 62;
    }
    String::from_utf8(out).unwrap_or_default()
}

impl OktaOrg {
    /// Deterministic 20-character user id for `n` (`00u` + 14 base-62 digits + `4x6`); sorts by `n`.
    pub fn user_id(n: usize) -> String {
        format!("00u{}4x6", id_digits(n))
    }

    /// Deterministic 20-character group id for `n` (`00g` + 14 base-62 digits + `4x6`); sorts by `n`.
    pub fn group_id(n: usize) -> String {
        format!("00g{}4x6", id_digits(n))
    }

    /// Adds (or replaces) a user. The profile gets `firstName`, `lastName`, `mobilePhone: null`,
    /// `secondEmail: null`, `login`, and `email` unless `email` is `None` (then the key is absent).
    ///
    /// A new user's `created` and `last_updated` are now, and so is `status_changed` unless it
    /// is STAGED. Replacing a user keeps its `created`, moves `last_updated`, and moves
    /// `status_changed` only if the status differs.
    pub fn add_user(
        &mut self,
        id: &str,
        status: &str,
        email: Option<&str>,
        login: &str,
    ) -> &mut OktaUser {
        let local = login.split('@').next().unwrap_or(login);
        let mut names = local.splitn(2, ['.', '_']);
        let first = names.next().unwrap_or(local);
        let last = names.next().unwrap_or("User");
        let mut profile = Map::new();
        profile.insert("firstName".into(), first.into());
        profile.insert("lastName".into(), last.into());
        profile.insert("mobilePhone".into(), Value::Null);
        profile.insert("secondEmail".into(), Value::Null);
        profile.insert("login".into(), login.into());
        if let Some(email) = email {
            profile.insert("email".into(), email.into());
        }
        let (now, now_ms) = self.stamp_precision.now();
        let previous = self.users.get(id);
        let status_changed = match previous {
            Some(old) if old.status == status => old.status_changed,
            Some(_) => Some(now),
            None => (status != "STAGED").then_some(now),
        };
        let user = OktaUser {
            id: id.to_owned(),
            status: status.to_owned(),
            profile,
            created: previous.map_or(now, |old| old.created),
            last_updated: now,
            last_updated_ms: now_ms,
            status_changed,
        };
        let uri = format!("/api/v1/users/{id}");
        if self.users.contains_key(id) {
            let target = user_target(id, Some(&user));
            self.log.record(
                "user.account.update_profile",
                "Update user profile for Okta",
                vec![target],
                &uri,
            );
        } else {
            let target = user_target(id, Some(&user));
            self.log.record(
                "user.lifecycle.create",
                "Create Okta user",
                vec![target.clone()],
                &uri,
            );
            if status != "STAGED" {
                let (event, message) = status_event("STAGED", status);
                self.log.record(event, message, vec![target], &uri);
            }
        }
        match self.users.entry(id.to_owned()) {
            Entry::Occupied(mut slot) => {
                slot.insert(user);
                slot.into_mut()
            }
            Entry::Vacant(slot) => slot.insert(user),
        }
    }

    /// Adds (or replaces) an empty group; all three dates are "now".
    pub fn add_group(&mut self, id: &str, name: &str, group_type: &str) -> &mut OktaGroup {
        let (now, now_ms) = self.stamp_precision.now();
        let group = OktaGroup {
            id: id.to_owned(),
            name: name.to_owned(),
            description: None,
            group_type: group_type.to_owned(),
            created: now,
            last_updated: now,
            last_updated_ms: now_ms,
            last_membership_updated: now,
            last_membership_updated_ms: now_ms,
            members: BTreeSet::new(),
        };
        let (event, message) = if self.groups.contains_key(id) {
            ("group.profile.update", "Update group profile")
        } else {
            ("group.lifecycle.create", "Create Okta group")
        };
        let uri = format!("/api/v1/groups/{id}");
        self.log
            .record(event, message, vec![group_target(&group)], &uri);
        match self.groups.entry(id.to_owned()) {
            Entry::Occupied(mut slot) => {
                slot.insert(group);
                slot.into_mut()
            }
            Entry::Vacant(slot) => slot.insert(group),
        }
    }

    /// Adds `user_id` to `group_id` and sets `last_membership_updated` to now. Returns whether
    /// membership changed (an unknown group or an existing member changes nothing, and bumps nothing).
    pub fn add_member(&mut self, group_id: &str, user_id: &str) -> bool {
        self.change_member(group_id, user_id, true)
    }

    /// Removes `user_id` from `group_id` and sets `last_membership_updated` to now. Returns whether
    /// membership changed.
    pub fn remove_member(&mut self, group_id: &str, user_id: &str) -> bool {
        self.change_member(group_id, user_id, false)
    }

    fn change_member(&mut self, group_id: &str, user_id: &str, add: bool) -> bool {
        let stamp = self.stamp_precision.now();
        let Some(group) = self.groups.get_mut(group_id) else {
            return false;
        };
        let changed = if add {
            group.members.insert(user_id.to_owned())
        } else {
            group.members.remove(user_id)
        };
        if changed {
            (
                group.last_membership_updated,
                group.last_membership_updated_ms,
            ) = stamp;
            let (event, message) = if add {
                ("group.user_membership.add", "Add user to group membership")
            } else {
                (
                    "group.user_membership.remove",
                    "Remove user from group membership",
                )
            };
            let targets = vec![
                user_target(user_id, self.users.get(user_id)),
                group_target(group),
            ];
            let uri = format!("/api/v1/groups/{group_id}/users/{user_id}");
            self.log.record(event, message, targets, &uri);
        }
        changed
    }

    /// Renames a group (`group.profile.update`); `last_updated` becomes now. Returns whether the
    /// group exists.
    pub fn rename_group(&mut self, group_id: &str, name: &str) -> bool {
        let stamp = self.stamp_precision.now();
        let Some(group) = self.groups.get_mut(group_id) else {
            return false;
        };
        group.name = name.to_owned();
        (group.last_updated, group.last_updated_ms) = stamp;
        let uri = format!("/api/v1/groups/{group_id}");
        self.log.record(
            "group.profile.update",
            "Update group profile",
            vec![group_target(group)],
            &uri,
        );
        true
    }

    /// Deletes a group (`group.lifecycle.delete`). Returns whether it existed.
    pub fn remove_group(&mut self, group_id: &str) -> bool {
        let Some(group) = self.groups.remove(group_id) else {
            return false;
        };
        let uri = format!("/api/v1/groups/{group_id}");
        self.log.record(
            "group.lifecycle.delete",
            "Delete Okta group",
            vec![group_target(&group)],
            &uri,
        );
        true
    }

    /// Sets a user's status, logging the lifecycle event of the transition
    /// (`user.lifecycle.deactivate`, `.suspend`, `.activate`, ...); `last_updated` and
    /// `status_changed` become now. Returns whether it changed. No transition rule is checked
    /// (tests may set any status); the lifecycle helpers ([`OktaOrg::suspend_user`], ...) check
    /// Okta's.
    pub fn set_user_status(&mut self, user_id: &str, status: &str) -> bool {
        let (now, now_ms) = self.stamp_precision.now();
        let Some(user) = self.users.get_mut(user_id) else {
            return false;
        };
        if user.status == status {
            return false;
        }
        let (event, message) = status_event(&user.status, status);
        user.status = status.to_owned();
        user.last_updated = now;
        user.last_updated_ms = now_ms;
        user.status_changed = Some(now);
        let target = user_target(user_id, Some(user));
        let uri = format!("/api/v1/users/{user_id}/lifecycle");
        self.log.record(event, message, vec![target], &uri);
        true
    }

    /// Sets (or with `None`, removes) one profile attribute (`user.account.update_profile`);
    /// `last_updated` becomes now. Returns whether the profile changed (an unchanged value
    /// changes, logs and bumps nothing; [`OktaOrg::touch_user`] models a same-value rewrite).
    pub fn set_user_attribute(&mut self, user_id: &str, key: &str, value: Option<Value>) -> bool {
        let stamp = self.stamp_precision.now();
        let Some(user) = self.users.get_mut(user_id) else {
            return false;
        };
        let before = user.profile.get(key).cloned();
        match value.clone() {
            Some(v) => {
                user.profile.insert(key.to_owned(), v);
            }
            None => {
                user.profile.remove(key);
            }
        }
        if before == value {
            return false;
        }
        (user.last_updated, user.last_updated_ms) = stamp;
        log_profile_update(&mut self.log, user_id, user);
        true
    }

    /// Sets a user's `profile.email` (see [`OktaOrg::set_user_attribute`]).
    pub fn set_user_email(&mut self, user_id: &str, email: Option<&str>) -> bool {
        self.set_user_attribute(user_id, "email", email.map(Value::from))
    }

    /// Rewrites a user's profile with the same values, as an HR import does: `last_updated`
    /// becomes now and `user.account.update_profile` is logged; nothing else changes. Returns
    /// whether the user exists.
    pub fn touch_user(&mut self, user_id: &str) -> bool {
        let stamp = self.stamp_precision.now();
        let Some(user) = self.users.get_mut(user_id) else {
            return false;
        };
        (user.last_updated, user.last_updated_ms) = stamp;
        log_profile_update(&mut self.log, user_id, user);
        true
    }

    /// [`OktaOrg::touch_user`] for every user. Returns how many were touched.
    pub fn touch_all_users(&mut self) -> usize {
        let ids: Vec<String> = self.users.keys().cloned().collect();
        ids.iter().filter(|id| self.touch_user(id)).count()
    }

    /// Suspends an ACTIVE user (`user.lifecycle.suspend`). Memberships are kept.
    pub fn suspend_user(&mut self, user_id: &str) -> Result<(), String> {
        self.transition(user_id, &["ACTIVE"], "SUSPENDED", "suspend")
    }

    /// Unsuspends a SUSPENDED user back to ACTIVE (`user.lifecycle.unsuspend`).
    pub fn unsuspend_user(&mut self, user_id: &str) -> Result<(), String> {
        self.transition(user_id, &["SUSPENDED"], "ACTIVE", "unsuspend")
    }

    /// Deactivates a user in any status but DEPROVISIONED (`user.lifecycle.deactivate`).
    ///
    /// NB: memberships are kept: Okta still lists deactivated users as group members, and the
    /// group's `lastMembershipUpdated` does not move.
    pub fn deactivate_user(&mut self, user_id: &str) -> Result<(), String> {
        let status = self.status_of(user_id)?;
        if status == "DEPROVISIONED" {
            return Err(format!(
                "cannot deactivate user {user_id}: it is already DEPROVISIONED"
            ));
        }
        self.transition(user_id, &[status.as_str()], "DEPROVISIONED", "deactivate")
    }

    /// Reactivates a DEPROVISIONED user straight to ACTIVE (`user.lifecycle.reactivate`).
    ///
    /// NB: real Okta goes through PROVISIONED when the user must set a password from an
    /// activation email; the emulator skips that step, as an admin reactivation without one does.
    pub fn reactivate_user(&mut self, user_id: &str) -> Result<(), String> {
        self.transition(user_id, &["DEPROVISIONED"], "ACTIVE", "reactivate")
    }

    /// Unlocks a LOCKED_OUT user back to ACTIVE (`user.account.unlock`).
    pub fn unlock_user(&mut self, user_id: &str) -> Result<(), String> {
        self.transition(user_id, &["LOCKED_OUT"], "ACTIVE", "unlock")
    }

    fn status_of(&self, user_id: &str) -> Result<String, String> {
        self.users
            .get(user_id)
            .map(|u| u.status.clone())
            .ok_or_else(|| format!("unknown user {user_id}"))
    }

    /// [`OktaOrg::set_user_status`] from one of `from` to `to`, or why not.
    fn transition(
        &mut self,
        user_id: &str,
        from: &[&str],
        to: &str,
        op: &str,
    ) -> Result<(), String> {
        let status = self.status_of(user_id)?;
        if !from.contains(&status.as_str()) {
            return Err(format!(
                "cannot {op} user {user_id}: its status is {status}, not {}",
                from.join(" or ")
            ));
        }
        self.set_user_status(user_id, to);
        Ok(())
    }

    /// Deletes a user (`user.lifecycle.delete.initiated`) and with it every membership (those
    /// groups' `last_membership_updated` becomes now; no membership events are logged). Returns
    /// whether the user existed.
    pub fn remove_user(&mut self, user_id: &str) -> bool {
        let Some(user) = self.users.remove(user_id) else {
            return false;
        };
        let stamp = self.stamp_precision.now();
        for group in self.groups.values_mut() {
            if group.members.remove(user_id) {
                (
                    group.last_membership_updated,
                    group.last_membership_updated_ms,
                ) = stamp;
            }
        }
        let uri = format!("/api/v1/users/{user_id}");
        self.log.record(
            "user.lifecycle.delete.initiated",
            "Delete Okta user",
            vec![user_target(user_id, Some(&user))],
            &uri,
        );
        true
    }

    /// The groups `user_id` is a member of, by id.
    pub fn groups_of(&self, user_id: &str) -> Vec<&OktaGroup> {
        self.groups
            .values()
            .filter(|g| g.members.contains(user_id))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Options and faults
// ---------------------------------------------------------------------------------------------

/// How the `link` header is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkStyle {
    /// One `link` header line per entry, as Okta sends.
    #[default]
    SeparateHeaders,
    /// One `link` line, entries joined by `, ` (what a folding proxy produces).
    CommaJoined,
}

/// Behaviour knobs of the Okta emulator.
#[derive(Clone, Debug)]
pub struct OktaOptions {
    /// Expected in `Authorization: SSWS <token>`.
    pub token: String,
    /// Requests per window in the shared `/api/v1/groups*` bucket.
    pub rate_limit: u32,
    /// Window length; a fixed window starts at the first request.
    pub rate_window: Duration,
    /// More requests in flight than this answer 429 with `X-Rate-Limit-Limit: 0`.
    pub max_concurrent: usize,
    /// Separate `link` lines or one comma-joined line.
    pub link_style: LinkStyle,
    /// Page size of `GET /api/v1/groups` without `limit` (10 000, as recorded).
    pub default_groups_limit: usize,
    /// Page size of `GET /api/v1/groups/{id}/users` without `limit` (1000).
    pub default_users_limit: usize,
    /// Larger `limit` values are clamped to this.
    pub max_limit: usize,
    /// Larger `limit` values of `GET /api/v1/groups/{id}/users` are clamped to this (an org
    /// that caps member pages lower than the documented 1000 answers fewer members per page,
    /// and its `next` link carries the smaller limit).
    pub max_members_limit: usize,
    /// Added before every `/api/v1` and token response (while the request counts as in flight).
    pub latency: Duration,
    /// An OAuth service app: enables `POST /oauth2/v1/token` and Bearer/DPoP tokens on
    /// `/api/v1` (SSWS keeps working).
    pub oauth: Option<OAuthApp>,
    /// A second, synthetic client that spends this many requests per second of the
    /// `/api/v1/groups*` bucket (evenly spaced), to test sharing the budget. 0: none.
    pub background_rps: f64,
    /// Requests per window in the System Log bucket (`/api/v1/logs`; 120/min on Workforce orgs).
    pub logs_rate_limit: u32,
    /// Requests per window in each of the user buckets, which Okta documents as separate
    /// (`GET /api/v1/users`, `GET /api/v1/users/{id}`, `GET /api/v1/users/{id}/groups`), each
    /// counted on its own.
    pub users_rate_limit: u32,
    /// Record the System Log from start-up on (mutations made before the start are not logged).
    pub system_log: bool,
    /// Delay before a logged event becomes visible to `GET /api/v1/logs` (eventual consistency).
    pub log_lag: Duration,
    /// A random extra delay per event in `[0, log_lag_jitter]`: events become visible out of
    /// `published` order.
    pub log_lag_jitter: Duration,
    /// Page size of `GET /api/v1/users/{id}/groups` without `limit`.
    pub default_user_groups_limit: usize,
}

impl Default for OktaOptions {
    fn default() -> Self {
        OktaOptions {
            token: "emulator-token".into(),
            rate_limit: 10_000,
            rate_window: Duration::from_secs(60),
            max_concurrent: 75,
            link_style: LinkStyle::SeparateHeaders,
            default_groups_limit: 10_000,
            default_users_limit: 1000,
            max_limit: 10_000,
            max_members_limit: 10_000,
            latency: Duration::ZERO,
            oauth: None,
            background_rps: 0.0,
            logs_rate_limit: 120,
            users_rate_limit: 10_000,
            system_log: true,
            log_lag: Duration::ZERO,
            log_lag_jitter: Duration::ZERO,
            default_user_groups_limit: 10_000,
        }
    }
}

/// Which requests a fault hits: any of the endpoints set; with none set, any `/api/v1` request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matcher {
    /// `GET /api/v1/groups/{group_id}/users`.
    pub group_id: Option<String>,
    /// `GET /api/v1/groups` (the listing).
    pub list_groups: bool,
    /// `GET /api/v1/logs` (the System Log).
    pub logs: bool,
    /// `GET /api/v1/users/{user_id}/groups`.
    pub user_groups: Option<String>,
    /// `GET /api/v1/users` (the users listing).
    pub list_users: bool,
    /// `GET /api/v1/users/{user}` (one user, by the id or login as sent).
    pub user: Option<String>,
    /// Only this 1-based page of the listing (page 1 has no `after`; System Log pages and
    /// single-object reads have no number, so a matcher with a page never hits them).
    pub page: Option<u32>,
    /// Only requests that ask for at least this many items (`limit`, as sent): faults that
    /// hit large pages only, as an overloaded org times out or fails them.
    pub min_limit: Option<usize>,
}

impl Matcher {
    /// Every `/api/v1` request.
    pub fn any() -> Matcher {
        Matcher::default()
    }

    /// The group listing.
    pub fn groups_listing() -> Matcher {
        Matcher {
            list_groups: true,
            ..Matcher::default()
        }
    }

    /// The member listing of `group_id`.
    pub fn members_of(group_id: &str) -> Matcher {
        Matcher {
            group_id: Some(group_id.to_owned()),
            ..Matcher::default()
        }
    }

    /// The System Log (`GET /api/v1/logs`).
    pub fn logs() -> Matcher {
        Matcher {
            logs: true,
            ..Matcher::default()
        }
    }

    /// The group listing of user `user_id` (`GET /api/v1/users/{user_id}/groups`).
    pub fn groups_of_user(user_id: &str) -> Matcher {
        Matcher {
            user_groups: Some(user_id.to_owned()),
            ..Matcher::default()
        }
    }

    /// The users listing (`GET /api/v1/users`, any filter).
    pub fn users_listing() -> Matcher {
        Matcher {
            list_users: true,
            ..Matcher::default()
        }
    }

    /// One user's read (`GET /api/v1/users/{user}`), `user` being the id or login as sent.
    pub fn user(user: &str) -> Matcher {
        Matcher {
            user: Some(user.to_owned()),
            ..Matcher::default()
        }
    }

    /// Restricts the matcher to page `page` (1-based).
    pub fn on_page(mut self, page: u32) -> Matcher {
        self.page = Some(page);
        self
    }

    /// Restricts the matcher to requests whose `limit` is at least `limit`.
    pub fn limit_at_least(mut self, limit: usize) -> Matcher {
        self.min_limit = Some(limit);
        self
    }

    fn hits(&self, target: &Target, page: Option<u32>, limit: Option<usize>) -> bool {
        let any = self.group_id.is_none()
            && !self.list_groups
            && !self.logs
            && self.user_groups.is_none()
            && !self.list_users
            && self.user.is_none();
        let endpoint = any
            || (self.list_groups && *target == Target::ListGroups)
            || (self.logs && *target == Target::Logs)
            || (self.list_users && *target == Target::ListUsers)
            || matches!((&self.user, target), (Some(want), Target::GetUser(id)) if want == id)
            || matches!((&self.group_id, target), (Some(want), Target::GroupUsers(id)) if want == id)
            || matches!((&self.user_groups, target), (Some(want), Target::UserGroups(id)) if want == id);
        endpoint
            && self.page.is_none_or(|want| page == Some(want))
            && self
                .min_limit
                .is_none_or(|least| limit.is_some_and(|l| l >= least))
    }
}

/// What a matching request gets instead of (or on top of) its normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// This status with an Okta error body (E0000009 for 500, E0000010 for 503, ...).
    Status(u16),
    /// 429 E0000047, `X-Rate-Limit-Remaining: 0`, reset in 1 s.
    RateLimited,
    /// 429 E0000047 with `X-Rate-Limit-Limit: 0` and `X-Rate-Limit-Remaining: 0`.
    ConcurrencyLimited,
    /// The normal answer, after this delay (for client timeouts).
    Delay(Duration),
    /// 200 with the JSON body cut in half (`content-length` matches the cut body).
    TruncatedBody,
    /// 200 with `{"not": "an array"` (unterminated).
    MalformedJson,
    /// The normal body, but `rel="next"` points to `https://evil.example/...`.
    ForeignNextLink,
    /// 200 `[]` with no next link.
    EmptyList,
    /// The normal page padded with trailing whitespace to this many bytes (still valid JSON).
    OversizedBody(usize),
    /// The normal answer sent with `Transfer-Encoding: chunked` in chunks of this many bytes and
    /// no `Content-Length`, as Okta's edge sends large listings: a client cannot size its
    /// buffer, or refuse an oversized body, before reading it.
    ChunkedBody(usize),
    /// The normal page, with `rel="next"` to a page on the same origin never linked before
    /// (`after=endless-<n>`): a listing that never ends.
    EndlessNext,
    /// 400 with `WWW-Authenticate: DPoP error="invalid_dpop_proof"`, as Okta refuses a proof
    /// on an API call (e.g. an `iat` its clock finds too old: the client's clock is off).
    InvalidDpopProof,
}

/// A fault to inject into matching requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaFault {
    /// Which requests it hits.
    pub matcher: Matcher,
    /// What they get.
    pub action: FaultAction,
    /// `None`: every matching request; `Some(n)`: the next `n` matching requests.
    pub times: Option<u32>,
}

impl OktaFault {
    /// A fault on every matching request.
    pub fn always(matcher: Matcher, action: FaultAction) -> OktaFault {
        OktaFault {
            matcher,
            action,
            times: None,
        }
    }

    /// A fault on the next `n` matching requests.
    pub fn times(matcher: Matcher, action: FaultAction, n: u32) -> OktaFault {
        OktaFault {
            matcher,
            action,
            times: Some(n),
        }
    }
}

/// One logged `/api/v1` request (control endpoints are not logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaRequest {
    /// HTTP method.
    pub method: String,
    /// Raw (still percent-encoded) path.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Status answered.
    pub status: u16,
    /// `x-okta-request-id` answered.
    pub request_id: String,
    /// `X-Okta-Retry-For` sent by the client.
    pub retry_for: Option<String>,
    /// `X-Okta-Retry-Count` sent by the client.
    pub retry_count: Option<String>,
    /// 1-based page within a listing; `None` for other requests and early rejections.
    pub page: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// Emulator
// ---------------------------------------------------------------------------------------------

/// A running Okta emulator on `127.0.0.1`. Dropping it stops the server.
pub struct OktaEmulator {
    shared: Arc<Shared>,
    server: Server,
    /// The synthetic background client, if `background_rps > 0`; stops with the emulator.
    _background: Option<AbortOnDrop>,
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// State shared by the handler and the test-facing API.
struct Shared {
    options: OktaOptions,
    /// `http://127.0.0.1:PORT`, the base of every link we emit.
    base_url: String,
    /// std Mutex: critical sections are short and never span an `.await`.
    state: Mutex<OrgState>,
    /// Requests currently inside the `/api/v1` handler.
    in_flight: AtomicUsize,
    /// Highest `in_flight` seen since the last log reset.
    peak_in_flight: AtomicUsize,
    /// Requests the background client made (and of those, refused) since the last stats reset.
    background_requests: AtomicU64,
    background_rate_limited: AtomicU64,
    /// Counter of [`FaultAction::EndlessNext`] links.
    endless: AtomicU64,
}

struct OrgState {
    org: OktaOrg,
    faults: Vec<OktaFault>,
    log: Vec<OktaRequest>,
    /// The `/api/v1/groups*` bucket.
    window: RateWindow,
    /// The `/api/v1/logs` bucket.
    logs_window: RateWindow,
    /// The `GET /api/v1/users` bucket.
    users_window: RateWindow,
    /// The `GET /api/v1/users/{id}` bucket.
    user_window: RateWindow,
    /// The `GET /api/v1/users/{id}/groups` bucket.
    user_groups_window: RateWindow,
    oauth: OAuthState,
    /// `oauth.log.len()` at the last stats reset.
    token_requests_at_reset: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, OrgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl OktaEmulator {
    /// Starts the emulator on `127.0.0.1:0`, serving `org`.
    pub async fn start(org: OktaOrg, options: OktaOptions) -> std::io::Result<OktaEmulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), org, options).await
    }

    /// Starts the emulator on `addr` (the standalone binary's `--okta-listen`).
    pub async fn start_on(
        addr: SocketAddr,
        org: OktaOrg,
        options: OktaOptions,
    ) -> std::io::Result<OktaEmulator> {
        let mut org = org;
        org.log.recording = options.system_log;
        org.log.lag = options.log_lag;
        org.log.lag_jitter = options.log_lag_jitter;
        let bound = Bound::bind(addr).await?;
        let shared = Arc::new(Shared {
            options,
            base_url: bound.url(),
            state: Mutex::new(OrgState {
                org,
                faults: Vec::new(),
                log: Vec::new(),
                window: RateWindow::default(),
                logs_window: RateWindow::default(),
                users_window: RateWindow::default(),
                user_window: RateWindow::default(),
                user_groups_window: RateWindow::default(),
                oauth: OAuthState::default(),
                token_requests_at_reset: 0,
            }),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            background_requests: AtomicU64::new(0),
            background_rate_limited: AtomicU64::new(0),
            endless: AtomicU64::new(0),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let background = (shared.options.background_rps > 0.0)
            .then(|| AbortOnDrop(tokio::spawn(background_client(shared.clone()))));
        Ok(OktaEmulator {
            shared,
            server: bound.serve(router),
            _background: background,
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.server.url().to_owned()
    }

    /// The SSWS token the emulator accepts.
    pub fn token(&self) -> String {
        self.shared.options.token.clone()
    }

    /// The options it runs with.
    pub fn options(&self) -> &OktaOptions {
        &self.shared.options
    }

    /// Mutates the org under the lock (keep `f` short; it blocks requests).
    pub fn update<R>(&self, f: impl FnOnce(&mut OktaOrg) -> R) -> R {
        f(&mut self.shared.lock().org)
    }

    /// A clone of the current org.
    pub fn org(&self) -> OktaOrg {
        self.shared.lock().org.clone()
    }

    /// Adds a fault; faults are tried in the order added, and the first match applies.
    pub fn add_fault(&self, fault: OktaFault) {
        self.shared.lock().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every `/api/v1` request since the last reset, oldest first.
    pub fn requests(&self) -> Vec<OktaRequest> {
        self.shared.lock().log.clone()
    }

    /// Number of logged `/api/v1` requests.
    pub fn request_count(&self) -> usize {
        self.shared.lock().log.len()
    }

    /// Logged requests answered 429 (rate or concurrency).
    pub fn rate_limited_count(&self) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.status == 429)
            .count()
    }

    /// Most requests in flight at once since the last [`reset_request_log`](Self::reset_request_log).
    pub fn max_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Clears the request log and the in-flight peak.
    pub fn reset_request_log(&self) {
        self.shared.lock().log.clear();
        self.shared.peak_in_flight.store(0, Ordering::SeqCst);
    }

    /// Every `POST /oauth2/v1/token` since start, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.lock().oauth.log.clone()
    }

    /// Every access token issued since start.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().oauth.issued()
    }

    /// Every client assertion and DPoP proof received since start.
    pub fn received_jwts(&self) -> Vec<String> {
        self.shared.lock().oauth.received.clone()
    }

    /// Rotates the DPoP nonces; the old ones stop working at once.
    pub fn rotate_dpop_nonce(&self) {
        self.shared.lock().oauth.rotate_nonces();
    }

    /// Expires every issued access token now.
    pub fn expire_tokens(&self) {
        self.shared.lock().oauth.expire_tokens(SystemTime::now());
    }

    /// Request counters since the last [`reset_stats`](Self::reset_stats) (what
    /// `GET /_emulator/stats?detail=true&groups=true` answers).
    pub fn stats(&self) -> OktaStats {
        stats(&self.shared)
    }

    /// Clears the request log, the in-flight peak and the background client's counters.
    pub fn reset_stats(&self) {
        reset_stats(&self.shared);
    }

    /// Starts a fresh rate-limit window at the next request.
    pub fn reset_rate_limit(&self) {
        let mut state = self.shared.lock();
        state.window = RateWindow::default();
        state.logs_window = RateWindow::default();
        state.users_window = RateWindow::default();
        state.user_window = RateWindow::default();
        state.user_groups_window = RateWindow::default();
    }

    /// Stops the server, letting in-flight requests finish. Dropping the emulator also stops it.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limiting
// ---------------------------------------------------------------------------------------------

/// Values of the three `x-rate-limit-*` headers.
#[derive(Clone, Copy, Debug)]
struct RateInfo {
    limit: u32,
    remaining: u32,
    reset: i64,
}

/// A fixed window that starts at the first request after the previous one ended.
#[derive(Default)]
struct RateWindow {
    start: Option<SystemTime>,
    used: u32,
}

impl RateWindow {
    fn roll(&mut self, now: SystemTime, window: Duration) -> SystemTime {
        match self.start {
            Some(start) if now < start + window => start,
            _ => {
                self.start = Some(now);
                self.used = 0;
                now
            }
        }
    }

    fn info(&self, start: SystemTime, limit: u32, options: &OktaOptions) -> RateInfo {
        let end = start + options.rate_window;
        let mut reset = epoch_secs(end);
        if end > crate::timefmt::from_epoch_secs(reset) {
            reset += 1; // round up: never announce a reset before the window really ends
        }
        RateInfo {
            limit,
            remaining: limit.saturating_sub(self.used),
            reset,
        }
    }

    /// Headers for a request that does not count against the bucket of `limit`.
    fn peek(&mut self, now: SystemTime, limit: u32, options: &OktaOptions) -> RateInfo {
        let start = self.roll(now, options.rate_window);
        self.info(start, limit, options)
    }

    /// Counts one request against the bucket of `limit`; `Err` when it is spent.
    fn consume(
        &mut self,
        now: SystemTime,
        limit: u32,
        options: &OktaOptions,
    ) -> Result<RateInfo, RateInfo> {
        let start = self.roll(now, options.rate_window);
        if self.used >= limit {
            return Err(self.info(start, limit, options));
        }
        self.used += 1;
        Ok(self.info(start, limit, options))
    }
}

/// Okta's rate-limit buckets that the emulator counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bucket {
    /// `/api/v1/groups*`: listings and member reads.
    Groups,
    /// `/api/v1/logs`.
    Logs,
    /// `GET /api/v1/users` (the listing).
    Users,
    /// `GET /api/v1/users/{id}` (one user).
    User,
    /// `GET /api/v1/users/{id}/groups` (a user's groups).
    UserGroups,
}

impl Bucket {
    /// The bucket of a path; `None` for paths no bucket counts (unknown endpoints).
    fn of(path: &str) -> Option<Bucket> {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if under("/api/v1/groups") {
            Some(Bucket::Groups)
        } else if under("/api/v1/logs") {
            Some(Bucket::Logs)
        } else if path.trim_end_matches('/') == "/api/v1/users" {
            Some(Bucket::Users)
        } else if let Some(rest) = path.strip_prefix("/api/v1/users/") {
            match rest.trim_end_matches('/').split_once('/') {
                None => Some(Bucket::User),
                Some((_, "groups")) => Some(Bucket::UserGroups),
                Some(_) => None,
            }
        } else {
            None
        }
    }

    fn limit(self, options: &OktaOptions) -> u32 {
        match self {
            Bucket::Groups => options.rate_limit,
            Bucket::Logs => options.logs_rate_limit,
            Bucket::Users | Bucket::User | Bucket::UserGroups => options.users_rate_limit,
        }
    }
}

impl OrgState {
    fn window_of(&mut self, bucket: Bucket) -> &mut RateWindow {
        match bucket {
            Bucket::Groups => &mut self.window,
            Bucket::Logs => &mut self.logs_window,
            Bucket::Users => &mut self.users_window,
            Bucket::User => &mut self.user_window,
            Bucket::UserGroups => &mut self.user_groups_window,
        }
    }

    /// Rate headers for a request that is not counted (rejected before it reaches a bucket).
    fn peek(&mut self, path: &str, now: SystemTime, options: &OktaOptions) -> RateInfo {
        let bucket = Bucket::of(path).unwrap_or(Bucket::Groups);
        self.window_of(bucket)
            .peek(now, bucket.limit(options), options)
    }
}

/// Decrements the in-flight count when the request is done (or dropped).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> (InFlight, usize) {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        (InFlight(shared.clone()), now)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The synthetic second client: one request from the `/api/v1/groups*` bucket every
/// `1 / background_rps` seconds, refused (and counted) when the bucket is spent.
async fn background_client(shared: Arc<Shared>) {
    let period = Duration::from_secs_f64(1.0 / shared.options.background_rps.max(1e-3));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let refused = shared
            .lock()
            .window
            .consume(
                SystemTime::now(),
                shared.options.rate_limit,
                &shared.options,
            )
            .is_err();
        shared.background_requests.fetch_add(1, Ordering::Relaxed);
        if refused {
            shared
                .background_rate_limited
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Requests and 429s of one kind of `/api/v1` request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindStats {
    /// Requests answered (any status).
    pub requests: usize,
    /// Of those, 429s.
    pub rate_limited: usize,
}

impl KindStats {
    fn count(&mut self, status: u16) {
        self.requests += 1;
        self.rate_limited += usize::from(status == 429);
    }
}

/// Counters since the last stats reset: `GET /_emulator/stats?detail=true`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OktaStats {
    /// `/api/v1` requests of the clients under test (the background client excluded).
    pub requests: usize,
    /// Of those, 429s (rate and concurrency).
    pub rate_limited: usize,
    /// `GET /api/v1/groups`.
    pub list_groups: KindStats,
    /// `GET /api/v1/groups/{id}/users`.
    pub list_members: KindStats,
    /// `GET /api/v1/logs`.
    pub logs: KindStats,
    /// `GET /api/v1/users/{id}/groups`.
    pub user_groups: KindStats,
    /// `GET /api/v1/users` (one per page).
    pub list_users: KindStats,
    /// `GET /api/v1/users/{id}`.
    pub get_user: KindStats,
    /// Any other `/api/v1` request.
    pub other: KindStats,
    /// Distinct groups whose members were requested.
    pub list_members_groups: usize,
    /// Their ids (`GET /_emulator/stats?detail=true` sends them only with `&groups=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_members_group_ids: Option<Vec<String>>,
    /// `POST /oauth2/v1/token` requests.
    pub token_requests: usize,
    /// Most `/api/v1` requests in flight at once.
    pub max_in_flight: usize,
    /// The synthetic background client (`background_rps`).
    pub background: BackgroundStats,
    /// The emulated `/api/v1/groups*` bucket.
    pub bucket: BucketInfo,
}

/// What the background client did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct BackgroundStats {
    /// Configured requests per second.
    pub rps: f64,
    /// Requests it made.
    pub requests: u64,
    /// Of those, refused because the bucket was spent.
    pub rate_limited: u64,
}

/// The emulated bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct BucketInfo {
    /// Requests per window.
    pub limit: u32,
    /// Window length in seconds.
    pub window_secs: f64,
}

fn stats(shared: &Shared) -> OktaStats {
    let state = shared.lock();
    let mut out = OktaStats {
        requests: state.log.len(),
        token_requests: state
            .oauth
            .log
            .len()
            .saturating_sub(state.token_requests_at_reset),
        max_in_flight: shared.peak_in_flight.load(Ordering::SeqCst),
        background: BackgroundStats {
            rps: shared.options.background_rps,
            requests: shared.background_requests.load(Ordering::Relaxed),
            rate_limited: shared.background_rate_limited.load(Ordering::Relaxed),
        },
        bucket: BucketInfo {
            limit: shared.options.rate_limit,
            window_secs: shared.options.rate_window.as_secs_f64(),
        },
        ..OktaStats::default()
    };
    let mut groups = BTreeSet::new();
    for request in &state.log {
        out.rate_limited += usize::from(request.status == 429);
        let members_of = request
            .path
            .strip_prefix("/api/v1/groups/")
            .and_then(|rest| rest.strip_suffix("/users"))
            .filter(|id| !id.contains('/'));
        if request.path == "/api/v1/groups" {
            out.list_groups.count(request.status);
        } else if let Some(id) = members_of {
            out.list_members.count(request.status);
            groups.insert(id);
        } else if request.path == "/api/v1/logs" {
            out.logs.count(request.status);
        } else if request.path.starts_with("/api/v1/users/") && request.path.ends_with("/groups") {
            out.user_groups.count(request.status);
        } else if request.path == "/api/v1/users" {
            out.list_users.count(request.status);
        } else if request
            .path
            .strip_prefix("/api/v1/users/")
            .is_some_and(|key| !key.is_empty() && !key.contains('/'))
        {
            out.get_user.count(request.status);
        } else {
            out.other.count(request.status);
        }
    }
    out.list_members_groups = groups.len();
    out.list_members_group_ids = Some(groups.into_iter().map(str::to_owned).collect());
    out
}

fn reset_stats(shared: &Shared) {
    let mut state = shared.lock();
    state.log.clear();
    state.token_requests_at_reset = state.oauth.log.len();
    shared.peak_in_flight.store(0, Ordering::SeqCst);
    shared.background_requests.store(0, Ordering::Relaxed);
    shared.background_rate_limited.store(0, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------------------------

/// Which endpoint a request addresses (for fault matching).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    ListGroups,
    GetGroup(String),
    GroupUsers(String),
    Logs,
    UserGroups(String),
    ListUsers,
    GetUser(String),
    Other,
}

/// A successful listing or object, before faults and rendering.
struct Page {
    body: Value,
    self_link: Option<String>,
    next_link: Option<String>,
}

/// An Okta error answer.
struct ApiError {
    status: u16,
    code: &'static str,
    summary: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, summary: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            summary: summary.into(),
        }
    }

    /// The body Okta sends for a bare status code (fault injection).
    fn for_status(status: u16) -> ApiError {
        let (code, summary) = match status {
            400 => ("E0000001", "Api validation failed".to_owned()),
            401 => ("E0000011", "Invalid token provided".to_owned()),
            403 => (
                "E0000006",
                "You do not have permission to perform the requested action".to_owned(),
            ),
            404 => ("E0000007", "Not found: Resource not found".to_owned()),
            405 => (
                "E0000022",
                "The endpoint does not support the provided HTTP method".to_owned(),
            ),
            429 => (
                "E0000047",
                "API call exceeded rate limit due to too many requests.".to_owned(),
            ),
            500 => ("E0000009", "Internal Server Error".to_owned()),
            503 => ("E0000010", "Service is in read-only mode".to_owned()),
            other => (
                "E0000009",
                StatusCode::from_u16(other)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Internal Server Error")
                    .to_owned(),
            ),
        };
        ApiError::new(status, code, summary)
    }

    fn rate_limited() -> ApiError {
        ApiError::for_status(429)
    }
}

/// Where a request ended up, decided under the lock.
struct Resolved {
    target: Target,
    page: Option<u32>,
    /// The `limit` the request asked for (before any clamping), when it sent a number.
    limit: Option<usize>,
    result: Result<Page, ApiError>,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path.starts_with("/_emulator/") {
        return control(&shared, &method, &path, uri.query(), &body);
    }
    if path == crate::oauth::TOKEN_PATH {
        if !shared.options.latency.is_zero() {
            tokio::time::sleep(shared.options.latency).await;
        }
        let mut state = shared.lock();
        if method != Method::POST {
            return error_response(
                &shared,
                ApiError::for_status(405),
                state.peek(&path, SystemTime::now(), &shared.options),
                &random_id(27),
            );
        }
        return crate::oauth::token_endpoint(
            shared.options.oauth.as_ref(),
            &mut state.oauth,
            &shared.base_url,
            &headers,
            &body,
            SystemTime::now(),
        );
    }
    // Credentials are checked on arrival, before the emulated latency.
    let auth = authenticate(&shared, &method, &path, &headers);
    let (_in_flight, in_flight_now) = InFlight::enter(&shared);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_for = header("x-okta-retry-for");
    let retry_count = header("x-okta-retry-count");
    let query = uri.query().map(str::to_owned);
    let request_id = random_id(27);

    let (response, page) = if in_flight_now > shared.options.max_concurrent {
        let rate = RateInfo {
            limit: 0,
            remaining: 0,
            reset: now_secs() + 1,
        };
        (
            error_response(&shared, ApiError::rate_limited(), rate, &request_id),
            None,
        )
    } else {
        if !shared.options.latency.is_zero() {
            tokio::time::sleep(shared.options.latency).await;
        }
        api(&shared, &method, &path, query.as_deref(), auth, &request_id).await
    };

    shared.lock().log.push(OktaRequest {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
        request_id,
        retry_for,
        retry_count,
        page,
    });
    response
}

/// `Authorization: SSWS <token>`, or an OAuth `Bearer`/`DPoP` token with its proof.
fn authenticate(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (scheme, credential) = authorization.split_once(' ').unwrap_or((authorization, ""));
    if scheme == "SSWS" && credential.trim() == shared.options.token {
        return Ok(());
    }
    let proof = headers.get("dpop").and_then(|v| v.to_str().ok());
    // Okta compares `htu` with the request's path as decoded.
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let htu = format!("{}{decoded}", shared.base_url);
    crate::oauth::authorize(
        shared.options.oauth.as_ref(),
        &mut shared.lock().oauth,
        scheme,
        credential.trim(),
        proof,
        method.as_str(),
        &htu,
        path,
        SystemTime::now(),
    )
}

/// Rate limit, routing and faults of one `/api/v1` request whose credentials were checked.
async fn api(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    auth: Result<(), Rejection>,
    request_id: &str,
) -> (Response, Option<u32>) {
    let options = &shared.options;
    let now = SystemTime::now();
    let bucket = Bucket::of(path);

    let (rate, resolved, fault) = {
        let mut state = shared.lock();
        if let Err(rejection) = auth {
            let rate = state.peek(path, now, options);
            drop(state);
            let error = ApiError::new(rejection.status, rejection.code, rejection.summary);
            let mut response = error_response(shared, error, rate, request_id);
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&rejection.www_authenticate) {
                headers.insert("www-authenticate", value);
            }
            if let Some(nonce) = rejection.nonce.as_deref()
                && let Ok(value) = HeaderValue::from_str(nonce)
            {
                headers.insert("dpop-nonce", value);
            }
            return (response, None);
        }
        let rate = if let Some(bucket) = bucket {
            match state
                .window_of(bucket)
                .consume(now, bucket.limit(options), options)
            {
                Ok(rate) => rate,
                Err(rate) => {
                    drop(state);
                    let error = ApiError::rate_limited();
                    return (error_response(shared, error, rate, request_id), None);
                }
            }
        } else {
            state.peek(path, now, options)
        };
        let resolved = resolve(&state.org, shared, method, path, query);
        let index = state.faults.iter().position(|f| {
            f.matcher
                .hits(&resolved.target, resolved.page, resolved.limit)
        });
        let fault = index.map(|i| {
            let fault = &mut state.faults[i];
            let action = fault.action.clone();
            if let Some(n) = fault.times.as_mut() {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.faults.remove(i);
                }
            }
            action
        });
        (rate, resolved, fault)
    };

    let page = resolved.page;
    let fault = match fault {
        Some(FaultAction::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            None // then answer normally, errors included
        }
        other => other,
    };
    let response = match (fault, resolved.result) {
        (Some(FaultAction::Status(status)), _) => {
            error_response(shared, ApiError::for_status(status), rate, request_id)
        }
        (Some(FaultAction::RateLimited), _) => {
            let rate = RateInfo {
                remaining: 0,
                reset: now_secs() + 1,
                ..rate
            };
            error_response(shared, ApiError::rate_limited(), rate, request_id)
        }
        (Some(FaultAction::InvalidDpopProof), _) => {
            let rejection =
                crate::oauth::invalid_proof("'iat' claim in the DPoP proof JWT is invalid.");
            let mut response = error_response(
                shared,
                ApiError::new(rejection.status, rejection.code, rejection.summary),
                rate,
                request_id,
            );
            if let Ok(value) = HeaderValue::from_str(&rejection.www_authenticate) {
                response.headers_mut().insert("www-authenticate", value);
            }
            response
        }
        (Some(FaultAction::ConcurrencyLimited), _) => {
            let rate = RateInfo {
                limit: 0,
                remaining: 0,
                reset: now_secs() + 1,
            };
            error_response(shared, ApiError::rate_limited(), rate, request_id)
        }
        (_, Err(error)) => error_response(shared, error, rate, request_id),
        (Some(FaultAction::TruncatedBody), Ok(page)) => {
            let body = page.body.to_string().into_bytes();
            let cut = body[..body.len() / 2].to_vec();
            let links = links_of(&page);
            respond(shared, 200, cut, rate, request_id, &links)
        }
        (Some(FaultAction::MalformedJson), Ok(page)) => {
            let links = links_of(&page);
            let body = br#"{"not": "an array""#.to_vec();
            respond(shared, 200, body, rate, request_id, &links)
        }
        (Some(FaultAction::ForeignNextLink), Ok(page)) => {
            let next = format!("https://evil.example{path}?limit=200&after=00gEVIL000000000000");
            page_response(shared, page, rate, request_id, Some(next))
        }
        (Some(FaultAction::OversizedBody(size)), Ok(page)) => {
            let mut body = page.body.to_string().into_bytes();
            if body.len() < size {
                body.resize(size, b' ');
            }
            let links = links_of(&page);
            respond(shared, 200, body, rate, request_id, &links)
        }
        (Some(FaultAction::ChunkedBody(size)), Ok(page)) => {
            let links = links_of(&page);
            let body = page.body.to_string().into_bytes();
            let chunks: Vec<Result<Bytes, std::convert::Infallible>> = body
                .chunks(size.max(1))
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let mut response = respond(shared, 200, Vec::new(), rate, request_id, &links);
            *response.body_mut() = Body::from_stream(futures_util::stream::iter(chunks));
            response.headers_mut().remove("content-length");
            response
        }
        (Some(FaultAction::EndlessNext), Ok(page)) => {
            let n = shared.endless.fetch_add(1, Ordering::Relaxed);
            let next = format!("{}{path}?limit=200&after=endless-{n}", shared.base_url);
            page_response(shared, page, rate, request_id, Some(next))
        }
        (Some(FaultAction::EmptyList), Ok(page)) => {
            let links: Vec<String> = page
                .self_link
                .iter()
                .map(|url| format!("<{url}>; rel=\"self\""))
                .collect();
            respond(shared, 200, b"[]".to_vec(), rate, request_id, &links)
        }
        (None | Some(FaultAction::Delay(_)), Ok(page)) => {
            page_response(shared, page, rate, request_id, None)
        }
    };
    (response, page)
}

fn links_of(page: &Page) -> Vec<String> {
    let mut links = Vec::new();
    if let Some(url) = &page.self_link {
        links.push(format!("<{url}>; rel=\"self\""));
    }
    if let Some(url) = &page.next_link {
        links.push(format!("<{url}>; rel=\"next\""));
    }
    links
}

fn page_response(
    shared: &Shared,
    mut page: Page,
    rate: RateInfo,
    request_id: &str,
    next_override: Option<String>,
) -> Response {
    if let Some(next) = next_override {
        page.next_link = Some(next);
    }
    let links = links_of(&page);
    respond(
        shared,
        200,
        page.body.to_string().into_bytes(),
        rate,
        request_id,
        &links,
    )
}

fn error_response(shared: &Shared, error: ApiError, rate: RateInfo, request_id: &str) -> Response {
    let body = json!({
        "errorCode": error.code,
        "errorSummary": error.summary,
        "errorLink": error.code,
        "errorId": format!("oae{}", random_id(22)),
        "errorCauses": [],
    });
    respond(
        shared,
        error.status,
        body.to_string().into_bytes(),
        rate,
        request_id,
        &[],
    )
}

/// Renders a response with the headers every Okta answer carries.
fn respond(
    shared: &Shared,
    status: u16,
    body: Vec<u8>,
    rate: RateInfo,
    request_id: &str,
    links: &[String],
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    set(headers, "content-type", "application/json");
    set(headers, "date", &httpdate::fmt_http_date(SystemTime::now()));
    set(headers, "x-okta-request-id", request_id);
    set(headers, "x-rate-limit-limit", &rate.limit.to_string());
    set(
        headers,
        "x-rate-limit-remaining",
        &rate.remaining.to_string(),
    );
    set(headers, "x-rate-limit-reset", &rate.reset.to_string());
    match shared.options.link_style {
        LinkStyle::SeparateHeaders => {
            for link in links {
                if let Ok(value) = HeaderValue::from_str(link) {
                    headers.append("link", value);
                }
            }
        }
        LinkStyle::CommaJoined if !links.is_empty() => set(headers, "link", &links.join(", ")),
        LinkStyle::CommaJoined => {}
    }
    response
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn random_id(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Query parameters, first occurrence wins.
fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        params
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    params
}

fn parse_limit(raw: Option<&String>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(max).min(max)),
        _ => Err(ApiError::new(
            400,
            "E0000001",
            format!("Api validation failed: limit ({raw})"),
        )),
    }
}

/// One page of `items`, which must be sorted by `id`: the page after cursor `after`.
/// Returns the page, the next cursor (if more remain) and the 1-based page number.
fn paginate<'a, T>(
    items: &'a [T],
    id: impl Fn(&T) -> &str,
    after: Option<&str>,
    limit: usize,
) -> (&'a [T], Option<String>, u32) {
    let start = after.map_or(0, |a| items.partition_point(|x| id(x) <= a));
    let end = start.saturating_add(limit).min(items.len());
    let page_items = &items[start.min(end)..end];
    let next = match page_items.last() {
        Some(last) if end < items.len() => Some(id(last).to_owned()),
        _ => None,
    };
    let page = u32::try_from(start / limit.max(1) + 1).unwrap_or(u32::MAX);
    (page_items, next, page)
}

/// `{base}{path}?limit=N[&filter=..][&search=..][&expand=..][&after=..]`.
fn link_url(
    base: &str,
    path: &str,
    limit: usize,
    params: &BTreeMap<String, String>,
    after: Option<&str>,
) -> String {
    let mut url = format!("{base}{path}?limit={limit}");
    for key in ["filter", "search", "expand", "sortBy", "sortOrder"] {
        if let Some(value) = params.get(key) {
            url.push_str(&format!(
                "&{key}={}",
                utf8_percent_encode(value, QUERY_VALUE)
            ));
        }
    }
    if let Some(after) = after {
        url.push_str(&format!(
            "&after={}",
            utf8_percent_encode(after, QUERY_VALUE)
        ));
    }
    url
}

fn resolve(
    org: &OktaOrg,
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Resolved {
    let params = parse_query(query);
    let segments: Vec<String> = path
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let target = match segments.as_slice() {
        ["", "api", "v1", "groups"] => Target::ListGroups,
        ["", "api", "v1", "groups", id] => Target::GetGroup((*id).to_owned()),
        ["", "api", "v1", "groups", id, "users"] => Target::GroupUsers((*id).to_owned()),
        ["", "api", "v1", "logs"] => Target::Logs,
        ["", "api", "v1", "users", id, "groups"] => Target::UserGroups((*id).to_owned()),
        ["", "api", "v1", "users"] => Target::ListUsers,
        ["", "api", "v1", "users", id] if !id.is_empty() => Target::GetUser((*id).to_owned()),
        _ => Target::Other,
    };
    // Page number of a listing that failed before paging: 1 unless a cursor was sent.
    let first_page = match target {
        Target::ListGroups | Target::GroupUsers(_) | Target::UserGroups(_) | Target::ListUsers
            if !params.contains_key("after") =>
        {
            Some(1)
        }
        _ => None,
    };
    let base = &shared.base_url;
    let options = &shared.options;
    let paged = |result: Result<(Page, u32), ApiError>| match result {
        Ok((page, n)) => (Ok(page), Some(n)),
        Err(error) => (Err(error), first_page),
    };
    let (result, page) = match &target {
        Target::Other => {
            let summary = format!("Not found: Resource not found: {path}");
            (Err(ApiError::new(404, "E0000007", summary)), None)
        }
        _ if method != Method::GET => (Err(ApiError::for_status(405)), first_page),
        Target::ListGroups => paged(list_groups(org, base, options, path, &params)),
        Target::GroupUsers(id) => paged(group_users(org, base, options, path, id, &params)),
        Target::UserGroups(id) => paged(user_groups(org, base, options, path, id, &params)),
        Target::Logs => (system_log_page(org, base, path, &params), None),
        Target::ListUsers => paged(list_users(org, base, path, &params)),
        Target::GetUser(key) => {
            let page = get_user(org, key).map(|user| Page {
                body: user_json(user, base),
                self_link: None,
                next_link: None,
            });
            (page, None)
        }
        Target::GetGroup(id) => match org.groups.get(id) {
            Some(group) => {
                let stats = params.get("expand").is_some_and(|e| e.contains("stats"));
                let page = Page {
                    body: group_json(group, base, stats),
                    self_link: None,
                    next_link: None,
                };
                (Ok(page), None)
            }
            None => (Err(group_not_found(id)), None),
        },
    };
    let limit = params.get("limit").and_then(|l| l.trim().parse().ok());
    Resolved {
        target,
        page,
        limit,
        result,
    }
}

fn group_not_found(id: &str) -> ApiError {
    ApiError::new(
        404,
        "E0000007",
        format!("Not found: Resource not found: {id} (UserGroup)"),
    )
}

fn list_groups(
    org: &OktaOrg,
    base: &str,
    options: &OktaOptions,
    path: &str,
    params: &BTreeMap<String, String>,
) -> Result<(Page, u32), ApiError> {
    let invalid = |_| ApiError::new(400, "E0000031", "Invalid search criteria.");
    let filter = params
        .get("filter")
        .map(|f| GroupFilter::parse_filter(f))
        .transpose()
        .map_err(invalid)?;
    let search = params
        .get("search")
        .map(|s| GroupFilter::parse_search(s))
        .transpose()
        .map_err(invalid)?;
    let stats = params.get("expand").is_some_and(|e| e.contains("stats"));
    let groups: Vec<&OktaGroup> = org
        .groups
        .values()
        .filter(|g| filter.as_ref().is_none_or(|f| f.matches(g)))
        .filter(|g| search.as_ref().is_none_or(|s| s.matches(g)))
        .collect();

    if let Some(q) = params.get("q") {
        // Autocomplete form: name prefix, at most `limit` (default 300), never paged, no link header.
        let limit = parse_limit(params.get("limit"), 300, options.max_limit)?;
        let q = q.to_lowercase();
        let body = groups
            .iter()
            .filter(|g| g.name.to_lowercase().starts_with(&q))
            .take(limit)
            .map(|g| group_json(g, base, stats))
            .collect();
        let page = Page {
            body: Value::Array(body),
            self_link: None,
            next_link: None,
        };
        return Ok((page, 1));
    }

    let limit = parse_limit(
        params.get("limit"),
        options.default_groups_limit,
        options.max_limit,
    )?;
    let after = params.get("after").map(String::as_str);
    let (items, next, page_no) = paginate(&groups, |g| g.id.as_str(), after, limit);
    let page = Page {
        body: Value::Array(items.iter().map(|g| group_json(g, base, stats)).collect()),
        self_link: Some(link_url(base, path, limit, params, after)),
        next_link: next.map(|cursor| link_url(base, path, limit, params, Some(&cursor))),
    };
    Ok((page, page_no))
}

fn group_users(
    org: &OktaOrg,
    base: &str,
    options: &OktaOptions,
    path: &str,
    group_id: &str,
    params: &BTreeMap<String, String>,
) -> Result<(Page, u32), ApiError> {
    let group = org
        .groups
        .get(group_id)
        .ok_or_else(|| group_not_found(group_id))?;
    let limit = parse_limit(
        params.get("limit"),
        options.default_users_limit,
        options.max_limit.min(options.max_members_limit),
    )?;
    // `filter` is ignored here, as Okta does; members missing from `users` are skipped.
    let members: Vec<&OktaUser> = group
        .members
        .iter()
        .filter_map(|id| org.users.get(id))
        .collect();
    let after = params.get("after").map(String::as_str);
    let (items, next, page_no) = paginate(&members, |u| u.id.as_str(), after, limit);
    let no_filter = BTreeMap::new();
    let page = Page {
        body: Value::Array(items.iter().map(|u| user_json(u, base)).collect()),
        self_link: Some(link_url(base, path, limit, &no_filter, after)),
        next_link: next.map(|cursor| link_url(base, path, limit, &no_filter, Some(&cursor))),
    };
    Ok((page, page_no))
}

/// `GET /api/v1/logs`: polling mode (no `until`, ascending) always has a `next` link.
fn system_log_page(
    org: &OktaOrg,
    base: &str,
    path: &str,
    params: &BTreeMap<String, String>,
) -> Result<Page, ApiError> {
    let query = LogQuery::parse(params).map_err(|e| ApiError::new(400, e.code, e.summary))?;
    let page = query.run(&org.log, epoch_millis(SystemTime::now()));
    let url = |after: Option<&str>| {
        let mut url = format!("{base}{path}?");
        let mut pairs: Vec<String> = page
            .link_params
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
            .collect();
        if let Some(after) = after {
            pairs.push(format!("after={}", utf8_percent_encode(after, QUERY_VALUE)));
        }
        url.push_str(&pairs.join("&"));
        url
    };
    Ok(Page {
        body: Value::Array(page.events.clone()),
        self_link: Some(url(params.get("after").map(String::as_str))),
        next_link: page.next_after.as_deref().map(|after| url(Some(after))),
    })
}

/// `GET /api/v1/users` page size without `limit`, and the largest (larger values are clamped).
pub const LIST_USERS_LIMIT: usize = 200;

/// `GET /api/v1/users`: users by id, paged like the group listing, optionally `filter`ed
/// ([`UserFilter`]; an invalid one is 400 `E0000031`).
///
/// NB: DEPROVISIONED users are omitted unless the filter has a `status` condition. Okta
/// documents that the listing omits them by default; whether any filter brings them back is
/// not documented, so only an explicit status condition does here (the conservative reading).
/// `q` and `search` are not emulated (ignored).
fn list_users(
    org: &OktaOrg,
    base: &str,
    path: &str,
    params: &BTreeMap<String, String>,
) -> Result<(Page, u32), ApiError> {
    let filter = params
        .get("filter")
        .map(|f| UserFilter::parse(f))
        .transpose()
        .map_err(|_| ApiError::new(400, "E0000031", "Invalid search criteria."))?;
    let limit = parse_limit(params.get("limit"), LIST_USERS_LIMIT, LIST_USERS_LIMIT)?;
    let deprovisioned = filter.as_ref().is_some_and(UserFilter::names_status);
    let users: Vec<&OktaUser> = org
        .users
        .values()
        .filter(|u| deprovisioned || u.status != "DEPROVISIONED")
        .filter(|u| filter.as_ref().is_none_or(|f| f.matches(u)))
        .collect();
    let after = params.get("after").map(String::as_str);
    let (items, next, page_no) = paginate(&users, |u| u.id.as_str(), after, limit);
    let page = Page {
        body: Value::Array(items.iter().map(|u| user_json(u, base)).collect()),
        self_link: Some(link_url(base, path, limit, params, after)),
        next_link: next.map(|cursor| link_url(base, path, limit, params, Some(&cursor))),
    };
    Ok((page, page_no))
}

/// `GET /api/v1/users/{key}`: the user whose id is `key`, or else whose login is (compared
/// case-insensitively, as Okta compares logins).
fn get_user<'a>(org: &'a OktaOrg, key: &str) -> Result<&'a OktaUser, ApiError> {
    org.users
        .get(key)
        .or_else(|| {
            org.users.values().find(|u| {
                u.profile
                    .get("login")
                    .and_then(Value::as_str)
                    .is_some_and(|login| login.to_lowercase() == key.to_lowercase())
            })
        })
        .ok_or_else(|| user_not_found(key))
}

fn user_not_found(key: &str) -> ApiError {
    ApiError::new(
        404,
        "E0000007",
        format!("Not found: Resource not found: {key} (User)"),
    )
}

/// `GET /api/v1/users/{id}/groups`: the user's groups by id, paged like the group listing.
fn user_groups(
    org: &OktaOrg,
    base: &str,
    options: &OktaOptions,
    path: &str,
    user_id: &str,
    params: &BTreeMap<String, String>,
) -> Result<(Page, u32), ApiError> {
    if !org.users.contains_key(user_id) {
        return Err(user_not_found(user_id));
    }
    let limit = parse_limit(
        params.get("limit"),
        options.default_user_groups_limit,
        options.max_limit,
    )?;
    let groups = org.groups_of(user_id);
    let after = params.get("after").map(String::as_str);
    let (items, next, page_no) = paginate(&groups, |g| g.id.as_str(), after, limit);
    let no_filter = BTreeMap::new();
    let page = Page {
        body: Value::Array(items.iter().map(|g| group_json(g, base, false)).collect()),
        self_link: Some(link_url(base, path, limit, &no_filter, after)),
        next_link: next.map(|cursor| link_url(base, path, limit, &no_filter, Some(&cursor))),
    };
    Ok((page, page_no))
}

/// A group as `GET /api/v1/groups` shows it (see `fixtures/okta/list_groups.json`).
fn group_json(g: &OktaGroup, base: &str, stats: bool) -> Value {
    let object_class = if g.group_type == "APP_GROUP" {
        "okta:windows_security_principal"
    } else {
        "okta:user_group"
    };
    let mut links = json!({
        "logo": [
            {
                "name": "medium",
                "href": "https://ok11static.oktacdn.com/assets/img/logos/groups/okta-medium.d7fb831bc4e7e1a5d8bd35dfaf405d9e.png",
                "type": "image/png"
            },
            {
                "name": "large",
                "href": "https://ok11static.oktacdn.com/assets/img/logos/groups/okta-large.511fcb0de9da185b52589cb14d581c2c.png",
                "type": "image/png"
            }
        ],
        "users": { "href": format!("{base}/api/v1/groups/{}/users", g.id) },
        "apps": { "href": format!("{base}/api/v1/groups/{}/apps", g.id) },
    });
    if g.group_type == "APP_GROUP" {
        let app = g.id.get(3..).unwrap_or(&g.id);
        links["source"] = json!({ "href": format!("{base}/api/v1/apps/0oa{app}") });
    }
    let mut group = json!({
        "id": g.id,
        "created": okta_date(g.created),
        "lastUpdated": stamp_date(g.last_updated, g.last_updated_ms),
        "lastMembershipUpdated": stamp_date(g.last_membership_updated, g.last_membership_updated_ms),
        "objectClass": [object_class],
        "type": g.group_type,
        "profile": { "name": g.name, "description": g.description },
        "_links": links,
    });
    if stats {
        group["_embedded"] = json!({
            "stats": {
                "usersCount": g.members.len(),
                "appsCount": 0,
                "groupPushMappingsCount": 0,
                "hasAdminPrivlege": false,
            }
        });
    }
    group
}

/// A user as `GET /api/v1/groups/{id}/users` and `GET /api/v1/users` show it (see
/// `fixtures/okta/group_users.json`). `activated` is `created` (`null` while STAGED),
/// `passwordChanged` is `created`, `statusChanged` is `null` for a never-activated user.
fn user_json(u: &OktaUser, base: &str) -> Value {
    let created = okta_date(u.created);
    let activated = if u.status == "STAGED" {
        Value::Null
    } else {
        created.clone().into()
    };
    let status_changed = u
        .status_changed
        .map_or(Value::Null, |t| okta_date(t).into());
    let emails: Vec<Value> = u
        .profile
        .get("email")
        .and_then(Value::as_str)
        .map(|email| json!({ "value": email, "status": "VERIFIED", "type": "PRIMARY" }))
        .into_iter()
        .collect();
    json!({
        "id": u.id,
        "status": u.status,
        "created": created,
        "activated": activated,
        "statusChanged": status_changed,
        "lastLogin": Value::Null,
        "lastUpdated": stamp_date(u.last_updated, u.last_updated_ms),
        "passwordChanged": created,
        "type": { "id": "otyc04qb2rUDcq2YA4x6" },
        "profile": Value::Object(u.profile.clone()),
        "credentials": {
            "password": {},
            "emails": emails,
            "provider": { "type": "OKTA", "name": "OKTA" },
        },
        "_links": { "self": { "href": format!("{base}/api/v1/users/{}", u.id) } },
    })
}

// ---------------------------------------------------------------------------------------------
// Control endpoints
// ---------------------------------------------------------------------------------------------

/// Body of `POST /_emulator/members`.
#[derive(Deserialize)]
struct MembersChange {
    group_id: String,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    set(response.headers_mut(), "content-type", "application/json");
    response
}

/// Body of `POST /_emulator/churn`.
#[derive(Deserialize)]
struct ChurnRequest {
    percent: f64,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_churn_max")]
    max_group_size: usize,
}

fn default_churn_max() -> usize {
    1000
}

/// Body of `POST /_emulator/deactivate`.
#[derive(Deserialize)]
struct DeactivateRequest {
    percent: f64,
    #[serde(default)]
    seed: u64,
}

/// `POST /_emulator/users/{id}/lifecycle/{op}` and `POST /_emulator/users/{id}/profile`.
fn user_control(shared: &Shared, user_id: &str, action: &[&str], body: &[u8]) -> Response {
    let mut state = shared.lock();
    let org = &mut state.org;
    if !org.users.contains_key(user_id) {
        return json_response(StatusCode::NOT_FOUND, &json!({ "error": "unknown user" }));
    }
    match action {
        ["lifecycle", op] => {
            let result = match *op {
                "suspend" => org.suspend_user(user_id),
                "unsuspend" => org.unsuspend_user(user_id),
                "deactivate" => org.deactivate_user(user_id),
                "reactivate" => org.reactivate_user(user_id),
                "unlock" => org.unlock_user(user_id),
                other => {
                    let error = format!(
                        "unknown lifecycle operation {other:?} (suspend, unsuspend, deactivate, \
                         reactivate, unlock)"
                    );
                    return json_response(StatusCode::NOT_FOUND, &json!({ "error": error }));
                }
            };
            match result {
                Ok(()) => json_response(StatusCode::OK, &user_summary(&org.users[user_id])),
                Err(error) => json_response(StatusCode::CONFLICT, &json!({ "error": error })),
            }
        }
        ["profile"] => {
            let attributes: Map<String, Value> = match serde_json::from_slice(body) {
                Ok(attributes) => attributes,
                Err(err) => {
                    let error = format!("expected a JSON object of profile attributes: {err}");
                    return json_response(StatusCode::BAD_REQUEST, &json!({ "error": error }));
                }
            };
            let changed: Vec<&String> = attributes
                .iter()
                .filter(|(key, value)| {
                    let value = (!value.is_null()).then(|| (*value).clone());
                    org.set_user_attribute(user_id, key, value)
                })
                .map(|(key, _)| key)
                .collect();
            let mut summary = user_summary(&org.users[user_id]);
            summary["changed"] = json!(changed);
            json_response(StatusCode::OK, &summary)
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "unknown control endpoint" }),
        ),
    }
}

/// What the user controls answer: the user's id, status, dates and profile.
fn user_summary(user: &OktaUser) -> Value {
    json!({
        "id": user.id,
        "status": user.status,
        "lastUpdated": stamp_date(user.last_updated, user.last_updated_ms),
        "statusChanged": user.status_changed.map(okta_date),
        "profile": user.profile,
    })
}

fn serialized(value: &impl Serialize) -> Response {
    match serde_json::to_value(value) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(err) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": err.to_string() }),
        ),
    }
}

fn control(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let bad_request =
        |error: String| json_response(StatusCode::BAD_REQUEST, &json!({ "error": error }));
    match (method.clone(), path) {
        (Method::GET, "/_emulator/stats") => {
            // `requests` and `rate_limited` only, unless `?detail=true` (and `&groups=true` for
            // the ids of the groups whose members were read).
            let params = parse_query(query);
            let flag = |name: &str| params.get(name).is_some_and(|v| v == "true" || v == "1");
            let mut stats = stats(shared);
            if !flag("detail") {
                let body =
                    json!({ "requests": stats.requests, "rate_limited": stats.rate_limited });
                return json_response(StatusCode::OK, &body);
            }
            if !flag("groups") {
                stats.list_members_group_ids = None;
            }
            serialized(&stats)
        }
        (Method::POST, "/_emulator/reset-stats") => {
            reset_stats(shared);
            json_response(StatusCode::OK, &json!({ "reset": true }))
        }
        (Method::POST, "/_emulator/churn") => {
            let request: ChurnRequest = match serde_json::from_slice(body) {
                Ok(request) => request,
                Err(err) => return bad_request(err.to_string()),
            };
            if !(0.0..=100.0).contains(&request.percent) {
                return bad_request("percent must be between 0 and 100".into());
            }
            let spec = crate::generate::ChurnSpec {
                percent: request.percent,
                seed: request.seed,
                max_group_size: request.max_group_size,
            };
            let churn = crate::generate::churn(&mut shared.lock().org, &spec);
            serialized(&churn)
        }
        (Method::POST, "/_emulator/touch-users") => {
            let touched = shared.lock().org.touch_all_users();
            json_response(StatusCode::OK, &json!({ "touched": touched }))
        }
        (Method::POST, "/_emulator/deactivate") => {
            let request: DeactivateRequest = match serde_json::from_slice(body) {
                Ok(request) => request,
                Err(err) => return bad_request(err.to_string()),
            };
            if !(0.0..=100.0).contains(&request.percent) {
                return bad_request("percent must be between 0 and 100".into());
            }
            let org = &mut shared.lock().org;
            let done = crate::generate::deactivate_share(org, request.percent, request.seed);
            serialized(&done)
        }
        (Method::POST, user_path) if user_path.starts_with("/_emulator/users/") => {
            let segments: Vec<String> = user_path
                .split('/')
                .skip(3)
                .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
                .collect();
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            match segments.split_first() {
                Some((user_id, action)) if !user_id.is_empty() => {
                    user_control(shared, user_id, action, body)
                }
                _ => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({ "error": "unknown control endpoint" }),
                ),
            }
        }
        (Method::POST, "/_emulator/members") => {
            let change: MembersChange = match serde_json::from_slice(body) {
                Ok(change) => change,
                Err(err) => return bad_request(err.to_string()),
            };
            let mut state = shared.lock();
            if !state.org.groups.contains_key(&change.group_id) {
                return json_response(StatusCode::NOT_FOUND, &json!({ "error": "unknown group" }));
            }
            for user in &change.add {
                state.org.add_member(&change.group_id, user);
            }
            for user in &change.remove {
                state.org.remove_member(&change.group_id, user);
            }
            let members = state
                .org
                .groups
                .get(&change.group_id)
                .map_or(0, |g| g.members.len());
            json_response(
                StatusCode::OK,
                &json!({ "group_id": change.group_id, "members": members }),
            )
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "unknown control endpoint" }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_20_chars_and_sort_by_number() {
        assert_eq!(OktaOrg::user_id(0).len(), 20);
        assert_eq!(OktaOrg::group_id(123_456).len(), 20);
        assert!(OktaOrg::group_id(9) < OktaOrg::group_id(10));
        assert!(OktaOrg::user_id(61) < OktaOrg::user_id(62));
        assert!(OktaOrg::user_id(7).starts_with("00u"));
    }

    #[test]
    fn paginate_follows_cursors() {
        let items = ["a", "b", "c", "d", "e"];
        let (page, next, n) = paginate(&items, |s| s, None, 2);
        assert_eq!((page, next.as_deref(), n), (&items[0..2], Some("b"), 1));
        let (page, next, n) = paginate(&items, |s| s, Some("b"), 2);
        assert_eq!((page, next.as_deref(), n), (&items[2..4], Some("d"), 2));
        let (page, next, n) = paginate(&items, |s| s, Some("d"), 2);
        assert_eq!((page, next, n), (&items[4..5], None, 3));
        let (page, next, _) = paginate(&items, |s| s, Some("z"), 2);
        assert!(page.is_empty() && next.is_none());
        let (page, next, _) = paginate(&items, |s| s, None, 5);
        assert_eq!((page.len(), next), (5, None));
    }

    /// A group changed within second 1_704_067_205 (2024-01-01T00:00:05Z), under `precision`,
    /// its listing under both filters of a listing of changes.
    fn changed_within_a_second(precision: StampPrecision) -> (String, bool, bool) {
        use crate::okta_filter::GroupFilter;
        let mut org = OktaOrg {
            stamp_precision: precision,
            ..OktaOrg::default()
        };
        org.add_group("g", "G", "OKTA_GROUP");
        org.rename_group("g", "G2");
        let g = org.groups.get_mut("g").expect("group");
        let fraction = g.last_updated_ms;
        g.last_updated = 1_704_067_205;
        g.last_membership_updated = 1_704_067_200;
        // Under Millis a fraction of 0 would hide the difference: as if 417 ms into the second.
        if precision == StampPrecision::Millis {
            g.last_updated_ms = 417;
        } else {
            assert_eq!(fraction, 0, "whole seconds");
        }
        let listed = group_json(g, "https://acme.okta.com", false)["lastUpdated"]
            .as_str()
            .expect("date")
            .to_owned();
        let after = |at: &str| {
            GroupFilter::parse_filter(&format!(
                r#"lastUpdated gt "{at}" or lastMembershipUpdated gt "{at}""#
            ))
            .expect("filter")
            .matches(g)
        };
        (
            listed,
            after("2024-01-01T00:00:05.000Z"),
            after("2024-01-01T00:00:04.999Z"),
        )
    }

    #[test]
    fn whole_second_stamps_are_not_after_their_own_second() {
        let (listed, after_the_second, after_the_one_before) =
            changed_within_a_second(StampPrecision::Seconds);
        assert_eq!(listed, "2024-01-01T00:00:05.000Z");
        assert!(!after_the_second, "gt the stamp's own second");
        assert!(after_the_one_before);
    }

    #[test]
    fn millisecond_stamps_are_after_their_own_second() {
        let (listed, after_the_second, after_the_one_before) =
            changed_within_a_second(StampPrecision::Millis);
        assert_eq!(listed, "2024-01-01T00:00:05.417Z");
        assert!(after_the_second, "417 ms into the second is after .000");
        assert!(after_the_one_before);
        // The mutators stamp the milliseconds of now.
        let mut org = OktaOrg {
            stamp_precision: StampPrecision::Millis,
            ..OktaOrg::default()
        };
        let mut seen = BTreeSet::new();
        for n in 0..50 {
            org.add_group(&format!("g{n}"), "G", "OKTA_GROUP");
            seen.insert(org.groups[&format!("g{n}")].last_updated_ms);
            std::thread::sleep(Duration::from_millis(3));
        }
        assert!(seen.len() > 1, "milliseconds move: {seen:?}");
    }

    #[test]
    fn user_changes_move_last_updated_only() {
        let mut org = OktaOrg::default();
        let user = org.add_user("u", "STAGED", Some("u@example.test"), "u@example.test");
        assert!(user.created > 0 && user.last_updated == user.created);
        assert_eq!(user.status_changed, None, "never activated");
        org.add_group("g", "G", "OKTA_GROUP");
        org.add_member("g", "u");
        let reset = |org: &mut OktaOrg| {
            let user = org.users.get_mut("u").expect("user");
            user.last_updated = 5;
            user.status_changed = user.status_changed.map(|_| 5);
            org.groups
                .get_mut("g")
                .expect("group")
                .last_membership_updated = 5;
        };
        let dates = |org: &OktaOrg| {
            let user = &org.users["u"];
            (
                user.last_updated,
                user.status_changed,
                org.groups["g"].last_membership_updated,
            )
        };

        reset(&mut org);
        assert!(org.set_user_email("u", Some("new@example.test")));
        let (updated, status_changed, membership) = dates(&org);
        assert!(updated > 5);
        assert_eq!((status_changed, membership), (None, 5));

        reset(&mut org);
        assert!(
            !org.set_user_email("u", Some("new@example.test")),
            "same value"
        );
        assert_eq!(dates(&org), (5, None, 5));
        assert!(org.touch_user("u"));
        assert!(dates(&org).0 > 5);
        assert!(!org.touch_user("nobody"));

        reset(&mut org);
        assert!(
            org.deactivate_user("u").is_ok(),
            "STAGED can be deactivated"
        );
        let (updated, status_changed, membership) = dates(&org);
        assert!(updated > 5 && status_changed == Some(updated));
        assert_eq!(membership, 5);
        assert!(org.groups["g"].members.contains("u"), "memberships kept");
        assert_eq!(org.touch_all_users(), 1);
    }

    #[test]
    fn lifecycle_helpers_follow_okta_transitions() {
        let mut org = OktaOrg::default();
        org.add_user("u", "ACTIVE", None, "u@example.test");
        let status = |org: &OktaOrg| org.users["u"].status.clone();
        assert!(org.unsuspend_user("u").is_err());
        assert!(org.reactivate_user("u").is_err());
        assert!(org.unlock_user("u").is_err());
        assert_eq!(org.suspend_user("u"), Ok(()));
        assert_eq!(status(&org), "SUSPENDED");
        assert!(org.suspend_user("u").is_err());
        assert_eq!(org.unsuspend_user("u"), Ok(()));
        assert_eq!(org.deactivate_user("u"), Ok(()));
        let reason = org.deactivate_user("u").expect_err("already deactivated");
        assert!(reason.contains("DEPROVISIONED"), "{reason}");
        assert!(org.suspend_user("u").is_err());
        assert_eq!(org.reactivate_user("u"), Ok(()));
        assert_eq!(status(&org), "ACTIVE");
        org.set_user_status("u", "LOCKED_OUT");
        assert_eq!(org.unlock_user("u"), Ok(()));
        assert_eq!(status(&org), "ACTIVE");
        assert!(org.suspend_user("nobody").is_err());
    }

    #[test]
    fn membership_changes_bump_the_date() {
        let mut org = OktaOrg::default();
        org.add_group("g", "G", "OKTA_GROUP")
            .last_membership_updated = 5;
        assert!(org.add_member("g", "u"));
        let bumped = org.groups["g"].last_membership_updated;
        assert!(bumped > 5);
        org.groups
            .get_mut("g")
            .expect("group")
            .last_membership_updated = 5;
        assert!(!org.add_member("g", "u"));
        assert_eq!(org.groups["g"].last_membership_updated, 5);
        assert!(org.remove_member("g", "u"));
        assert!(org.groups["g"].last_membership_updated > 5);
        assert!(!org.add_member("missing", "u"));
    }
}
