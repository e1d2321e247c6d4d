//! The `authd` command line: parsing (clap) and dispatch to the subcommands.
//!
//! Every subcommand loads the same layered [`Config`], so `authd user …`, `authd apikey …` and
//! `authd session …` act on the database `authd serve` uses; with the global `--server URL`
//! (`AUTHD_SERVER`), `authd user|session|apikey|keys|audit` call that server's admin API
//! instead ([`remote::AdminRemote`]), with the same commands, flags and output. Errors print
//! one line to stderr and exit non-zero.

mod apikey;
mod audit;
mod bench;
mod client;
mod credentials;
mod keys;
mod ldap;
mod login;
mod migrate;
mod remote;
mod serve;
mod session;
mod stats;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use authd::config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "authd", version, about = "A small, fast token service")]
pub struct Cli {
    /// Configuration file (default: ./authd.toml when it exists)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://authd.db or postgres://host/db (overrides AUTHD_DATABASE_URL)
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// A running server, `http://HOST:PORT` or `https://HOST:PORT`: user, session, apikey, keys
    /// and audit use its admin API instead of the database (bearer token: AUTHD_TOKEN, else the
    /// `authd login` for that server); login, token, logout and whoami: the server logged in to
    #[arg(long, global = true, value_name = "URL", env = "AUTHD_SERVER")]
    server: Option<String>,
    /// A PEM file of CA certificates trusted besides the system's, for an https:// server
    #[arg(long, global = true, value_name = "PATH", env = "AUTHD_CA_FILE")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Without the database URL's password.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("config", &self.config)
            .field(
                "database_url",
                &self.database_url.as_deref().map(authd::config::redact_url),
            )
            .field("server", &self.server)
            .field("command", &self.command)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service
    Serve {
        /// gRPC listen address (overrides AUTHD_GRPC_ADDR)
        #[arg(long, value_name = "HOST:PORT")]
        grpc_addr: Option<std::net::SocketAddr>,
        /// Public HTTP port: JSON and OAuth 2.0 API, JWKS, discovery, health (overrides
        /// AUTHD_HTTP_ADDR)
        #[arg(long, value_name = "HOST:PORT")]
        http_addr: Option<std::net::SocketAddr>,
        /// Management listener: metrics and health, or `off` (overrides AUTHD_MANAGEMENT_ADDR)
        #[arg(long, value_name = "HOST:PORT|off")]
        management_addr: Option<String>,
    },
    /// Apply pending database migrations and exit
    Migrate,
    /// Manage users
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage API keys
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCommand),
    /// List and end sessions (refresh families)
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Read the audit trail
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Call a running server (for trying authd from the shell)
    Client(client::ClientArgs),
    /// Manage signing keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Log in to a server once; `authd token` then prints a fresh access token
    Login(login::LoginArgs),
    /// Print a valid access token of the current login, refreshing it first when needed;
    /// `authd token verify` checks a token instead
    Token(token::TokenArgs),
    /// End the current login's session on the server and forget its credentials
    Logout(login::LogoutArgs),
    /// Show who the current login is: server, username, roles, session, expiry
    Whoami(login::WhoamiArgs),
    /// What the database holds: rows and bytes per table, live sessions, oldest audit event
    Stats(stats::StatsArgs),
    /// Check the LDAP configuration against the directory
    #[command(subcommand)]
    Ldap(ldap::LdapCommand),
    /// Load a running server and measure it (see BENCHMARKS.md)
    Bench(bench::BenchArgs),
}

