//! A client generated from the ORIGINAL two-RPC contract (`tests/proto/legacy/`, the file as it
//! was before API keys, Logout and Introspect) works unchanged against the current server.

use crate::helpers::{PASSWORD, assert_unauthenticated, spawn_app};

#[allow(clippy::all, clippy::pedantic)]
mod legacy {
    include!(concat!(env!("OUT_DIR"), "/legacy/auth.v1.rs"));
}

use legacy::auth_service_client::AuthServiceClient;
use legacy::token_request::Credential;
use legacy::{PasswordCredential, RefreshTokenRequest, TokenRequest};

#[tokio::test]
async fn client_built_from_the_original_proto_still_works() {
    let app = spawn_app().await;
    app.add_user("alice", &["admin"]).await;
    let addr = format!("http://{}", app.addr);
    let mut client = AuthServiceClient::connect(addr).await.unwrap();

    let tokens = client
        .token(TokenRequest {
            credential: Some(Credential::PasswordCredential(PasswordCredential {
                username: "alice".into(),
                password: PASSWORD.into(),
            })),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, claims) = app.verify(&tokens.access_token);
    assert_eq!(claims.roles, vec!["admin"]);
    assert!(!tokens.refresh_token.is_empty());

    let rotated = client
        .refresh_token(RefreshTokenRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    app.verify(&rotated.access_token);
    assert_ne!(rotated.refresh_token, tokens.refresh_token);

    // Errors look the same to an old client too.
    let refused = client
        .token(TokenRequest {
            credential: Some(Credential::PasswordCredential(PasswordCredential {
                username: "alice".into(),
                password: "not the password at all".into(),
            })),
        })
        .await
        .map(|r| r.into_inner());
    let refused = refused.map(|t| authd::grpc::pb::TokenResponse {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        ..Default::default()
    });
    assert_unauthenticated(refused, "invalid username or password");
    // An old client cannot send field 2 at all; an empty oneof is still INVALID_ARGUMENT.
    let status = client
        .token(TokenRequest { credential: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}
