//! A resource server that trusts authd's access tokens: a tiny gRPC service,
//! `example.v1.Whoami/Get`, behind `authd_verifier::RequireBearerLayer`. Requests without a
//! valid `authorization: Bearer <access token>` get `UNAUTHENTICATED`; the handler reads the
//! verified claims from the request.
//!
//! ```sh
//! cargo run --example resource_server -- http://localhost:8080 authd 127.0.0.1:50061
//! #                                      issuer                 audience listen address
//! ```
//!
//! It uses the verifier crate's `tonic` feature (gRPC refusals and `authd_verifier::claims`);
//! a plain HTTP service would use `RequireBearerLayer::http` without it.
//!
//! The service is written by hand (two prost messages and a route) to keep the example free
//! of a build script; a real service would generate it from its `.proto` with tonic-build.

#![allow(dead_code)] // tests include this file as a module and use only part of it
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example may panic on bad arguments

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use authd_verifier::{RequireBearerLayer, Verifier, VerifierConfig};
use tonic::body::Body;
use tonic::{Request, Response, Status};

/// `example.v1.WhoamiRequest {}`
#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoamiRequest {}

/// `example.v1.WhoamiReply { string sub = 1; repeated string roles = 2; string username = 3; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoamiReply {
    #[prost(string, tag = "1")]
    pub sub: String,
    #[prost(string, repeated, tag = "2")]
    pub roles: Vec<String>,
    #[prost(string, tag = "3")]
    pub username: String,
}

pub const WHOAMI_PATH: &str = "/example.v1.Whoami/Get";

/// The handler: the layer already verified the token, so the claims are there.
fn whoami(request: &Request<WhoamiRequest>) -> Result<Response<WhoamiReply>, Status> {
    let claims = authd_verifier::claims(request)
        .ok_or_else(|| Status::unauthenticated("no verified token"))?;
    Ok(Response::new(WhoamiReply {
        sub: claims.sub.clone(),
        roles: claims.roles.clone(),
        username: claims.preferred_username.clone().unwrap_or_default(),
    }))
}

/// The gRPC service `example.v1.Whoami`, routed by hand.
#[derive(Clone, Default)]
pub struct WhoamiServer;

impl tonic::server::NamedService for WhoamiServer {
    const NAME: &'static str = "example.v1.Whoami";
}

struct Get;

impl tonic::server::UnaryService<WhoamiRequest> for Get {
    type Response = WhoamiReply;
    type Future = std::future::Ready<Result<Response<WhoamiReply>, Status>>;

    fn call(&mut self, request: Request<WhoamiRequest>) -> Self::Future {
        std::future::ready(whoami(&request))
    }
}

impl tower::Service<http::Request<Body>> for WhoamiServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != WHOAMI_PATH {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Get, request).await)
        })
    }
}

/// Serves the resource server on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    verifier: Arc<Verifier>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .layer(RequireBearerLayer::new(verifier))
        .add_service(WhoamiServer)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let issuer = args
        .next()
        .unwrap_or_else(|| "http://localhost:8080".into());
    let audience = args.next().unwrap_or_else(|| "authd".into());
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:50061".into())
        .parse()
        .expect("a HOST:PORT listen address");
    let jwks_url = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
    let verifier = Verifier::with_jwks_url(VerifierConfig::new(issuer, [audience]), jwks_url)
        .expect("an HTTP client");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("resource server on {addr}; call {WHOAMI_PATH} with a bearer token");
    serve(listener, Arc::new(verifier), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .expect("serve");
}
