//! The console in a real browser: what an administrator does, and that it takes effect on
//! the gRPC API and the JWKS.

use std::time::Duration;

use fantoccini::Locator;

use crate::browser;
use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn admin_signs_in_creates_a_user_and_disabling_them_refuses_their_grpc_login() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let Some(b) = browser::open(&app).await else {
        return;
    };
    b.sign_in("root").await;
    b.wait_for_heading("Overview").await;
    assert!(
        b.source().await.contains("<svg"),
        "the overview draws its chart"
    );
    b.screenshot("overview").await;

    b.click("nav a[href='/admin/users']").await;
    b.wait_for_heading("Users").await;
    // A refused password is shown beside its field, and nothing is created.
    b.fill("#username", "bob").await;
    b.fill("#password", "short").await;
    b.click("form[method=post][action='/admin/users'] button")
        .await;
    b.wait_xpath("//*[@id='password-error']").await;
    let error = b.text("#password-error").await;
    assert!(error.contains("password"), "{error}");
    assert!(
        app.login("bob", PASSWORD).await.is_err(),
        "bob was not created"
    );

    b.fill("#username", "bob").await;
    b.fill("#password", PASSWORD).await;
    b.fill("#roles", "reader").await;
    b.click("form[method=post][action='/admin/users'] button")
        .await;
    b.wait_for_heading("User bob").await;
    b.wait_notice("User created").await;
    app.login("bob", PASSWORD).await.expect("bob can log in");
    b.screenshot("user").await;

    b.click("form[action$='/bob/disable'] button").await;
    b.wait_notice("User disabled").await;
    let refused = app.login("bob", PASSWORD).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    b.goto("/admin/users").await;
    b.wait_for_heading("Users").await;
    b.screenshot("users").await;
    // The same page at phone width.
    b.resize(390, 844).await;
    b.goto("/admin/users").await;
    b.wait_for_heading("Users").await;
    b.screenshot("users-phone").await;
    b.close().await;
}

#[tokio::test]
async fn ending_a_session_in_the_browser_refuses_its_refresh_token() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    app.add_user("carol", &[]).await;
    let carol = app.login("carol", PASSWORD).await.unwrap();
    let Some(b) = browser::open(&app).await else {
        return;
    };
    b.sign_in("root").await;
    b.wait_for_heading("Overview").await;
    b.goto("/admin/users/carol").await;
    b.wait_for_heading("User carol").await;
    assert!(b.text("#sessions-title").await.contains("(1)"));
    b.click("form[action^='/admin/sessions/'] button").await;
    b.wait_notice("Session ended").await;
    let refused = app.refresh(&carol.refresh_token).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // An API key: its secret is shown once, and it logs in.
    b.fill("#key-name", "ci").await;
    b.click("form[action$='/carol/api-keys'] button[type=submit]")
        .await;
    b.wait_xpath("//*[@id='new-secret']").await;
    let secret = b
        .client
        .find(Locator::Css("#new-secret"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    app.api_key_login(&secret)
        .await
        .expect("the new key logs in");
    b.goto("/admin/users/carol").await;
    b.wait_for_heading("User carol").await;
    assert!(
        !b.source().await.contains(&secret),
        "the secret is shown once"
    );
    b.close().await;
}

#[tokio::test]
async fn rotating_a_key_in_the_browser_publishes_it_in_the_jwks() {
    let app = spawn_app().await;
    app.add_user("root", &["admin"]).await;
    let Some(b) = browser::open(&app).await else {
        return;
    };
    b.sign_in("root").await;
    b.wait_for_heading("Overview").await;
    b.click("nav a[href='/admin/keys']").await;
    b.wait_for_heading("Signing keys").await;
    let before = app.get_json("/.well-known/jwks.json").await["keys"]
        .as_array()
        .unwrap()
        .len();
    b.click("form[action='/admin/keys/rotate'] button").await;
    b.wait_notice("published").await;
    let pending = b
        .client
        .find(Locator::XPath(
            "//tr[.//span[normalize-space()='pending']]//code",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), before + 1);
    assert!(kids.contains(&pending.as_str()), "{pending} in {kids:?}");
    b.screenshot("keys").await;

    // The audit log shows the rotation, newest first, and the live tail brings new events.
    b.goto("/admin/audit?live=on").await;
    b.wait_for_heading("Audit log").await;
    let first = b.text("#audit-log tbody tr td:nth-child(2)").await;
    assert_eq!(first, "key_rotated");
    app.login("root", "not the password").await.unwrap_err();
    b.client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//div[@id='audit-log']//tbody/tr[1]/td[2][normalize-space()='login_failed']",
        ))
        .await
        .expect("the live tail shows the failed login");
    b.screenshot("audit").await;
    b.close().await;
}

#[tokio::test]
async fn a_non_admin_is_refused_in_the_browser() {
    let app = spawn_app().await;
    app.add_user("dave", &["reader"]).await;
    let Some(b) = browser::open(&app).await else {
        return;
    };
    b.sign_in("dave").await;
    b.wait_notice("does not hold the admin role").await;
    let sessions = app.sessions().await.list("dave").await.unwrap();
    assert!(sessions.is_empty(), "the non-admin's session was ended");
    b.goto("/admin/users").await;
    b.wait_for_heading("Sign in").await;
    b.screenshot("login-refused").await;
    b.close().await;
}
