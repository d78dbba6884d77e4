//! The endpoint in-process, on 127.0.0.1:0: each IdP's request shapes (docs/scim.md, issue 23
//! item 2), each error code, and that a refused request changed nothing.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Mutex;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::fakes::{FixedClock, FlakyScim};

const TOKEN: &str = "scim-test-token-never-logged";
const LIMIT: usize = 64 * 1024;

struct Server {
    addr: SocketAddr,
    record: Arc<FlakyScim>,
    changes: Arc<Mutex<Vec<ScimChange>>>,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn scim_type(&self) -> Option<&str> {
        self.body["scimType"].as_str()
    }

    /// A SCIM error with this status (as a string) and scimType.
    fn is_error(&self, status: u16, scim_type: Option<&str>) -> bool {
        self.status == status
            && self.body["schemas"] == json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
            && self.body["status"].as_str() == Some(status.to_string().as_str())
            && self.scim_type() == scim_type
            && self.body["detail"].as_str().is_some_and(|d| !d.is_empty())
    }
}

async fn start() -> Server {
    start_with(TOKEN).await
}

async fn start_with(token: &str) -> Server {
    let record = Arc::new(FlakyScim::default());
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&changes);
    let app = router(
        Arc::clone(&record),
        ScimSettings {
            token: SecretString::from(token),
            body_limit: LIMIT,
            base_url: None,
        },
        Arc::new(FixedClock),
        ChangeHook::new(move |c| seen.lock().unwrap().push(c.clone())),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        addr,
        record,
        changes,
        http: reqwest::Client::new(),
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{BASE_PATH}{path}", self.addr)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("accept", SCIM_JSON);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json; charset=utf-8")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, Some(TOKEN)).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body), Some(TOKEN)).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body), Some(TOKEN)).await
    }

    async fn patch(&self, path: &str, ops: Value) -> Answer {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        self.send(Method::PATCH, path, Some(body), Some(TOKEN))
            .await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None, Some(TOKEN)).await
    }

    fn take_changes(&self) -> Vec<ScimChange> {
        std::mem::take(&mut *self.changes.lock().unwrap())
    }

    async fn seq(&self) -> u64 {
        self.record.change_seq().await.unwrap()
    }

    /// Sends raw bytes and returns the response head (status line and headers).
    async fn raw(&self, head: &str, body: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer and close before the body is sent: write errors are fine.
        let _ = stream.write_all(body).await;
        let mut out = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 64 {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        assert!(read.is_ok(), "no answer within 5 s");
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn okta_user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ana", "familyName": "Lima"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Ana Lima",
        "locale": "en-US",
        "externalId": "00u1okta",
        "groups": [],
        "password": "1mP0ssible!",
        "active": true
    })
}

fn filter(f: &str) -> String {
    url::form_urlencoded::byte_serialize(f.as_bytes()).collect()
}

