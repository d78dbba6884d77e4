//! PATCH (RFC 7644 §3.5.2) in every form the IdPs send: op names in any case (Entra's `Add`,
//! `Replace`, `Remove`); paths `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`, with a
//! schema URN in front or not; no path with an object value (Okta renames and deactivates that
//! way; Entra sends keys that are themselves paths, `"name.givenName"`); `members` removed by
//! a filter (Okta) or by a value array (Entra), in [`super::members`]. A patch applies all its operations or none:
//! they change a copy, and only a copy that is valid as a whole is returned.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{Filter, Literal, Op};
use super::path::AttrPath;
use super::resource::{GroupAttrs, ScimGroup, ScimUser, UserAttrs, canonical_value};
use super::schema::{self, AttrDef, Mutability, ResourceKind, get_ci, key_ci};

/// Most operations in one PATCH.
pub const MAX_OPERATIONS: usize = 1000;

/// `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Add,
    Remove,
    Replace,
}

/// A PATCH `path`: an attribute, an optional value filter, an optional sub-attribute after it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute; its `sub` is set only for `attr.sub` (no filter).
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// `attr[filter].sub`.
    pub sub: Option<String>,
}

impl PatchPath {
    /// Parses a path; an error is 400 `invalidPath`.
    pub fn parse(text: &str, kind: ResourceKind) -> Result<PatchPath, ScimError> {
        let bad = |why: String| ScimError::invalid_path(format!("path {text:?}: {why}"));
        let Some(open) = text.find('[') else {
            return Ok(PatchPath {
                attr: AttrPath::parse(text, kind).map_err(bad)?,
                filter: None,
                sub: None,
            });
        };
        let attr = AttrPath::parse(&text[..open], kind).map_err(bad)?;
        if attr.sub.is_some() || attr.name.is_empty() {
            return Err(bad("a filter must follow an attribute name".into()));
        }
        let close = closing_bracket(text, open).ok_or_else(|| bad("no closing \"]\"".into()))?;
        let filter = Filter::parse(&text[open + 1..close], kind)
            .map_err(|e| bad(format!("its filter: {}", e.detail)))?;
        let rest = text[close + 1..].trim();
        let sub = match rest {
            "" => None,
            r => {
                let s = r
                    .strip_prefix('.')
                    .ok_or_else(|| bad(format!("unexpected {r:?} after \"]\"")))?;
                AttrPath::parse(s, kind).map_err(bad)?;
                Some(s.to_owned())
            }
        };
        Ok(PatchPath {
            attr,
            filter: Some(filter),
            sub,
        })
    }
}

/// The index of the `]` closing the `[` at `open`, skipping quoted strings.
fn closing_bracket(text: &str, open: usize) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices().skip_while(|(i, _)| *i <= open) {
        match c {
            '\\' if in_string && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_string = !in_string,
            ']' if !in_string => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

/// The object holding an attribute: the resource itself, or its extension object (made if
/// missing).
fn container_of<'m>(
    obj: &'m mut Map<String, Value>,
    urn: Option<&str>,
) -> Result<&'m mut Map<String, Value>, ScimError> {
    let Some(urn) = urn else {
        return Ok(obj);
    };
    let key = key_ci(obj, urn).unwrap_or_else(|| urn.to_owned());
    let entry = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry
        .as_object_mut()
        .ok_or_else(|| ScimError::internal("extension is not an object"))
}

/// Drops `key` when its value became an empty array or object (an attribute with no values
/// left, or an extension object with no attributes).
fn drop_if_empty(container: &mut Map<String, Value>, key: &str) {
    if container.get(key).is_some_and(|v| {
        v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(Map::is_empty)
    }) {
        container.remove(key);
    }
}

