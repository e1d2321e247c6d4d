//! `authd session …`: list a user's sessions (refresh families), end one, or end them all.

use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::domain::{Session, SystemClock};
use crate::service::SessionAdmin;

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List a user's live sessions, newest first
    List { username: String },
    /// End one session: its refresh tokens stop working at once
    Revoke { id: String },
    /// End every session of a user
    RevokeAll { username: String },
}

pub async fn run(config: Config, command: SessionCommand) -> Result<(), String> {
    super::with_store(&config, async |store| {
        let admin = SessionAdmin::new(store, Arc::new(SystemClock));
        let err = |e: crate::service::AdminError| e.to_string();
        match command {
            SessionCommand::List { username } => {
                let sessions = admin.list(&username).await.map_err(err)?;
                print_sessions(&sessions);
            }
            SessionCommand::Revoke { id } => {
                let session = admin.revoke(&id).await.map_err(err)?;
                println!(
                    "revoked session {} of {}",
                    session.id, session.user.username
                );
            }
            SessionCommand::RevokeAll { username } => {
                let (user, count) = admin.revoke_all(&username).await.map_err(err)?;
                println!("revoked {count} session(s) of {}", user.username);
            }
        }
        Ok(())
    })
    .await
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
