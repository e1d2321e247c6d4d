//! The console over plain HTTP: what a browser would not send (a POST without the CSRF
//! token), the security headers, a non-administrator, and `console_enabled = false`.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with};
use crate::postgres::TestDatabase;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of every `Set-Cookie`, joined for a `Cookie` header.
fn cookies(headers: &HeaderMap) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter(|pair| !pair.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value of the first `name="csrf"` field of a page.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field");
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Signs in through the login form: the response and the cookies of the session.
async fn sign_in(app: &TestApp, username: &str) -> (reqwest::Response, String) {
    let http = client();
    let form = http
        .get(format!("{}/admin/login", app.http))
        .send()
        .await
        .unwrap();
    let login_cookie = cookies(form.headers());
    let csrf = csrf_of(&form.text().await.unwrap());
    let response = http
        .post(format!("{}/admin/login", app.http))
        .header("cookie", login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("username", username),
                ("password", PASSWORD),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let session = cookies(response.headers());
    (response, session)
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    csrf_less_posts_are_refused(spawn_app().await).await;
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing_on_postgres() {
    let Some(db) = TestDatabase::create("console csrf on postgres").await else {
        return;
    };
    let url = db.url.clone();
    csrf_less_posts_are_refused(spawn_app_with(|c| c.database_url = url).await).await;
    drop(db);
}

async fn csrf_less_posts_are_refused(app: TestApp) {
    app.add_user("root", &["admin"]).await;
    app.add_user("bob", &[]).await;
    let (response, session) = sign_in(&app, "root").await;
    assert_eq!(response.status(), 303);
    assert!(session.contains("authd_console="), "{session}");
    let http = client();
    let page = http
        .get(format!("{}/admin/users/bob", app.http))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap());

    for body in [String::new(), "csrf=forged".to_owned()] {
        let refused = http
            .post(format!("{}/admin/users/bob/disable", app.http))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("nothing was changed")
        );
    }
    assert!(app.admin().await.get("bob").await.unwrap().enabled);
    app.login("bob", PASSWORD).await.expect("bob still logs in");

    // No session at all: sent to sign in, nothing changed.
    let anonymous = http
        .post(format!("{}/admin/users/bob/disable", app.http))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()[LOCATION], "/admin/login");
    assert!(app.admin().await.get("bob").await.unwrap().enabled);

    // With the token, the same POST works.
    let done = http
        .post(format!("{}/admin/users/bob/disable", app.http))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    assert!(!app.admin().await.get("bob").await.unwrap().enabled);
}

#[tokio::test]
async fn console_pages_carry_the_security_headers_and_session_cookie_attributes() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let (status, headers, body) = app.get("/admin/login").await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(!body.contains("<script>"), "no inline script");
    assert!(!body.contains("style="), "no inline style");

    let (_, _) = sign_in(&app, "root").await;
    let (response, _) = sign_in(&app, "root").await;
    for cookie in response.headers().get_all(SET_COOKIE) {
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("Path=/admin"), "{cookie}");
        // Plain HTTP on loopback: the one case without `Secure`.
        assert!(!cookie.contains("Secure"), "{cookie}");
    }
}

#[tokio::test]
async fn a_non_admin_gets_no_console_session() {
    let app = spawn_app().await;
    app.add_user("dave", &["reader"]).await;
    let (response, session) = sign_in(&app, "dave").await;
    assert_eq!(response.status(), 403);
    assert!(!session.contains("authd_console="), "{session}");
    assert!(response.text().await.unwrap().contains("admin role"));
    assert!(app.sessions().await.list("dave").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_password_is_refused_like_the_api_refuses_it() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let http = client();
    let form = http
        .get(format!("{}/admin/login", app.http))
        .send()
        .await
        .unwrap();
    let login_cookie = cookies(form.headers());
    let csrf = csrf_of(&form.text().await.unwrap());
    let response = http
        .post(format!("{}/admin/login", app.http))
        .header("cookie", login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&username=root&password=wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(cookies(response.headers()).contains("authd_console_login="));
    assert!(!cookies(response.headers()).contains("authd_console="));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("invalid username or password")
    );
}

#[tokio::test]
async fn console_enabled_false_removes_the_routes() {
    let app = spawn_app_with(|c| c.console_enabled = false).await;
    let (status, _, _) = app.get("/admin/login").await;
    assert_eq!(status, 404);
    let (status, _, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
}

/// `Cookie` header value after applying `set` (a response's cookies) over `jar`.
fn merged(jar: &str, set: &str) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in jar
        .split("; ")
        .chain(set.split("; "))
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap();
        pairs.retain(|(n, _)| n != name);
        pairs.push((name.to_owned(), value.to_owned()));
    }
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_an_ended_session_signs_out() {
    // No clock_skew leeway (issue 16), so the 1 s token is expired after the sleep below.
    let app = spawn_app_with(|c| {
        c.access_token_ttl = std::time::Duration::from_secs(1);
        c.clock_skew = std::time::Duration::ZERO;
    })
    .await;
    app.add_user("root", &["admin"]).await;
    let (_, session) = sign_in(&app, "root").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let http = client();
    let page = http
        .get(format!("{}/admin/users", app.http))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the session was refreshed");
    let refreshed = merged(&session, &cookies(page.headers()));
    assert_ne!(refreshed, session, "new tokens were set");
    assert_eq!(app.sessions().await.list("root").await.unwrap().len(), 1);

    // Ended elsewhere (the CLI here): the browser is sent to sign in.
    app.sessions().await.revoke_all("root").await.unwrap();
    let page = http
        .get(format!("{}/admin/users", app.http))
        .header("cookie", &refreshed)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()[LOCATION], "/admin/login");
}

#[tokio::test]
async fn retiring_a_key_warns_first_then_removes_it_from_the_jwks() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let (_, session) = sign_in(&app, "root").await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let http = client();
    let warning = http
        .get(format!("{}/admin/keys/{kid}/retire", app.http))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(warning.status(), 200);
    let page = warning.text().await.unwrap();
    assert!(page.contains("Only for a compromised key"), "{page}");
    let csrf = csrf_of(&page);
    let done = http
        .post(format!("{}/admin/keys/{kid}/retire", app.http))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(!kids.contains(&kid.as_str()), "{kid} left {kids:?}");
    assert_eq!(kids.len(), 1, "a new key signs");
    let events = app.admin().await.audit_tail(None, 5).await.unwrap();
    let rotated = events
        .iter()
        .rev()
        .find(|e| e.kind.as_str() == "key_rotated")
        .unwrap();
    let detail = rotated.detail.as_deref().unwrap();
    assert!(detail.starts_with("by=user:root;"), "{detail}");
    assert!(
        detail.contains(&format!("retired={kid} reason=emergency")),
        "{detail}"
    );
}
