//! `config/example.toml` is the manual of the configuration: it lists every key of the config's
//! key table (`KEYS` in src/config/env.rs, the list the environment overrides are checked
//! against) with its default, names no key that does not exist, and its secret and file paths
//! are those of the deploy layout (where the Kubernetes base mounts the Secret, as the deploy
//! configs under deploy/ set them). That the example parses is `config::tests`'s test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const EXAMPLE: &str = include_str!("../config/example.toml");
const KEY_TABLE: &str = include_str!("../src/config/env.rs");

/// The dotted keys of `KEYS`, read from its source: one `("section.key", Type),` per line.
fn key_table() -> BTreeSet<String> {
    let start = KEY_TABLE
        .find("const KEYS: &[(&str, EnvType)] = &[")
        .expect("src/config/env.rs has the KEYS table");
    let table = &KEY_TABLE[start..];
    let table = &table[..table.find("\n];").expect("KEYS ends with `];`")];
    let keys: BTreeSet<String> = table
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("(\"")?;
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect();
    assert!(keys.len() > 50, "read only {} keys from KEYS", keys.len());
    keys
}

/// Every `key = value` line of a TOML file, commented out or not, as `section.key` -> (line
/// number, value). Comment markers are stripped first, so `# [scim]` opens a section and
/// `# # token = ""` is a key; prose lines never have the `word = value` shape.
fn keys_of(toml: &str) -> BTreeMap<String, (usize, String)> {
    let mut section = String::new();
    let mut keys = BTreeMap::new();
    for (n, line) in toml.lines().enumerate() {
        let line = line.trim_start_matches(|c: char| c == '#' || c.is_whitespace());
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            {
                section = name.to_owned();
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            // A quoted value without its quotes; otherwise the text before a trailing comment.
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                None => value.split(" #").next().unwrap_or_default().trim(),
            };
            keys.insert(format!("{section}.{key}"), (n + 1, value.to_owned()));
        }
    }
    keys
}

#[test]
fn the_example_lists_every_key_of_the_key_table() {
    let table = key_table();
    let example = keys_of(EXAMPLE);
    let missing: Vec<&String> = table.iter().filter(|k| !example.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "config/example.toml lacks these keys of the key table (src/config/env.rs KEYS); add each \
         with its default, commented out: {missing:?}"
    );
    let unknown: Vec<String> = example
        .iter()
        .filter(|(k, _)| !table.contains(*k))
        .map(|(k, (line, _))| format!("{k} (line {line})"))
        .collect();
    assert!(
        unknown.is_empty(),
        "config/example.toml names keys the configuration does not have: {unknown:?}"
    );
    let empty: Vec<&String> = example
        .iter()
        .filter(|(_, (_, value))| value.is_empty())
        .map(|(k, _)| k)
        .collect();
    assert!(
        empty.is_empty(),
        "config/example.toml shows no value for {empty:?}"
    );
}

#[test]
fn the_example_uses_the_deploy_layouts_file_paths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut deployed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut configs = vec![root.join("deploy/kubernetes/config.toml")];
    for entry in std::fs::read_dir(root.join("deploy/examples")).expect("deploy/examples") {
        let path = entry.expect("an entry").path().join("config.toml");
        if path.is_file() {
            configs.push(path);
        }
    }
    for path in &configs {
        let text = std::fs::read_to_string(path).expect("a deploy config");
        for (key, (_, value)) in keys_of(&text) {
            if key.ends_with("_file") {
                deployed.entry(key).or_default().insert(value);
            }
        }
    }
    assert!(
        deployed.contains_key("okta.api_token_file") && deployed.contains_key("state.url_file"),
        "read the deploy configs' *_file keys: {deployed:?}"
    );
    let mut wrong = Vec::new();
    for (key, (line, value)) in keys_of(EXAMPLE) {
        if !key.ends_with("_file") {
            continue;
        }
        let path = value.as_str();
        let mounted = path.starts_with("/run/secrets/q-group-sync/")
            || path.starts_with("/etc/q-group-sync-db-ca/");
        match deployed.get(&key) {
            Some(paths) if !paths.contains(&value) => wrong.push(format!(
                "{key} = {value} (line {line}); the deploy layout has {paths:?}"
            )),
            None if !mounted => wrong.push(format!(
                "{key} = {value} (line {line}); not under /run/secrets/q-group-sync/, where the \
                 Kubernetes base mounts the Secret"
            )),
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "config/example.toml's file paths differ from the deploy layout: {wrong:?}"
    );
}
