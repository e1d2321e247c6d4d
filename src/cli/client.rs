//! `authd client …`: a minimal gRPC client for trying a running server from the shell.
//!
//! It prints the token pair as one JSON object on stdout, so the walk-through in README.md can
//! be pasted as is. Real clients use any gRPC stack generated from `proto/auth/v1/auth.proto`.

use std::io::Read;

use clap::Subcommand;

use crate::config::Config;
use crate::grpc::AuthServiceClient;
use crate::grpc::pb::{self, token_request::Credential};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Log in with a password (prompted, or one line on stdin with --password-stdin)
    Login {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        /// Server address (default: the configured grpc_addr)
        #[arg(long, value_name = "URL")]
        addr: Option<String>,
    },
    /// Exchange a refresh token for a new pair ("-" reads the token from stdin)
    Refresh {
        // Tokens are base64url and may start with '-'.
        #[arg(allow_hyphen_values = true)]
        refresh_token: String,
        #[arg(long, value_name = "URL")]
        addr: Option<String>,
    },
}

pub async fn run(config: Config, command: ClientCommand) -> Result<(), String> {
    let (addr, request) = match command {
        ClientCommand::Login {
            username,
            password_stdin,
            addr,
        } => {
            let password = super::user::read_password(password_stdin, false)?;
            let credential =
                Credential::PasswordCredential(pb::PasswordCredential { username, password });
            (
                addr,
                Request::Token(pb::TokenRequest {
                    credential: Some(credential),
                }),
            )
        }
        ClientCommand::Refresh {
            refresh_token,
            addr,
        } => {
            let refresh_token = if refresh_token == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
                s.trim().to_owned()
            } else {
                refresh_token
            };
            (
                addr,
                Request::Refresh(pb::RefreshTokenRequest { refresh_token }),
            )
        }
    };
    let addr = addr.unwrap_or_else(|| format!("http://{}", config.grpc_addr));
    let mut client = AuthServiceClient::connect(addr.clone())
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let response = match request {
        Request::Token(r) => client.token(r).await,
        Request::Refresh(r) => client.refresh_token(r).await,
    }
    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
    .into_inner();
    println!(
        "{}",
        serde_json::json!({
            "access_token": response.access_token,
            "refresh_token": response.refresh_token,
        })
    );
    Ok(())
}

enum Request {
    Token(pb::TokenRequest),
    Refresh(pb::RefreshTokenRequest),
}
