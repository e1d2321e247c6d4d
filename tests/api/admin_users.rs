//! `auth.v1.AdminService`'s users (and, in the lifecycle, its sessions, API keys and signing
//! keys) end to end, on SQLite and, when `AUTHD_TEST_POSTGRES_URL` is set, PostgreSQL: each
//! RPC, every change audited, paging over a thousand users, concurrent changes.

use authd::domain::{Role, Timestamp, User, UserId, Username};
use authd::grpc::pb;
use authd::store::NewUser;
use tonic::Code;

use crate::admin_authz::{access_token, admin_client, with_bearer};
use crate::helpers::{PASSWORD, TestApp};

/// A server on a fresh PostgreSQL database (see `tests/support/postgres.rs`), or `None` (after
/// printing why) when `AUTHD_TEST_POSTGRES_URL` is unset. Keep the database until the app
/// has stopped: drop the app first. (Here, not in `helpers.rs`, which other test crates
/// include without the PostgreSQL support module.)
pub(crate) async fn spawn_app_on_postgres(
    test: &str,
) -> Option<(TestApp, crate::pg::TestDatabase)> {
    let db = crate::pg::TestDatabase::create(test).await?;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut config = crate::helpers::test_config(&dir);
    config.database_url = db.url.clone();
    Some((crate::helpers::spawn_on(dir, config).await, db))
}

/// Runs `$body` (an `async fn(TestApp)`) on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($body:ident, $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $sqlite() {
            $body(crate::helpers::spawn_app().await).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $postgres() {
            if let Some((app, _db)) =
                crate::admin_users::spawn_app_on_postgres(stringify!($postgres)).await
            {
                $body(app).await;
            }
        }
    };
}
pub(crate) use on_both;

on_both!(
    manages_everything,
    admin_manages_users_sessions_api_keys_and_signing_keys_and_every_change_is_audited,
    on_postgres_admin_manages_users_sessions_api_keys_and_signing_keys
);
on_both!(
    pages_a_thousand_users,
    paging_over_a_thousand_users_returns_each_exactly_once,
    on_postgres_paging_over_a_thousand_users_returns_each_exactly_once
);
on_both!(
    concurrent_role_changes,
    concurrent_role_changes_lose_no_update,
    on_postgres_concurrent_role_changes_lose_no_update
);

