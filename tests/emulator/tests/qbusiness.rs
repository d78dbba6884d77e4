//! The Q Business emulator over real HTTP, with the paths and bodies `aws-sdk-qbusiness` sends.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Reply, send};
use q_group_sync_emulator::{QEmulator, QFault, QFaultAction, QOptions};
use serde_json::{Value, json};

const APP: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
const INDEX: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";

async fn start(options: QOptions) -> QEmulator {
    QEmulator::start(options).await.expect("emulator starts")
}

fn groups_url(emu: &QEmulator) -> String {
    format!("{}/applications/{APP}/indices/{INDEX}/groups", emu.url())
}

/// PutGroup as the SDK sends it: INDEX type on the group and every member.
async fn put(emu: &QEmulator, name: &str, users: &[&str], groups: &[&str]) -> Reply {
    let body = json!({
        "groupMembers": {
            "memberUsers": users.iter().map(|u| json!({ "userId": u, "type": "INDEX" })).collect::<Vec<_>>(),
            "memberGroups": groups.iter().map(|g| json!({ "groupName": g, "type": "INDEX" })).collect::<Vec<_>>(),
        },
        "groupName": name,
        "type": "INDEX",
    });
    put_raw(emu, &body.to_string()).await
}

async fn put_raw(emu: &QEmulator, body: &str) -> Reply {
    let headers = [
        ("content-type", "application/json"),
        ("amz-sdk-request", "attempt=1; max=3"),
    ];
    send("PUT", &groups_url(emu), &headers, Some(body.as_bytes())).await
}

/// `encoded` is the group name exactly as it goes in the path.
async fn get_group(emu: &QEmulator, encoded: &str) -> Reply {
    send("GET", &format!("{}/{encoded}", groups_url(emu)), &[], None).await
}

async fn delete_group(emu: &QEmulator, encoded: &str) -> Reply {
    send(
        "DELETE",
        &format!("{}/{encoded}", groups_url(emu)),
        &[],
        None,
    )
    .await
}

async fn list(emu: &QEmulator, query: &str) -> Reply {
    send("GET", &format!("{}?{query}", groups_url(emu)), &[], None).await
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn assert_error(reply: &Reply, status: u16, kind: &str) -> Value {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("x-amzn-errortype"), Some(kind));
    let body = reply.json();
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body
}

#[tokio::test]
async fn put_get_delete_with_encoded_names() {
    let emu = start(QOptions::default()).await;
    let reply = put(
        &emu,
        "Eng Team/α",
        &["ana@example.test", "bo@example.test"],
        &[],
    )
    .await;
    assert_eq!((reply.status, reply.json()), (200, json!({})));
    assert!(reply.header("x-amzn-requestid").is_some());

    let view = &emu.groups()["Eng Team/α"];
    assert_eq!(view.users, set(&["ana@example.test", "bo@example.test"]));
    assert_eq!((view.status.as_str(), view.put_count), ("SUCCEEDED", 1));

    // The SDK's encoding: space %20, '/' %2F, UTF-8 escapes. %2F must not split the path.
    let reply = get_group(&emu, "Eng%20Team%2F%CE%B1").await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"]["status"], "SUCCEEDED");
    assert!(
        body["status"]["lastUpdatedAt"]
            .as_f64()
            .is_some_and(|t| t > 1.7e9)
    );
    assert!(body["status"].get("errorDetail").is_none());
    let history: Vec<&str> = body["statusHistory"]
        .as_array()
        .expect("history")
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(history, vec!["PROCESSING", "SUCCEEDED"]);

    // A literal '/' is a different (unknown) route, not the same group.
    let reply = get_group(&emu, "Eng%20Team/%CE%B1").await;
    assert_error(&reply, 404, "UnknownOperationException");

    let reply = delete_group(
        &emu,
        "Eng%20Team%2F%CE%B1?dataSourceId=cccccccc-cccc-cccc-cccc-cccccccccccc",
    )
    .await;
    assert_eq!((reply.status, reply.json()), (200, json!({})));
    assert!(emu.groups().is_empty());

    let body = assert_error(
        &get_group(&emu, "Eng%20Team%2F%CE%B1").await,
        404,
        "ResourceNotFoundException",
    );
    assert_eq!(
        (body["resourceId"].as_str(), body["resourceType"].as_str()),
        (Some("Eng Team/α"), Some("GROUP"))
    );
    assert_error(
        &delete_group(&emu, "Eng%20Team%2F%CE%B1").await,
        404,
        "ResourceNotFoundException",
    );

    let ops: Vec<(String, Option<String>, u16)> = emu
        .calls()
        .into_iter()
        .map(|c| (c.op, c.group, c.status))
        .collect();
    let name = Some("Eng Team/α".to_owned());
    assert_eq!(
        ops,
        vec![
            ("PutGroup".into(), name.clone(), 200),
            ("GetGroup".into(), name.clone(), 200),
            ("Unknown".into(), None, 404),
            ("DeleteGroup".into(), name.clone(), 200),
            ("GetGroup".into(), name.clone(), 404),
            ("DeleteGroup".into(), name, 404),
        ]
    );
}

