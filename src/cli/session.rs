//! `authd session …`: list a user's sessions (refresh families), end one, or end them all.

use std::sync::Arc;

use clap::Subcommand;

use authd::config::Config;
use authd::domain::{Session, SystemClock};
use authd::service::SessionAdmin;

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List a user's live sessions, newest first; without USERNAME, every user's
    List { username: Option<String> },
    /// End one session: its refresh tokens stop working at once
    Revoke { id: String },
    /// End every session of a user
    RevokeAll { username: String },
}

pub async fn run(config: Config, command: SessionCommand) -> Result<(), String> {
    super::with_store(&config, async |store| {
        let admin = SessionAdmin::new(store, Arc::new(SystemClock));
        let err = |e: authd::service::AdminError| e.to_string();
        match command {
            SessionCommand::List {
                username: Some(username),
            } => {
                let sessions = admin.list(&username).await.map_err(err)?;
                print_sessions(&sessions);
            }
            SessionCommand::List { username: None } => {
                let mut sessions = Vec::new();
                let mut token = String::new();
                loop {
                    let request = authd::service::paging::PageRequest::new(1000, token);
                    let page = admin.list_all(&request).await.map_err(err)?;
                    sessions.extend(page.items);
                    match page.next_page_token {
                        Some(next) => token = next,
                        None => break,
                    }
                }
                print_sessions(&sessions);
            }
            SessionCommand::Revoke { id } => {
                revoked(&admin.revoke(&id).await.map_err(err)?);
            }
            SessionCommand::RevokeAll { username } => {
                let (user, count) = admin.revoke_all(&username).await.map_err(err)?;
                revoked_all(count, user.username.as_str());
            }
        }
        Ok(())
    })
    .await
}

fn revoked(session: &Session) {
    println!(
        "revoked session {} of {}",
        session.id, session.user.username
    );
}

fn revoked_all(count: u64, username: &str) {
    println!("revoked {count} session(s) of {username}");
}

/// The same commands through the admin API of `remote`.
pub(super) async fn run_remote(
    remote: &super::Remote,
    command: SessionCommand,
) -> Result<(), String> {
    use authd::grpc::pb;
    let api = remote.connect().await?;
    match command {
        SessionCommand::List { username } => {
            let mut sessions = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = pb::ListSessionsRequest {
                    username: username.clone().unwrap_or_default(),
                    page_size: 1000,
                    page_token,
                };
                let page = api
                    .call(|mut c, r| async move { c.list_sessions(r).await }, request)
                    .await?;
                for s in &page.sessions {
                    sessions.push(super::remote::session(s)?);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            print_sessions(&sessions);
        }
        SessionCommand::Revoke { id } => {
            let request = pb::RevokeSessionRequest { id };
            let session = api
                .call(|mut c, r| async move { c.revoke_session(r).await }, request)
                .await?;
            revoked(&super::remote::session(&session)?);
        }
        SessionCommand::RevokeAll { username } => {
            let request = pb::RevokeUserSessionsRequest {
                username: username.clone(),
            };
            let answer = api
                .call(
                    |mut c, r| async move { c.revoke_user_sessions(r).await },
                    request,
                )
                .await?;
            // The direct mode names the user as stored (normalised).
            let name =
                authd::domain::Username::parse(&username).map_or(username, |u| u.to_string());
            revoked_all(answer.revoked, &name);
        }
    }
    Ok(())
}

fn print_sessions(sessions: &[Session]) {
    println!(
        "{:<36} {:<16} {:<24} {:<24} {:<24} {:<39} USER AGENT",
        "ID", "USER", "CREATED", "LAST USED", "EXPIRES", "SOURCE"
    );
    for s in sessions {
        println!(
            "{:<36} {:<16} {:<24} {:<24} {:<24} {:<39} {}",
            s.id,
            s.user.username,
            s.created_at,
            s.last_used_at
                .map_or_else(|| "never".to_owned(), |t| t.to_string()),
            s.expires_at,
            s.origin.source_addr.as_deref().unwrap_or("-"),
            s.origin.user_agent.as_deref().unwrap_or("-"),
        );
    }
}
