//! Listing (RFC 7644 §3.4.2): query parameters, `attributes`/`excludedAttributes`
//! projection, and the `ListResponse`.

use serde_json::{Map, Value, json};

use super::URN_LIST;
use super::error::ScimError;
use super::filter::Filter;
use super::path::AttrPath;
use super::schema::{ResourceKind, get_ci, key_ci};

/// Most resources in one page (`filter.maxResults` in `/ServiceProviderConfig`); a larger
/// `count` is cut to it.
pub const MAX_RESULTS: usize = 1000;
/// Resources in a page when the request gives no `count`.
pub const DEFAULT_COUNT: usize = 100;

/// A list query as the stores take it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// 1-based.
    pub start_index: usize,
    /// At most [`MAX_RESULTS`]; 0 asks only for the total.
    pub count: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            filter: None,
            start_index: 1,
            count: DEFAULT_COUNT,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// How many resources match in all.
    pub total: usize,
    pub items: Vec<T>,
}

/// The query parameters of a GET: `filter`, `startIndex`, `count`, `attributes`,
/// `excludedAttributes` (names in any case). Unknown parameters (`sortBy`, ...) are ignored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryParams {
    pub list: ListQuery,
    pub projection: Projection,
}

impl QueryParams {
    /// Parses `pairs` (already percent-decoded).
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        kind: ResourceKind,
    ) -> Result<QueryParams, ScimError> {
        let mut out = QueryParams::default();
        for (name, value) in pairs {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("filter") {
                if !value.trim().is_empty() {
                    out.list.filter = Some(Filter::parse(value, kind)?);
                }
            } else if is("startIndex") {
                // RFC 7644 §3.4.2.4: below 1 is 1.
                out.list.start_index = integer("startIndex", value)?.max(1) as usize;
            } else if is("count") {
                // Negative is 0; more than the maximum is the maximum.
                out.list.count = integer("count", value)?.clamp(0, MAX_RESULTS as i64) as usize;
            } else if is("attributes") {
                out.projection.attributes = Some(paths("attributes", value, kind)?);
            } else if is("excludedAttributes") {
                out.projection.excluded = paths("excludedAttributes", value, kind)?;
            }
        }
        Ok(out)
    }
}

fn integer(name: &str, value: &str) -> Result<i64, ScimError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
}

fn paths(name: &str, value: &str, kind: ResourceKind) -> Result<Vec<AttrPath>, ScimError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            AttrPath::parse(s, kind).map_err(|e| ScimError::invalid_value(format!("{name}: {e}")))
        })
        .collect()
}

/// `attributes` / `excludedAttributes`. `schemas`, `id` and `meta` are always returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    pub attributes: Option<Vec<AttrPath>>,
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// Whether the response includes the core attribute `name` (so the stores can skip
    /// reading group members when the IdP asks without them, as Entra does).
    pub fn wants(&self, name: &str) -> bool {
        let named = |p: &AttrPath| p.urn.is_none() && p.name.eq_ignore_ascii_case(name);
        match &self.attributes {
            Some(list) => list.iter().any(named),
            None => !self.excluded.iter().any(|p| named(p) && p.sub.is_none()),
        }
    }

    /// `resource` with only the attributes asked for.
    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(mut obj) = resource else {
            return resource;
        };
        const ALWAYS: [&str; 3] = ["schemas", "id", "meta"];
        if let Some(list) = &self.attributes {
            let mut out = Map::new();
            for k in ALWAYS {
                if let Some(v) = obj.remove(k) {
                    out.insert(k.into(), v);
                }
            }
            for p in list {
                copy(&obj, &mut out, p);
            }
            return Value::Object(out);
        }
        for p in &self.excluded {
            if p.urn.is_none()
                && p.sub.is_none()
                && ALWAYS.iter().any(|a| p.name.eq_ignore_ascii_case(a))
            {
                continue;
            }
            remove(&mut obj, p);
        }
        Value::Object(obj)
    }
}

/// Copies the attribute (or sub-attribute) `p` from `from` into `to`.
fn copy(from: &Map<String, Value>, to: &mut Map<String, Value>, p: &AttrPath) {
    let (src, dst) = match &p.urn {
        Some(urn) => {
            let Some(Value::Object(src)) = get_ci(from, urn) else {
                return;
            };
            let key = key_ci(from, urn).unwrap_or_else(|| urn.clone());
            if p.name.is_empty() {
                to.insert(key, Value::Object(src.clone()));
                return;
            }
            let dst = to.entry(key).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(dst) = dst else {
                return;
            };
            (src, dst)
        }
        None => (from, to),
    };
    let Some(key) = key_ci(src, &p.name) else {
        return;
    };
    let Some(v) = src.get(&key) else {
        return;
    };
    let Some(sub) = &p.sub else {
        dst.insert(key, v.clone());
        return;
    };
    let pick = |o: &Map<String, Value>| -> Map<String, Value> {
        key_ci(o, sub)
            .and_then(|k| o.get(&k).map(|v| (k, v.clone())))
            .into_iter()
            .collect()
    };
    let picked = match v {
        Value::Object(o) => {
            let mut merged = match dst.remove(&key) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            merged.extend(pick(o));
            Value::Object(merged)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|o| Value::Object(pick(o)))
                .collect(),
        ),
        _ => return,
    };
    dst.insert(key, picked);
}

