//! gRPC-Web for browsers and CORS (issue 17): `Token` and `RefreshToken` as gRPC-Web frames
//! over HTTP/1.1 on the gRPC port (plain, and over TLS, where ALPN offers http/1.1 besides h2),
//! and pre-flight answered only for configured origins, on both ports.

use authd::grpc::pb::{
    PasswordCredential, RefreshTokenRequest, TokenRequest, TokenResponse, token_request,
};
use prost::Message;

use crate::helpers::{PASSWORD, TestApp, spawn_app_with};

const ORIGIN: &str = "https://app.example";

/// One gRPC-Web call: a data frame out; the data frame and the trailer frame back.
async fn grpc_web<M: Message>(app: &TestApp, method: &str, message: &M) -> (Vec<u8>, String) {
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    grpc_web_to(
        &client,
        &format!("http://{}", app.grpc_addr),
        method,
        message,
    )
    .await
}

/// [`grpc_web`] with `client` to `base` (`http://…` or `https://…`).
async fn grpc_web_to<M: Message>(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    message: &M,
) -> (Vec<u8>, String) {
    let encoded = message.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&encoded);
    let response = client
        .post(format!("{base}/auth.v1.AuthService/{method}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", ORIGIN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        ORIGIN,
        "CORS for the configured origin"
    );
    // A trailers-only answer (an error) carries the status in the headers.
    let header_status = response
        .headers()
        .get("grpc-status")
        .map(|v| format!("grpc-status:{}", v.to_str().unwrap()));
    let bytes = response.bytes().await.unwrap();
    // Frames: flag byte, 4-byte big-endian length, payload; 0x80 marks the trailers.
    let (mut message, mut trailers, mut rest) = (Vec::new(), String::new(), &bytes[..]);
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let payload = &rest[5..5 + len];
        if rest[0] & 0x80 == 0 {
            message = payload.to_vec();
        } else {
            trailers = String::from_utf8(payload.to_vec()).unwrap();
        }
        rest = &rest[5 + len..];
    }
    if let Some(status) = header_status {
        trailers.push_str(&status);
    }
    (message, trailers)
}

#[tokio::test]
async fn token_and_refresh_token_speak_grpc_web_over_http1() {
    let app = spawn_app_with(|c| {
        c.cors_allowed_origins = vec![ORIGIN.into()];
        c.refresh_reuse_grace = std::time::Duration::ZERO;
    })
    .await;
    app.add_user("alice", &[]).await;

    let request = TokenRequest {
        credential: Some(token_request::Credential::PasswordCredential(
            PasswordCredential {
                username: "alice".into(),
                password: PASSWORD.into(),
            },
        )),
    };
    let (message, trailers) = grpc_web(&app, "Token", &request).await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let tokens = TokenResponse::decode(&message[..]).unwrap();
    app.verify(&tokens.access_token);
    assert_eq!(tokens.token_type, "Bearer");

    let request = RefreshTokenRequest {
        refresh_token: tokens.refresh_token.clone(),
    };
    let (message, trailers) = grpc_web(&app, "RefreshToken", &request).await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let rotated = TokenResponse::decode(&message[..]).unwrap();
    assert_ne!(rotated.refresh_token, tokens.refresh_token);

    // Errors travel in the trailers, with the same status as gRPC (reuse: UNAUTHENTICATED).
    let (_, trailers) = grpc_web(&app, "RefreshToken", &request).await;
    assert!(trailers.contains("grpc-status:16"), "{trailers}");
}

/// Browsers speak gRPC-Web over HTTP/1.1 too when the port is TLS: the gRPC port's ALPN must
/// offer `http/1.1` besides `h2`, or the handshake of a client offering only `http/1.1` fails.
#[tokio::test]
async fn grpc_web_works_over_tls_with_http1_alpn() {
    let files = tempfile::tempdir().unwrap();
    let ca = crate::tls::TestCa::new("authd test ca");
    let server = ca.server();
    let cert = crate::tls::write(files.path(), "cert.pem", &server.cert);
    let key = crate::tls::write(files.path(), "key.pem", &server.key);
    let app = spawn_app_with(|c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.cors_allowed_origins = vec![ORIGIN.into()];
    })
    .await;
    app.add_user("alice", &[]).await;
    // Offers only http/1.1 in ALPN, as an HTTP/1.1-only client does.
    let client = reqwest::Client::builder()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", app.grpc_addr.port());
    let request = TokenRequest {
        credential: Some(token_request::Credential::PasswordCredential(
            PasswordCredential {
                username: "alice".into(),
                password: PASSWORD.into(),
            },
        )),
    };
    let (message, trailers) = grpc_web_to(&client, &base, "Token", &request).await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let tokens = TokenResponse::decode(&message[..]).unwrap();
    app.verify(&tokens.access_token);
    let request = RefreshTokenRequest {
        refresh_token: tokens.refresh_token,
    };
    let (message, trailers) = grpc_web_to(&client, &base, "RefreshToken", &request).await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    assert!(
        !TokenResponse::decode(&message[..])
            .unwrap()
            .access_token
            .is_empty()
    );
}

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_preflight_allows_only_configured_origins_on_both_ports() {
    let app = spawn_app_with(|c| c.cors_allowed_origins = vec![ORIGIN.into()]).await;
    let urls = [
        format!("http://{}/auth.v1.AuthService/Token", app.grpc_addr),
        format!("{}/v1/auth/token", app.http),
        format!("{}/oauth2/token", app.http),
    ];
    for url in &urls {
        let allowed = preflight(url, ORIGIN).await;
        assert!(allowed.status().is_success(), "{url}");
        assert_eq!(allowed.headers()["access-control-allow-origin"], ORIGIN);
        let refused = preflight(url, "https://evil.example").await;
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{url}"
        );
    }

    // By default no origin is allowed.
    let app = spawn_app_with(|_| {}).await;
    let response = preflight(&format!("{}/v1/auth/token", app.http), ORIGIN).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