#[tokio::test]
async fn every_endpoint_needs_the_token_before_its_body_is_read() {
    let s = start().await;
    for path in [
        "/ServiceProviderConfig",
        "/Schemas",
        "/ResourceTypes",
        "/Users",
        "/Groups/x",
        "/nowhere",
    ] {
        for token in [None, Some("wrong"), Some("")] {
            let a = s.send(Method::GET, path, None, token).await;
            assert!(
                a.is_error(401, None),
                "{path} {token:?}: {} {}",
                a.status,
                a.body
            );
            assert!(
                a.headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{path}"
            );
            assert_eq!(a.headers["content-type"], SCIM_JSON);
        }
    }
    // Basic credentials are not a bearer token.
    let r = s
        .http
        .get(s.url("/Users"))
        .basic_auth("okta", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A POST without the token is refused before its body is read: a declared body that never
    // comes still gets its 401 at once.
    let head = format!(
        "POST {BASE_PATH}/Users HTTP/1.1\r\nHost: x\r\nContent-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n"
    );
    let answer = s.raw(&head, b"").await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(s.seq().await, 0);
    // The scheme name is case-insensitive.
    let r = s
        .http
        .get(s.url("/Users"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_empty_token_lets_nobody_in() {
    let s = start_with(" ").await;
    for token in [None, Some(""), Some(" "), Some(TOKEN)] {
        let a = s
            .send(Method::GET, "/ServiceProviderConfig", None, token)
            .await;
        assert!(a.is_error(401, None), "{token:?}");
    }
}

#[tokio::test]
async fn okta_provisions_users_and_pushes_groups() {
    let s = start().await;
    // Okta looks the user up before creating them.
    let a = s
        .get(&format!(
            "/Users?filter={}&startIndex=1&count=100",
            filter(r#"userName eq "ana@x.test""#)
        ))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["totalResults"], 0);
    assert_eq!(a.body["Resources"], json!([]));
    assert_eq!(a.headers["content-type"], SCIM_JSON);

    let a = s.post("/Users", okta_user("ana@x.test")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let ana = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["meta"]["resourceType"], "User");
    let location = a.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("http://{}{BASE_PATH}/Users/{ana}", s.addr)
    );
    assert_eq!(a.body["meta"]["location"], location);
    assert!(a.body.get("password").is_none());
    assert_eq!(a.body["name"]["givenName"], "Ana");
    assert_eq!(
        s.take_changes(),
        [ScimChange {
            kind: ResourceKind::User,
            op: ChangeOp::Create,
            id: ana.clone(),
            seq: 1
        }]
    );

    // A duplicate userName, in another case: 409, nothing stored.
    let a = s.post("/Users", okta_user("ANA@x.test")).await;
    assert!(a.is_error(409, Some("uniqueness")), "{}", a.body);
    assert!(s.take_changes().is_empty());
    // The lookup ignores case.
    let a = s
        .get(&format!(
            "/Users?filter={}",
            filter(r#"userName eq "ANA@X.TEST""#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 1);
    assert_eq!(a.body["Resources"][0]["id"], ana.as_str());
    // GET by id; a listing of one.
    let a = s.get(&format!("/Users/{ana}")).await;
    assert_eq!(
        (a.status, a.body["userName"].as_str()),
        (200, Some("ana@x.test"))
    );
    let a = s.get("/Users?count=1&startIndex=1").await;
    assert_eq!(
        (
            a.body["itemsPerPage"].as_u64(),
            a.body["startIndex"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // Okta's PUT of the whole user, read back and changed.
    let mut whole = s.get(&format!("/Users/{ana}")).await.body;
    whole["name"]["givenName"] = json!("Ana Maria");
    let a = s.put(&format!("/Users/{ana}"), whole).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["name"]["givenName"], "Ana Maria");
    assert_eq!(a.body["id"], ana.as_str());

    // Deactivate without a path.
    let a = s
        .patch(
            &format!("/Users/{ana}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await;
    assert_eq!((a.status, &a.body["active"]), (200, &json!(false)));

    // Push Groups: create with members, rename with the id in the value, add, remove by
    // filter, replace the list, PUT the group, delete it.
    let bo = s.post("/Users", okta_user("bo@x.test")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = s
        .post(
            "/Groups",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Engineering",
                "members": [{"value": ana, "display": "ana@x.test"}]
            }),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let eng = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["members"][0]["value"], ana.as_str());
    let g = format!("/Groups/{eng}");
    let a = s
        .patch(
            &g,
            json!([{"op": "replace", "value": {"id": eng, "displayName": "Engineering EMEA"}}]),
        )
        .await;
    assert_eq!(
        (a.status, a.body["displayName"].as_str()),
        (200, Some("Engineering EMEA"))
    );
    let a = s.patch(&g, json!([{"op": "add", "path": "members", "value": [{"value": bo, "display": "bo@x.test"}]}])).await;
    assert_eq!(a.body["members"].as_array().unwrap().len(), 2);
    let a = s
        .patch(
            &g,
            json!([{"op": "remove", "path": format!("members[value eq \"{ana}\"]")}]),
        )
        .await;
    assert_eq!(
        a.body["members"],
        json!([{"value": bo, "$ref": format!("http://{}{BASE_PATH}/Users/{bo}", s.addr), "type": "User"}])
    );
    let a = s
        .patch(
            &g,
            json!([{"op": "replace", "path": "members", "value": [{"value": ana}]}]),
        )
        .await;
    assert_eq!(a.body["members"][0]["value"], ana.as_str());
    let a = s
        .put(
            &g,
            json!({"displayName": "Engineering", "members": [{"value": ana}, {"value": bo}]}),
        )
        .await;
    assert_eq!(
        (a.status, a.body["members"].as_array().unwrap().len()),
        (200, 2)
    );
    let ops: Vec<ChangeOp> = s.take_changes().into_iter().map(|c| c.op).collect();
    assert_eq!(
        ops,
        [
            ChangeOp::Replace,
            ChangeOp::Patch,
            ChangeOp::Create,
            ChangeOp::Create,
            ChangeOp::Patch,
            ChangeOp::Patch,
            ChangeOp::Patch,
            ChangeOp::Patch,
            ChangeOp::Replace
        ]
    );
    let a = s.delete(&g).await;
    assert_eq!((a.status, &a.body), (204, &Value::Null));
    assert!(s.get(&g).await.is_error(404, None));
}

#[tokio::test]
async fn entra_provisions_with_its_own_shapes() {
    let s = start().await;
    let a = s
        .post("/Users", json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee@contoso.test",
            "active": "True",
            "emails": [{"primary": "True", "type": "work", "value": "Test_User_fd0ea19b@contoso.test"}],
            "meta": {"resourceType": "User"},
            "name": {"familyName": "familyName", "givenName": "givenName"},
            "roles": [],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "m"}}
        }))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let user = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["active"], true);
    assert_eq!(a.body["emails"][0]["primary"], true);
    assert_eq!(
        a.body["schemas"],
        json!([
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ])
    );
    // Entra matches by externalId, and reads groups without members.
    let a = s
        .get(&format!(
            "/Users?filter={}",
            filter(r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 1);
    let a = s
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            filter(r#"displayName eq "Sales""#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 0);
    let a = s
        .post(
            "/Groups",
            json!({
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "Sales",
                "meta": {"resourceType": "Group"},
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]
            }),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let group = a.body["id"].as_str().unwrap().to_owned();
    let g = format!("/Groups/{group}");
    let a = s.get(&format!("{g}?excludedAttributes=members")).await;
    assert!(a.body.get("members").is_none());
    assert_eq!(a.body["displayName"], "Sales");
    // Capitalised ops; members added, then removed with a value array.
    let a = s
        .patch(
            &g,
            json!([{"op": "Add", "path": "members", "value": [{"value": user}]}]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        s.record
            .inner
            .get_group(&group, true)
            .await
            .unwrap()
            .unwrap()
            .members
            .unwrap()
            .len(),
        1
    );
    let a = s
        .patch(
            &g,
            json!([{"op": "Remove", "path": "members", "value": [{"value": user}]}]),
        )
        .await;
    assert_eq!((a.status, &a.body["members"]), (200, &json!([])));
    // Updates by path, a string boolean, Entra's email path.
    let u = format!("/Users/{user}");
    let a = s
        .patch(&u, json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "moved@contoso.test"},
            {"op": "Replace", "path": "name.familyName", "value": "Smith"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
            {"op": "Replace", "path": "active", "value": "False"}
        ]))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["emails"][0]["value"], "moved@contoso.test");
    assert_eq!(a.body["active"], false);
    assert_eq!(
        a.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Sales"
    );
    // Entra's later hard delete.
    assert_eq!(s.delete(&u).await.status, 204);
    assert!(s.get(&u).await.is_error(404, None));
    assert!(s.delete(&u).await.is_error(404, None));
}

#[tokio::test]
async fn ping_lists_groups_and_replaces_members() {
    let s = start().await;
    let mut users = Vec::new();
    for i in 0..3 {
        let a = s
            .post("/Users", json!({"userName": format!("u{i}@x.test")}))
            .await;
        users.push(a.body["id"].as_str().unwrap().to_owned());
    }
    for name in ["A", "B", "C"] {
        let a = s
            .post(
                "/Groups",
                json!({"displayName": name, "members": [{"value": users[0]}]}),
            )
            .await;
        assert_eq!(a.status, 201);
    }
    let a = s.get("/Groups?startIndex=2&count=1").await;
    assert_eq!(
        (
            a.body["totalResults"].as_u64(),
            a.body["startIndex"].as_u64(),
            a.body["itemsPerPage"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(
        a.body["Resources"][0]["members"].as_array().unwrap().len(),
        1
    );
    let a = s.get("/Groups?count=0").await;
    assert_eq!(a.body["totalResults"], 3);
    assert!(a.body.get("Resources").is_none());
    let id = s
        .get(&format!(
            "/Groups?filter={}",
            filter(r#"displayName eq "b""#)
        ))
        .await
        .body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = s
        .patch(&format!("/Groups/{id}"), json!([{"op": "replace", "path": "members", "value": [{"value": users[1]}, {"value": users[2]}]}]))
        .await;
    let got: Vec<&str> = a.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    let mut want = vec![users[1].as_str(), users[2].as_str()];
    want.sort();
    assert_eq!(got, want);
    // Projection on a listing.
    let a = s.get("/Users?attributes=userName").await;
    assert_eq!(
        a.body["Resources"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["id", "meta", "schemas", "userName"]
    );
}

#[tokio::test]
async fn bad_requests_get_their_scim_error_and_change_nothing() {
    let s = start().await;
    let ana = s.post("/Users", okta_user("ana@x.test")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let g = s
        .post(
            "/Groups",
            json!({"displayName": "Eng", "members": [{"value": ana}]}),
        )
        .await;
    let eng = g.body["id"].as_str().unwrap().to_owned();
    s.take_changes();
    let seq = s.seq().await;

    // 404: unknown ids, an unknown endpoint.
    assert!(
        s.get("/Users/00000000000000000000")
            .await
            .is_error(404, None)
    );
    assert!(s.get("/Groups/nope").await.is_error(404, None));
    assert!(
        s.patch(
            "/Users/nope",
            json!([{"op": "replace", "value": {"active": false}}])
        )
        .await
        .is_error(404, None)
    );
    assert!(
        s.put("/Groups/nope", json!({"displayName": "x"}))
            .await
            .is_error(404, None)
    );
    assert!(s.get("/Widgets").await.is_error(404, None));
    assert!(s.get("/ResourceTypes/Widget").await.is_error(404, None));
    // 405 with Allow.
    let a = s.delete("/Users").await;
    assert!(a.is_error(405, None), "{} {}", a.status, a.body);
    assert!(a.headers.get("allow").is_some());
    // 501: bulk and /Me.
    assert!(s.post("/Bulk", json!({})).await.is_error(501, None));
    // 400 invalidFilter, naming the position.
    let a = s
        .get(&format!("/Users?filter={}", filter(r#"userName eq"#)))
        .await;
    assert!(a.is_error(400, Some("invalidFilter")), "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().contains("position"));
    assert!(
        s.get(&format!(
            "/Groups?filter={}",
            filter("displayName xx \"a\"")
        ))
        .await
        .is_error(400, Some("invalidFilter"))
    );
    // 400 invalidSyntax: not JSON, not an object, no body.
    let r = s
        .http
        .post(s.url("/Users"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scimType"], "invalidSyntax");
    assert!(
        s.post("/Users", json!(["a"]))
            .await
            .is_error(400, Some("invalidSyntax"))
    );
    assert!(
        s.send(Method::POST, "/Groups", None, Some(TOKEN))
            .await
            .is_error(400, Some("invalidSyntax"))
    );
    assert!(
        s.patch(
            &format!("/Users/{ana}"),
            json!([{"op": "move", "path": "x"}])
        )
        .await
        .is_error(400, Some("invalidSyntax"))
    );
    // 400 invalidValue: no userName; a member who is no user; a string that is no boolean.
    assert!(
        s.post("/Users", json!({"name": {"givenName": "x"}}))
            .await
            .is_error(400, Some("invalidValue"))
    );
    let a = s
        .patch(
            &format!("/Groups/{eng}"),
            json!([{"op": "add", "path": "members", "value": [{"value": "ghost"}]}]),
        )
        .await;
    assert!(a.is_error(400, Some("invalidValue")), "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().contains("ghost"));
    assert!(
        s.post(
            "/Groups",
            json!({"displayName": "New", "members": [{"value": "ghost"}]})
        )
        .await
        .is_error(400, Some("invalidValue"))
    );
    assert!(
        s.patch(
            &format!("/Users/{ana}"),
            json!([{"op": "replace", "path": "active", "value": "maybe"}])
        )
        .await
        .is_error(400, Some("invalidValue"))
    );
    // 400 invalidPath, noTarget, mutability.
    assert!(
        s.patch(
            &format!("/Users/{ana}"),
            json!([{"op": "add", "path": "emails[type eq", "value": "x"}])
        )
        .await
        .is_error(400, Some("invalidPath"))
    );
    assert!(
        s.patch(&format!("/Users/{ana}"), json!([{"op": "remove"}]))
            .await
            .is_error(400, Some("noTarget"))
    );
    assert!(
        s.patch(
            &format!("/Users/{ana}"),
            json!([{"op": "replace", "path": "id", "value": "x"}])
        )
        .await
        .is_error(400, Some("mutability"))
    );
    // 409: a group name taken (any case); a rename onto it.
    assert!(
        s.post("/Groups", json!({"displayName": "ENG"}))
            .await
            .is_error(409, Some("uniqueness"))
    );
    // 415: another media type.
    let r = s
        .http
        .post(s.url("/Users"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/plain")
        .body(okta_user("x@x.test").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // Nothing changed: the sequence, the hook, the stored resources.
    assert_eq!(s.seq().await, seq);
    assert!(s.take_changes().is_empty());
    let g = s.get(&format!("/Groups/{eng}")).await;
    assert_eq!(g.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(s.get(&format!("/Users/{ana}")).await.body["active"], true);
    assert_eq!(s.get("/Users").await.body["totalResults"], 1);
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused() {
    let s = start().await;
    // Declared too large: refused before the body is sent.
    let head = format!(
        "POST {BASE_PATH}/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        LIMIT + 1
    );
    let answer = s.raw(&head, b"").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(SCIM_JSON), "{answer}");
    // Chunked: cut at the cap.
    let head = format!(
        "POST {BASE_PATH}/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let chunk = vec![b' '; 8192];
    let mut body = Vec::new();
    for _ in 0..(LIMIT / chunk.len() + 2) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let answer = s.raw(&head, &body).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Just under the cap is fine.
    let mut user = okta_user("big@x.test");
    user["title"] = json!("x".repeat(LIMIT - 1024));
    assert_eq!(s.post("/Users", user).await.status, 201);
    assert_eq!(s.seq().await, 1);
}

#[tokio::test]
async fn a_write_the_store_refuses_is_500_and_wakes_nobody() {
    let s = start().await;
    let ana = s.post("/Users", okta_user("ana@x.test")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.take_changes();
    s.record.fail_writes(true);
    let a = s.post("/Users", okta_user("bo@x.test")).await;
    assert!(a.is_error(500, None), "{}", a.body);
    assert!(
        !a.body["detail"].as_str().unwrap().contains("disk"),
        "the cause stays in the log"
    );
    assert!(
        s.patch(
            &format!("/Users/{ana}"),
            json!([{"op": "replace", "value": {"active": false}}])
        )
        .await
        .is_error(500, None)
    );
    assert!(s.delete(&format!("/Users/{ana}")).await.is_error(500, None));
    assert!(s.take_changes().is_empty());
    s.record.fail_writes(false);
    assert_eq!(s.get(&format!("/Users/{ana}")).await.body["active"], true);
    assert_eq!(s.get("/Users").await.body["totalResults"], 1);
}

#[tokio::test]
async fn the_hook_runs_once_per_committed_change() {
    let s = start().await;
    let ana = s.post("/Users", okta_user("ana@x.test")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let g = s.post("/Groups", json!({"displayName": "Eng"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let add = json!([{"op": "add", "path": "members", "value": [{"value": ana}]}]);
    s.patch(&format!("/Groups/{g}"), add.clone()).await;
    // The same add again changes nothing: 200, no hook.
    let a = s.patch(&format!("/Groups/{g}"), add).await;
    assert_eq!(a.status, 200);
    let changes = s.take_changes();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        changes[2],
        ScimChange {
            kind: ResourceKind::Group,
            op: ChangeOp::Patch,
            id: g,
            seq: 3
        }
    );
    // A Notify hook stores one permit for a burst.
    let notify = Arc::new(tokio::sync::Notify::new());
    let hook = ChangeHook::notify(Arc::clone(&notify));
    for seq in 0..5 {
        hook.call(ScimChange {
            kind: ResourceKind::User,
            op: ChangeOp::Patch,
            id: "u".into(),
            seq,
        });
    }
    tokio::time::timeout(std::time::Duration::from_secs(1), notify.notified())
        .await
        .unwrap();
}

#[tokio::test]
async fn discovery_documents_and_locations() {
    let s = start().await;
    let a = s.get("/ServiceProviderConfig").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["patch"]["supported"], true);
    assert_eq!(a.body["bulk"]["supported"], false);
    assert_eq!(a.body["filter"]["maxResults"], 1000);
    assert_eq!(
        a.body["meta"]["location"],
        format!("http://{}{BASE_PATH}/ServiceProviderConfig", s.addr)
    );
    let a = s.get("/ResourceTypes").await;
    assert_eq!(a.body["totalResults"], 2);
    assert_eq!(
        s.get("/ResourceTypes/User").await.body["endpoint"],
        "/Users"
    );
    let a = s.get("/Schemas").await;
    assert_eq!(a.body["totalResults"], 3);
    assert_eq!(
        s.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group")
            .await
            .body["name"],
        "Group"
    );
    // Behind a proxy: the forwarded scheme and host.
    let r = s
        .http
        .get(s.url("/ServiceProviderConfig"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "scim.example.test")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["meta"]["location"],
        "https://scim.example.test/scim/v2/ServiceProviderConfig"
    );
}

#[test]
fn ids_are_version_4_uuids() {
    let id = new_id();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4");
    assert!("89ab".contains(&id[19..20]));
    assert_ne!(new_id(), id);
}
