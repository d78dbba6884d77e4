//! `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7644 §4): what this
//! service provider does, said truthfully.

use serde_json::{Value, json};

use super::list::{MAX_RESULTS, list_response};
use super::schema::{ENTERPRISE_ATTRS, EXTERNAL_ID, ResourceKind, render_schema};
use super::{URN_ENTERPRISE_USER, URN_GROUP, URN_USER};

/// `/ServiceProviderConfig`.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The secret token configured in q-group-sync (scim.token_file), sent as \"Authorization: Bearer <token>\" on every request, discovery included.",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

/// One `/ResourceTypes` entry, by id (`User`, `Group`; any case).
pub fn resource_type(id: &str, base: &str) -> Option<Value> {
    let kind = [ResourceKind::User, ResourceKind::Group]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(id))?;
    let extensions: Vec<Value> = kind
        .extensions()
        .iter()
        .map(|(urn, _)| json!({"schema": urn, "required": false}))
        .collect();
    let name = kind.as_str();
    let mut v = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": name,
        "name": name,
        "endpoint": kind.endpoint(),
        "description": match kind {
            ResourceKind::User => "A person; their primary email (or userName) is their Q Business user id.",
            ResourceKind::Group => "A group; its displayName is the Q Business group name.",
        },
        "schema": kind.core_urn(),
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{name}"),
        },
    });
    if !extensions.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.insert("schemaExtensions".into(), Value::Array(extensions));
    }
    Some(v)
}

/// `/ResourceTypes`.
pub fn resource_types(base: &str) -> Value {
    let all: Vec<Value> = ["User", "Group"]
        .iter()
        .filter_map(|id| resource_type(id, base))
        .collect();
    list_response(all.len(), 1, all.len(), all)
}

/// One `/Schemas` entry, by URN (any case).
pub fn schema(id: &str, base: &str) -> Option<Value> {
    let with_external_id = |attrs: &[super::schema::AttrDef]| {
        let mut v = attrs.to_vec();
        v.push(EXTERNAL_ID);
        v
    };
    if id.eq_ignore_ascii_case(URN_USER) {
        Some(render_schema(
            URN_USER,
            "User",
            "User Account",
            &with_external_id(ResourceKind::User.core_attrs()),
            base,
        ))
    } else if id.eq_ignore_ascii_case(URN_GROUP) {
        Some(render_schema(
            URN_GROUP,
            "Group",
            "Group",
            &with_external_id(ResourceKind::Group.core_attrs()),
            base,
        ))
    } else if id.eq_ignore_ascii_case(URN_ENTERPRISE_USER) {
        Some(render_schema(
            URN_ENTERPRISE_USER,
            "EnterpriseUser",
            "Enterprise User",
            ENTERPRISE_ATTRS,
            base,
        ))
    } else {
        None
    }
}

/// `/Schemas`.
pub fn schemas(base: &str) -> Value {
    let all: Vec<Value> = [URN_USER, URN_GROUP, URN_ENTERPRISE_USER]
        .iter()
        .filter_map(|id| schema(id, base))
        .collect();
    list_response(all.len(), 1, all.len(), all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_is_truthful_and_complete() {
        let c = service_provider_config("https://h/scim/v2");
        assert_eq!(c["patch"]["supported"], true);
        assert_eq!(c["bulk"]["supported"], false);
        assert_eq!(c["filter"]["maxResults"], MAX_RESULTS);
        assert_eq!(c["authenticationSchemes"][0]["type"], "oauthbearertoken");
        let types = resource_types("https://h/scim/v2");
        assert_eq!(types["totalResults"], 2);
        assert_eq!(
            types["Resources"][0]["schemaExtensions"][0]["schema"],
            URN_ENTERPRISE_USER
        );
        assert!(resource_type("group", "b").is_some());
        assert!(resource_type("Widget", "b").is_none());
        let s = schemas("https://h/scim/v2");
        assert_eq!(s["totalResults"], 3);
        let user = &s["Resources"][0];
        let attrs = user["attributes"].as_array().expect("attributes");
        let user_name = attrs
            .iter()
            .find(|a| a["name"] == "userName")
            .expect("userName");
        assert_eq!(user_name["caseExact"], false);
        assert_eq!(user_name["uniqueness"], "server");
        let password = attrs
            .iter()
            .find(|a| a["name"] == "password")
            .expect("password");
        assert_eq!(password["returned"], "never");
        assert!(
            attrs
                .iter()
                .any(|a| a["name"] == "externalId" && a["caseExact"] == true)
        );
        assert!(schema("urn:ietf:params:scim:schemas:core:2.0:group", "b").is_some());
    }
}
