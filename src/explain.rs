//! `explain`: why can (or can't) this person see this document? Gathers the facts from Okta
//! (the user, their status and groups), the snapshot (the groups q-group-sync owns, their last
//! writes, the held plan) and Q Business (one CheckDocumentAccess call), reading only, and hands
//! them to the pure [`crate::plan::explain`]. `cli explain` and `serve`'s `GET /explain` both
//! call [`explain`].

use std::fmt::Write;

use crate::plan::Rules;
use crate::plan::explain::{Explanation, Facts};
use crate::sink::{DocumentAccess, SinkError, SinkErrorKind};
use crate::source::{SourceError, UserDirectory, UserLookup};
use crate::store::{HeldPlans, HoldStatus, SnapshotStore, StoreError};

/// What `explain` asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question<'a> {
    /// An Okta user id, login or email.
    pub user: &'a str,
    pub document: &'a str,
    /// The document's data source (default: `qbusiness.data_source_id`; `none`: asked without
    /// one, for documents added with BatchPutDocument).
    pub data_source: Option<&'a str>,
}

/// The configuration `explain` reads.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub rules: &'a Rules,
    /// `users.id_attribute`.
    pub id_attribute: &'a str,
}

/// Why there is no explanation.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown user: Okta has no user whose id, login or email is {0:?}")]
    UnknownUser(String),
    #[error(
        "ambiguous user: {} Okta users have the email {key:?} ({}); give the Okta user id or login",
        ids.len(),
        ids.join(", ")
    )]
    AmbiguousUser { key: String, ids: Vec<String> },
    #[error("unknown document: Q Business has no document {document:?}{}", data_source.as_ref().map(|d| if d.eq_ignore_ascii_case(crate::sink::qbusiness::NO_DATA_SOURCE) { " outside any data source".to_owned() } else { format!(" in data source {d}") }).unwrap_or_default())]
    UnknownDocument {
        document: String,
        data_source: Option<String>,
    },
    #[error("reading the user from Okta")]
    Okta(#[from] SourceError),
    #[error(
        "asking Q Business (CheckDocumentAccess, which needs IAM qbusiness:CheckDocumentAccess)"
    )]
    QBusiness(#[from] SinkError),
    #[error("reading the snapshot")]
    Store(#[from] StoreError),
}

impl ExplainError {
    /// An unknown user or document, or a misconfiguration (credentials, permissions, a wrong
    /// application or index): exit 2, HTTP 4xx. Everything else is an outage.
    pub fn is_caller_error(&self) -> bool {
        match self {
            ExplainError::UnknownUser(_)
            | ExplainError::AmbiguousUser { .. }
            | ExplainError::UnknownDocument { .. } => true,
            ExplainError::Okta(e) => e.is_fatal(),
            ExplainError::QBusiness(e) => matches!(
                e.kind,
                SinkErrorKind::AccessDenied | SinkErrorKind::NotFound | SinkErrorKind::Validation
            ),
            ExplainError::Store(_) => false,
        }
    }

    /// `unknown_user`, `ambiguous_user`, `unknown_document`, `okta`, `qbusiness`, `snapshot`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExplainError::UnknownUser(_) => "unknown_user",
            ExplainError::AmbiguousUser { .. } => "ambiguous_user",
            ExplainError::UnknownDocument { .. } => "unknown_document",
            ExplainError::Okta(_) => "okta",
            ExplainError::QBusiness(_) => "qbusiness",
            ExplainError::Store(_) => "snapshot",
        }
    }
}

