//! `auth.v1.AccountService` end to end: only an active token of an enabled user is a caller
//! (every method, from the descriptor), and each RPC acts on the caller's own user only.

use std::time::Duration;

use authd::domain::{ManualClock, Timestamp};
use authd::grpc::account::AccountServiceClient;
use authd::grpc::pb;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::admin_authz::{call_raw, methods_of, with_bearer};
use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_on_with_clock, test_config};

fn account_client(app: &TestApp) -> AccountServiceClient<Channel> {
    AccountServiceClient::new(
        Endpoint::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect_lazy(),
    )
}

fn channel(app: &TestApp) -> Channel {
    Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_lazy()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_account_rpc_needs_an_active_token_of_an_enabled_user() {
    // A clock the test moves: "expired" cannot depend on how busy the machine is.
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = test_config(&dir);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let clock = ManualClock::new(Timestamp::from_unix_millis(
        i64::try_from(now.as_millis()).unwrap(),
    ));
    let app = spawn_on_with_clock(dir, config.clone(), std::sync::Arc::new(clock.clone())).await;
    app.add_user("alice", &[]).await;
    app.add_user("ghost", &[]).await;
    let expired = app.login("alice", PASSWORD).await.unwrap().access_token;
    // Past exp and the clock_skew leeway (issue 16).
    clock.advance(config.access_token_ttl + config.clock_skew + Duration::from_secs(1));
    let disabled = app.login("ghost", PASSWORD).await.unwrap().access_token;
    app.admin().await.set_enabled("ghost", false).await.unwrap();
    for method in methods_of("AccountService") {
        for (row, bearer) in [
            ("no token", None),
            ("expired token", Some(expired.as_str())),
            ("disabled user", Some(disabled.as_str())),
        ] {
            let result = call_raw(channel(&app), "AccountService", &method, bearer).await;
            assert!(
                matches!(&result, Err(s) if s.code() == Code::Unauthenticated),
                "{method} with {row}: {result:?}"
            );
        }
        // ChangePassword is left out of the admitted row: an empty current password is
        // refused like a wrong one (UNAUTHENTICATED), which says nothing about admission.
        if method == "ChangePassword" {
            continue;
        }
        let token = app.login("alice", PASSWORD).await.unwrap().access_token;
        let result = call_raw(channel(&app), "AccountService", &method, Some(&token)).await;
        assert!(
            !matches!(&result, Err(s) if s.code() == Code::Unauthenticated),
            "{method} as alice: {result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_manages_only_their_own_account() {
    let app = spawn_app().await;
    app.add_user("alice", &["reader"]).await;
    app.add_user("bob", &[]).await;
    let first = app.login("alice", PASSWORD).await.unwrap();
    let other = app.login("alice", PASSWORD).await.unwrap();
    let bob = app.login("bob", PASSWORD).await.unwrap();
    let token = first.access_token.clone();
    let mut account = account_client(&app);

    let me = account
        .get_me(with_bearer(pb::GetMeRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.username, "alice");
    assert_eq!(me.roles, ["reader"]);

    // Sessions: mine only; bob's is unknown to me.
    let mine = account
        .list_my_sessions(with_bearer(pb::ListMySessionsRequest::default(), &token))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|s| s.username == "alice"));
    let bobs = app.sessions().await.list("bob").await.unwrap();
    let refused = account
        .revoke_my_session(with_bearer(
            pb::RevokeSessionRequest {
                id: bobs[0].id.to_string(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert!(app.refresh(&bob.refresh_token).await.is_ok());
    account
        .revoke_my_session(with_bearer(
            pb::RevokeSessionRequest {
                id: mine[0].id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();

    // API keys: roles limited to mine; bob's keys untouchable.
    let over = account
        .create_my_api_key(with_bearer(
            pb::CreateMyApiKeyRequest {
                name: "ci".into(),
                roles: vec!["admin".into()],
                expires_in_seconds: 0,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::InvalidArgument);
    let key = account
        .create_my_api_key(with_bearer(
            pb::CreateMyApiKeyRequest {
                name: "ci".into(),
                roles: vec![],
                expires_in_seconds: 600,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(app.api_key_login(&key.secret).await.is_ok());
    let (bob_key, _) = app.create_api_key("bob", &[], None).await;
    let listed = account
        .list_my_api_keys(with_bearer(pb::ListMyApiKeysRequest::default(), &token))
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(listed.len(), 1);
    let refused = account
        .revoke_my_api_key(with_bearer(pb::RevokeApiKeyRequest { id: bob_key }, &token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    account
        .revoke_my_api_key(with_bearer(
            pb::RevokeApiKeyRequest {
                id: listed[0].id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    assert!(app.api_key_login(&key.secret).await.is_err());

    // Changing the password: the current one is required, the policy applies, every session
    // ends and a new one is issued.
    let wrong = account
        .change_password(with_bearer(
            pb::ChangePasswordRequest {
                current_password: "not my password at all".into(),
                new_password: "a fresh long passphrase".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let weak = account
        .change_password(with_bearer(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "short".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(weak.code(), Code::InvalidArgument);
    let fresh = account
        .change_password(with_bearer(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "a fresh long passphrase".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(app.refresh(&other.refresh_token).await.is_err());
    assert!(app.refresh(&fresh.refresh_token).await.is_ok());
    assert!(app.login("alice", "a fresh long passphrase").await.is_ok());
    let left = account
        .revoke_all_my_sessions(with_bearer(
            pb::RevokeAllMySessionsRequest {},
            &fresh.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(left.revoked, 2);
    assert!(app.refresh(&bob.refresh_token).await.is_ok());
}
