//! `authd ldap test USERNAME`: checks the `[ldap]` configuration from the command line —
//! connects, binds as the service account, finds the user, lists their groups and the roles
//! they map to, and with `--password-stdin` checks the password too.

use clap::Subcommand;

use authd::config::Config;
use authd::ldap::{Directory, DirectoryError};

#[derive(Debug, Subcommand)]
pub enum LdapCommand {
    /// Look a user up in the directory (and check their password with --password-stdin)
    Test {
        username: String,
        /// Also check the password read from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
}

pub async fn run(config: Config, command: LdapCommand) -> Result<(), String> {
    let LdapCommand::Test {
        username,
        password_stdin,
    } = command;
    let directory = Directory::new(config.ldap.clone()).map_err(|e| e.to_string())?;
    println!("directory: {}", directory.settings().url.join(", "));
    let user = directory
        .lookup(&username)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no directory entry matches {username:?}"))?;
    println!("dn:        {}", user.dn);
    println!("id:        {}", user.id);
    println!("username:  {}", user.username);
    println!("groups:    {}", user.groups.join(", "));
    println!(
        "roles:     {}",
        if user.roles.is_empty() {
            "(none: the user is in no mapped group and cannot log in)".to_owned()
        } else {
            user.roles.join(", ")
        }
    );
    if user.disabled {
        println!("disabled:  yes (locked or disabled in the directory)");
    }
    if password_stdin {
        let password = super::user::read_password(true, false)?;
        match directory.authenticate(&username, &password).await {
            Ok(_) => println!("password:  accepted"),
            Err(DirectoryError::InvalidCredentials) => {
                return Err("the directory refused the password".to_owned());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