/// Answers `question` from the three sources, reading only.
pub async fn explain<U, D, T>(
    users: &U,
    access: &D,
    store: &T,
    settings: Settings<'_>,
    question: &Question<'_>,
) -> Result<Explanation, ExplainError>
where
    U: UserDirectory,
    D: DocumentAccess,
    T: SnapshotStore + HeldPlans,
{
    let user = match users.find_user(question.user).await? {
        UserLookup::Found(user) => user,
        UserLookup::NotFound => return Err(ExplainError::UnknownUser(question.user.to_owned())),
        UserLookup::Ambiguous(ids) => {
            return Err(ExplainError::AmbiguousUser {
                key: question.user.to_owned(),
                ids,
            });
        }
    };
    let okta_groups = users.user_groups(&user.id).await?;
    let ident = crate::plan::explain::identity(&user, settings.rules);
    let Some(answer) = access
        .check_document_access(&ident.checked_as, question.document, question.data_source)
        .await?
    else {
        return Err(ExplainError::UnknownDocument {
            document: question.document.to_owned(),
            data_source: question.data_source.map(str::to_owned),
        });
    };
    let snapshot = store.load().await?;
    let held = store
        .held_plan(None)
        .await?
        .filter(|r| r.status == HoldStatus::Held)
        .map(|r| r.held);
    Ok(crate::plan::explain::explain(&Facts {
        user: &user,
        okta_groups: &okta_groups,
        rules: settings.rules,
        id_attribute: settings.id_attribute,
        snapshot: &snapshot,
        held: held.as_ref(),
        document: question.document,
        answer: &answer,
    }))
}

/// Most of the user's Okta groups the text lists by name.
const TEXT_OKTA_GROUPS: usize = 6;
/// Most ACL groups the text lists.
const TEXT_ACL_GROUPS: usize = 12;

