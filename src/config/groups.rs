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
    /// Q groups made outside q-group-sync that a sync may write over (and from then on
    /// manage) when an in-scope Okta group has their Q name: exact Q names, or prefixes
    /// ending in `*`. Empty by default: such groups are reported (`not_owned`) and left alone.
    pub take_over: Vec<String>,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            include: vec!["*".to_owned()],
            exclude: Vec::new(),
            name_prefix: None,
            adopt_prefixed: false,
            take_over: Vec::new(),
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
        for entry in &self.take_over {
            let name = entry.strip_suffix('*').unwrap_or(entry);
            if name.is_empty() && !entry.is_empty() {
                continue; // "*": every group
            }
            if let Err(problem) = crate::model::check_q_id(name) {
                return Err(ConfigError::key(
                    "groups.take_over",
                    format!(
                        "{entry:?}: a Q group name {problem} (give exact Q names, or prefixes ending in *)"
                    ),
                ));
            }
        }
        Ok(())
    }
}
