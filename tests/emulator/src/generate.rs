//! Deterministic Okta org generator for tests, the demo and benchmarks: the same [`OrgSpec`]
//! always gives the same [`OktaOrg`] (no clock, no global RNG).

use std::collections::{BTreeMap, BTreeSet};

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

/// How group sizes are drawn. Both are heavy-tailed and capped at `max_group_size` and `users`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sizes {
    /// Most groups under 50, about 10 % between 50 and 300, about 2 % within 80 % of
    /// `max_group_size`: a mean of about 50 members with a maximum of 1000.
    #[default]
    Small,
    /// The benchmark's org: about 52 % under 50, 30 % between 50 and 60 % of `max_group_size`
    /// (log-uniform), 18 % between 60 % of it and `max_group_size` (uniform): a mean of about
    /// 22 % of `max_group_size`, so 5,000 groups of at most 1,000 hold about 1.1M memberships.
    Heavy,
}

impl std::str::FromStr for Sizes {
    type Err = String;

    fn from_str(s: &str) -> Result<Sizes, String> {
        match s {
            "small" => Ok(Sizes::Small),
            "heavy" => Ok(Sizes::Heavy),
            other => Err(format!("unknown size profile {other:?} (small, heavy)")),
        }
    }
}

/// Builds the org described by `spec`, with [`Sizes::Small`] group sizes.
///
/// Group ids are `OktaOrg::group_id(0..groups)`, user ids `OktaOrg::user_id(0..users)`. When
/// `messy`, group 0 is the BUILT_IN "Everyone" (all users) and the next `max(1, groups / 100)`
/// (at most 5) are APP_GROUPs; the rest are OKTA_GROUPs.
pub fn org(spec: &OrgSpec) -> OktaOrg {
    org_with_sizes(spec, Sizes::Small)
}

/// Like [`org`], with group sizes drawn from `sizes`.
pub fn org_with_sizes(spec: &OrgSpec, sizes: Sizes) -> OktaOrg {
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
            let size = group_size(&mut rng, spec, sizes);
            (
                format!("AD {} Users {n}", pick(&mut rng, DEPTS)),
                "APP_GROUP",
                size,
            )
        } else {
            let size = group_size(&mut rng, spec, sizes);
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

/// What [`churn`] changes.
#[derive(Clone, Debug)]
pub struct ChurnSpec {
    /// Memberships to add or remove, in percent of all memberships (of non-BUILT_IN groups).
    pub percent: f64,
    /// RNG seed: the same org and spec always make the same changes.
    pub seed: u64,
    /// No group grows past this many members (Q Business's inline limit is 1000).
    pub max_group_size: usize,
}

/// One group [`churn`] changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChurnedGroup {
    /// Okta group id.
    pub id: String,
    /// `profile.name`.
    pub name: String,
    /// Members added.
    pub added: usize,
    /// Members removed.
    pub removed: usize,
}

/// What [`churn`] did. Every listed group really differs from before: additions and removals
/// never cancel out.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Churn {
    /// Memberships before the churn (non-BUILT_IN groups).
    pub memberships: usize,
    /// Memberships added.
    pub added: usize,
    /// Memberships removed.
    pub removed: usize,
    /// The changed groups, by id.
    pub groups: Vec<ChurnedGroup>,
}