#[tokio::test]
async fn put_replaces_membership() {
    let emu = start(QOptions::default()).await;
    put(&emu, "eng", &["a", "b"], &[]).await;
    put(&emu, "eng", &["b", "c"], &["sub"]).await;
    let view = &emu.groups()["eng"];
    assert_eq!(
        (view.users.clone(), view.groups.clone(), view.put_count),
        (set(&["b", "c"]), set(&["sub"]), 2)
    );
    assert_eq!(emu.put_count(), 2);
    let calls = emu.calls();
    assert_eq!((calls[1].member_count, calls[1].attempt), (3, Some(1)));
}

#[tokio::test]
async fn member_limit_is_a_validation_exception() {
    let emu = start(QOptions::default()).await;
    let users: Vec<String> = (0..1000).map(|n| format!("u{n}@example.test")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    assert_eq!(
        put(&emu, "big", &refs, &[]).await.status,
        200,
        "exactly 1000 is fine"
    );

    let body = assert_error(
        &put(&emu, "big", &refs, &["one-more"]).await,
        400,
        "ValidationException",
    );
    assert_eq!(body["reason"], "FIELD_VALIDATION_FAILED");
    assert_eq!(body["fields"][0]["name"], "groupMembers");
    assert_eq!(
        emu.groups()["big"].groups,
        BTreeSet::new(),
        "rejected PUT changes nothing"
    );
    assert_eq!(emu.calls()[1].member_count, 1001);
}

#[tokio::test]
async fn invalid_requests_are_rejected_like_aws() {
    let emu = start(QOptions::default()).await;
    let body = assert_error(
        &put_raw(&emu, "{not json").await,
        400,
        "ValidationException",
    );
    assert_eq!(body["reason"], "CANNOT_PARSE");

    let cases = [
        (
            json!({ "groupName": "g", "type": "GLOBAL", "groupMembers": {} }),
            "type",
        ),
        (
            json!({ "groupName": "", "type": "INDEX", "groupMembers": {} }),
            "groupName",
        ),
        (
            json!({ "groupName": "x".repeat(1025), "type": "INDEX", "groupMembers": {} }),
            "groupName",
        ),
        (json!({ "type": "INDEX", "groupMembers": {} }), "groupName"),
        (json!({ "groupName": "g", "type": "INDEX" }), "groupMembers"),
        (
            json!({ "groupName": "g", "type": "INDEX", "groupMembers": { "memberUsers": [{ "userId": "bell\u{7}@x" }] } }),
            "groupMembers.memberUsers[0].userId",
        ),
        (
            json!({ "groupName": "g", "type": "INDEX", "groupMembers": { "memberGroups": [{ "groupName": "g2", "type": "USER" }] } }),
            "groupMembers.memberGroups[0].type",
        ),
        (
            json!({ "groupName": "g", "type": "INDEX", "dataSourceId": "short", "groupMembers": {} }),
            "dataSourceId",
        ),
    ];
    for (request, field) in cases {
        let body = assert_error(
            &put_raw(&emu, &request.to_string()).await,
            400,
            "ValidationException",
        );
        assert_eq!(
            (body["reason"].as_str(), body["fields"][0]["name"].as_str()),
            (Some("FIELD_VALIDATION_FAILED"), Some(field)),
            "{request}"
        );
    }
    assert!(emu.groups().is_empty());

    let other_app = format!(
        "{}/applications/{}/indices/{INDEX}/groups/g",
        emu.url(),
        "c".repeat(36)
    );
    let body = assert_error(
        &send("GET", &other_app, &[], None).await,
        404,
        "ResourceNotFoundException",
    );
    assert_eq!(body["resourceType"], "APPLICATION");
    let other_index = format!(
        "{}/applications/{APP}/indices/{}/groups/g",
        emu.url(),
        "c".repeat(36)
    );
    assert_error(
        &send("GET", &other_index, &[], None).await,
        404,
        "ResourceNotFoundException",
    );
    assert_error(
        &get_group(&emu, "%E2%80%8B").await,
        400,
        "ValidationException",
    ); // U+200B is category Cf
}

#[tokio::test]
async fn error_faults_carry_the_errortype_header() {
    let emu = start(QOptions::default()).await;
    let cases = [
        (QFaultAction::Throttle, 429, "ThrottlingException"),
        (QFaultAction::InternalError, 500, "InternalServerException"),
        (QFaultAction::Conflict, 409, "ConflictException"),
        (
            QFaultAction::QuotaExceeded,
            402,
            "ServiceQuotaExceededException",
        ),
        (QFaultAction::AccessDenied, 403, "AccessDeniedException"),
    ];
    for (action, status, kind) in cases {
        emu.add_fault(QFault::times(action, 1).on_op("PutGroup"));
        let body = assert_error(&put(&emu, "g", &["a"], &[]).await, status, kind);
        if matches!(status, 409 | 402) {
            assert_eq!(
                (body["resourceId"].as_str(), body["resourceType"].as_str()),
                (Some("g"), Some("GROUP"))
            );
        }
        assert_eq!(
            put(&emu, "g", &["a"], &[]).await.status,
            200,
            "{kind} used up"
        );
    }
    assert_eq!(emu.put_count(), 5);
    let stats = send("GET", &format!("{}/_emulator/stats", emu.url()), &[], None)
        .await
        .json();
    assert_eq!(
        stats,
        json!({ "calls": 10, "puts": 5, "deletes": 0, "throttled": 1 })
    );
}

#[tokio::test]
async fn faults_match_op_and_group() {
    let emu = start(QOptions::default()).await;
    emu.add_fault(QFault::always(QFaultAction::Throttle).on_group("hot"));
    emu.add_fault(QFault::always(QFaultAction::AccessDenied).on_op("DeleteGroup"));
    assert_eq!(put(&emu, "cold", &["a"], &[]).await.status, 200);
    assert_eq!(put(&emu, "hot", &["a"], &[]).await.status, 429);
    assert_eq!(put(&emu, "hot", &["a"], &[]).await.status, 429, "forever");
    assert_eq!(get_group(&emu, "cold").await.status, 200);
    assert_eq!(delete_group(&emu, "cold").await.status, 403);
    assert_eq!(
        list(&emu, "updatedEarlierThan=2100-01-01T00%3A00%3A00Z")
            .await
            .status,
        200
    );
    emu.clear_faults();
    assert_eq!(put(&emu, "hot", &["a"], &[]).await.status, 200);

    emu.add_fault(QFault::times(
        QFaultAction::Delay(Duration::from_millis(300)),
        1,
    ));
    let started = Instant::now();
    assert_eq!(get_group(&emu, "hot").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn fail_async_reports_failed_with_error_detail() {
    let emu = start(QOptions::default()).await;
    put(&emu, "g", &["old"], &[]).await;
    let action = QFaultAction::FailAsync {
        error_code: "InvalidRequest".into(),
        message: "member userId is not a known user".into(),
    };
    emu.add_fault(QFault::times(action, 1).on_op("PutGroup"));
    assert_eq!(put(&emu, "g", &["new"], &[]).await.status, 200, "accepted");

    let body = get_group(&emu, "g").await.json();
    assert_eq!(body["status"]["status"], "FAILED");
    assert_eq!(
        body["status"]["errorDetail"],
        json!({ "errorCode": "InvalidRequest", "errorMessage": "member userId is not a known user" })
    );
    let view = &emu.groups()["g"];
    assert_eq!(
        (view.status.as_str(), view.users.clone()),
        ("FAILED", set(&["old"]))
    );

    assert_eq!(put(&emu, "g", &["new"], &[]).await.status, 200);
    assert_eq!(
        get_group(&emu, "g").await.json()["status"]["status"],
        "SUCCEEDED"
    );
}

#[tokio::test]
async fn processing_time_and_conflicts() {
    let emu = start(QOptions {
        processing_time: Duration::from_millis(300),
        conflict_while_processing: true,
        ..QOptions::default()
    })
    .await;
    assert_eq!(put(&emu, "g", &["a"], &[]).await.status, 200);
    let body = get_group(&emu, "g").await.json();
    assert_eq!(body["status"]["status"], "PROCESSING");
    assert_eq!(body["statusHistory"].as_array().map(Vec::len), Some(1));
    let body = assert_error(&put(&emu, "g", &["b"], &[]).await, 409, "ConflictException");
    assert_eq!(body["resourceId"], "g");

    tokio::time::sleep(Duration::from_millis(350)).await;
    let body = get_group(&emu, "g").await.json();
    assert_eq!(body["status"]["status"], "SUCCEEDED");
    let processing_at = body["statusHistory"][0]["lastUpdatedAt"]
        .as_f64()
        .expect("time");
    let done_at = body["status"]["lastUpdatedAt"].as_f64().expect("time");
    assert!((done_at - processing_at - 0.3).abs() < 0.01);
    assert_eq!(put(&emu, "g", &["b"], &[]).await.status, 200);
}

#[tokio::test]
async fn list_groups_filters_by_update_time_and_pages() {
    let emu = start(QOptions::default()).await;
    for name in ["a", "b", "c", "d", "e"] {
        put(&emu, name, &["u"], &[]).await;
    }
    // The SDK sends the timestamp as ISO-8601; the future includes everything.
    let body = list(
        &emu,
        "updatedEarlierThan=2100-01-01T00%3A00%3A00Z&maxResults=2",
    )
    .await
    .json();
    assert_eq!(
        body["items"],
        json!([{ "groupName": "a" }, { "groupName": "b" }])
    );
    let token = body["nextToken"].as_str().expect("more pages").to_owned();

    // Deleting between pages must not make the sweep skip groups.
    assert_eq!(delete_group(&emu, "a").await.status, 200);
    let body = list(
        &emu,
        &format!("updatedEarlierThan=2100-01-01T00%3A00%3A00Z&maxResults=2&nextToken={token}"),
    )
    .await
    .json();
    assert_eq!(
        body["items"],
        json!([{ "groupName": "c" }, { "groupName": "d" }])
    );
    let token = body["nextToken"].as_str().expect("more pages").to_owned();
    let body = list(
        &emu,
        &format!("updatedEarlierThan=2100-01-01T00%3A00%3A00Z&maxResults=2&nextToken={token}"),
    )
    .await
    .json();
    assert_eq!(
        body,
        json!({ "items": [{ "groupName": "e" }] }),
        "no nextToken on the last page"
    );

    let body = list(&emu, "updatedEarlierThan=2023-11-14T22%3A13%3A20Z")
        .await
        .json();
    assert_eq!(body, json!({ "items": [] }));

    // A group PUT after the cutoff is not listed; one PUT before it is.
    let cutoff = std::time::SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    put(&emu, "b", &["u2"], &[]).await;
    let secs = cutoff
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let stamp = iso(secs);
    let body = list(&emu, &format!("updatedEarlierThan={stamp}&maxResults=10"))
        .await
        .json();
    assert_eq!(
        body["items"],
        json!([{ "groupName": "c" }, { "groupName": "d" }, { "groupName": "e" }])
    );

    assert_error(
        &list(&emu, "maxResults=5").await,
        400,
        "ValidationException",
    );
    assert_error(
        &list(
            &emu,
            "updatedEarlierThan=2100-01-01T00%3A00%3A00Z&maxResults=11",
        )
        .await,
        400,
        "ValidationException",
    );
    assert_error(
        &list(
            &emu,
            "updatedEarlierThan=2100-01-01T00%3A00%3A00Z&maxResults=0",
        )
        .await,
        400,
        "ValidationException",
    );
    assert_error(
        &list(&emu, "updatedEarlierThan=soon").await,
        400,
        "ValidationException",
    );
    assert_eq!(
        emu.calls().iter().filter(|c| c.op == "ListGroups").count(),
        9
    );
}

/// `secs` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, percent-encoded for a query.
fn iso(secs: f64) -> String {
    let whole = secs.floor() as i64;
    let millis = ((secs - secs.floor()) * 1000.0) as i64;
    let days = whole.div_euclid(86_400);
    let rem = whole.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 {
        yoe + era * 400 + 1
    } else {
        yoe + era * 400
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}%3A{:02}%3A{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test]
async fn effective_members_resolve_nested_groups() {
    let emu = start(QOptions::default()).await;
    put(&emu, "all", &["a"], &["eng", "missing"]).await;
    put(&emu, "eng", &["b"], &["platform"]).await;
    put(&emu, "platform", &["c"], &["all"]).await; // a cycle
    emu.seed_group("other", &["z"]);
    assert_eq!(emu.effective_members("all"), Some(set(&["a", "b", "c"])));
    assert_eq!(
        emu.effective_members("platform"),
        Some(set(&["a", "b", "c"]))
    );
    assert_eq!(emu.effective_members("other"), Some(set(&["z"])));
    assert_eq!(emu.effective_members("nope"), None);

    let seeded = &emu.groups()["other"];
    assert_eq!((seeded.status.as_str(), seeded.put_count), ("SUCCEEDED", 0));
    let view = send("GET", &format!("{}/_emulator/groups", emu.url()), &[], None)
        .await
        .json();
    assert_eq!(
        view["eng"],
        json!({ "users": ["b"], "groups": ["platform"], "status": "SUCCEEDED" })
    );
    assert_eq!(view["other"]["users"], json!(["z"]));
}

#[tokio::test]
async fn call_log_records_sdk_attempts() {
    let emu = start(QOptions::default()).await;
    let headers = [("amz-sdk-request", "attempt=2; max=3")];
    send("GET", &format!("{}/g", groups_url(&emu)), &headers, None).await;
    let calls = emu.calls();
    assert_eq!(
        (calls[0].attempt, calls[0].error_type.as_deref()),
        (Some(2), Some("ResourceNotFoundException"))
    );
    emu.reset_calls();
    assert!(emu.calls().is_empty());
}

#[tokio::test]
async fn binary_prints_urls_and_stops_when_stdin_closes() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_q-group-sync-emulator"))
        .args(["--groups", "5", "--users", "20", "--seed", "7", "--messy"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("first line");
    let info: Value = serde_json::from_str(&line).expect("one JSON line");
    assert_eq!(
        (info["application_id"].as_str(), info["index_id"].as_str()),
        (Some(APP), Some(INDEX))
    );
    let okta = info["okta_url"].as_str().expect("okta_url");
    let auth = format!("SSWS {}", info["okta_token"].as_str().expect("token"));
    let groups = send(
        "GET",
        &format!("{okta}/api/v1/groups"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(groups.json().as_array().map(Vec::len), Some(5));
    let q = info["qbusiness_url"].as_str().expect("qbusiness_url");
    let stats = send("GET", &format!("{q}/_emulator/stats"), &[], None)
        .await
        .json();
    assert_eq!(stats["calls"], 0);

    drop(child.stdin.take()); // closing stdin stops it
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after stdin closes")
        .expect("wait");
    assert!(status.success());
}

fn check_url(emu: &QEmulator, user: &str, document: &str, query: &str) -> String {
    format!(
        "{}/applications/{APP}/index/{INDEX}/users/{user}/documents/{document}/check-document-access{query}",
        emu.url()
    )
}

/// CheckDocumentAccess for `user` and `document` (both percent-encoded), `query` appended.
async fn check(emu: &QEmulator, user: &str, document: &str, query: &str) -> Reply {
    send("GET", &check_url(emu, user, document, query), &[], None).await
}

#[tokio::test]
async fn check_document_access_resolves_nested_groups_and_deny_lists() {
    let emu = start(QOptions::default()).await;
    // A chunked group: the parent names the chunk, the chunk holds the user.
    assert_eq!(
        put(
            &emu,
            "Staff (q-group-sync chunk 1 of 1)",
            &["Ana@Example.test"],
            &[]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        put(&emu, "Staff", &[], &["Staff (q-group-sync chunk 1 of 1)"])
            .await
            .status,
        200
    );
    assert_eq!(
        put(&emu, "Leavers", &["bo@example.test"], &[]).await.status,
        200
    );
    let acl = json!({
        "dataSourceId": null,
        "documentAcl": {
            "allowlist": {"memberRelation": "OR", "conditions": [
                {"memberRelation": "OR", "groups": [{"name": "Staff", "type": "INDEX"}],
                 "users": [{"id": "bo@example.test", "type": "INDEX"}]}
            ]},
            "denyList": {"conditions": [{"groups": [{"name": "Leavers", "type": "INDEX"}]}]}
        }
    });
    let r = send(
        "PUT",
        &format!("{}/_emulator/documents/handbook%2Fv1", emu.url()),
        &[("content-type", "application/json")],
        Some(acl.to_string().as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // Through the chunk, case-insensitively (Q compares emails so).
    let r = check(&emu, "ana%2Bwork%40example.test", "handbook%2Fv1", "").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["hasAccess"], true);
    let groups: BTreeSet<String> = body["userGroups"]
        .as_array()
        .expect("userGroups is a list")
        .iter()
        .map(|g| g["name"].as_str().expect("a group name").to_owned())
        .collect();
    assert_eq!(groups, set(&["Staff", "Staff (q-group-sync chunk 1 of 1)"]));
    assert_eq!(body["userGroups"][0]["type"], "INDEX");
    assert_eq!(
        body["documentAcl"]["allowlist"]["conditions"][0]["groups"][0]["name"],
        "Staff"
    );
    assert_eq!(body["userAliases"], json!([]));

    // Named directly, but in the deny list's group: denied.
    let r = check(&emu, "bo%40example.test", "handbook%2Fv1", "").await;
    assert_eq!(r.json()["hasAccess"], false);

    // A user Q has never seen: no groups, no access, not an error.
    let r = check(&emu, "zed%40example.test", "handbook%2Fv1", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["userGroups"], json!([]));
    assert_eq!(r.json()["hasAccess"], false);

    // An unknown document, or one of another data source: ResourceNotFoundException.
    let r = check(&emu, "ana%40example.test", "nope", "").await;
    let body = assert_error(&r, 404, "ResourceNotFoundException");
    assert_eq!(body["resourceType"], "DOCUMENT");
    assert_eq!(body["resourceId"], "nope");
    let ds = "cccccccc-cccc-cccc-cccc-cccccccccccc";
    let query = format!("?dataSourceId={ds}");
    let r = check(&emu, "ana%40example.test", "handbook%2Fv1", &query).await;
    assert_error(&r, 404, "ResourceNotFoundException");
    let r = check(
        &emu,
        "ana%40example.test",
        "handbook%2Fv1",
        "?dataSourceId=bad",
    )
    .await;
    assert_error(&r, 400, "ValidationException");

    // Removed through the control endpoint.
    let r = send(
        "DELETE",
        &format!("{}/_emulator/documents/handbook%2Fv1", emu.url()),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = check(&emu, "ana%40example.test", "handbook%2Fv1", "").await;
    assert_error(&r, 404, "ResourceNotFoundException");
}

#[tokio::test]
async fn each_open_reading_can_be_switched_on_at_run_time() {
    let emu = start(QOptions::default()).await;
    let modes = format!("{}/_emulator/modes", emu.url());
    let switch = |body: Value| {
        let modes = modes.clone();
        async move {
            let headers = [("content-type", "application/json")];
            send("POST", &modes, &headers, Some(body.to_string().as_bytes())).await
        }
    };
    assert_eq!(
        send("GET", &modes, &[], None).await.json()["empty_members"],
        "accept"
    );

    // An empty list refused, a groupMembers without it accepted (Kendra's reading).
    assert_eq!(
        switch(json!({ "empty_members": "omit-only" })).await.status,
        200
    );
    let one_user = json!({
        "groupMembers": { "memberUsers": [{ "userId": "ana@x.test", "type": "INDEX" }] },
        "groupName": "g",
        "type": "INDEX",
    });
    assert_eq!(put_raw(&emu, &one_user.to_string()).await.status, 200);
    // The helper sends `memberGroups: []` too: refused under this reading.
    assert_error(&put(&emu, "g", &[], &[]).await, 400, "ValidationException");
    let no_list = json!({ "groupMembers": {}, "groupName": "g", "type": "INDEX" });
    assert_eq!(put_raw(&emu, &no_list.to_string()).await.status, 200);
    assert!(emu.group("g").expect("g").users.is_empty());
    // No empty group at all.
    switch(json!({ "empty_members": "refuse" })).await;
    assert_error(
        &put_raw(&emu, &no_list.to_string()).await,
        400,
        "ValidationException",
    );

    // A stale GetGroup: the status from before the put, 404 for a group the put created.
    switch(json!({ "status_lag": 300 })).await;
    assert_eq!(
        put(&emu, "h", &["bo@x.test"], &[]).await.status,
        200,
        "accept again"
    );
    assert_error(
        &get_group(&emu, "h").await,
        404,
        "ResourceNotFoundException",
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        get_group(&emu, "h").await.json()["status"]["status"],
        "SUCCEEDED"
    );

    // A put that changes nothing keeps the status it had.
    switch(json!({ "noop_moves_status": false })).await;
    let before = get_group(&emu, "h").await.json()["status"].clone();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(put(&emu, "h", &["bo@x.test"], &[]).await.status, 200);
    assert_eq!(get_group(&emu, "h").await.json()["status"], before);
    assert_eq!(
        emu.group("h").expect("h").put_count,
        2,
        "accepted all the same"
    );

    // A cutoff ahead of the service's clock refused; the clock skewed behind the host's.
    switch(json!({ "future_cutoff": false, "clock_skew_secs": -60 })).await;
    assert_error(
        &list(&emu, "updatedEarlierThan=2100-01-01T00%3A00%3A00Z").await,
        400,
        "ValidationException",
    );
    let reply = list(&emu, "updatedEarlierThan=2000-01-01T00%3A00%3A00Z").await;
    assert_eq!(reply.status, 200);
    let date = httpdate::parse_http_date(reply.header("date").expect("date")).expect("http date");
    let behind = std::time::SystemTime::now()
        .duration_since(date)
        .expect("behind");
    assert!(behind >= Duration::from_secs(59), "{behind:?}");
}