/// One operation of a PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: PatchKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Parses a PATCH body (`urn:ietf:params:scim:api:messages:2.0:PatchOp`). `schemas` is not
/// checked; `Operations` (any case) is required.
pub fn parse_patch(body: &Value, kind: ResourceKind) -> Result<Vec<Operation>, ScimError> {
    let obj = body.as_object().ok_or_else(|| {
        ScimError::invalid_syntax("the body must be a JSON object (a PatchOp message)")
    })?;
    let ops = match get_ci(obj, "Operations") {
        Some(Value::Array(ops)) => ops,
        Some(_) => return Err(ScimError::invalid_syntax("Operations must be an array")),
        None => {
            return Err(ScimError::invalid_syntax(
                "a PatchOp message needs Operations",
            ));
        }
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            400,
            Some(super::ScimType::TooMany),
            format!("more than {MAX_OPERATIONS} operations in one PATCH"),
        ));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(i, op, kind))
        .collect()
}

fn parse_operation(i: usize, op: &Value, kind: ResourceKind) -> Result<Operation, ScimError> {
    let o = op
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax(format!("Operations[{i}] must be an object")))?;
    let name = get_ci(o, "op").and_then(Value::as_str).ok_or_else(|| {
        ScimError::invalid_syntax(format!("Operations[{i}].op must be add, remove or replace"))
    })?;
    let kind_of_op = match name.trim().to_ascii_lowercase().as_str() {
        "add" => PatchKind::Add,
        "remove" => PatchKind::Remove,
        "replace" => PatchKind::Replace,
        other => {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{i}].op {other:?} is not add, remove or replace"
            )));
        }
    };
    let path = match get_ci(o, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(PatchPath::parse(p.trim(), kind)?),
        Some(_) => {
            return Err(ScimError::invalid_path(format!(
                "Operations[{i}].path must be a string"
            )));
        }
    };
    let value = get_ci(o, "value").cloned();
    match (kind_of_op, &path, &value) {
        (PatchKind::Remove, None, _) => Err(ScimError::no_target(format!(
            "Operations[{i}]: remove needs a path"
        ))),
        (PatchKind::Add | PatchKind::Replace, None, v)
            if !v.as_ref().is_some_and(Value::is_object) =>
        {
            Err(ScimError::invalid_value(format!(
                "Operations[{i}]: without a path the value must be an object of attributes"
            )))
        }
        (PatchKind::Add | PatchKind::Replace, Some(_), None) => Err(ScimError::invalid_value(
            format!("Operations[{i}]: {name} needs a value"),
        )),
        _ => Ok(Operation {
            op: kind_of_op,
            path,
            value,
        }),
    }
}

/// A user after `ops`, checked as a whole (a PUT of the result would be accepted).
pub fn patch_user(current: &ScimUser, ops: &[Operation]) -> Result<UserAttrs, ScimError> {
    let mut json = current.attrs.json().clone();
    let ctx = Ctx {
        kind: ResourceKind::User,
        id: &current.id,
    };
    for op in ops {
        ctx.apply(&mut json, op.op, op.path.as_ref(), op.value.clone())?;
    }
    UserAttrs::from_json(json)
}

/// A group's attributes (not its members) after `ops`, checked as a whole.
pub fn patch_group_attrs(current: &ScimGroup, ops: &[Operation]) -> Result<GroupAttrs, ScimError> {
    let mut json = current.attrs.json().clone();
    let ctx = Ctx {
        kind: ResourceKind::Group,
        id: &current.id,
    };
    for op in ops {
        ctx.apply(&mut json, op.op, op.path.as_ref(), op.value.clone())?;
    }
    GroupAttrs::from_json(json)
}

/// Applies operations to a resource's stored attributes.
struct Ctx<'a> {
    kind: ResourceKind,
    id: &'a str,
}

