//! SCIM error responses (RFC 7644 §3.12): one [`ScimError`] with its HTTP status.

use serde_json::{Value, json};

use super::URN_ERROR;

/// `scimType` of a 400 (or 409) error, RFC 7644 §3.12 table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }
}

impl std::fmt::Display for ScimType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM error: the HTTP status, the optional `scimType` and a `detail` for the IdP's admin.
/// `detail` never holds a token or a request body, only attribute names, ids and positions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}{}: {detail}", scim_type.map(|t| format!(" {t}")).unwrap_or_default())]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> ScimError {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// 400 with a `scimType`.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some(scim_type), detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::InvalidSyntax, detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::InvalidValue, detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::InvalidFilter, detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::InvalidPath, detail)
    }

    pub fn no_target(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::NoTarget, detail)
    }

    pub fn mutability(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::Mutability, detail)
    }

    /// 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> ScimError {
        ScimError::new(409, Some(ScimType::Uniqueness), detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ScimError {
        ScimError::new(404, None, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ScimError {
        ScimError::new(401, None, detail)
    }

    pub fn too_large(detail: impl Into<String>) -> ScimError {
        ScimError::new(413, None, detail)
    }

    pub fn method_not_allowed(detail: impl Into<String>) -> ScimError {
        ScimError::new(405, None, detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> ScimError {
        ScimError::new(415, None, detail)
    }

    pub fn not_implemented(detail: impl Into<String>) -> ScimError {
        ScimError::new(501, None, detail)
    }

    /// 500: the change was not stored.
    pub fn internal(detail: impl Into<String>) -> ScimError {
        ScimError::new(500, None, detail)
    }

    /// The response body: `status` is a string, as RFC 7644 §3.12 shows it.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "schemas": [URN_ERROR],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".into(), Value::String(t.as_str().into()));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_a_string_status_and_the_scim_type() {
        let e = ScimError::uniqueness("userName \"ana@x.test\" is taken");
        assert_eq!(
            e.body(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "409",
                "scimType": "uniqueness",
                "detail": "userName \"ana@x.test\" is taken",
            })
        );
        let body = ScimError::not_found("no User with id \"x\"").body();
        assert_eq!(body["status"], "404");
        assert!(body.get("scimType").is_none());
    }
}
