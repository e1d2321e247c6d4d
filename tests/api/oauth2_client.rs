//! A real OAuth 2.0 client library (the `oauth2` crate) drives the endpoints (issue 17):
//! client credentials, refresh, introspection and revocation, as any integrator would.

use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, ClientId, ClientSecret, IntrospectionUrl, RefreshToken, RevocationUrl,
    StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};

use crate::helpers::{PASSWORD, TestApp, spawn_app_with};

/// The crate's HTTP transport, over reqwest. The crate refuses a revocation endpoint that is
/// not `https` (RFC 7009 §2); the test server is plaintext, so the metadata-style URL is given
/// as `https://` and this transport sends it to the same host over `http://`.
async fn send(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let url = parts.uri.to_string().replacen("https://", "http://", 1);
    let response = reqwest::Client::new()
        .request(parts.method, url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(response.bytes().await?.to_vec()).unwrap())
}

/// An API key as the OAuth 2.0 client.
async fn client_for(
    app: &TestApp,
) -> oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
> {
    // `introspector`: introspection needs a caller holding `introspect_role` (issue 16).
    app.add_user("svc", &["reader", "introspector"]).await;
    let (id, key) = app
        .create_api_key("svc", &["reader", "introspector"], None)
        .await;
    let secret = key
        .strip_prefix(&format!("authd_{id}_"))
        .unwrap()
        .to_owned();
    BasicClient::new(ClientId::new(id))
        .set_client_secret(ClientSecret::new(secret))
        .set_token_uri(TokenUrl::new(format!("{}/oauth2/token", app.http)).unwrap())
        .set_introspection_url(
            IntrospectionUrl::new(format!("{}/oauth2/introspect", app.http)).unwrap(),
        )
        .set_revocation_url(
            RevocationUrl::new(format!(
                "{}/oauth2/revoke",
                app.http.replacen("http://", "https://", 1)
            ))
            .unwrap(),
        )
}

#[tokio::test]
async fn the_oauth2_crate_gets_refreshes_introspects_and_revokes_tokens() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = std::time::Duration::ZERO).await;
    let client = client_for(&app).await;

    // Client credentials: an access token, no refresh token.
    let issued = client
        .exchange_client_credentials()
        .request_async(&send)
        .await
        .unwrap();
    assert!(issued.refresh_token().is_none());
    assert_eq!(
        issued.expires_in(),
        Some(app.config.access_token_ttl),
        "expires_in"
    );
    let (_, claims) = app.verify(issued.access_token().secret());
    assert!(claims.key_id.is_some());

    // Refresh a user's session.
    app.add_user("alice", &[]).await;
    let login = app.login("alice", PASSWORD).await.unwrap();
    let refreshed = client
        .exchange_refresh_token(&RefreshToken::new(login.refresh_token.clone()))
        .request_async(&send)
        .await
        .unwrap();
    let newest = refreshed.refresh_token().unwrap().secret().clone();
    assert_ne!(newest, login.refresh_token);
    // Reuse of the rotated token is a typed invalid_grant.
    let reused = client
        .exchange_refresh_token(&RefreshToken::new(login.refresh_token.clone()))
        .request_async(&send)
        .await
        .unwrap_err();
    match reused {
        oauth2::RequestTokenError::ServerResponse(e) => {
            assert_eq!(
                *e.error(),
                oauth2::basic::BasicErrorResponseType::InvalidGrant
            );
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }

    // Introspect, authenticated as the client (Basic).
    let other = app.login("alice", PASSWORD).await.unwrap();
    let access = AccessToken::new(other.access_token.clone());
    let found = client
        .introspect(&access)
        .request_async(&send)
        .await
        .unwrap();
    assert!(found.active());
    assert_eq!(found.username(), Some("alice"));

    // Revoke the refresh token: the session ends; introspection says only inactive.
    client
        .revoke_token(StandardRevocableToken::RefreshToken(RefreshToken::new(
            other.refresh_token.clone(),
        )))
        .unwrap()
        .request_async(&send)
        .await
        .unwrap();
    let gone = client
        .introspect(&AccessToken::new(other.refresh_token.clone()))
        .request_async(&send)
        .await
        .unwrap();
    assert!(!gone.active());
    assert!(gone.username().is_none());
}