async fn manages_everything(app: TestApp) {
    app.add_user("root", &["admin"]).await;
    let token = access_token(&app, "root").await;
    let mut admin = admin_client(&app);

    let created = admin
        .create_user(with_bearer(
            pb::CreateUserRequest {
                username: "carol".into(),
                password: PASSWORD.into(),
                roles: vec!["reader".into()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.username, "carol");
    assert_eq!(created.roles, ["reader"]);
    let duplicate = admin
        .create_user(with_bearer(
            pb::CreateUserRequest {
                username: "carol".into(),
                password: PASSWORD.into(),
                roles: vec![],
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    let weak = admin
        .create_user(with_bearer(
            pb::CreateUserRequest {
                username: "dave".into(),
                password: "short".into(),
                roles: vec![],
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(weak.code(), Code::InvalidArgument, "{weak:?}");

    let got = admin
        .get_user(with_bearer(
            pb::GetUserRequest {
                username: "carol".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.id, created.id);
    let missing = admin
        .get_user(with_bearer(
            pb::GetUserRequest {
                username: "nobody".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let changed = admin
        .update_user_roles(with_bearer(
            pb::UpdateUserRolesRequest {
                username: "carol".into(),
                add: vec!["writer".into()],
                remove: vec!["reader".into()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.roles, ["writer"]);

    // A session of carol's, listed and ended by the admin.
    let tokens = app.login("carol", PASSWORD).await.unwrap();
    let sessions = admin
        .list_sessions(with_bearer(
            pb::ListSessionsRequest {
                username: "carol".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sessions.sessions.len(), 1);
    assert!(sessions.next_page_token.is_empty());
    admin
        .revoke_session(with_bearer(
            pb::RevokeSessionRequest {
                id: sessions.sessions[0].id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    assert!(app.refresh(&tokens.refresh_token).await.is_err());
    app.login("carol", PASSWORD).await.unwrap();
    let ended = admin
        .revoke_user_sessions(with_bearer(
            pb::RevokeUserSessionsRequest {
                username: "carol".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.revoked, 1);

    // API keys: the secret once, then listed without it, then revoked.
    let key = admin
        .create_api_key(with_bearer(
            pb::CreateApiKeyRequest {
                username: "carol".into(),
                name: "ci".into(),
                roles: vec![],
                expires_in_seconds: 3600,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(app.api_key_login(&key.secret).await.is_ok());
    let listed = admin
        .list_api_keys(with_bearer(pb::ListApiKeysRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.keys.len(), 1);
    assert_eq!(listed.keys[0].roles, ["writer"]);
    assert!(!format!("{listed:?}").contains(&key.secret));
    let foreign_role = admin
        .create_api_key(with_bearer(
            pb::CreateApiKeyRequest {
                username: "carol".into(),
                name: "x".into(),
                roles: vec!["admin".into()],
                expires_in_seconds: 0,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign_role.code(), Code::InvalidArgument);
    let key_id = key.key.unwrap().id;
    admin
        .revoke_api_key(with_bearer(
            pb::RevokeApiKeyRequest { id: key_id.clone() },
            &token,
        ))
        .await
        .unwrap();
    assert!(app.api_key_login(&key.secret).await.is_err());

    // Password, disabling, unlocking, deleting.
    admin
        .set_user_password(with_bearer(
            pb::SetUserPasswordRequest {
                username: "carol".into(),
                password: "an entirely new passphrase".into(),
            },
            &token,
        ))
        .await
        .unwrap();
    assert!(
        app.login("carol", "an entirely new passphrase")
            .await
            .is_ok()
    );
    let disabled = admin
        .set_user_enabled(with_bearer(
            pb::SetUserEnabledRequest {
                username: "carol".into(),
                enabled: false,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!disabled.enabled);
    let unlocked = admin
        .unlock_user(with_bearer(
            pb::UnlockUserRequest {
                username: "carol".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!unlocked.cleared);
    admin
        .delete_user(with_bearer(
            pb::DeleteUserRequest {
                username: "carol".into(),
            },
            &token,
        ))
        .await
        .unwrap();

    // Signing keys.
    let keys = admin
        .list_signing_keys(with_bearer(pb::ListSigningKeysRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(keys.keys[0].state, "active");
    let rotated = admin
        .rotate_signing_key(with_bearer(pb::RotateSigningKeyRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.scheduled);
    let keys = admin
        .list_signing_keys(with_bearer(pb::ListSigningKeysRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(
        keys.keys
            .iter()
            .any(|k| k.kid == rotated.kid && k.state == "pending")
    );

    // Every change names the acting admin and the client's address.
    let events = admin
        .query_audit(with_bearer(
            pb::QueryAuditRequest {
                username: String::new(),
                limit: 1000,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    for kind in [
        "user_created",
        "user_changed",
        "family_revoked",
        "api_key_created",
        "api_key_revoked",
        "password_changed",
        "user_disabled",
        "user_unlocked",
        "user_deleted",
        "key_rotated",
    ] {
        let event = events
            .iter()
            .find(|e| e.event_type == kind && e.detail.starts_with("by=user:root"))
            .unwrap_or_else(|| panic!("no {kind} by root in {events:#?}"));
        assert_eq!(event.source, "127.0.0.1", "{event:?}");
    }
    assert!(!format!("{events:?}").contains(&key.secret));
}

async fn pages_a_thousand_users(app: TestApp) {
    app.add_user("root", &["admin"]).await;
    let store = authd::store::open(&app.config.database_url).await.unwrap();
    for i in 0..1000 {
        let user = User {
            id: UserId::generate(),
            username: Username::parse(&format!("user{i:04}")).unwrap(),
            roles: if i % 10 == 0 {
                vec![Role::parse("ops").unwrap()]
            } else {
                vec![]
            },
            enabled: true,
            created_at: Timestamp::from_unix_millis(0),
        };
        store
            .create_user(&NewUser {
                user,
                password_hash: "not a hash".into(),
            })
            .await
            .unwrap();
    }
    let token = access_token(&app, "root").await;
    let mut admin = admin_client(&app);
    let walk = |filter: pb::ListUsersRequest| {
        let mut admin = admin.clone();
        let token = token.clone();
        async move {
            let mut seen = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = admin
                    .list_users(with_bearer(
                        pb::ListUsersRequest {
                            page_size: 37,
                            page_token: page_token.clone(),
                            ..filter.clone()
                        },
                        &token,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                assert!(page.users.len() <= 37);
                seen.extend(page.users.into_iter().map(|u| u.username));
                if page.next_page_token.is_empty() {
                    return seen;
                }
                page_token = page.next_page_token;
            }
        }
    };
    let all = walk(pb::ListUsersRequest::default()).await;
    assert_eq!(all.len(), 1001);
    let unique: std::collections::BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 1001);
    let ops = walk(pb::ListUsersRequest {
        role: "ops".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(ops.len(), 100);
    let prefixed = walk(pb::ListUsersRequest {
        name_prefix: "user09".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(prefixed.len(), 100);
    let bad = admin
        .list_users(with_bearer(
            pb::ListUsersRequest {
                page_token: "not base64!".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

async fn concurrent_role_changes(app: TestApp) {
    app.add_user("root", &["admin"]).await;
    app.add_user("erin", &[]).await;
    let token = access_token(&app, "root").await;
    let admin = admin_client(&app);
    let changes = (0..16).map(|i| {
        let mut admin = admin.clone();
        let token = token.clone();
        tokio::spawn(async move {
            admin
                .update_user_roles(with_bearer(
                    pb::UpdateUserRolesRequest {
                        username: "erin".into(),
                        add: vec![format!("role{i:02}")],
                        remove: vec![],
                    },
                    &token,
                ))
                .await
                .unwrap();
        })
    });
    for change in futures::future::join_all(changes).await {
        change.unwrap();
    }
    let mut admin = admin;
    let erin = admin
        .get_user(with_bearer(
            pb::GetUserRequest {
                username: "erin".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erin.roles.len(), 16, "{:?}", erin.roles);
}