impl Ctx<'_> {
    fn apply(
        &self,
        obj: &mut Map<String, Value>,
        op: PatchKind,
        path: Option<&PatchPath>,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        let Some(path) = path else {
            return self.apply_object(obj, op, value);
        };
        let attr = &path.attr;
        if attr.urn.is_some() && attr.name.is_empty() {
            return self.apply_extension(obj, attr, op, value);
        }
        if attr.urn.is_none() && self.fixed_core_attr(path, op, value.as_ref())? {
            return Ok(());
        }
        let def = self.kind.attr(attr.urn.as_deref(), &attr.name);
        if let Some(d) = def {
            match d.mutability {
                Mutability::ReadOnly => {
                    return Err(ScimError::mutability(format!("{} is read-only", d.name)));
                }
                // Never kept: a password change is accepted and dropped.
                Mutability::WriteOnly => return Ok(()),
                Mutability::ReadWrite | Mutability::Immutable => {}
            }
        }
        let name = def.map_or(attr.name.as_str(), |d| d.name);
        let container = container_of(obj, attr.urn.as_deref())?;
        let key = key_ci(container, name).unwrap_or_else(|| name.to_owned());
        let label = attr.to_string();
        let result = match (&path.filter, &attr.sub) {
            (None, None) => self.whole(container, &key, def, op, value, &label),
            (None, Some(sub)) => self.sub_attr(container, &key, def, sub, op, value, &label),
            (Some(filter), None) => self.selected(
                container,
                &key,
                def,
                filter,
                path.sub.as_deref(),
                op,
                value,
                &label,
            ),
            (Some(_), Some(_)) => Err(ScimError::invalid_path(format!(
                "{label}: a sub-attribute before a filter"
            ))),
        };
        drop_if_empty(container, &key);
        if let Some(urn) = &attr.urn
            && let Some(k) = key_ci(obj, urn)
        {
            drop_if_empty(obj, &k);
        }
        result
    }

    /// No path: each key of the value is an attribute (or, from Entra, a path).
    fn apply_object(
        &self,
        obj: &mut Map<String, Value>,
        op: PatchKind,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        let Some(Value::Object(attrs)) = value else {
            return Err(ScimError::invalid_value(
                "without a path the value must be an object of attributes",
            ));
        };
        for (k, v) in attrs {
            if k.eq_ignore_ascii_case("schemas") || k.eq_ignore_ascii_case("meta") {
                continue;
            }
            if k.eq_ignore_ascii_case(self.kind.core_urn()) {
                self.apply(obj, op, None, Some(v))?;
                continue;
            }
            let path = PatchPath::parse(&k, self.kind)?;
            self.apply(obj, op, Some(&path), Some(v))?;
        }
        Ok(())
    }

    /// A path naming an extension object itself: its attributes one by one.
    fn apply_extension(
        &self,
        obj: &mut Map<String, Value>,
        attr: &AttrPath,
        op: PatchKind,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        match (op, value) {
            (PatchKind::Remove, _) => {
                if let Some(k) = attr.urn.as_deref().and_then(|u| key_ci(obj, u)) {
                    obj.remove(&k);
                }
                Ok(())
            }
            (_, Some(Value::Object(attrs))) => {
                for (k, v) in attrs {
                    let p = PatchPath {
                        attr: AttrPath {
                            urn: attr.urn.clone(),
                            name: k,
                            sub: None,
                        },
                        filter: None,
                        sub: None,
                    };
                    self.apply(obj, op, Some(&p), Some(v))?;
                }
                Ok(())
            }
            _ => Err(ScimError::invalid_value(format!(
                "{attr}: the value must be an object of attributes"
            ))),
        }
    }

    /// `id`, `meta` and `schemas`, which no PATCH changes: `Ok(true)` when the operation is
    /// no change (Okta sends the same id with a rename), an error when it would change one,
    /// `Ok(false)` for every other attribute.
    fn fixed_core_attr(
        &self,
        path: &PatchPath,
        op: PatchKind,
        value: Option<&Value>,
    ) -> Result<bool, ScimError> {
        let attr = &path.attr;
        if attr.name.eq_ignore_ascii_case("id") {
            return match (value, &path.filter, &attr.sub) {
                (Some(Value::String(v)), None, None) if v == self.id && op != PatchKind::Remove => {
                    Ok(true)
                }
                _ => Err(ScimError::mutability("id cannot be changed")),
            };
        }
        if attr.name.eq_ignore_ascii_case("meta") || attr.name.eq_ignore_ascii_case("schemas") {
            return Err(ScimError::mutability(format!("{} is read-only", attr.name)));
        }
        Ok(false)
    }

    /// `attr` as a whole.
    fn whole(
        &self,
        container: &mut Map<String, Value>,
        key: &str,
        def: Option<&AttrDef>,
        op: PatchKind,
        value: Option<Value>,
        label: &str,
    ) -> Result<(), ScimError> {
        let value = match value {
            Some(v) => canonical(def, v, label)?,
            None => None,
        };
        let multi = def.is_some_and(|d| d.multi) || container.get(key).is_some_and(Value::is_array);
        match op {
            PatchKind::Remove => {
                match (value, container.get_mut(key)) {
                    // Entra: remove these values from a multi-valued attribute.
                    (Some(Value::Array(gone)), Some(Value::Array(items))) if multi => {
                        items.retain(|i| !gone.iter().any(|g| same_value(i, g)));
                    }
                    _ => {
                        container.remove(key);
                    }
                }
                Ok(())
            }
            PatchKind::Add => {
                let Some(v) = value else {
                    return Ok(());
                };
                match (container.get_mut(key), v) {
                    (Some(Value::Array(items)), Value::Array(new)) => {
                        for n in new {
                            if !items.iter().any(|i| i == &n) {
                                items.push(n);
                            }
                        }
                    }
                    (Some(Value::Object(have)), Value::Object(new)) if !multi => {
                        have.extend(new);
                    }
                    (_, v) => {
                        container.insert(key.to_owned(), v);
                    }
                }
                Ok(())
            }
            PatchKind::Replace => {
                match (container.get_mut(key), value) {
                    (_, None) => {
                        container.remove(key);
                    }
                    // A complex attribute: the sub-attributes given replace, the others stay.
                    (Some(Value::Object(have)), Some(Value::Object(new))) if !multi => {
                        have.extend(new);
                    }
                    (_, Some(v)) => {
                        container.insert(key.to_owned(), v);
                    }
                }
                Ok(())
            }
        }
    }

    /// `attr.sub` (no filter): on a multi-valued attribute, every value's sub-attribute.
    #[allow(clippy::too_many_arguments)]
    fn sub_attr(
        &self,
        container: &mut Map<String, Value>,
        key: &str,
        def: Option<&AttrDef>,
        sub: &str,
        op: PatchKind,
        value: Option<Value>,
        label: &str,
    ) -> Result<(), ScimError> {
        let sub_def = def.and_then(|d| schema::find(d.sub, sub));
        let sub_key = sub_def.map_or(sub, |d| d.name).to_owned();
        let value = match (op, value) {
            (PatchKind::Remove, _) | (_, None) => None,
            (_, Some(v)) => canonical(sub_def, v, label)?,
        };
        let multi = def.is_some_and(|d| d.multi);
        let entry = container.entry(key.to_owned()).or_insert_with(|| {
            if multi {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        });
        match entry {
            Value::Array(items) => {
                if items.is_empty() && op != PatchKind::Remove {
                    items.push(Value::Object(Map::new()));
                }
                for item in items.iter_mut() {
                    if let Value::Object(o) = item {
                        set_sub(o, &sub_key, value.clone());
                    }
                }
                items.retain(|i| !i.as_object().is_some_and(Map::is_empty));
            }
            Value::Object(o) => set_sub(o, &sub_key, value),
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "{label}: {key} has no sub-attributes"
                )));
            }
        }
        Ok(())
    }

    /// `attr[filter]` or `attr[filter].sub`: the values the filter selects.
    #[allow(clippy::too_many_arguments)]
    fn selected(
        &self,
        container: &mut Map<String, Value>,
        key: &str,
        def: Option<&AttrDef>,
        filter: &Filter,
        sub: Option<&str>,
        op: PatchKind,
        value: Option<Value>,
        label: &str,
    ) -> Result<(), ScimError> {
        let label = match sub {
            Some(s) => format!("{label}[...].{s}"),
            None => format!("{label}[...]"),
        };
        let element_def = def.map(|d| AttrDef { multi: false, ..*d });
        let sub_def = sub.and_then(|s| def.and_then(|d| schema::find(d.sub, s)));
        let value = match (op, value) {
            (PatchKind::Remove, _) | (_, None) => None,
            (_, Some(v)) => match sub {
                Some(_) => canonical(sub_def, v, &label)?,
                None => canonical(element_def.as_ref(), v, &label)?,
            },
        };
        let items = match container.get_mut(key) {
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(ScimError::invalid_path(format!(
                    "{label}: {key} is not multi-valued"
                )));
            }
            None if op == PatchKind::Remove => return Ok(()),
            None => {
                container.insert(key.to_owned(), Value::Array(Vec::new()));
                match container.get_mut(key) {
                    Some(Value::Array(items)) => items,
                    _ => return Err(ScimError::internal("array just inserted")),
                }
            }
        };
        let selects = |item: &Value| {
            let mut probe = Map::new();
            probe.insert(key.to_owned(), Value::Array(vec![item.clone()]));
            Filter::Has(AttrPath::plain(key), Box::new(filter.clone()))
                .matches(&Value::Object(probe), self.kind)
        };
        let hits: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| selects(i))
            .map(|(n, _)| n)
            .collect();
        match (op, sub) {
            (PatchKind::Remove, None) => {
                let mut n = 0;
                items.retain(|_| {
                    let keep = !hits.contains(&n);
                    n += 1;
                    keep
                });
            }
            (PatchKind::Remove, Some(s)) => {
                let s = sub_def.map_or(s, |d| d.name);
                for &n in &hits {
                    if let Some(Value::Object(o)) = items.get_mut(n) {
                        o.remove(s);
                    }
                }
                items.retain(|i| !i.as_object().is_some_and(Map::is_empty));
            }
            (_, Some(s)) => {
                let s = sub_def.map_or(s, |d| d.name);
                if hits.is_empty() {
                    // Entra sets `emails[type eq "work"].value` on a user without a work
                    // email: a value is created from the filter's equalities.
                    let mut new = equalities(filter).ok_or_else(|| {
                        ScimError::no_target(format!("{label}: no value matches the filter"))
                    })?;
                    set_sub(&mut new, s, value);
                    if !new.is_empty() {
                        items.push(Value::Object(new));
                    }
                } else {
                    for &n in &hits {
                        if let Some(Value::Object(o)) = items.get_mut(n) {
                            set_sub(o, s, value.clone());
                        }
                    }
                }
            }
            (_, None) => {
                let Some(Value::Object(new)) = value else {
                    return Err(ScimError::invalid_value(format!(
                        "{label}: the value must be an object"
                    )));
                };
                if hits.is_empty() {
                    return Err(ScimError::no_target(format!(
                        "{label}: no value matches the filter"
                    )));
                }
                for &n in &hits {
                    match (op, items.get_mut(n)) {
                        (PatchKind::Add, Some(Value::Object(o))) => o.extend(new.clone()),
                        (_, Some(slot)) => *slot = Value::Object(new.clone()),
                        (_, None) => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// A value canonicalised for `def` (as sent when the attribute is unknown).
fn canonical(def: Option<&AttrDef>, v: Value, label: &str) -> Result<Option<Value>, ScimError> {
    match def {
        Some(d) => canonical_value(d, v, label),
        None if v.is_null() => Ok(None),
        None => Ok(Some(v)),
    }
}

fn set_sub(o: &mut Map<String, Value>, sub: &str, value: Option<Value>) {
    let key = key_ci(o, sub).unwrap_or_else(|| sub.to_owned());
    match value {
        Some(v) => {
            o.insert(key, v);
        }
        None => {
            o.remove(&key);
        }
    }
}

/// Values are the same when both have the same `value` (case-insensitively), or are equal.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => match (get_ci(x, "value"), get_ci(y, "value")) {
            (Some(Value::String(p)), Some(Value::String(q))) => p.eq_ignore_ascii_case(q),
            _ => a == b,
        },
        _ => a == b,
    }
}

/// `a eq x and b eq y` as `{"a": x, "b": y}`; `None` for any other filter.
fn equalities(f: &Filter) -> Option<Map<String, Value>> {
    match f {
        Filter::Compare(p, Op::Eq, lit) if p.urn.is_none() && p.sub.is_none() => {
            let v = match lit {
                Literal::Str(s) => Value::String(s.clone()),
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Num(n) => serde_json::Number::from_f64(*n).map(Value::Number)?,
                Literal::Null => return None,
            };
            let mut m = Map::new();
            m.insert(p.name.clone(), v);
            Some(m)
        }
        Filter::And(a, b) => {
            let mut m = equalities(a)?;
            m.extend(equalities(b)?);
            Some(m)
        }
        _ => None,
    }
}
