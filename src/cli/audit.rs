//! `authd audit tail`: print the newest audit events, one JSON object per line.

use clap::Subcommand;

use crate::config::Config;
use crate::service::audit_json;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the newest events, oldest first, one JSON object per line
    Tail {
        /// Only events about this username
        #[arg(long = "user", value_name = "USERNAME")]
        user: Option<String>,
        /// How many events (1 to 100000)
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn check(command: &AuditCommand) -> Result<(), String> {
    let AuditCommand::Tail { limit, .. } = command;
    if (1..=100_000).contains(limit) {
        Ok(())
    } else {
        Err("--limit must be between 1 and 100000".into())
    }
}

/// The same command through the admin API of `remote`.
pub(super) async fn run_remote(
    remote: &super::Remote,
    command: AuditCommand,
) -> Result<(), String> {
    check(&command)?;
    let AuditCommand::Tail { user, limit } = command;
    let api = remote.connect().await?;
    let request = crate::grpc::pb::QueryAuditRequest {
        username: user.unwrap_or_default(),
        limit,
    };
    let answer = api
        .call(|mut c, r| async move { c.query_audit(r).await }, request)
        .await?;
    for event in answer.events {
        println!("{}", audit_json(&super::remote::audit_event(event)?));
    }
    Ok(())
}

pub async fn run(config: Config, command: AuditCommand) -> Result<(), String> {
    check(&command)?;
    super::with_store(&config, async |store| {
        let admin = super::user::admin(store, &config, 1)?;
        match command {
            AuditCommand::Tail { user, limit } => {
                let events = admin
                    .audit_tail(user.as_deref(), limit)
                    .await
                    .map_err(|e| e.to_string())?;
                for event in &events {
                    println!("{}", audit_json(event));
                }
            }
        }
        Ok(())
    })
    .await
}
