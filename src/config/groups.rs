//! `[groups]`: which Okta groups are in scope, and the Q Business names they get.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[groups]`: which Okta groups are in scope, and their Q names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// Glob patterns on the Okta group name; a group must match one.
    pub include: Vec<String>,
    /// Glob patterns on the Okta group name; a matching group is out of scope.
    pub exclude: Vec<String>,
    /// Prefix for the Q group name (`<prefix><okta name>`).
    pub name_prefix: Option<String>,
    /// Let `reconcile --adopt` take over Q groups that only match `name_prefix` (not an Okta
    /// group's name), e.g. after a lost snapshot. Off by default.
    pub adopt_prefixed: bool,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            include: vec!["*".to_owned()],
            exclude: Vec::new(),
            name_prefix: None,
            adopt_prefixed: false,
        }
    }
}

impl GroupsConfig {
    /// Every pattern is a glob; the prefix is a valid start of a Q Business group name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, patterns) in [
            ("groups.include", &self.include),
            ("groups.exclude", &self.exclude),
        ] {
            for p in patterns.iter() {
                globset::Glob::new(p)
                    .map_err(|e| ConfigError::key(key, format!("bad glob {p:?}: {e}")))?;
            }
        }
        if let Some(prefix) = &self.name_prefix
            && let Err(problem) = crate::model::check_q_id(prefix)
            && problem != crate::model::IdProblem::Empty
        {
            return Err(ConfigError::key("groups.name_prefix", problem));
        }
        Ok(())
    }
}