/// Adds and removes `spec.percent` % of the org's memberships across random groups, bumping each
/// changed group's `lastMembershipUpdated` to now.
///
/// Changes come in bursts, as in a real directory: each step picks a random group (BUILT_IN
/// groups excepted) and changes 1 to `max(2, size / 20)` of its memberships, each an addition of
/// a random non-member or the removal of a random member. A group never loses its last member
/// (that would trip q-group-sync's empty-group guard), never grows past `max_group_size`, and
/// never gets back a user it lost (or loses one it gained) in the same churn.
pub fn churn(org: &mut OktaOrg, spec: &ChurnSpec) -> Churn {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let group_ids: Vec<String> = org
        .groups
        .values()
        .filter(|g| g.group_type != "BUILT_IN")
        .map(|g| g.id.clone())
        .collect();
    let user_ids: Vec<String> = org.users.keys().cloned().collect();
    let memberships: usize = group_ids
        .iter()
        .map(|id| org.groups[id].members.len())
        .sum();
    let target = (memberships as f64 * spec.percent.max(0.0) / 100.0).round() as usize;
    let mut out = Churn {
        memberships,
        ..Churn::default()
    };
    if group_ids.is_empty() || user_ids.is_empty() {
        return out;
    }
    // Per group: users added and removed so far, so no change undoes another.
    let mut touched: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let max_size = spec.max_group_size.max(1);
    let mut done = 0usize;
    // Bounded: every step either changes a membership or burns one of these attempts.
    let mut attempts = target.saturating_mul(20).saturating_add(1000);
    while done < target && attempts > 0 {
        attempts -= 1;
        let gid = &group_ids[rng.random_range(0..group_ids.len())];
        let size = org.groups[gid].members.len();
        let burst = rng.random_range(1..=(size / 20).max(2)).min(target - done);
        for _ in 0..burst {
            let (added, removed) = touched.entry(gid.clone()).or_default();
            let members = &org.groups[gid].members;
            let remove = rng.random_bool(0.5);
            let change = if remove && members.len() > 1 {
                let candidates: Vec<&String> =
                    members.iter().filter(|u| !added.contains(*u)).collect();
                candidates
                    .get(rng.random_range(0..candidates.len().max(1)))
                    .map(|u| (false, (*u).clone()))
            } else if !remove && members.len() < max_size {
                // A few tries at a random user who is not (and was not) a member.
                (0..8)
                    .map(|_| &user_ids[rng.random_range(0..user_ids.len())])
                    .find(|u| !members.contains(*u) && !removed.contains(*u))
                    .map(|u| (true, u.clone()))
            } else {
                None
            };
            let Some((add, user)) = change else {
                attempts = attempts.saturating_sub(1);
                continue;
            };
            if add {
                org.add_member(gid, &user);
                added.insert(user);
                out.added += 1;
            } else {
                org.remove_member(gid, &user);
                removed.insert(user);
                out.removed += 1;
            }
            done += 1;
        }
    }
    out.groups = touched
        .into_iter()
        .filter(|(_, (added, removed))| !added.is_empty() || !removed.is_empty())
        .map(|(id, (added, removed))| ChurnedGroup {
            name: org.groups[&id].name.clone(),
            id,
            added: added.len(),
            removed: removed.len(),
        })
        .collect();
    out
}

/// What [`deactivate_share`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Deactivation {
    /// The deactivated users, by id.
    pub users: Vec<String>,
    /// Distinct groups (of any type) they are members of; memberships are kept.
    pub groups: usize,
}

