//! SCIM clients that push to q-group-sync the way each identity provider does: Okta (SCIM 2.0 app
//! integration with Push Groups), Microsoft Entra ID (automatic provisioning of a non-gallery
//! enterprise app) and PingFederate (SCIM outbound provisioning).
//!
//! Each [`ScimIdp`] replays its IdP's documented request sequence for the same intents (look a
//! user up, create, change an email, deactivate, reactivate, delete; push a group, add and remove
//! members, replace them, rename, delete), in that IdP's shapes: Okta's unqualified
//! `replace` with an object value and `members[value eq "…"]` removals, Entra's capitalised ops,
//! booleans as the strings `"True"`/`"False"` and `Remove` with a value array, Ping's `PUT` of
//! whole resources and groups found by listing them. Alongside, it keeps [`Directory`]: the
//! IdP's own view of users and groups, from which [`Directory::expected_q`] derives what Amazon Q
//! Business must hold, independently of the service under test.
//!
//! Every request must get the status its IdP expects; anything else is an [`IdpError`] naming
//! the request, the status and the body, so a test failure says which step broke.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// Which identity provider's shapes a [`ScimIdp`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idp {
    /// Okta: SCIM 2.0 app integration with Push Groups.
    Okta,
    /// Microsoft Entra ID: non-gallery enterprise app, automatic provisioning.
    Entra,
    /// PingFederate: SCIM outbound provisioning (PingOne sends the same shapes).
    Ping,
}

impl Idp {
    /// Every IdP, for tests that run each sequence.
    pub const ALL: [Idp; 3] = [Idp::Okta, Idp::Entra, Idp::Ping];

    /// Lower-case name, for test and log labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Idp::Okta => "okta",
            Idp::Entra => "entra",
            Idp::Ping => "ping",
        }
    }

    fn user_agent(self) -> &'static str {
        match self {
            Idp::Okta => "Okta SCIM Client 1.0.0",
            Idp::Entra => "Microsoft Azure Active Directory SCIM Client",
            Idp::Ping => "PingFederate SCIM Provisioner",
        }
    }
}

/// A request the service answered with a status the IdP does not accept, or could not reach.
#[derive(Debug)]
pub struct IdpError {
    /// `METHOD path` of the request.
    pub request: String,
    /// The status, or 0 when the request failed before an answer.
    pub status: u16,
    /// The body (or the transport error).
    pub body: String,
}

impl std::fmt::Display for IdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}: {}", self.request, self.status, self.body)
    }
}

impl std::error::Error for IdpError {}

/// One user as the IdP holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// `userName` (an email-shaped login in every IdP's default mapping).
    pub user_name: String,
    /// The work (primary) email.
    pub email: String,
    /// Given name.
    pub given: String,
    /// Family name.
    pub family: String,
    /// Assigned and enabled.
    pub active: bool,
}

impl Person {
    /// A user whose login and email are `local@domain`.
    pub fn new(local: &str, domain: &str) -> Person {
        Person {
            user_name: format!("{local}@{domain}"),
            email: format!("{local}@{domain}"),
            given: capitalise(local),
            family: "Tester".to_owned(),
            active: true,
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| {
        f.to_uppercase().collect::<String>() + c.as_str()
    })
}

/// How Q user ids are derived from users (q-group-sync's `scim.user_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserIdFrom {
    /// The primary email (the default).
    Email,
    /// `userName`.
    UserName,
}

/// The IdP's own view: what it has pushed, by user name and group display name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// Users by `userName` (deleted users are removed).
    pub users: BTreeMap<String, Person>,
    /// Groups by display name, with their members' user names.
    pub groups: BTreeMap<String, BTreeSet<String>>,
}

