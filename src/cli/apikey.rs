//! `authd apikey …`: create (prints the key once), list (never a secret) and revoke API keys.

use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;

use authd::config::Config;
use authd::domain::{ApiKeyListing, Clock, SystemClock, Timestamp};
use authd::service::ApiKeyAdmin;

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key for a user and print it (the only time it is shown)
    Create {
        username: String,
        /// A name to recognise the key by, e.g. "ci-deploy"
        #[arg(long)]
        name: String,
        /// Limit the key to a role the user has (repeatable; default: all of the user's roles)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Lifetime, e.g. 90d or 12h (default: no expiry)
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List keys, of one user or of all (never shows secrets)
    List { username: Option<String> },
    /// Revoke a key by id; tokens already issued with it stay valid until they expire
    Revoke { id: String },
}

fn parse_lifetime(raw: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid --expires {raw:?}: use a positive duration, e.g. 90d or 12h");
    let d = humantime::parse_duration(raw).map_err(|_| invalid())?;
    if d.is_zero() {
        return Err(invalid());
    }
    Ok(d)
}

pub async fn run(config: Config, command: ApiKeyCommand) -> Result<(), String> {
    super::with_store(&config, async |store| {
        let admin = ApiKeyAdmin::new(store, Arc::new(SystemClock));
        let err = |e: authd::service::AdminError| e.to_string();
        match command {
            ApiKeyCommand::Create {
                username,
                name,
                roles,
                expires,
            } => {
                let expires = expires.as_deref().map(parse_lifetime).transpose()?;
                let created = admin
                    .create(&username, &name, &roles, expires)
                    .await
                    .map_err(err)?;
                print_created(
                    &created.secret.expose(),
                    created.key.id.as_str(),
                    &created.key.name,
                    &username,
                );
            }
            ApiKeyCommand::List { username } => {
                let keys = admin.list(username.as_deref()).await.map_err(err)?;
                print_keys(&keys, SystemClock.now());
            }
            ApiKeyCommand::Revoke { id } => {
                let id = admin.revoke(&id).await.map_err(err)?;
                println!("revoked api key {id}");
            }
        }
        Ok(())
    })
    .await
}

fn print_created(secret: &str, id: &str, name: &str, username: &str) {
    // The key on its own line first, so `| head -1` captures it; it is never shown again.
    println!("{secret}");
    eprintln!(
        "created api key {id} ({name}) for {username}; store it now, it cannot be shown again"
    );
}

/// The same commands through the admin API of `remote`.
pub(super) async fn run_remote(
    remote: &super::Remote,
    command: ApiKeyCommand,
) -> Result<(), String> {
    use authd::grpc::pb;
    // Refuse a bad lifetime before connecting, as the direct mode does.
    let expires = match &command {
        ApiKeyCommand::Create { expires, .. } => {
            expires.as_deref().map(parse_lifetime).transpose()?
        }
        _ => None,
    };
    let api = remote.connect().await?;
    match command {
        ApiKeyCommand::Create {
            username,
            name,
            roles,
            ..
        } => {
            let request = pb::CreateApiKeyRequest {
                username: username.clone(),
                name,
                roles,
                expires_in_seconds: expires.map_or(0, |d| d.as_secs().max(1)),
            };
            let created = api
                .call(|mut c, r| async move { c.create_api_key(r).await }, request)
                .await?;
            let key = created.key.unwrap_or_default();
            print_created(&created.secret, &key.id, &key.name, &username);
        }
        ApiKeyCommand::List { username } => {
            let mut keys = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = pb::ListApiKeysRequest {
                    username: username.clone().unwrap_or_default(),
                    page_size: 1000,
                    page_token,
                };
                let page = api
                    .call(|mut c, r| async move { c.list_api_keys(r).await }, request)
                    .await?;
                for k in &page.keys {
                    keys.push(super::remote::api_key(k)?);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            print_keys(&keys, SystemClock.now());
        }
        ApiKeyCommand::Revoke { id } => {
            let request = pb::RevokeApiKeyRequest { id: id.clone() };
            api.call(|mut c, r| async move { c.revoke_api_key(r).await }, request)
                .await?;
            println!("revoked api key {id}");
        }
    }
    Ok(())
}

fn time_or(t: Option<Timestamp>, none: &str) -> String {
    t.map_or_else(|| none.to_owned(), |t| t.to_string())
}

fn print_keys(keys: &[ApiKeyListing], now: Timestamp) {
    println!(
        "{:<24} {:<16} {:<20} {:<20} {:<24} {:<24} {:<24} STATUS",
        "ID", "USER", "NAME", "ROLES", "CREATED", "EXPIRES", "LAST USED"
    );
    for ApiKeyListing { key, username } in keys {
        let roles = if key.roles.is_empty() {
            "-".to_owned()
        } else {
            key.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let status = if key.revoked_at.is_some() {
            "revoked"
        } else if key.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        println!(
            "{:<24} {:<16} {:<20} {:<20} {:<24} {:<24} {:<24} {status}",
            key.id,
            username,
            key.name,
            roles,
            key.created_at,
            time_or(key.expires_at, "never"),
            time_or(key.last_used_at, "never"),
        );
    }
}
