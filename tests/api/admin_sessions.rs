//! `ListSessions` without a username: every user's live sessions, newest first, as keyset
//! pages of one store query each, on SQLite and PostgreSQL.

use std::collections::BTreeSet;

use authd::grpc::pb;
use tonic::Code;

use crate::admin_authz::{access_token, admin_client, with_bearer};
use crate::admin_users::on_both;
use crate::helpers::{PASSWORD, TestApp};

on_both!(
    lists_every_live_session,
    admin_lists_every_users_live_sessions_page_by_page_each_once,
    on_postgres_admin_lists_every_users_live_sessions_page_by_page_each_once
);

async fn lists_every_live_session(app: TestApp) {
    app.add_user("root", &["admin"]).await;
    let token = access_token(&app, "root").await;
    let mut expected = BTreeSet::new();
    for name in ["alice", "bob", "carol"] {
        app.add_user(name, &[]).await;
        for _ in 0..7 {
            let tokens = app.login(name, PASSWORD).await.unwrap();
            let found = app.introspect(&tokens.refresh_token).await.unwrap();
            expected.insert(found.session_id);
        }
    }
    // An ended session is not listed. (Not root's: ending it would end the admin's token.)
    let ended = expected.pop_first().unwrap();
    app.sessions().await.revoke(&ended).await.unwrap();
    // root's own session (from access_token) is live too.
    let roots = app.sessions().await.list("root").await.unwrap();
    expected.extend(roots.iter().map(|s| s.id.to_string()));

    let mut admin = admin_client(&app);
    let mut seen = Vec::new();
    let mut created = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_sessions(with_bearer(
                pb::ListSessionsRequest {
                    username: String::new(),
                    page_size: 4,
                    page_token: page_token.clone(),
                },
                &token,
            ))
            .await
            .unwrap_or_else(|e| panic!("the page after {page_token:?}: {e:?}"))
            .into_inner();
        assert!(page.sessions.len() <= 4);
        for s in page.sessions {
            created.push(s.created_at_ms);
            seen.push(s.id);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen.len(), expected.len(), "each session once: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let bad = admin
        .list_sessions(with_bearer(
            pb::ListSessionsRequest {
                page_token: "bm90IGEgY3Vyc29y".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}