fn remove(obj: &mut Map<String, Value>, p: &AttrPath) {
    let container = match &p.urn {
        Some(urn) => {
            let Some(k) = key_ci(obj, urn) else {
                return;
            };
            if p.name.is_empty() {
                obj.remove(&k);
                return;
            }
            match obj.get_mut(&k) {
                Some(Value::Object(o)) => o,
                _ => return,
            }
        }
        None => obj,
    };
    let Some(key) = key_ci(container, &p.name) else {
        return;
    };
    match (&p.sub, container.get_mut(&key)) {
        (None, _) => {
            container.remove(&key);
        }
        (Some(sub), Some(Value::Object(o))) => {
            if let Some(k) = key_ci(o, sub) {
                o.remove(&k);
            }
        }
        (Some(sub), Some(Value::Array(items))) => {
            for i in items.iter_mut() {
                if let Value::Object(o) = i
                    && let Some(k) = key_ci(o, sub)
                {
                    o.remove(&k);
                }
            }
        }
        _ => {}
    }
}

/// A `ListResponse`. With `count` 0 it carries only the totals (RFC 7644 §3.4.2.4).
pub fn list_response(
    total: usize,
    start_index: usize,
    count: usize,
    resources: Vec<Value>,
) -> Value {
    let mut body = json!({
        "schemas": [URN_LIST],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
    });
    if count > 0
        && let Some(o) = body.as_object_mut()
    {
        o.insert("Resources".into(), Value::Array(resources));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> Result<QueryParams, ScimError> {
        QueryParams::parse(q.iter().copied(), ResourceKind::User)
    }

    #[test]
    fn paging_parameters_follow_rfc_7644() {
        let p = params(&[("startIndex", "0"), ("count", "-5")]).expect("valid");
        assert_eq!((p.list.start_index, p.list.count), (1, 0));
        let p = params(&[("STARTINDEX", "3"), ("Count", "5000")]).expect("valid");
        assert_eq!((p.list.start_index, p.list.count), (3, MAX_RESULTS));
        let p = params(&[]).expect("valid");
        assert_eq!((p.list.start_index, p.list.count), (1, DEFAULT_COUNT));
        assert!(params(&[("count", "ten")]).is_err());
        let p = params(&[("filter", "userName eq \"a\""), ("sortBy", "userName")]).expect("valid");
        assert!(p.list.filter.is_some());
        assert!(params(&[("filter", "userName eq")]).is_err());
    }

    #[test]
    fn projections_keep_id_schemas_and_meta() {
        let r = json!({
            "schemas": ["s"], "id": "1", "meta": {"resourceType": "User"},
            "userName": "a", "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D", "division": "V"}
        });
        let p = params(&[("attributes", "userName,name.givenName,emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")])
            .expect("valid");
        assert_eq!(
            p.projection.apply(r.clone()),
            json!({
                "schemas": ["s"], "id": "1", "meta": {"resourceType": "User"},
                "userName": "a", "name": {"givenName": "A"}, "emails": [{"value": "a@x"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}
            })
        );
        let p = params(&[(
            "excludedAttributes",
            "name,emails.type,id,Urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        )])
        .expect("valid");
        assert_eq!(
            p.projection.apply(r),
            json!({
                "schemas": ["s"], "id": "1", "meta": {"resourceType": "User"},
                "userName": "a", "emails": [{"value": "a@x"}]
            })
        );
        let g = QueryParams::parse([("excludedAttributes", "members")], ResourceKind::Group)
            .expect("valid");
        assert!(!g.projection.wants("members"));
        let g = QueryParams::parse([("attributes", "displayName")], ResourceKind::Group)
            .expect("valid");
        assert!(!g.projection.wants("members"));
        assert!(QueryParams::default().projection.wants("members"));
    }

    #[test]
    fn count_zero_returns_only_the_totals() {
        let body = list_response(42, 1, 0, vec![]);
        assert_eq!(body["totalResults"], 42);
        assert!(body.get("Resources").is_none());
        let body = list_response(0, 1, 10, vec![]);
        assert_eq!(body["Resources"], json!([]));
        assert_eq!(body["itemsPerPage"], 0);
    }
}
