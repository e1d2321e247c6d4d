//! `authd login`, `authd token`, `authd logout`, `authd whoami`: log in once, and every tool
//! gets a fresh access token from `authd token` afterwards.
//!
//! The tokens live in the credentials file ([`super::credentials`]). `authd token` prints the
//! cached access token while it is valid for at least `--min-valid`, and refreshes it first
//! otherwise — under the file's lock, re-reading the file once it holds it, so of many
//! processes started at once exactly one refreshes and the others print its result.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use clap::Args;
use tonic::Code;

use super::credentials::{Credentials, Locked, Profile, default_path};
use authd::config::Config;
use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{self, token_request::Credential};

/// Which server, profile and credentials file a command is about. The server and the CA file
/// are the global `--server` and `--ca-file` ([`super::Cli`]), filled in by [`Target::at`].
#[derive(Debug, Default, Args)]
pub struct Target {
    /// (default for login: the configured grpc_addr; for the other commands: the last
    /// profile logged in)
    #[arg(skip)]
    server: Option<String>,
    /// A name for the login, to keep more than one per server (default: the server URL)
    #[arg(long, value_name = "NAME", env = "AUTHD_PROFILE")]
    profile: Option<String>,
    /// Where the credentials are kept (default: $XDG_CONFIG_HOME/authd/credentials.toml)
    #[arg(long, value_name = "PATH", env = "AUTHD_CREDENTIALS_PATH")]
    credentials_path: Option<PathBuf>,
    #[arg(skip)]
    ca_file: Option<PathBuf>,
}

impl Target {
    /// Sets the server and CA file from the global options.
    pub fn at(&mut self, server: Option<String>, ca_file: Option<PathBuf>) {
        self.server = server;
        self.ca_file = ca_file;
    }

    /// The login for `server` as the environment selects it (`AUTHD_PROFILE`,
    /// `AUTHD_CREDENTIALS_PATH`), for commands without the login options.
    pub fn from_env(server: &str, ca_file: Option<PathBuf>) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            server: Some(server.to_owned()),
            profile: var("AUTHD_PROFILE"),
            credentials_path: var("AUTHD_CREDENTIALS_PATH").map(PathBuf::from),
            ca_file,
        }
    }
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub target: Target,
    /// Who logs in (prompted when missing and a terminal is there; not used with an API key)
    username: Option<String>,
    /// Read the password from the first line of standard input
    #[arg(long, conflicts_with = "api_key_stdin")]
    password_stdin: bool,
    /// Log in with an API key read from the first line of standard input
    #[arg(long)]
    api_key_stdin: bool,
}

#[derive(Debug, Args)]
pub struct PrintTokenArgs {
    #[command(flatten)]
    pub target: Target,
    /// Refresh first when the cached token expires within this long
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    min_valid: Duration,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub target: Target,
    /// Log out of every profile
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    pub target: Target,
}

/// How long a command waits for a server before it says it cannot reach it.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn login(config: &Config, args: LoginArgs) -> Result<(), String> {
    let target = args.target;
    let server = target
        .server
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.grpc_addr));
    let name = target.profile.clone().unwrap_or_else(|| server.clone());
    let (credential, api_key) = if args.api_key_stdin {
        let key = read_stdin_line("API key")?;
        (
            Credential::ApiKeyCredential(pb::ApiKeyCredential {
                api_key: key.clone(),
            }),
            Some(key),
        )
    } else {
        let username = match args.username {
            Some(name) => name,
            None => prompt_username()?,
        };
        let password = super::user::read_password(args.password_stdin, false)?;
        (
            Credential::PasswordCredential(pb::PasswordCredential { username, password }),
            None,
        )
    };
    let mut client = client(&server, target.ca_file.as_deref()).await?;
    let tokens = within_timeout(client.token(pb::TokenRequest {
        credential: Some(credential),
    }))
    .await
    .map_err(|s| match s.code() {
        Code::Unauthenticated => format!("login to {server} failed: {}", s.message()),
        _ => format!("login to {server} failed: {:?}: {}", s.code(), s.message()),
    })?;
    let claims = unverified_claims(&tokens.access_token)
        .ok_or("the server answered with an access token that is not a JWT")?;
    let profile = Profile {
        server: server.clone(),
        username: claims.username.clone(),
        ca_file: target.ca_file.clone(),
        access_token: tokens.access_token,
        expires_at: claims.exp,
        refresh_token: tokens.refresh_token,
        api_key,
    };
    let path = default_path(target.credentials_path.as_deref())?;
    let mut file = Locked::open(&path)?;
    file.credentials.profiles.insert(name.clone(), profile);
    file.credentials.current = Some(name.clone());
    file.save()?;
    eprintln!(
        "logged in to {server} as {} (profile {name:?}, credentials in {})",
        claims.username,
        path.display()
    );
    Ok(())
}

