//! Per-source rate limits, trusted proxies, and shedding of logins when the hashing queue is
//! full.

use authd::domain::Username;
use authd::grpc::pb::{
    IntrospectRequest, LogoutRequest, PasswordCredential, RefreshTokenRequest, TokenRequest,
};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{TestApp, spawn_app_with};

async fn refresh_from(app: &TestApp, forwarded_for: Option<&str>) -> tonic::Status {
    let mut request = tonic::Request::new(RefreshTokenRequest {
        refresh_token: "not-a-token".into(),
    });
    if let Some(xff) = forwarded_for {
        request
            .metadata_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
    }
    app.client.clone().refresh_token(request).await.unwrap_err()
}

#[tokio::test]
async fn per_source_limit_refuses_past_the_burst_on_token_and_refresh() {
    let app = spawn_app_with(|c| {
        c.per_source_rate = 1;
        c.per_source_burst = 3;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(refresh_from(&app, None).await.code(), Code::Unauthenticated);
    }
    assert_eq!(
        app.login("alice", "whatever password")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // The bucket is empty: both RPCs are refused, with a retry hint.
    for status in [
        refresh_from(&app, None).await,
        app.login("alice", "whatever password").await.unwrap_err(),
    ] {
        assert_rate_limited(&status);
    }
}

/// A request carrying `x-forwarded-for: source` (believed: the tests trust loopback).
fn from<T>(message: T, source: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-forwarded-for", source.parse().unwrap());
    request
}

fn assert_rate_limited(status: &tonic::Status) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), "too many requests; retry later");
    let wait: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
}

#[tokio::test]
async fn logout_and_introspect_are_limited_per_source_too() {
    let app = spawn_app_with(|c| {
        c.per_source_rate = 1;
        c.per_source_burst = 2;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.introspection_open = true;
    })
    .await;
    let mut client = app.client.clone();
    let logout = || LogoutRequest {
        refresh_token: "not-a-token".into(),
        access_token: String::new(),
    };
    let introspect = || IntrospectRequest {
        token: "not-a-token".into(),
        token_type_hint: String::new(),
    };
    // Within the burst, both answer as usual (unknown tokens: success, inactive).
    client.logout(from(logout(), "192.0.2.1")).await.unwrap();
    let answer = client
        .introspect(from(introspect(), "192.0.2.1"))
        .await
        .unwrap();
    assert!(!answer.into_inner().active);
    // The bucket is empty: both are refused before their handler, with a retry hint.
    let refused = client
        .logout(from(logout(), "192.0.2.1"))
        .await
        .unwrap_err();
    assert_rate_limited(&refused);
    let refused = client
        .introspect(from(introspect(), "192.0.2.1"))
        .await
        .unwrap_err();
    assert_rate_limited(&refused);
    // One bucket per source across all RPCs: the same source cannot log in or refresh
    // either, while another source is unaffected.
    assert_rate_limited(&refresh_from(&app, Some("192.0.2.1")).await);
    client
        .introspect(from(introspect(), "192.0.2.2"))
        .await
        .unwrap();
    // Health checks are not rate limited.
    let channel = tonic::transport::Endpoint::new(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for _ in 0..5 {
        health
            .check(from(HealthCheckRequest::default(), "192.0.2.1"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // Untrusted peer: x-forwarded-for is ignored, so every request shares one bucket.
    let app = spawn_app_with(|c| {
        c.per_source_rate = 1;
        c.per_source_burst = 1;
    })
    .await;
    assert_eq!(
        refresh_from(&app, Some("192.0.2.1")).await.code(),
        Code::Unauthenticated
    );
    assert_eq!(
        refresh_from(&app, Some("192.0.2.2")).await.code(),
        Code::ResourceExhausted
    );

    // Trusted peer (loopback): each forwarded client has its own bucket.
    let app = spawn_app_with(|c| {
        c.per_source_rate = 1;
        c.per_source_burst = 1;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    assert_eq!(
        refresh_from(&app, Some("192.0.2.1")).await.code(),
        Code::Unauthenticated
    );
    assert_eq!(
        refresh_from(&app, Some("192.0.2.2")).await.code(),
        Code::Unauthenticated
    );
    assert_eq!(
        refresh_from(&app, Some("192.0.2.1")).await.code(),
        Code::ResourceExhausted
    );
    // A client cannot escape its bucket by prepending addresses of its own.
    assert_eq!(
        refresh_from(&app, Some("198.51.100.7, 192.0.2.2"))
            .await
            .code(),
        Code::ResourceExhausted
    );
    // The resolved address is what the audit trail records.
    app.login("nobody", "some wrong password")
        .await
        .unwrap_err();
    let mut request = tonic::Request::new(TokenRequest {
        credential: Some(
            authd::grpc::pb::token_request::Credential::PasswordCredential(PasswordCredential {
                username: "nobody".into(),
                password: "some wrong password".into(),
            }),
        ),
    });
    request
        .metadata_mut()
        .insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
    app.client.clone().token(request).await.unwrap_err();
    let events = app
        .admin()
        .await
        .audit_tail(Some("nobody"), 10)
        .await
        .unwrap();
    let sources: Vec<_> = events.iter().map(|e| e.source.clone().unwrap()).collect();
    assert_eq!(sources, ["127.0.0.1", "203.0.113.5"]);
}

#[tokio::test]
async fn login_flood_is_shed_with_unavailable_instead_of_queueing() {
    const LOGINS: usize = 48;
    let app = spawn_app_with(|c| {
        // Slow enough hashing that a burst piles up behind one permit.
        c.argon2_memory_kib = 16 * 1024;
        c.argon2_iterations = 2;
        c.hash_permits = 1;
        c.hash_queue_max = 3;
        c.hash_queue_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let attempts = (0..LOGINS).map(|i| {
        let app = &app;
        // Distinct names, so per-username throttling plays no part.
        async move {
            app.login(&format!("flood-{i}"), "some wrong password")
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let mut checked = 0;
    let mut shed = 0;
    for result in results {
        let status = result.unwrap_err();
        match status.code() {
            Code::Unauthenticated => checked += 1,
            Code::Unavailable => {
                assert_eq!(status.message(), "service overloaded; retry later");
                shed += 1;
            }
            other => panic!("unexpected {other:?}: {status:?}"),
        }
    }
    assert_eq!(checked + shed, LOGINS);
    assert!(shed > 0, "a flood far beyond the queue must be shed");
    assert!(checked > 0, "the pool keeps serving during the flood");
    assert_eq!(app.service.hasher().shed_total(), shed as u64);
    // Most of the flood is refused at the door, while the queue is full, before the throttle
    // charges it: no failure counter for those names (the others are charged first).
    let store = authd::store::open(&app.config.database_url).await.unwrap();
    let mut uncharged = 0;
    for i in 0..LOGINS {
        let name = Username::parse(&format!("flood-{i}")).unwrap();
        if store.login_failures(&name).await.unwrap().is_none() {
            uncharged += 1;
        }
    }
    assert!(
        (1..=shed).contains(&uncharged),
        "{uncharged} uncharged of {shed} shed"
    );
}