impl Directory {
    /// What Q Business must hold for these groups: every group, with the ids of its active
    /// members (emails lower-cased, as Q compares them; other ids as they are).
    pub fn expected_q(&self, from: UserIdFrom) -> BTreeMap<String, BTreeSet<String>> {
        self.groups
            .iter()
            .map(|(name, members)| {
                let ids = members
                    .iter()
                    .filter_map(|m| self.users.get(m))
                    .filter(|p| p.active)
                    .map(|p| match from {
                        UserIdFrom::Email => q_id(&p.email),
                        UserIdFrom::UserName => q_id(&p.user_name),
                    })
                    .collect();
                (name.clone(), ids)
            })
            .collect()
    }
}

/// The id Q Business holds for `raw`: an email address lower-cased (Q compares emails
/// case-insensitively), anything else trimmed only. An independent statement of the rule, not
/// the product's code.
fn q_id(raw: &str) -> String {
    let raw = raw.trim();
    let is_email = raw.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.split('.').count() >= 2
            && domain.split('.').all(|l| !l.is_empty())
    });
    if is_email {
        raw.to_lowercase()
    } else {
        raw.to_owned()
    }
}

/// A SCIM client replaying one IdP's request sequences against `base` (…`/scim/v2`).
pub struct ScimIdp {
    idp: Idp,
    base: String,
    token: String,
    http: reqwest::Client,
    /// SCIM ids the service assigned, by user name and by group display name.
    user_ids: BTreeMap<String, String>,
    group_ids: BTreeMap<String, String>,
    directory: Directory,
    requests: usize,
    writes: usize,
}

/// The SCIM media type every IdP sends.
const SCIM_JSON: &str = "application/scim+json";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

impl ScimIdp {
    /// A client for `base` (e.g. `http://127.0.0.1:8443/scim/v2`) with bearer `token`.
    pub fn new(idp: Idp, base: &str, token: &str) -> ScimIdp {
        ScimIdp {
            idp,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .user_agent(idp.user_agent())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            user_ids: BTreeMap::new(),
            group_ids: BTreeMap::new(),
            directory: Directory::default(),
            requests: 0,
            writes: 0,
        }
    }

    /// Which IdP this client plays.
    pub fn idp(&self) -> Idp {
        self.idp
    }

    /// The IdP's view of what it pushed.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Requests sent so far.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Requests sent so far other than GETs (creates, replaces, patches, deletes).
    pub fn writes(&self) -> usize {
        self.writes
    }

    /// The SCIM id the service gave a user.
    pub fn user_id(&self, user_name: &str) -> Option<&str> {
        self.user_ids.get(user_name).map(String::as_str)
    }

    /// The SCIM id the service gave a group.
    pub fn group_id(&self, name: &str) -> Option<&str> {
        self.group_ids.get(name).map(String::as_str)
    }