pub async fn print_token(args: PrintTokenArgs) -> Result<(), String> {
    let token = fresh_access_token(args.target, args.min_valid).await?;
    println!("{token}");
    Ok(())
}

/// The access token of the login `target` selects, valid for at least `min_valid`: the cached
/// one, or a new one from the server (refresh token, or API key), saved to the file. The file
/// stays locked until the token is known, so of many processes at once one refreshes.
///
/// # Errors
/// Not logged in, an ended session, or a server that cannot be reached.
pub async fn fresh_access_token(target: Target, min_valid: Duration) -> Result<String, String> {
    let path = default_path(target.credentials_path.as_deref())?;
    let mut file = Locked::open(&path)?;
    let name = select_profile(&file.credentials, &target)?;
    let profile = &file.credentials.profiles[&name];
    let min_valid = i64::try_from(min_valid.as_secs()).unwrap_or(i64::MAX);
    if profile.expires_at.saturating_sub(unix_now()) > min_valid {
        return Ok(profile.access_token.clone());
    }
    let server = profile.server.clone();
    let ca_file = profile.ca_file.clone().or(target.ca_file);
    let mut client = client(&server, ca_file.as_deref()).await?;
    let ended = || format!("session ended: run authd login --server {server}");
    let answer = if !profile.refresh_token.is_empty() {
        within_timeout(client.refresh_token(pb::RefreshTokenRequest {
            refresh_token: profile.refresh_token.clone(),
        }))
        .await
    } else if let Some(key) = &profile.api_key {
        within_timeout(client.token(pb::TokenRequest {
            credential: Some(Credential::ApiKeyCredential(pb::ApiKeyCredential {
                api_key: key.clone(),
            })),
        }))
        .await
    } else {
        return Err(ended());
    };
    let tokens = answer.map_err(|s| match s.code() {
        Code::Unauthenticated => ended(),
        code => format!("cannot refresh at {server}: {code:?}: {}", s.message()),
    })?;
    let exp = unverified_claims(&tokens.access_token)
        .ok_or("the server answered with an access token that is not a JWT")?
        .exp;
    let profile = file
        .credentials
        .profiles
        .get_mut(&name)
        .ok_or("the profile went away")?;
    profile.access_token = tokens.access_token;
    profile.expires_at = exp;
    if !tokens.refresh_token.is_empty() {
        profile.refresh_token = tokens.refresh_token;
    }
    let token = profile.access_token.clone();
    file.save()?;
    Ok(token)
}

pub async fn logout(args: LogoutArgs) -> Result<(), String> {
    let target = args.target;
    let path = default_path(target.credentials_path.as_deref())?;
    let mut file = Locked::open(&path)?;
    let names: Vec<String> = if args.all {
        file.credentials.profiles.keys().cloned().collect()
    } else {
        vec![select_profile(&file.credentials, &target)?]
    };
    let mut not_ended = Vec::new();
    for name in &names {
        let Some(profile) = file.credentials.profiles.remove(name) else {
            continue;
        };
        let ca_file = profile.ca_file.clone().or(target.ca_file.clone());
        let request = pb::LogoutRequest {
            refresh_token: profile.refresh_token.clone(),
            access_token: profile.access_token.clone(),
        };
        let ended = match client(&profile.server, ca_file.as_deref()).await {
            Ok(mut client) => within_timeout(client.logout(request))
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
            Err(e) => Err(e),
        };
        match ended {
            Ok(_) => eprintln!("logged out of {} ({name:?})", profile.server),
            Err(e) => not_ended.push(format!("{}: {e}", profile.server)),
        }
    }
    if file
        .credentials
        .current
        .as_ref()
        .is_some_and(|c| !file.credentials.profiles.contains_key(c))
    {
        file.credentials.current = file.credentials.profiles.keys().next().cloned();
    }
    file.save()?;
    if not_ended.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the local credentials are removed, but the server-side session was not ended ({})",
            not_ended.join("; ")
        ))
    }
}

