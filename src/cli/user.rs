//! `authd user …`: add, list, change and remove users.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::crypto::password::PasswordHasher;
use crate::domain::{SystemClock, User};
use crate::service::UserAdmin;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (prompts for the password twice unless --password-stdin)
    Add {
        username: String,
        /// Grant a role (repeatable)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password as one line from standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (never shows password hashes)
    List,
    /// Set a new password; ends all of the user's sessions
    SetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user; ends all of the user's sessions
    Disable { username: String },
    /// Enable a disabled user
    Enable { username: String },
    /// Delete a user and all of its sessions
    Delete { username: String },
    /// Clear the user's login-failure counter (ends login throttling for that name)
    Unlock { username: String },
    /// Add or remove roles
    Roles {
        username: String,
        #[arg(long = "add", value_name = "ROLE")]
        add: Vec<String>,
        #[arg(long = "remove", value_name = "ROLE")]
        remove: Vec<String>,
    },
}

/// User administration on `store` as the CLI does it: the configured argon2 parameters with
/// `permits` hashes at once, and the system clock.
pub(super) fn admin(
    store: Arc<dyn Store>,
    config: &Config,
    permits: usize,
) -> Result<UserAdmin, String> {
    let hasher = PasswordHasher::new(config.argon2(), permits).map_err(|e| e.to_string())?;
    let password_policy = config.password_policy().map_err(|e| e.to_string())?;
    Ok(UserAdmin::new(
        store,
        Arc::new(hasher),
        Arc::new(SystemClock),
        password_policy,
    ))
}

pub async fn run(config: Config, command: UserCommand) -> Result<(), String> {
    super::with_store(&config, async |store| {
        let admin = admin(store, &config, 1)?;
        let err = |e: crate::service::AdminError| e.to_string();
        match command {
            UserCommand::Add {
                username,
                roles,
                password_stdin,
            } => {
                let password = read_password(password_stdin, true)?;
                let user = admin.add(&username, &password, &roles).await.map_err(err)?;
                println!("created user {} ({})", user.username, user.id);
            }
            UserCommand::List => {
                let users = admin.list().await.map_err(err)?;
                let locked = admin
                    .locked(config.throttle_max_failures)
                    .await
                    .map_err(err)?;
                print_users(&users, &locked.into_iter().collect());
            }
            UserCommand::SetPassword {
                username,
                password_stdin,
            } => {
                let password = read_password(password_stdin, true)?;
                let user = admin
                    .set_password(&username, &password)
                    .await
                    .map_err(err)?;
                println!(
                    "password changed for {}; all of its sessions were ended",
                    user.username
                );
            }
            UserCommand::Disable { username } => {
                let user = admin.set_enabled(&username, false).await.map_err(err)?;
                println!("disabled {}; all of its sessions were ended", user.username);
            }
            UserCommand::Enable { username } => {
                let user = admin.set_enabled(&username, true).await.map_err(err)?;
                println!("enabled {}", user.username);
            }
            UserCommand::Delete { username } => {
                let user = admin.delete(&username).await.map_err(err)?;
                println!("deleted {} ({})", user.username, user.id);
            }
            UserCommand::Unlock { username } => {
                let cleared = admin.unlock(&username).await.map_err(err)?;
                if cleared {
                    println!("unlocked {username}: failed-login counter cleared");
                } else {
                    println!("{username} had no failed-login counter; nothing to clear");
                }
            }
            UserCommand::Roles {
                username,
                add,
                remove,
            } => {
                if add.is_empty() && remove.is_empty() {
                    return Err("nothing to change: give --add ROLE and/or --remove ROLE".into());
                }
                let user = admin
                    .change_roles(&username, &add, &remove)
                    .await
                    .map_err(err)?;
                println!("roles of {}: {}", user.username, roles_text(&user));
            }
        }
        Ok(())
    })
    .await
}

fn roles_text(user: &User) -> String {
    if user.roles.is_empty() {
        "-".into()
    } else {
        user.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `locked`: the names locked after too many failed logins.
fn print_users(users: &[User], locked: &HashSet<String>) {
    println!(
        "{:<24} {:<36} {:<24} {:<8} {:<7} CREATED",
        "USERNAME", "ID", "ROLES", "ENABLED", "LOCKED"
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for u in users {
        println!(
            "{:<24} {:<36} {:<24} {:<8} {:<7} {}",
            u.username,
            u.id,
            roles_text(u),
            yes_no(u.enabled),
            yes_no(locked.contains(u.username.as_str())),
            u.created_at
        );
    }
}

/// Reads a password: one line from stdin (only the line ending is stripped), or from the
/// terminal without echo, twice when `confirm` is set.
pub(super) fn read_password(from_stdin: bool, confirm: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        return Ok(password.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to prompt for a password on; use --password-stdin".into());
    }
    let prompt = if confirm {
        "New password: "
    } else {
        "Password: "
    };
    let first =
        rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))?;
    if confirm {
        let second = rpassword::prompt_password("Repeat password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != second {
            return Err("the passwords do not match".into());
        }
    }
    Ok(first)
}