/// Deactivates `percent` % (rounded) of the ACTIVE users who are members of at least one group,
/// chosen by `seed`: the same org, percent and seed always deactivate the same users.
///
/// Each goes through [`OktaOrg::deactivate_user`]: status DEPROVISIONED, `lastUpdated` and
/// `statusChanged` now, `user.lifecycle.deactivate` logged, memberships kept and no group's
/// `lastMembershipUpdated` moved, as in Okta.
pub fn deactivate_share(org: &mut OktaOrg, percent: f64, seed: u64) -> Deactivation {
    let mut rng = StdRng::seed_from_u64(seed);
    let members: BTreeSet<&str> = org
        .groups
        .values()
        .flat_map(|g| g.members.iter().map(String::as_str))
        .collect();
    let candidates: Vec<String> = org
        .users
        .values()
        .filter(|u| u.status == "ACTIVE" && members.contains(u.id.as_str()))
        .map(|u| u.id.clone())
        .collect();
    let wanted = (candidates.len() as f64 * percent.clamp(0.0, 100.0) / 100.0).round() as usize;
    let mut chosen: Vec<String> = index::sample(&mut rng, candidates.len(), wanted)
        .iter()
        .map(|i| candidates[i].clone())
        .collect();
    chosen.sort();
    chosen.retain(|id| org.deactivate_user(id).is_ok());
    let chosen_set: BTreeSet<&str> = chosen.iter().map(String::as_str).collect();
    let groups = org
        .groups
        .values()
        .filter(|g| g.members.iter().any(|m| chosen_set.contains(m.as_str())))
        .count();
    Deactivation {
        users: chosen,
        groups,
    }
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn group_size(rng: &mut StdRng, spec: &OrgSpec, sizes: Sizes) -> usize {
    let max = spec.max_group_size.max(1);
    let roll: f64 = rng.random();
    if sizes == Sizes::Heavy {
        let size = if roll < 0.52 {
            let u: f64 = rng.random();
            1 + (u * u * 49.0) as usize
        } else if roll < 0.82 {
            // Log-uniform between 50 and 60 % of max: many near 50, fewer further up.
            let (low, high) = (50.0_f64, (max as f64 * 0.6).max(51.0));
            let u: f64 = rng.random();
            (low * (high / low).powf(u)) as usize
        } else {
            rng.random_range((max * 3 / 5).max(1)..=max)
        };
        return size.clamp(1, max);
    }
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

/// Adds the users. Their dates come from a second RNG (seeded from `spec.seed`), so the draws of
/// the main one, and with them every org generated before users had dates, stay the same.
fn add_users(org: &mut OktaOrg, spec: &OrgSpec, rng: &mut StdRng) {
    let mut dates = StdRng::seed_from_u64(spec.seed ^ 0x0075_5e7d_a7e5_0000);
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
        user.created = BASE - dates.random_range(30..720) * DAY + dates.random_range(0..DAY);
        user.last_updated = user.created + dates.random_range(0..60) * DAY;
        // A status other than ACTIVE came later, with the last update.
        user.status_changed = match status {
            "STAGED" => None,
            "ACTIVE" => Some(user.created),
            _ => Some(user.last_updated),
        };
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

    #[test]
    fn heavy_sizes_reach_the_benchmark_mean() {
        let spec = OrgSpec {
            seed: 1,
            groups: 2000,
            users: 20_000,
            max_group_size: 1000,
            messy: false,
        };
        let org = org_with_sizes(&spec, Sizes::Heavy);
        let sizes: Vec<usize> = org.groups.values().map(|g| g.members.len()).collect();
        let total: usize = sizes.iter().sum();
        let mean = total as f64 / sizes.len() as f64;
        assert!((190.0..=250.0).contains(&mean), "mean {mean}");
        let small = sizes.iter().filter(|&&s| s < 50).count();
        assert!(small * 2 > sizes.len(), "most under 50: {small}");
        assert!(sizes.iter().any(|&s| s >= 950), "a few near the max");
        assert!(sizes.iter().all(|&s| (1..=1000).contains(&s)));
        // The small profile is untouched by the new one.
        assert_eq!(
            format!("{:?}", org_with_sizes(&spec, Sizes::Small).groups),
            format!("{:?}", super::org(&spec).groups)
        );
        assert_eq!("heavy".parse::<Sizes>(), Ok(Sizes::Heavy));
        assert!("huge".parse::<Sizes>().is_err());
    }

    #[test]
    fn users_have_stable_past_dates() {
        let org = org(&spec(true));
        for user in org.users.values() {
            assert!(user.created < BASE && user.last_updated >= user.created);
            assert!(user.last_updated < BASE + 60 * DAY);
            assert_eq!(user.status_changed.is_none(), user.status == "STAGED");
        }
        let again = super::org(&spec(true));
        let dates = |o: &OktaOrg| -> Vec<(i64, i64, Option<i64>)> {
            o.users
                .values()
                .map(|u| (u.created, u.last_updated, u.status_changed))
                .collect()
        };
        assert_eq!(dates(&org), dates(&again));
    }

    #[test]
    fn deactivate_share_is_deterministic_and_keeps_memberships() {
        let before = org(&spec(true));
        let mut a = before.clone();
        let done = deactivate_share(&mut a, 2.0, 5);
        let mut b = before.clone();
        assert_eq!(deactivate_share(&mut b, 2.0, 5), done);
        let active = before
            .users
            .values()
            .filter(|u| u.status == "ACTIVE")
            .count();
        // Everyone holds every user, so every ACTIVE user is a candidate.
        assert_eq!(done.users.len(), (active as f64 * 0.02).round() as usize);
        assert!(done.users.windows(2).all(|w| w[0] < w[1]), "sorted");
        for id in &done.users {
            assert_eq!(before.users[id].status, "ACTIVE");
            assert_eq!(a.users[id].status, "DEPROVISIONED");
        }
        let groups: BTreeSet<&str> = done
            .users
            .iter()
            .flat_map(|u| a.groups_of(u))
            .map(|g| g.id.as_str())
            .collect();
        assert_eq!(done.groups, groups.len());
        for (id, group) in &before.groups {
            assert_eq!(a.groups[id].members, group.members);
            assert_eq!(
                a.groups[id].last_membership_updated,
                group.last_membership_updated
            );
        }
        assert_ne!(deactivate_share(&mut before.clone(), 2.0, 6), done);
        assert_eq!(
            deactivate_share(&mut before.clone(), 0.0, 5),
            Deactivation::default()
        );
        // Users in no group are never picked.
        let mut lonely = OktaOrg::default();
        lonely.add_user("u", "ACTIVE", None, "u@example.test");
        assert!(deactivate_share(&mut lonely, 100.0, 1).users.is_empty());
    }

    #[test]
    fn churn_is_deterministic_real_and_bounded() {
        let spec = OrgSpec {
            seed: 3,
            groups: 400,
            users: 5000,
            max_group_size: 300,
            messy: true,
        };
        let before = org_with_sizes(&spec, Sizes::Heavy);
        let churn_spec = ChurnSpec {
            percent: 1.0,
            seed: 9,
            max_group_size: 300,
        };
        let mut a = before.clone();
        let churn_a = churn(&mut a, &churn_spec);
        let mut b = before.clone();
        let churn_b = churn(&mut b, &churn_spec);
        assert_eq!(churn_a, churn_b);
        // The same memberships (the timestamps are the clock's, and may be a second apart).
        let members = |o: &OktaOrg| -> Vec<(String, BTreeSet<String>)> {
            o.groups
                .iter()
                .map(|(id, g)| (id.clone(), g.members.iter().cloned().collect()))
                .collect()
        };
        assert_eq!(members(&a), members(&b));

        let target = (churn_a.memberships as f64 / 100.0).round() as usize;
        assert_eq!(churn_a.added + churn_a.removed, target);
        assert!(churn_a.added > 0 && churn_a.removed > 0);
        let changed: BTreeSet<&str> = churn_a.groups.iter().map(|g| g.id.as_str()).collect();
        assert!(!changed.is_empty() && changed.len() < 400);
        for (id, old) in &before.groups {
            let new = &a.groups[id];
            if changed.contains(id.as_str()) {
                let listed = churn_a.groups.iter().find(|g| &g.id == id).expect("listed");
                assert_eq!(new.members.difference(&old.members).count(), listed.added);
                assert_eq!(old.members.difference(&new.members).count(), listed.removed);
                assert!(new.last_membership_updated > old.last_membership_updated);
                assert!(!new.members.is_empty() && new.members.len() <= 300);
                assert_ne!(new.group_type, "BUILT_IN");
            } else {
                assert_eq!(new.members, old.members);
                assert_eq!(new.last_membership_updated, old.last_membership_updated);
            }
        }
        let other = churn(
            &mut before.clone(),
            &ChurnSpec {
                seed: 10,
                ..churn_spec.clone()
            },
        );
        assert_ne!(other.groups, churn_a.groups);
        let none = churn(
            &mut before.clone(),
            &ChurnSpec {
                percent: 0.0,
                ..churn_spec
            },
        );
        assert!(none.groups.is_empty());
    }
}