/// Runs the parsed command line to completion.
pub fn run(mut cli: Cli) -> ExitCode {
    // The login commands and `client` take the global server and CA file.
    let (server, ca_file) = (cli.server.clone(), cli.ca_file.clone());
    match &mut cli.command {
        Command::Login(args) => args.target.at(server, ca_file),
        Command::Token(args) => args.print.target.at(server, ca_file),
        Command::Logout(args) => args.target.at(server, ca_file),
        Command::Whoami(args) => args.target.at(server, ca_file),
        Command::Client(args) => args.ca_file = ca_file,
        _ => {}
    }
    let remote = cli.server.clone().map(|server| Remote {
        server,
        ca_file: cli.ca_file.clone(),
    });
    let (grpc_addr, http_addr, management_addr) = match &cli.command {
        Command::Serve {
            grpc_addr,
            http_addr,
            management_addr,
        } => (*grpc_addr, *http_addr, management_addr.clone()),
        _ => (None, None, None),
    };
    let overrides = Overrides {
        database_url: cli.database_url.clone(),
        grpc_addr,
        http_addr,
        management_addr,
    };
    // `bench startup` starts servers that must read the same configuration. The database URL
    // goes in their environment, not on their command line, which every user of the machine
    // can read (`ps`) and which may carry a password.
    let mut server_args = crate::bench::ServerSetup::default();
    if let Some(path) = &cli.config {
        server_args.args.push("--config".to_owned());
        server_args.args.push(path.display().to_string());
    }
    if let Some(url) = &cli.database_url {
        server_args
            .env
            .push(("AUTHD_DATABASE_URL".to_owned(), url.clone()));
    }
    let result = Config::load(cli.config.as_deref(), &overrides)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            match cli.command {
                Command::Serve { .. } => runtime.block_on(serve::run(config)),
                Command::Migrate => runtime.block_on(migrate::run(config)),
                Command::User(cmd) => match &remote {
                    Some(r) => runtime.block_on(user::run_remote(r, cmd)),
                    None => runtime.block_on(user::run(config, cmd)),
                },
                Command::Apikey(cmd) => match &remote {
                    Some(r) => runtime.block_on(apikey::run_remote(r, cmd)),
                    None => runtime.block_on(apikey::run(config, cmd)),
                },
                Command::Session(cmd) => match &remote {
                    Some(r) => runtime.block_on(session::run_remote(r, cmd)),
                    None => runtime.block_on(session::run(config, cmd)),
                },
                Command::Audit(cmd) => match &remote {
                    Some(r) => runtime.block_on(audit::run_remote(r, cmd)),
                    None => runtime.block_on(audit::run(config, cmd)),
                },
                Command::Client(cmd) => runtime.block_on(client::run(config, cmd)),
                Command::Keys(cmd) => match &remote {
                    Some(r) => runtime.block_on(keys::run_remote(r, cmd)),
                    None => runtime.block_on(keys::run(config, cmd)),
                },
                Command::Login(args) => runtime.block_on(login::login(&config, args)),
                Command::Token(args) => match args.command {
                    Some(cmd) => runtime.block_on(token::run(config, cmd)),
                    None => runtime.block_on(login::print_token(args.print)),
                },
                Command::Logout(args) => runtime.block_on(login::logout(args)),
                Command::Whoami(args) => login::whoami(args),
                Command::Ldap(cmd) => runtime.block_on(ldap::run(config, cmd)),
                Command::Stats(args) => runtime.block_on(stats::run(config, args)),
                Command::Bench(args) => runtime.block_on(bench::run(config, args, server_args)),
            }
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The server the admin commands call instead of the database (`--server`).
struct Remote {
    server: String,
    ca_file: Option<PathBuf>,
}

impl Remote {
    async fn connect(&self) -> Result<remote::AdminRemote, String> {
        remote::AdminRemote::connect(&self.server, self.ca_file.as_deref()).await
    }
}

/// Opens the configured store, runs `command` on it, and closes the store whatever the outcome
/// (on SQLite the last connection to close folds the write-ahead log back into the database,
/// so a command leaves no `-wal` file behind).
async fn with_store<T>(
    config: &Config,
    command: impl AsyncFnOnce(std::sync::Arc<dyn authd::store::Store>) -> Result<T, String>,
) -> Result<T, String> {
    let store = authd::store::open_with(&config.database_url, &config.store_options())
        .await
        .map_err(|e| e.to_string())?;
    let result = command(std::sync::Arc::clone(&store)).await;
    store.close().await;
    result
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn debug_output_never_shows_tokens_given_as_arguments() {
        for args in [
            &[
                "authd",
                "client",
                "introspect",
                "tok-S3CRET",
                "--bearer",
                "bear-S3CRET",
            ][..],
            &["authd", "client", "refresh", "tok-S3CRET"],
            &["authd", "client", "api-key-login", "tok-S3CRET"],
            &["authd", "token", "verify", "tok-S3CRET"],
            &[
                "authd",
                "--database-url",
                "postgres://u:S3CRET@h/db",
                "user",
                "list",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let shown = format!("{cli:?}");
            assert!(!shown.contains("S3CRET"), "{shown}");
        }
    }
}