pub fn whoami(args: WhoamiArgs) -> Result<(), String> {
    let target = args.target;
    let path = default_path(target.credentials_path.as_deref())?;
    let file = Locked::open(&path)?;
    let name = select_profile(&file.credentials, &target)?;
    let profile = &file.credentials.profiles[&name];
    let claims = unverified_claims(&profile.access_token).unwrap_or_default();
    let left = profile.expires_at - unix_now();
    let expiry = UNIX_EPOCH + Duration::from_secs(u64::try_from(profile.expires_at).unwrap_or(0));
    let expiry = humantime::format_rfc3339_seconds(expiry);
    let mut out = std::io::stdout().lock();
    let lines = [
        ("server", profile.server.clone()),
        ("profile", name.clone()),
        ("username", profile.username.clone()),
        ("roles", claims.roles.join(",")),
        ("session", claims.session.unwrap_or_else(|| "-".to_owned())),
        (
            "expires",
            if left > 0 {
                format!("{expiry} (in {})", humantime::format_duration(secs(left)))
            } else {
                format!("{expiry} (expired; authd token refreshes it)")
            },
        ),
    ];
    for (key, value) in lines {
        writeln!(out, "{:<9} {value}", format!("{key}:")).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The profile a command is about: the one named, else the one for the server named, else
/// the last one logged in.
fn select_profile(credentials: &Credentials, target: &Target) -> Result<String, String> {
    if let Some(name) = &target.profile {
        return credentials
            .profiles
            .contains_key(name)
            .then(|| name.clone())
            .ok_or_else(|| format!("not logged in as {name:?}: run authd login --profile {name}"));
    }
    if let Some(server) = &target.server {
        if credentials.profiles.contains_key(server) {
            return Ok(server.clone());
        }
        return credentials
            .profiles
            .iter()
            .find(|(_, p)| &p.server == server)
            .map(|(name, _)| name.clone())
            .ok_or_else(|| {
                format!("not logged in to {server}: run authd login --server {server}")
            });
    }
    credentials
        .current
        .clone()
        .filter(|c| credentials.profiles.contains_key(c))
        .ok_or_else(|| "not logged in: run authd login".to_owned())
}

async fn client(
    server: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<AuthServiceClient<tonic::transport::Channel>, String> {
    let channel = tokio::time::timeout(SERVER_TIMEOUT, super::remote::channel(server, ca_file))
        .await
        .map_err(|_| {
            format!("cannot connect to {server}: no answer within {SERVER_TIMEOUT:?}")
        })??;
    Ok(AuthServiceClient::new(channel))
}

/// `call`'s answer, or `DEADLINE_EXCEEDED` when the server does not answer in time.
async fn within_timeout<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(SERVER_TIMEOUT, call)
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("the server did not answer in time"))?
        .map(tonic::Response::into_inner)
}

/// What `authd` reads from its own cached access token. It is not verified here: the token
/// came from the server this profile names, and the server verifies it wherever it is used.
#[derive(Default)]
struct CachedClaims {
    exp: i64,
    username: String,
    roles: Vec<String>,
    session: Option<String>,
}

fn unverified_claims(token: &str) -> Option<CachedClaims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let text = |key: &str| claims.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Some(CachedClaims {
        exp: claims.get("exp")?.as_i64()?,
        username: text("preferred_username")
            .or_else(|| text("sub"))
            .unwrap_or_default(),
        roles: claims
            .get("roles")
            .and_then(|r| r.as_array())
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        session: text("sid").or_else(|| text("key_id")),
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn secs(seconds: i64) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// One line of standard input, without its line ending.
fn read_stdin_line(what: &str) -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the {what} from stdin: {e}"))?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err(format!("no {what} on stdin"));
    }
    Ok(line)
}

fn prompt_username() -> Result<String, String> {
    if !std::io::stdin().is_terminal() {
        return Err("name the user: authd login USERNAME".to_owned());
    }
    eprint!("Username: ");
    let _ = std::io::stderr().flush();
    read_stdin_line("username")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_claims_of_a_cached_token() {
        let encode = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = format!(
            "{}.{}.sig",
            encode(serde_json::json!({"alg": "ES256"})),
            encode(serde_json::json!({
                "exp": 1_800_000_000, "preferred_username": "alice",
                "roles": ["admin", "ops"], "sid": "family-1",
            }))
        );
        let claims = unverified_claims(&token).unwrap();
        assert_eq!(claims.exp, 1_800_000_000);
        assert_eq!(claims.username, "alice");
        assert_eq!(claims.roles, ["admin", "ops"]);
        assert_eq!(claims.session.as_deref(), Some("family-1"));
        assert!(unverified_claims("not-a-jwt").is_none());
    }
}
