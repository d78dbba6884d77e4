//! A group PATCH's two halves: the change to its member list ([`MemberChange`], composed
//! without reading the list, so a store applies it in as many row writes as it names members)
//! and the operations on its other attributes ([`GroupPatch`]).

use std::collections::BTreeSet;

use serde_json::Value;

use super::error::ScimError;
use super::filter::{Filter, Literal, Op};
use super::patch::{Operation, PatchKind, PatchPath};
use super::path::AttrPath;
use super::resource::member_ids;
use super::schema::key_ci;

/// How a group PATCH changes the member list. Composed in order without reading the list, so
/// a store applies it in as many row writes as it names members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add and remove these (an id is in at most one of the two).
    Delta {
        add: BTreeSet<String>,
        remove: BTreeSet<String>,
    },
    /// The members become exactly these.
    Replace(BTreeSet<String>),
}

impl Default for MemberChange {
    fn default() -> Self {
        MemberChange::Delta {
            add: BTreeSet::new(),
            remove: BTreeSet::new(),
        }
    }
}

impl MemberChange {
    pub fn add(&mut self, ids: BTreeSet<String>) {
        match self {
            MemberChange::Delta { add, remove } => {
                for id in ids {
                    remove.remove(&id);
                    add.insert(id);
                }
            }
            MemberChange::Replace(set) => set.extend(ids),
        }
    }

    pub fn remove(&mut self, ids: BTreeSet<String>) {
        match self {
            MemberChange::Delta { add, remove } => {
                for id in ids {
                    add.remove(&id);
                    remove.insert(id);
                }
            }
            MemberChange::Replace(set) => {
                for id in &ids {
                    set.remove(id);
                }
            }
        }
    }

    pub fn replace(&mut self, ids: BTreeSet<String>) {
        *self = MemberChange::Replace(ids);
    }

    /// Whether it changes nothing whatever the members are.
    pub fn is_empty(&self) -> bool {
        matches!(self, MemberChange::Delta { add, remove } if add.is_empty() && remove.is_empty())
    }

    /// The ids that must be existing users (those added or kept by a replace).
    pub fn named_members(&self) -> impl Iterator<Item = &String> {
        match self {
            MemberChange::Delta { add, .. } => add.iter(),
            MemberChange::Replace(set) => set.iter(),
        }
    }

    /// Applies the change to a member set (for stores that hold the set in memory).
    pub fn apply_to(&self, members: &mut BTreeSet<String>) {
        match self {
            MemberChange::Delta { add, remove } => {
                for id in remove {
                    members.remove(id);
                }
                members.extend(add.iter().cloned());
            }
            MemberChange::Replace(set) => *members = set.clone(),
        }
    }
}

/// A group PATCH split in two: operations on the group's other attributes (a small JSON
/// document, changed as for users) and the change to its members.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupPatch {
    pub ops: Vec<Operation>,
    pub members: MemberChange,
}

impl GroupPatch {
    /// Splits the operations of a group PATCH. Member forms: `add`/`replace` of `members`
    /// with a list; `remove` of `members` with a list (Entra), with `members[value eq "id"]`
    /// (Okta; `or` of several such), or alone (all members); `members` inside a path-less
    /// value object.
    pub fn split(ops: Vec<Operation>) -> Result<GroupPatch, ScimError> {
        let mut out = GroupPatch::default();
        for op in ops {
            match &op.path {
                Some(path)
                    if path.attr.urn.is_none()
                        && path.attr.name.eq_ignore_ascii_case("members") =>
                {
                    out.member_op(op.op, path, op.value)?;
                }
                None => {
                    let mut attrs = match op.value {
                        Some(Value::Object(o)) => o,
                        _ => {
                            return Err(ScimError::invalid_value(
                                "without a path the value must be an object",
                            ));
                        }
                    };
                    if let Some(k) = key_ci(&attrs, "members") {
                        let members = attrs.remove(&k).unwrap_or(Value::Null);
                        let path = PatchPath {
                            attr: AttrPath::plain("members"),
                            filter: None,
                            sub: None,
                        };
                        out.member_op(op.op, &path, Some(members))?;
                    }
                    if !attrs.is_empty() {
                        out.ops.push(Operation {
                            op: op.op,
                            path: None,
                            value: Some(Value::Object(attrs)),
                        });
                    }
                }
                Some(_) => out.ops.push(op),
            }
        }
        Ok(out)
    }

    fn member_op(
        &mut self,
        op: PatchKind,
        path: &PatchPath,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        if path.attr.sub.is_some() || path.sub.is_some() {
            return Err(ScimError::invalid_path(
                "members sub-attributes cannot be changed; add or remove the member",
            ));
        }
        match (op, &path.filter) {
            (PatchKind::Add, None) => self.members.add(member_ids(&value.unwrap_or(Value::Null))?),
            (PatchKind::Replace, None) => self
                .members
                .replace(member_ids(&value.unwrap_or(Value::Null))?),
            (PatchKind::Remove, None) => match value {
                Some(v) if !v.is_null() => self.members.remove(member_ids(&v)?),
                _ => self.members.replace(BTreeSet::new()),
            },
            (PatchKind::Remove, Some(f)) => {
                let ids = filter_ids(f).ok_or_else(|| {
                    ScimError::invalid_path(
                        "members can be selected only by value: members[value eq \"id\"]",
                    )
                })?;
                self.members.remove(ids);
            }
            (PatchKind::Add | PatchKind::Replace, Some(_)) => {
                return Err(ScimError::invalid_path(
                    "members[...] selects members to remove; add members with path \"members\"",
                ));
            }
        }
        Ok(())
    }
}

/// The ids of `value eq "id"` (or several joined by `or`).
fn filter_ids(f: &Filter) -> Option<BTreeSet<String>> {
    match f {
        Filter::Compare(p, Op::Eq, Literal::Str(id)) if p.is("value") => {
            Some(BTreeSet::from([id.trim().to_owned()]))
        }
        Filter::Or(a, b) => {
            let mut ids = filter_ids(a)?;
            ids.extend(filter_ids(b)?);
            Some(ids)
        }
        _ => None,
    }
}