/// The one-screen text form.
pub fn render_text(e: &Explanation) -> String {
    let mut out = String::new();
    let u = &e.user;
    let who = u.login.as_deref().unwrap_or(&u.okta_id);
    let id = match (&u.q_user_id, u.skipped) {
        (Some(id), _) => format!("Q user id {id}"),
        (None, Some(why)) => format!(
            "skipped by users.* ({}); Q asked about {}",
            why.replace('_', " "),
            u.checked_as
        ),
        (None, None) => format!("Q asked about {}", u.checked_as),
    };
    let _ = writeln!(
        out,
        "User:       {who} (Okta {}, {}), {id}",
        u.okta_id, u.status
    );
    let in_scope = u.okta_groups.iter().filter(|g| g.q_name.is_some()).count();
    let mut named: Vec<String> = u
        .okta_groups
        .iter()
        .take(TEXT_OKTA_GROUPS)
        .map(|g| match &g.q_name {
            Some(q) if *q == g.name => format!("\"{}\"", g.name),
            Some(q) => format!("\"{}\" as \"{q}\"", g.name),
            None => format!("\"{}\" ({})", g.name, g.scope.replace('_', " ")),
        })
        .collect();
    if u.okta_groups.len() > TEXT_OKTA_GROUPS {
        named.push(format!(
            "and {} more",
            u.okta_groups.len() - TEXT_OKTA_GROUPS
        ));
    }
    let _ = writeln!(
        out,
        "Okta:       {} group(s), {in_scope} in scope{}{}",
        u.okta_groups.len(),
        if named.is_empty() { "" } else { ": " },
        named.join(", ")
    );
    let _ = writeln!(out, "Document:   {}", e.document);
    if e.acl_groups.is_empty() {
        let _ = writeln!(out, "ACL groups: none");
    } else {
        let _ = writeln!(out, "ACL groups:");
        let width = e
            .acl_groups
            .iter()
            .take(TEXT_ACL_GROUPS)
            .map(|g| g.name.chars().count() + 2)
            .max()
            .unwrap_or(0);
        let yes = |b: bool| if b { "yes" } else { "no " };
        for g in e.acl_groups.iter().take(TEXT_ACL_GROUPS) {
            let write = match (g.last_written, g.confirmed, g.user_in_last_write) {
                (Some(t), Some(confirmed), Some(member)) => format!(
                    "last write {}{}, {} {who}",
                    t.format("%Y-%m-%d %H:%M:%SZ"),
                    if confirmed { "" } else { " (unconfirmed)" },
                    if member { "with" } else { "without" }
                ),
                _ => "not written by q-group-sync".to_owned(),
            };
            let name = format!("\"{}\"", g.name);
            let _ = writeln!(
                out,
                "  {:<5} {name:<width$}  in Okta: {}  in Q: {}  {write}",
                g.list.replace(",", "+"),
                yes(g.in_okta),
                yes(g.in_q),
            );
        }
        if e.acl_groups.len() > TEXT_ACL_GROUPS {
            let _ = writeln!(
                out,
                "  ... and {} more (--output json lists them all)",
                e.acl_groups.len() - TEXT_ACL_GROUPS
            );
        }
    }
    if !e.acl_users.is_empty() {
        let _ = writeln!(out, "ACL users:  {}", e.acl_users.join(", "));
    }
    let access = |b: bool| if b { "access" } else { "no access" };
    let _ = writeln!(
        out,
        "Access:     Q Business says {}; Okta implies {}: {}",
        access(e.has_access),
        access(e.expected_access),
        if e.consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        }
    );
    let _ = writeln!(out, "Verdict:    {}", e.verdict);
    if !e.consistent {
        let _ = writeln!(out, "Cause:      {}", e.cause.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fakes::{MemAccess, MemSource, MemStore};
    use crate::plan::explain::{AccessAnswer, AclCondition, AclList, Cause, DocumentAcl, Relation};

    fn rules() -> Rules {
        Rules::new(&["*".to_owned()], &[], "", &["ACTIVE".to_owned()], true).unwrap()
    }

    fn acl(group: &str) -> DocumentAcl {
        DocumentAcl {
            allowlist: Some(AclList {
                relation: Some(Relation::Or),
                conditions: vec![AclCondition {
                    relation: Some(Relation::Or),
                    users: vec![],
                    groups: vec![group.to_owned()],
                }],
            }),
            deny_list: None,
        }
    }

    async fn run(
        source: &MemSource,
        access: &MemAccess,
        store: &MemStore,
        user: &str,
        document: &str,
    ) -> Result<Explanation, ExplainError> {
        let rules = rules();
        explain(
            source,
            access,
            store,
            Settings {
                rules: &rules,
                id_attribute: "email",
            },
            &Question {
                user,
                document,
                data_source: None,
            },
        )
        .await
    }

    #[tokio::test]
    async fn gathers_okta_the_snapshot_and_q_into_one_verdict() {
        let source =
            MemSource::default()
                .active("alice")
                .group("00geng", "Engineering", &["alice"]);
        let access = MemAccess::default().document(
            "q3-plan",
            AccessAnswer {
                has_access: false,
                document_acl: acl("Engineering"),
                ..AccessAnswer::default()
            },
        );
        let store = MemStore::default();
        let e = run(&source, &access, &store, "alice", "q3-plan")
            .await
            .unwrap();
        assert!(e.expected_access && !e.has_access && !e.consistent);
        assert_eq!(e.cause, Cause::NotYetSynced);
        assert!(
            e.verdict.contains("sync --group Engineering"),
            "{}",
            e.verdict
        );
        // Q was asked about the id q-group-sync writes.
        assert_eq!(
            access.asked(),
            [("alice@x.test".to_owned(), "q3-plan".to_owned())]
        );
        let text = render_text(&e);
        assert!(text.contains("INCONSISTENT"), "{text}");
        assert!(text.lines().count() <= 12, "{text}");
    }

    #[tokio::test]
    async fn unknown_users_and_documents_are_caller_errors() {
        let source = MemSource::default().active("alice");
        let access = MemAccess::default();
        let store = MemStore::default();
        let err = run(&source, &access, &store, "nobody", "q3-plan")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "unknown_user");
        assert!(err.is_caller_error());
        assert!(err.to_string().contains("\"nobody\""), "{err}");
        let err = run(&source, &access, &store, "alice", "missing-doc")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "unknown_document");
        assert!(err.to_string().contains("\"missing-doc\""), "{err}");
    }
}