    /// Sends one request with the IdP's headers and returns the status and JSON body (`Null`
    /// for an empty body, a string for a body that is not JSON).
    pub async fn send(
        &mut self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), IdpError> {
        self.requests += 1;
        if method != reqwest::Method::GET {
            self.writes += 1;
        }
        let label = format!("{method} {path_and_query}");
        let mut req = self
            .http
            .request(method, format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.token)
            .header("accept", SCIM_JSON);
        if let Some(body) = body {
            // Okta's own checklist sends application/json on POST; the IdPs send scim+json.
            let ct = if self.idp == Idp::Okta {
                "application/json"
            } else {
                "application/scim+json; charset=utf-8"
            };
            req = req.header("content-type", ct).body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| IdpError {
            request: label.clone(),
            status: 0,
            body: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| IdpError {
            request: label.clone(),
            status,
            body: e.to_string(),
        })?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    async fn expect(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Value, IdpError> {
        let label = format!("{method} {path}");
        let (status, value) = self.send(method, path, body).await?;
        if ok.contains(&status) {
            Ok(value)
        } else {
            Err(IdpError {
                request: label,
                status,
                body: value.to_string(),
            })
        }
    }

    fn patch(ops: Vec<Value>) -> Value {
        json!({"schemas": [PATCH_OP], "Operations": ops})
    }

    /// The op name as this IdP spells it (`Add`, `Replace`, `Remove` for Entra).
    fn op(&self, op: &str) -> String {
        match self.idp {
            Idp::Entra => capitalise(op),
            Idp::Okta | Idp::Ping => op.to_owned(),
        }
    }

    /// A boolean as this IdP sends it in a PATCH (Entra: the strings "True"/"False").
    fn boolean(&self, b: bool) -> Value {
        match self.idp {
            Idp::Entra => Value::String(if b { "True" } else { "False" }.to_owned()),
            Idp::Okta | Idp::Ping => Value::Bool(b),
        }
    }

    /// The connection test an admin runs when saving the app: Okta and Ping read one page of
    /// users; Entra looks up a user and a group that do not exist.
    pub async fn test_connection(&mut self) -> Result<(), IdpError> {
        match self.idp {
            Idp::Okta | Idp::Ping => {
                let list = self
                    .expect(
                        reqwest::Method::GET,
                        "/Users?startIndex=1&count=1",
                        None,
                        &[200],
                    )
                    .await?;
                check_list(&list, "GET /Users?startIndex=1&count=1")?;
            }
            Idp::Entra => {
                let probe =
                    "/Users?filter=userName%20eq%20%22a1b2c3d4-0000-4000-8000-000000000000%22";
                let list = self
                    .expect(reqwest::Method::GET, probe, None, &[200])
                    .await?;
                check_list(&list, probe)?;
                let probe = "/Groups?excludedAttributes=members&filter=displayName%20eq%20%22a1b2c3d4-0000-4000-8000-000000000000%22";
                let list = self
                    .expect(reqwest::Method::GET, probe, None, &[200])
                    .await?;
                check_list(&list, probe)?;
            }
        }
        Ok(())
    }

    fn user_body(&self, p: &Person) -> Value {
        match self.idp {
            Idp::Okta => json!({
                "schemas": [USER_SCHEMA],
                "userName": p.user_name,
                "name": {"givenName": p.given, "familyName": p.family},
                "emails": [{"primary": true, "value": p.email, "type": "work"}],
                "displayName": format!("{} {}", p.given, p.family),
                "locale": "en-US",
                "externalId": format!("00u{}", short_hash(&p.user_name)),
                "groups": [],
                "active": p.active,
            }),
            Idp::Entra => json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "externalId": p.user_name.split('@').next().unwrap_or_default(),
                "userName": p.user_name,
                "active": p.active,
                "displayName": format!("{} {}", p.given, p.family),
                "emails": [{"primary": true, "type": "work", "value": p.email}],
                "meta": {"resourceType": "User"},
                "name": {
                    "formatted": format!("{} {}", p.given, p.family),
                    "familyName": p.family,
                    "givenName": p.given,
                },
                "roles": [],
                ENTERPRISE: {"department": "Engineering", "employeeNumber": short_hash(&p.user_name)},
            }),
            Idp::Ping => json!({
                "schemas": [USER_SCHEMA],
                "userName": p.user_name,
                "externalId": short_hash(&p.user_name),
                "name": {"givenName": p.given, "familyName": p.family},
                "emails": [{"value": p.email, "type": "work", "primary": true}],
                "active": p.active,
            }),
        }
    }

    async fn find_user(&mut self, user_name: &str) -> Result<Option<String>, IdpError> {
        let filter = match self.idp {
            Idp::Okta => format!(
                "/Users?filter={}&startIndex=1&count=100",
                q(&format!("userName eq \"{user_name}\""))
            ),
            Idp::Entra => format!(
                "/Users?filter={}",
                q(&format!("userName eq \"{user_name}\""))
            ),
            Idp::Ping => format!(
                "/Users?filter={}",
                q(&format!("userName eq \"{user_name}\""))
            ),
        };
        let list = self
            .expect(reqwest::Method::GET, &filter, None, &[200])
            .await?;
        check_list(&list, &filter)?;
        Ok(list["Resources"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|u| u["id"].as_str())
            .map(str::to_owned))
    }

    /// Looks the user up by `userName`, then creates them (every IdP does both), and records the
    /// id the service gave. An existing user is linked and updated instead of created.
    pub async fn provision_user(&mut self, p: &Person) -> Result<String, IdpError> {
        let id = match self.find_user(&p.user_name).await? {
            Some(id) => {
                self.user_ids.insert(p.user_name.clone(), id.clone());
                self.directory.users.insert(p.user_name.clone(), p.clone());
                self.put_user(p).await?;
                id
            }
            None => {
                let body = self.user_body(p);
                let created = self
                    .expect(reqwest::Method::POST, "/Users", Some(&body), &[201])
                    .await?;
                let id = resource_id(&created, "POST /Users")?;
                self.user_ids.insert(p.user_name.clone(), id.clone());
                self.directory.users.insert(p.user_name.clone(), p.clone());
                id
            }
        };
        Ok(id)
    }

    fn known_user(&self, user_name: &str) -> Result<String, IdpError> {
        self.user_ids
            .get(user_name)
            .cloned()
            .ok_or_else(|| IdpError {
                request: format!("(user {user_name})"),
                status: 0,
                body: "this IdP never provisioned that user".to_owned(),
            })
    }

    fn known_group(&self, name: &str) -> Result<String, IdpError> {
        self.group_ids.get(name).cloned().ok_or_else(|| IdpError {
            request: format!("(group {name})"),
            status: 0,
            body: "this IdP never pushed that group".to_owned(),
        })
    }

    async fn put_user(&mut self, p: &Person) -> Result<(), IdpError> {
        let id = self.known_user(&p.user_name)?;
        let mut body = self.user_body(p);
        body["id"] = Value::String(id.clone());
        self.expect(
            reqwest::Method::PUT,
            &format!("/Users/{id}"),
            Some(&body),
            &[200],
        )
        .await?;
        Ok(())
    }

    /// Changes a user's work email: Okta and Ping `PUT` the whole user, Entra PATCHes the
    /// `emails[type eq "work"].value` path.
    pub async fn change_email(&mut self, user_name: &str, email: &str) -> Result<(), IdpError> {
        let mut p = self.person(user_name)?;
        p.email = email.to_owned();
        match self.idp {
            Idp::Okta | Idp::Ping => self.put_user(&p).await?,
            Idp::Entra => {
                let id = self.known_user(user_name)?;
                let body = Self::patch(vec![json!({
                    "op": self.op("replace"),
                    "path": "emails[type eq \"work\"].value",
                    "value": email,
                })]);
                self.expect(
                    reqwest::Method::PATCH,
                    &format!("/Users/{id}"),
                    Some(&body),
                    &[200, 204],
                )
                .await?;
            }
        }
        self.directory.users.insert(user_name.to_owned(), p);
        Ok(())
    }

    fn person(&self, user_name: &str) -> Result<Person, IdpError> {
        self.directory
            .users
            .get(user_name)
            .cloned()
            .ok_or_else(|| IdpError {
                request: format!("(user {user_name})"),
                status: 0,
                body: "not in the IdP's directory".to_owned(),
            })
    }

    /// Deactivates (Okta: `replace` without a path, value `{"active": false}`; Entra: `Replace`
    /// of `active` with `"False"`; Ping: `PUT` of the user with `active: false`) or reactivates.
    pub async fn set_active(&mut self, user_name: &str, active: bool) -> Result<(), IdpError> {
        let mut p = self.person(user_name)?;
        p.active = active;
        let id = self.known_user(user_name)?;
        match self.idp {
            Idp::Okta => {
                let body = Self::patch(vec![json!({"op": "replace", "value": {"active": active}})]);
                self.expect(
                    reqwest::Method::PATCH,
                    &format!("/Users/{id}"),
                    Some(&body),
                    &[200, 204],
                )
                .await?;
            }
            Idp::Entra => {
                let body = Self::patch(vec![json!({
                    "op": "Replace", "path": "active", "value": self.boolean(active),
                })]);
                self.expect(
                    reqwest::Method::PATCH,
                    &format!("/Users/{id}"),
                    Some(&body),
                    &[200, 204],
                )
                .await?;
            }
            Idp::Ping => {
                self.directory.users.insert(user_name.to_owned(), p.clone());
                self.put_user(&p).await?;
            }
        }
        self.directory.users.insert(user_name.to_owned(), p);
        Ok(())
    }

    /// Deletes a user (Entra after its soft delete, Ping on deprovisioning; Okta never deletes
    /// users, so for Okta this deactivates, as Okta does).
    pub async fn delete_user(&mut self, user_name: &str) -> Result<(), IdpError> {
        if self.idp == Idp::Okta {
            return self.set_active(user_name, false).await;
        }
        let id = self.known_user(user_name)?;
        self.expect(
            reqwest::Method::DELETE,
            &format!("/Users/{id}"),
            None,
            &[204],
        )
        .await?;
        self.directory.users.remove(user_name);
        self.user_ids.remove(user_name);
        Ok(())
    }

    fn member_refs(&self, users: &[&str]) -> Result<Vec<Value>, IdpError> {
        users
            .iter()
            .map(|u| {
                let id = self.known_user(u)?;
                Ok(match self.idp {
                    Idp::Okta => json!({"value": id, "display": u}),
                    Idp::Entra => json!({"value": id}),
                    Idp::Ping => json!({"value": id, "$ref": format!("{}/Users/{id}", self.base)}),
                })
            })
            .collect()
    }

    async fn find_group(&mut self, name: &str) -> Result<Option<String>, IdpError> {
        match self.idp {
            Idp::Okta | Idp::Entra => {
                let path = format!(
                    "/Groups?excludedAttributes=members&filter={}",
                    q(&format!("displayName eq \"{name}\""))
                );
                let list = self
                    .expect(reqwest::Method::GET, &path, None, &[200])
                    .await?;
                check_list(&list, &path)?;
                Ok(list["Resources"]
                    .as_array()
                    .and_then(|r| r.first())
                    .and_then(|g| g["id"].as_str())
                    .map(str::to_owned))
            }
            Idp::Ping => {
                // Ping finds groups by listing them, page by page.
                let mut start = 1u64;
                loop {
                    let path =
                        format!("/Groups?startIndex={start}&count=50&excludedAttributes=members");
                    let list = self
                        .expect(reqwest::Method::GET, &path, None, &[200])
                        .await?;
                    check_list(&list, &path)?;
                    let page = list["Resources"].as_array().cloned().unwrap_or_default();
                    if let Some(g) = page.iter().find(|g| g["displayName"] == name) {
                        return Ok(g["id"].as_str().map(str::to_owned));
                    }
                    let total = list["totalResults"].as_u64().unwrap_or(0);
                    start += page.len() as u64;
                    if page.is_empty() || start > total {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Pushes a group with these members. Okta creates it with its members in the POST; Entra
    /// and Ping create it empty, then add the members with PATCH (Entra in batches of up to 100
    /// per request, as IAM Identity Center accepts).
    pub async fn push_group(&mut self, name: &str, members: &[&str]) -> Result<String, IdpError> {
        if let Some(id) = self.find_group(name).await? {
            self.group_ids.insert(name.to_owned(), id.clone());
            self.directory.groups.entry(name.to_owned()).or_default();
            self.replace_members(name, members).await?;
            return Ok(id);
        }
        let body = match self.idp {
            Idp::Okta => json!({
                "schemas": [GROUP_SCHEMA],
                "displayName": name,
                "members": self.member_refs(members)?,
            }),
            Idp::Entra => json!({
                "schemas": [GROUP_SCHEMA],
                "externalId": short_hash(name),
                "displayName": name,
                "meta": {"resourceType": "Group"},
                "members": [],
            }),
            Idp::Ping => json!({
                "schemas": [GROUP_SCHEMA],
                "displayName": name,
                "externalId": short_hash(name),
            }),
        };
        let created = self
            .expect(reqwest::Method::POST, "/Groups", Some(&body), &[201])
            .await?;
        let id = resource_id(&created, "POST /Groups")?;
        self.group_ids.insert(name.to_owned(), id.clone());
        self.directory
            .groups
            .insert(name.to_owned(), BTreeSet::new());
        if self.idp == Idp::Okta {
            self.directory.groups.insert(
                name.to_owned(),
                members.iter().map(|m| (*m).to_owned()).collect(),
            );
        } else if !members.is_empty() {
            self.add_members(name, members).await?;
        }
        Ok(id)
    }

    /// Adds members with `add`/`Add` on `members` and a value array, at most 100 per request.
    pub async fn add_members(&mut self, group: &str, users: &[&str]) -> Result<(), IdpError> {
        let id = self.known_group(group)?;
        for chunk in users.chunks(100) {
            let body = Self::patch(vec![json!({
                "op": self.op("add"),
                "path": "members",
                "value": self.member_refs(chunk)?,
            })]);
            self.expect(
                reqwest::Method::PATCH,
                &format!("/Groups/{id}"),
                Some(&body),
                &[200, 204],
            )
            .await?;
            let set = self.directory.groups.entry(group.to_owned()).or_default();
            set.extend(chunk.iter().map(|u| (*u).to_owned()));
        }
        Ok(())
    }

    /// Removes members: Okta and Ping one operation per member with the path
    /// `members[value eq "id"]`; Entra `Remove` of `members` with a value array.
    pub async fn remove_members(&mut self, group: &str, users: &[&str]) -> Result<(), IdpError> {
        let id = self.known_group(group)?;
        for chunk in users.chunks(100) {
            let ops = match self.idp {
                Idp::Okta | Idp::Ping => chunk
                    .iter()
                    .map(|u| {
                        let uid = self.known_user(u)?;
                        Ok(json!({"op": "remove", "path": format!("members[value eq \"{uid}\"]")}))
                    })
                    .collect::<Result<Vec<_>, IdpError>>()?,
                Idp::Entra => vec![json!({
                    "op": "Remove",
                    "path": "members",
                    "value": self.member_refs(chunk)?,
                })],
            };
            let body = Self::patch(ops);
            self.expect(
                reqwest::Method::PATCH,
                &format!("/Groups/{id}"),
                Some(&body),
                &[200, 204],
            )
            .await?;
            if let Some(set) = self.directory.groups.get_mut(group) {
                for u in chunk {
                    set.remove(*u);
                }
            }
        }
        Ok(())
    }

    /// Replaces the whole member list: Okta with `replace` of `members`, Ping with a `PUT` of
    /// the group, Entra by the adds and removes it computes itself.
    pub async fn replace_members(&mut self, group: &str, users: &[&str]) -> Result<(), IdpError> {
        let id = self.known_group(group)?;
        match self.idp {
            Idp::Okta => {
                let body = Self::patch(vec![json!({
                    "op": "replace", "path": "members", "value": self.member_refs(users)?,
                })]);
                self.expect(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{id}"),
                    Some(&body),
                    &[200, 204],
                )
                .await?;
            }
            Idp::Ping => {
                let body = json!({
                    "schemas": [GROUP_SCHEMA],
                    "id": id,
                    "displayName": group,
                    "members": self.member_refs(users)?,
                });
                self.expect(
                    reqwest::Method::PUT,
                    &format!("/Groups/{id}"),
                    Some(&body),
                    &[200],
                )
                .await?;
            }
            Idp::Entra => {
                let now = self
                    .directory
                    .groups
                    .get(group)
                    .cloned()
                    .unwrap_or_default();
                let want: BTreeSet<String> = users.iter().map(|u| (*u).to_owned()).collect();
                let gone: Vec<String> = now.difference(&want).cloned().collect();
                let new: Vec<String> = want.difference(&now).cloned().collect();
                let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
                let new: Vec<&str> = new.iter().map(String::as_str).collect();
                self.remove_members(group, &gone).await?;
                self.add_members(group, &new).await?;
                return Ok(());
            }
        }
        self.directory.groups.insert(
            group.to_owned(),
            users.iter().map(|u| (*u).to_owned()).collect(),
        );
        Ok(())
    }

    /// Renames a group: Okta `replace` with no path and the value `{id, displayName}`, Entra
    /// `Replace` of `displayName`, Ping a `PUT` of the whole group.
    pub async fn rename_group(&mut self, old: &str, new: &str) -> Result<(), IdpError> {
        let id = self.known_group(old)?;
        match self.idp {
            Idp::Okta => {
                let body = Self::patch(vec![json!({
                    "op": "replace", "value": {"id": id, "displayName": new},
                })]);
                self.expect(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{id}"),
                    Some(&body),
                    &[200, 204],
                )
                .await?;
            }
            Idp::Entra => {
                let body = Self::patch(vec![json!({
                    "op": "Replace", "path": "displayName", "value": new,
                })]);
                self.expect(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{id}"),
                    Some(&body),
                    &[200, 204],
                )
                .await?;
            }
            Idp::Ping => {
                let members: Vec<String> = self
                    .directory
                    .groups
                    .get(old)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                let members: Vec<&str> = members.iter().map(String::as_str).collect();
                let body = json!({
                    "schemas": [GROUP_SCHEMA],
                    "id": id,
                    "displayName": new,
                    "members": self.member_refs(&members)?,
                });
                self.expect(
                    reqwest::Method::PUT,
                    &format!("/Groups/{id}"),
                    Some(&body),
                    &[200],
                )
                .await?;
            }
        }
        let members = self.directory.groups.remove(old).unwrap_or_default();
        self.directory.groups.insert(new.to_owned(), members);
        self.group_ids.remove(old);
        self.group_ids.insert(new.to_owned(), id);
        Ok(())
    }

    /// Deletes a group (`DELETE /Groups/{id}`, 204), as each IdP does when the group is
    /// unlinked or removed from the app's push list.
    pub async fn delete_group(&mut self, name: &str) -> Result<(), IdpError> {
        let id = self.known_group(name)?;
        self.expect(
            reqwest::Method::DELETE,
            &format!("/Groups/{id}"),
            None,
            &[204],
        )
        .await?;
        self.directory.groups.remove(name);
        self.group_ids.remove(name);
        Ok(())
    }

    /// The sequence every IdP test runs, in this IdP's shapes, as [`STEPS`] steps (a test
    /// waits for Q to catch up after each, so every change meets groups Q already holds):
    /// 0: connection test; five users provisioned (looked up, then created); three groups
    /// pushed. 1: members added and removed; a member list replaced. 2: a group renamed; an
    /// email changed. 3: a user deactivated, another deactivated and reactivated; a user
    /// deleted (Okta: deactivated). 4: a group deleted.
    pub async fn lifecycle_step(&mut self, step: usize, domain: &str) -> Result<(), IdpError> {
        let u = |who: &str| format!("{who}@{domain}");
        let (ana, bo, cy, dee, eve) = (u("ana"), u("bo"), u("cy"), u("dee"), u("eve"));
        match step {
            0 => {
                self.test_connection().await?;
                for who in ["ana", "bo", "cy", "dee", "eve"] {
                    self.provision_user(&Person::new(who, domain)).await?;
                }
                self.push_group("Engineering", &[&ana, &bo, &cy]).await?;
                self.push_group("Sales", &[&dee]).await?;
                self.push_group("Temporary", &[&eve]).await?;
            }
            1 => {
                self.add_members("Sales", &[&eve, &ana]).await?;
                self.remove_members("Engineering", &[&bo]).await?;
                self.replace_members("Sales", &[&dee, &bo]).await?;
            }
            2 => {
                self.rename_group("Engineering", "Engineering Team").await?;
                self.change_email(&cy, &format!("cy.new@{domain}")).await?;
            }
            3 => {
                self.set_active(&dee, false).await?;
                self.set_active(&bo, false).await?;
                self.set_active(&bo, true).await?;
                self.delete_user(&eve).await?;
            }
            4 => self.delete_group("Temporary").await?,
            _ => {}
        }
        Ok(())
    }

    /// Every step of [`ScimIdp::lifecycle_step`] at once.
    pub async fn lifecycle(&mut self, domain: &str) -> Result<(), IdpError> {
        for step in 0..STEPS {
            self.lifecycle_step(step, domain).await?;
        }
        Ok(())
    }
}

/// The steps of [`ScimIdp::lifecycle_step`].
pub const STEPS: usize = 5;

/// A list answer must be a SCIM `ListResponse`.
fn check_list(v: &Value, request: &str) -> Result<(), IdpError> {
    let is_list = v["schemas"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s == "urn:ietf:params:scim:api:messages:2.0:ListResponse")
    }) && v["totalResults"].is_u64();
    if is_list {
        Ok(())
    } else {
        Err(IdpError {
            request: request.to_owned(),
            status: 200,
            body: format!("not a ListResponse: {v}"),
        })
    }
}

fn resource_id(v: &Value, request: &str) -> Result<String, IdpError> {
    v["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| IdpError {
            request: request.to_owned(),
            status: 201,
            body: format!("no id in the created resource: {v}"),
        })
}

/// Percent-encodes a filter for the query string.
fn q(filter: &str) -> String {
    url::form_urlencoded::byte_serialize(filter.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A short stable tag for ids the IdP keeps for itself (externalId, employee number).
fn short_hash(s: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_q_keeps_active_members_by_email() {
        let mut d = Directory::default();
        let mut ana = Person::new("Ana", "x.test");
        ana.email = "Ana.Work@X.test".into();
        let mut bo = Person::new("bo", "x.test");
        bo.active = false;
        d.users.insert(ana.user_name.clone(), ana.clone());
        d.users.insert(bo.user_name.clone(), bo.clone());
        d.groups.insert(
            "G".into(),
            [
                ana.user_name.clone(),
                bo.user_name.clone(),
                "gone@x.test".into(),
            ]
            .into(),
        );
        let q = d.expected_q(UserIdFrom::Email);
        assert_eq!(q["G"], BTreeSet::from(["ana.work@x.test".to_owned()]));
        let q = d.expected_q(UserIdFrom::UserName);
        assert_eq!(q["G"], BTreeSet::from(["ana@x.test".to_owned()]));
    }

    #[test]
    fn entra_spells_ops_and_booleans_its_way() {
        let e = ScimIdp::new(Idp::Entra, "http://127.0.0.1:1/scim/v2", "t");
        assert_eq!(e.op("add"), "Add");
        assert_eq!(e.boolean(false), json!("False"));
        let o = ScimIdp::new(Idp::Okta, "http://127.0.0.1:1/scim/v2/", "t");
        assert_eq!(o.op("remove"), "remove");
        assert_eq!(o.boolean(true), json!(true));
        assert_eq!(o.base, "http://127.0.0.1:1/scim/v2");
    }

    #[test]
    fn filters_are_percent_encoded() {
        assert_eq!(
            q("userName eq \"a+b@x.test\""),
            "userName%20eq%20%22a%2Bb%40x.test%22"
        );
    }
}
