//! Deterministic Okta org generator for tests, the demo and benchmarks: the same [`OrgSpec`]
//! always gives the same [`OktaOrg`] (no clock, no global RNG).

use rand::rngs::StdRng;
use rand::seq::index;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::okta::OktaOrg;

/// 2024-01-01T00:00:00Z: generated dates lie around it, so they are stable and in the past.
const BASE: i64 = 1_704_067_200;
const DAY: i64 = 86_400;

const FIRST: &[&str] = &[
    "ana", "bo", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo", "kofi", "lena",
    "mateo", "nia", "omar", "priya", "quinn", "rosa", "sven", "tara", "uma", "viktor", "wen",
    "yusuf", "zoe",
];
const LAST: &[&str] = &[
    "smith", "garcia", "kim", "nguyen", "okafor", "rossi", "schmidt", "tanaka", "silva", "khan",
    "novak", "dubois", "larsen", "haddad", "moreau", "patel",
];
const DEPTS: &[&str] = &[
    "eng",
    "sales",
    "finance",
    "hr",
    "legal",
    "ops",
    "marketing",
    "support",
    "it",
    "research",
];
const TEAMS: &[&str] = &[
    "platform",
    "infra",
    "web",
    "mobile",
    "emea",
    "apac",
    "payroll",
    "recruiting",
    "core",
    "growth",
    "analytics",
    "security",
];

/// What to generate.
#[derive(Clone, Debug)]
pub struct OrgSpec {
    /// RNG seed; the only source of variation.
    pub seed: u64,
    /// Total number of groups (including, when `messy`, the Everyone and APP_GROUP groups).
    pub groups: usize,
    /// Number of users.
    pub users: usize,
    /// Largest OKTA_GROUP; a few groups come close to it. Default 1000.
    pub max_group_size: usize,
    /// Realistic mess: odd statuses, missing and mixed-case emails, `+tag` addresses, names with
    /// spaces, slashes and non-ASCII, a BUILT_IN Everyone group and some APP_GROUPs.
    pub messy: bool,
}

impl Default for OrgSpec {
    fn default() -> Self {
        OrgSpec {
            seed: 1,
            groups: 20,
            users: 200,
            max_group_size: 1000,
            messy: false,
        }
    }
}

