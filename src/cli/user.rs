//! `authd user …`: add, list, change and remove users.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use clap::Subcommand;

use authd::config::Config;
use authd::crypto::password::PasswordHasher;
use authd::domain::{SystemClock, User};
use authd::service::UserAdmin;
use authd::store::Store;

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

/// What a command did, printed alike whether the database or the admin API did it.
enum Done {
    Created(User),
    Listed(Vec<User>, HashSet<String>),
    PasswordChanged(User),
    Disabled(User),
    Enabled(User),
    Deleted(User),
    Unlocked { username: String, cleared: bool },
    Roles(User),
}

fn report(done: Done) {
    match done {
        Done::Created(user) => println!("created user {} ({})", user.username, user.id),
        Done::Listed(users, locked) => print_users(&users, &locked),
        Done::PasswordChanged(user) => println!(
            "password changed for {}; all of its sessions were ended",
            user.username
        ),
        Done::Disabled(user) => {
            println!("disabled {}; all of its sessions were ended", user.username);
        }
        Done::Enabled(user) => println!("enabled {}", user.username),
        Done::Deleted(user) => println!("deleted {} ({})", user.username, user.id),
        Done::Unlocked {
            username,
            cleared: true,
        } => println!("unlocked {username}: failed-login counter cleared"),
        Done::Unlocked { username, .. } => {
            println!("{username} had no failed-login counter; nothing to clear");
        }
        Done::Roles(user) => println!("roles of {}: {}", user.username, roles_text(&user)),
    }
}

/// Refuses `user roles` without a change, before anything is asked of anyone.
fn check(command: &UserCommand) -> Result<(), String> {
    match command {
        UserCommand::Roles { add, remove, .. } if add.is_empty() && remove.is_empty() => {
            Err("nothing to change: give --add ROLE and/or --remove ROLE".into())
        }
        _ => Ok(()),
    }
}

pub async fn run(config: Config, command: UserCommand) -> Result<(), String> {
    check(&command)?;
    let done = super::with_store(&config, async |store| {
        let admin = admin(store, &config, 1)?;
        let err = |e: authd::service::AdminError| e.to_string();
        Ok(match command {
            UserCommand::Add {
                username,
                roles,
                password_stdin,
            } => {
                let password = read_password(password_stdin, true)?;
                Done::Created(admin.add(&username, &password, &roles).await.map_err(err)?)
            }
            UserCommand::List => {
                let users = admin.list().await.map_err(err)?;
                let locked = admin
                    .locked(config.throttle_max_failures)
                    .await
                    .map_err(err)?;
                Done::Listed(users, locked.into_iter().collect())
            }
            UserCommand::SetPassword {
                username,
                password_stdin,
            } => {
                let password = read_password(password_stdin, true)?;
                Done::PasswordChanged(
                    admin
                        .set_password(&username, &password)
                        .await
                        .map_err(err)?,
                )
            }
            UserCommand::Disable { username } => {
                Done::Disabled(admin.set_enabled(&username, false).await.map_err(err)?)
            }
            UserCommand::Enable { username } => {
                Done::Enabled(admin.set_enabled(&username, true).await.map_err(err)?)
            }
            UserCommand::Delete { username } => {
                Done::Deleted(admin.delete(&username).await.map_err(err)?)
            }
            UserCommand::Unlock { username } => {
                let cleared = admin.unlock(&username).await.map_err(err)?;
                Done::Unlocked { username, cleared }
            }
            UserCommand::Roles {
                username,
                add,
                remove,
            } => Done::Roles(
                admin
                    .change_roles(&username, &add, &remove)
                    .await
                    .map_err(err)?,
            ),
        })
    })
    .await?;
    report(done);
    Ok(())
}

/// The same commands through the admin API of `remote`.
pub(super) async fn run_remote(remote: &super::Remote, command: UserCommand) -> Result<(), String> {
    use super::remote::user;
    use authd::grpc::pb;
    check(&command)?;
    // Ask for a password before connecting, as the direct mode does.
    let password = match &command {
        UserCommand::Add { password_stdin, .. }
        | UserCommand::SetPassword { password_stdin, .. } => {
            Some(read_password(*password_stdin, true)?)
        }
        _ => None,
    };
    let api = remote.connect().await?;
    let done = match command {
        UserCommand::Add {
            username, roles, ..
        } => {
            let request = pb::CreateUserRequest {
                username,
                password: password.unwrap_or_default(),
                roles,
            };
            let created = api.call(|mut c, r| async move { c.create_user(r).await }, request);
            Done::Created(user(&created.await?)?.0)
        }
        UserCommand::List => {
            let mut users = Vec::new();
            let mut locked = HashSet::new();
            let mut page_token = String::new();
            loop {
                let request = pb::ListUsersRequest {
                    page_size: 1000,
                    page_token,
                    ..pb::ListUsersRequest::default()
                };
                let page = api
                    .call(|mut c, r| async move { c.list_users(r).await }, request)
                    .await?;
                for listed in &page.users {
                    let (u, is_locked) = user(listed)?;
                    if is_locked {
                        locked.insert(u.username.to_string());
                    }
                    users.push(u);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            Done::Listed(users, locked)
        }
        UserCommand::SetPassword { username, .. } => {
            let request = pb::SetUserPasswordRequest {
                username,
                password: password.unwrap_or_default(),
            };
            let changed = api.call(
                |mut c, r| async move { c.set_user_password(r).await },
                request,
            );
            Done::PasswordChanged(user(&changed.await?)?.0)
        }
        UserCommand::Disable { username } => {
            let request = pb::SetUserEnabledRequest {
                username,
                enabled: false,
            };
            let changed = api.call(
                |mut c, r| async move { c.set_user_enabled(r).await },
                request,
            );
            Done::Disabled(user(&changed.await?)?.0)
        }
        UserCommand::Enable { username } => {
            let request = pb::SetUserEnabledRequest {
                username,
                enabled: true,
            };
            let changed = api.call(
                |mut c, r| async move { c.set_user_enabled(r).await },
                request,
            );
            Done::Enabled(user(&changed.await?)?.0)
        }
        UserCommand::Delete { username } => {
            let request = pb::DeleteUserRequest { username };
            let deleted = api.call(|mut c, r| async move { c.delete_user(r).await }, request);
            Done::Deleted(user(&deleted.await?)?.0)
        }
        UserCommand::Unlock { username } => {
            let request = pb::UnlockUserRequest {
                username: username.clone(),
            };
            let answer = api.call(|mut c, r| async move { c.unlock_user(r).await }, request);
            Done::Unlocked {
                username,
                cleared: answer.await?.cleared,
            }
        }
        UserCommand::Roles {
            username,
            add,
            remove,
        } => {
            let request = pb::UpdateUserRolesRequest {
                username,
                add,
                remove,
            };
            let changed = api.call(
                |mut c, r| async move { c.update_user_roles(r).await },
                request,
            );
            Done::Roles(user(&changed.await?)?.0)
        }
    };
    report(done);
    Ok(())
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
