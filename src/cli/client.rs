//! `authd client …`: a minimal gRPC client for trying a running server from the shell.
//!
//! It prints each answer as one JSON object on stdout, so the walk-through in README.md can
//! be pasted as is. Real clients use any gRPC stack generated from `proto/auth/v1/auth.proto`.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use authd::config::Config;
use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{self, token_request::Credential};

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The global `--ca-file`, set by [`super::run`].
    #[arg(skip)]
    pub ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Log in with a password (prompted, or one line on stdin with --password-stdin)
    Login {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        /// Server address, `http://HOST:PORT` or `https://HOST:PORT` (default: the
        /// configured grpc_addr)
        #[arg(long, value_name = "URL")]
        addr: Option<String>,
    },
    /// Get an access token with an API key ("-" reads the key from stdin)
    ApiKeyLogin {
        api_key: String,
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
    /// End a session: revoke a refresh token's family and/or an access token
    Logout {
        #[arg(long, allow_hyphen_values = true, value_name = "TOKEN")]
        refresh_token: Option<String>,
        #[arg(long, allow_hyphen_values = true, value_name = "TOKEN")]
        access_token: Option<String>,
        #[arg(long, value_name = "URL")]
        addr: Option<String>,
    },
    /// Ask whether a token (access or refresh) is active ("-" reads it from stdin)
    Introspect {
        #[arg(allow_hyphen_values = true)]
        token: String,
        #[arg(long, value_name = "URL")]
        addr: Option<String>,
        /// The caller's own credential, an API key or access token holding the server's
        /// `introspect_role` (default `introspector`), sent as `authorization: Bearer …`;
        /// needed unless the server sets `introspection_open`
        #[arg(
            long,
            value_name = "TOKEN",
            env = "AUTHD_BEARER_TOKEN",
            hide_env_values = true
        )]
        bearer: Option<String>,
    },
}

/// Tokens, API keys and bearer tokens are secrets: `Debug` shows only the command.
impl std::fmt::Debug for ClientCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Login { .. } => "Login",
            Self::ApiKeyLogin { .. } => "ApiKeyLogin",
            Self::Refresh { .. } => "Refresh",
            Self::Logout { .. } => "Logout",
            Self::Introspect { .. } => "Introspect",
        })
    }
}

/// The argument, or one token read from stdin when it is "-".
fn arg_or_stdin(value: String, what: &str) -> Result<String, String> {
    if value != "-" {
        return Ok(value);
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read the {what} from stdin: {e}"))?;
    Ok(s.trim().to_owned())
}

pub async fn run(config: Config, args: ClientArgs) -> Result<(), String> {
    let (addr, request) = match args.command {
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
        ClientCommand::ApiKeyLogin { api_key, addr } => {
            let api_key = arg_or_stdin(api_key, "api key")?;
            let credential = Credential::ApiKeyCredential(pb::ApiKeyCredential { api_key });
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
            let refresh_token = arg_or_stdin(refresh_token, "token")?;
            (
                addr,
                Request::Refresh(pb::RefreshTokenRequest { refresh_token }),
            )
        }
        ClientCommand::Logout {
            refresh_token,
            access_token,
            addr,
        } => (
            addr,
            Request::Logout(pb::LogoutRequest {
                refresh_token: refresh_token.unwrap_or_default(),
                access_token: access_token.unwrap_or_default(),
            }),
        ),
        ClientCommand::Introspect {
            token,
            addr,
            bearer,
        } => {
            let token = arg_or_stdin(token, "token")?;
            let mut request = tonic::Request::new(pb::IntrospectRequest {
                token,
                token_type_hint: String::new(),
            });
            if let Some(bearer) = bearer {
                let value = format!("Bearer {bearer}")
                    .parse()
                    .map_err(|_| "the bearer token is not a valid header value".to_owned())?;
                request.metadata_mut().insert("authorization", value);
            }
            (addr, Request::Introspect(request))
        }
    };
    let addr = addr.unwrap_or_else(|| format!("http://{}", config.grpc_addr));
    let mut client =
        AuthServiceClient::new(super::remote::channel(&addr, args.ca_file.as_deref()).await?);
    let failed = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
    let output = match request {
        Request::Token(r) => token_json(client.token(r).await.map_err(failed)?.into_inner()),
        Request::Refresh(r) => {
            token_json(client.refresh_token(r).await.map_err(failed)?.into_inner())
        }
        Request::Logout(r) => {
            client.logout(r).await.map_err(failed)?;
            serde_json::json!({ "logged_out": true })
        }
        Request::Introspect(r) => {
            let i = client.introspect(r).await.map_err(failed)?.into_inner();
            if i.active {
                // Only what applies to this kind of token.
                let mut answer = serde_json::json!({
                    "active": true,
                    "token_type": i.token_type,
                    "sub": i.sub,
                    "username": i.username,
                    "exp": i.exp,
                    "iat": i.iat,
                    "roles": i.roles,
                });
                for (name, value) in [
                    ("jti", i.jti),
                    ("key_id", i.key_id),
                    ("session_id", i.session_id),
                    ("client_id", i.client_id),
                ] {
                    if !value.is_empty() {
                        answer[name] = value.into();
                    }
                }
                if i.nbf != 0 {
                    answer["nbf"] = i.nbf.into();
                }
                answer
            } else {
                serde_json::json!({ "active": false })
            }
        }
    };
    println!("{output}");
    Ok(())
}

fn token_json(response: pb::TokenResponse) -> serde_json::Value {
    serde_json::json!({
        "access_token": response.access_token,
        "refresh_token": response.refresh_token,
    })
}

enum Request {
    Token(pb::TokenRequest),
    Refresh(pb::RefreshTokenRequest),
    Logout(pb::LogoutRequest),
    Introspect(tonic::Request<pb::IntrospectRequest>),
}
