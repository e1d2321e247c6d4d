//! The example resource server (examples/resource_server.rs) in front of a real authd: it
//! fetches authd's JWKS over HTTP and admits only requests with a valid access token.

use std::sync::Arc;

use authd_verifier::{Verifier, VerifierConfig};
use tonic::Code;

use crate::helpers::{PASSWORD, TestApp, spawn_app};

#[path = "../../examples/resource_server.rs"]
mod example;

/// Starts the example in front of `app`, accepting `audience`; returns its address.
async fn start_resource_server(app: &TestApp, audience: &str) -> std::net::SocketAddr {
    let config = VerifierConfig::new(app.config.issuer.clone(), [audience]);
    let jwks_url = format!("{}/.well-known/jwks.json", app.http);
    let verifier = Arc::new(Verifier::with_jwks_url(config, jwks_url).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(listener, verifier, std::future::pending()));
    addr
}

async fn whoami(
    addr: std::net::SocketAddr,
    authorization: Option<&str>,
) -> Result<example::WhoamiReply, tonic::Status> {
    let channel = tonic::transport::Endpoint::new(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(example::WhoamiRequest {});
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    grpc.unary(
        request,
        http::uri::PathAndQuery::from_static(example::WHOAMI_PATH),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn resource_server_admits_only_valid_access_tokens_and_sees_their_claims() {
    let app = spawn_app().await;
    app.add_user("alice", &["reader", "writer"]).await;
    let token = app.login("alice", PASSWORD).await.unwrap().access_token;
    let (_, claims) = app.verify(&token);
    let addr = start_resource_server(&app, "authd").await;

    let reply = whoami(addr, Some(&format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(reply.sub, claims.sub);
    assert_eq!(reply.username, "alice");
    assert_eq!(reply.roles, vec!["reader", "writer"]);

    for bad in [
        None,
        Some("Bearer".to_owned()),
        Some(format!("Basic {token}")),
        Some("Bearer not.a.token".to_owned()),
        Some(format!("Bearer {}x", &token[..token.len() - 1])),
    ] {
        let status = whoami(addr, bad.as_deref()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{bad:?}: {status:?}");
    }

    // A resource server expecting another audience refuses authd's tokens for "authd".
    let other = start_resource_server(&app, "billing").await;
    let status = whoami(other, Some(&format!("Bearer {token}")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