/// Builds the org described by `spec`.
///
/// Group sizes are heavy-tailed: most under 50, about 10 % between 50 and 300, about 2 % within
/// 80 % of `max_group_size` (all capped at `users`). Group ids are `OktaOrg::group_id(0..groups)`,
/// user ids `OktaOrg::user_id(0..users)`. When `messy`, group 0 is the BUILT_IN "Everyone" (all
/// users) and the next `max(1, groups / 100)` (at most 5) are APP_GROUPs; the rest are OKTA_GROUPs.
pub fn org(spec: &OrgSpec) -> OktaOrg {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut org = OktaOrg::default();
    add_users(&mut org, spec, &mut rng);

    let app_groups = if spec.messy {
        (spec.groups / 100).clamp(1, 5)
    } else {
        0
    };
    for n in 0..spec.groups {
        let id = OktaOrg::group_id(n);
        let (name, group_type, size) = if spec.messy && n == 0 {
            ("Everyone".to_owned(), "BUILT_IN", spec.users)
        } else if spec.messy && n <= app_groups {
            let size = group_size(&mut rng, spec);
            (
                format!("AD {} Users {n}", pick(&mut rng, DEPTS)),
                "APP_GROUP",
                size,
            )
        } else {
            let size = group_size(&mut rng, spec);
            (group_name(&mut rng, n, spec.messy), "OKTA_GROUP", size)
        };
        let created = BASE - rng.random_range(30..720) * DAY + rng.random_range(0..DAY);
        let last_updated = created + rng.random_range(0..30) * DAY;
        let last_membership_updated = last_updated + rng.random_range(0..60 * DAY);
        let described = rng.random_bool(0.5);
        let members = index::sample(&mut rng, spec.users, size.min(spec.users));
        let group = org.add_group(&id, &name, group_type);
        group.created = created;
        group.last_updated = last_updated;
        group.last_membership_updated = last_membership_updated;
        if n == 0 && spec.messy {
            group.description = Some("All users in your organization".into());
        } else if described {
            group.description = Some(format!("Members of {name}"));
        }
        group.members = members.iter().map(OktaOrg::user_id).collect();
    }
    org
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn group_size(rng: &mut StdRng, spec: &OrgSpec) -> usize {
    let max = spec.max_group_size.max(1);
    let roll: f64 = rng.random();
    let size = if roll < 0.02 {
        rng.random_range((max * 4 / 5).max(1)..=max)
    } else if roll < 0.12 {
        rng.random_range(50.min(max)..=300.min(max))
    } else {
        let u: f64 = rng.random();
        // Truncation is intended: sizes skew towards 1.
        1 + (u * u * 48.0) as usize
    };
    size.min(max)
}

/// Unique (the number `n` is part of every name).
fn group_name(rng: &mut StdRng, n: usize, messy: bool) -> String {
    let dept = pick(rng, DEPTS);
    let team = pick(rng, TEAMS);
    if !messy {
        return format!("{dept}-{team}-{n}");
    }
    let dept_title = capitalised(dept);
    match rng.random_range(0..100) {
        0..10 => format!("{dept_title} Team {n}"),
        10..15 => format!("{dept_title}/{} {n}", team.to_uppercase()),
        15..18 => format!("Équipe {team} α {n}"),
        18..20 => format!("研究開発 {n}"),
        20..22 => format!("{dept_title} & On-Call ({n})"),
        _ => format!("{dept}-{team}-{n}"),
    }
}

fn add_users(org: &mut OktaOrg, spec: &OrgSpec, rng: &mut StdRng) {
    for n in 0..spec.users {
        let first = pick(rng, FIRST);
        let last = pick(rng, LAST);
        let login = format!("{first}.{last}{n}@example.test");
        let roll = rng.random_range(0..100);
        let status = match roll {
            0..3 if spec.messy => "DEPROVISIONED",
            3..5 if spec.messy => "SUSPENDED",
            5..6 if spec.messy => "STAGED",
            _ => "ACTIVE",
        };
        let roll = rng.random_range(0..100);
        let email = match roll {
            0..10 if spec.messy => Some(capitalised(&login)),
            10..13 if spec.messy => Some(format!("{first}.{last}{n}+work@example.test")),
            _ => Some(login.clone()),
        };
        let missing = spec.messy && rng.random_range(0..100) == 0;
        let id = OktaOrg::user_id(n);
        let user = org.add_user(
            &id,
            status,
            if missing { None } else { email.as_deref() },
            &login,
        );
        if missing && n % 2 == 0 {
            user.profile.insert("email".into(), Value::Null);
        }
    }
}

/// `ana.kim7@example.test` -> `Ana.Kim7@Example.test`.
fn capitalised(login: &str) -> String {
    fn upper_first(s: &str) -> String {
        let mut chars = s.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    }
    let (local, domain) = match login.split_once('@') {
        Some((local, domain)) => (local, format!("@{}", upper_first(domain))),
        None => (login, String::new()),
    };
    let local: Vec<String> = local.split('.').map(upper_first).collect();
    format!("{}{domain}", local.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn spec(messy: bool) -> OrgSpec {
        OrgSpec {
            seed: 42,
            groups: 300,
            users: 3000,
            max_group_size: 1000,
            messy,
        }
    }

    #[test]
    fn is_deterministic() {
        let a = org(&spec(true));
        let b = org(&spec(true));
        assert_eq!(format!("{:?}", a), format!("{:?}", b));
        let c = org(&OrgSpec {
            seed: 43,
            ..spec(true)
        });
        assert_ne!(format!("{:?}", a.groups), format!("{:?}", c.groups));
    }

    #[test]
    fn sizes_are_heavy_tailed_and_names_unique() {
        let org = org(&spec(false));
        assert_eq!(org.groups.len(), 300);
        assert_eq!(org.users.len(), 3000);
        let sizes: Vec<usize> = org.groups.values().map(|g| g.members.len()).collect();
        let small = sizes.iter().filter(|&&s| s < 50).count();
        assert!(small > 200, "most groups are small: {small}");
        assert!(sizes.iter().all(|&s| (1..=1000).contains(&s)));
        let names: BTreeSet<&str> = org.groups.values().map(|g| g.name.as_str()).collect();
        assert_eq!(names.len(), 300);
        assert!(org.users.values().all(|u| u.status == "ACTIVE"));
        assert!(org.groups.values().all(|g| g.group_type == "OKTA_GROUP"));
    }

    #[test]
    fn messy_orgs_are_messy() {
        let org = org(&spec(true));
        let everyone = &org.groups[&OktaOrg::group_id(0)];
        assert_eq!(
            (everyone.name.as_str(), everyone.group_type.as_str()),
            ("Everyone", "BUILT_IN")
        );
        assert_eq!(everyone.members.len(), 3000);
        assert_eq!(
            org.groups
                .values()
                .filter(|g| g.group_type == "APP_GROUP")
                .count(),
            3
        );
        let count = |status: &str| org.users.values().filter(|u| u.status == status).count();
        assert!(count("DEPROVISIONED") > 30 && count("SUSPENDED") > 20 && count("STAGED") > 5);
        let emails: Vec<Option<&str>> = org
            .users
            .values()
            .map(|u| u.profile.get("email").and_then(Value::as_str))
            .collect();
        assert!(emails.iter().filter(|e| e.is_none()).count() > 5);
        assert!(emails.iter().flatten().any(|e| e.contains('+')));
        assert!(
            emails
                .iter()
                .flatten()
                .any(|e| e.chars().any(char::is_uppercase))
        );
        assert!(org.groups.values().any(|g| g.name.contains('/')));
        assert!(org.groups.values().any(|g| g.name.contains(' ')));
        assert!(org.groups.values().any(|g| !g.name.is_ascii()));
        assert_eq!(
            capitalised("ana.kim7@example.test"),
            "Ana.Kim7@Example.test"
        );
    }
}
