//! The admin and account APIs as JSON on the HTTP port (their `google.api.http` annotations),
//! called as curl would: every annotated route refuses a caller without a token (401) and an
//! admin route a non-admin (403), with the JSON status body; and a representative set of
//! calls does what its RPC does, through the same service calls.

use serde_json::{Value, json};

use crate::admin_authz::access_token;
use crate::helpers::{PASSWORD, TestApp, spawn_app};

/// `(verb, path)` of every `google.api.http` annotation in the admin and account protos.
fn annotated_routes() -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for proto in [
        include_str!("../../proto/auth/v1/admin.proto"),
        include_str!("../../proto/auth/v1/account.proto"),
    ] {
        for line in proto.lines() {
            let Some(rule) = line.trim().strip_prefix("option (google.api.http) = {") else {
                continue;
            };
            let (verb, rest) = rule.split_once(':').unwrap();
            let path = rest
                .trim()
                .trim_start_matches('"')
                .split('"')
                .next()
                .unwrap();
            routes.push((verb.trim().to_uppercase(), path.to_owned()));
        }
    }
    assert!(routes.len() > 20, "{routes:?}");
    routes
}

/// A request as curl sends it: method, path, `authorization: Bearer …` when given, a JSON
/// body when given. Returns the status and the parsed body.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{path}", app.http),
    );
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_annotated_route_is_served_and_admits_only_whom_its_rpc_admits() {
    let app = spawn_app().await;
    app.add_user("bob", &["reader"]).await;
    let bob = access_token(&app, "bob").await;
    for (verb, path) in annotated_routes() {
        let path = path
            .replace("{username}", "nobody")
            .replace("{id}", "none")
            .replace("{kid}", "none");
        let (status, body) = call(&app, &verb, &path, None, None).await;
        assert_eq!(status, 401, "{verb} {path} without a token: {body}");
        assert_eq!(body["code"], 16, "{verb} {path}: {body}");
        if path.starts_with("/v1/admin/") {
            let (status, body) = call(&app, &verb, &path, Some(&bob), None).await;
            assert_eq!(status, 403, "{verb} {path} as a non-admin: {body}");
            assert_eq!(body["code"], 7, "{verb} {path}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_and_account_json_routes_do_what_their_rpcs_do() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let root = access_token(&app, "root").await;
    let token = Some(root.as_str());

    let new_user = json!({"username": "carol", "password": PASSWORD, "roles": ["reader"]});
    let (status, carol) = call(
        &app,
        "POST",
        "/v1/admin/users",
        token,
        Some(new_user.clone()),
    )
    .await;
    assert_eq!(status, 200, "{carol}");
    assert_eq!(carol["username"], "carol");
    assert_eq!(carol["roles"], json!(["reader"]));
    assert!(
        carol["createdAtMs"].is_string(),
        "int64 as a string: {carol}"
    );
    let (status, body) = call(&app, "POST", "/v1/admin/users", token, Some(new_user)).await;
    assert_eq!((status, &body["code"]), (409, &json!(6)), "{body}");

    let (status, page) = call(&app, "GET", "/v1/admin/users?pageSize=1", token, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["users"].as_array().unwrap().len(), 1);
    let next = page["nextPageToken"].as_str().unwrap().to_owned();
    let (_, rest) = call(
        &app,
        "GET",
        &format!("/v1/admin/users?pageSize=1&pageToken={next}"),
        token,
        None,
    )
    .await;
    assert_ne!(rest["users"][0]["username"], page["users"][0]["username"]);
    let (_, filtered) = call(
        &app,
        "GET",
        "/v1/admin/users?namePrefix=ca&role=reader",
        token,
        None,
    )
    .await;
    assert_eq!(filtered["users"][0]["username"], "carol", "{filtered}");
    assert_eq!(filtered["users"].as_array().unwrap().len(), 1);

    let (status, changed) = call(
        &app,
        "POST",
        "/v1/admin/users/carol/roles",
        token,
        Some(json!({"add": ["writer"]})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["roles"], json!(["reader", "writer"]));

    // Self-service as carol.
    let carols = app.login("carol", PASSWORD).await.unwrap().access_token;
    let (status, me) = call(&app, "GET", "/v1/account/me", Some(&carols), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "carol");
    let (_, sessions) = call(&app, "GET", "/v1/account/sessions", Some(&carols), None).await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        1,
        "{sessions}"
    );

    let (status, disabled) = call(
        &app,
        "POST",
        "/v1/admin/users/carol/enabled",
        token,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{disabled}");
    // proto3 JSON leaves out fields at their default: `enabled: false` is absent.
    assert_eq!(disabled["username"], "carol");
    assert!(disabled.get("enabled").is_none(), "{disabled}");
    let (status, _) = call(&app, "GET", "/v1/account/me", Some(&carols), None).await;
    assert_eq!(status, 401, "a disabled user's token stops at once");
    let (_, listed) = call(
        &app,
        "GET",
        "/v1/admin/users?disabledOnly=true",
        token,
        None,
    )
    .await;
    assert_eq!(listed["users"][0]["username"], "carol", "{listed}");

    let (status, rotated) = call(&app, "POST", "/v1/admin/signing-keys/rotate", token, None).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["scheduled"], true);
    let (status, deleted) = call(&app, "DELETE", "/v1/admin/users/carol", token, None).await;
    assert_eq!(status, 200, "{deleted}");
    let (status, body) = call(&app, "GET", "/v1/admin/users/carol", token, None).await;
    assert_eq!((status, &body["code"]), (404, &json!(5)), "{body}");

    let (status, audit) = call(
        &app,
        "GET",
        "/v1/admin/audit?eventType=user_deleted&pageSize=10",
        token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["events"][0]["username"], "carol", "{audit}");
    assert!(
        audit["events"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("by=user:root")
    );

    // Bad input: a clear error, nothing done.
    for (method, path, body) in [
        ("GET", "/v1/admin/users?nope=1", None),
        ("GET", "/v1/admin/users?disabledOnly=maybe", None),
        ("GET", "/v1/admin/users?pageSize=many", None),
        (
            "POST",
            "/v1/admin/users",
            Some(json!(["not", "an", "object"])),
        ),
    ] {
        let (status, answer) = call(&app, method, path, token, body).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(answer["code"], 3);
    }
}
