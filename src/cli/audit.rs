//! `authd audit tail`: print the newest audit events, one JSON object per line, and with
//! `--follow` keep printing new ones as they are stored (by any server on the database).

use std::sync::Arc;

use clap::Subcommand;
use tokio_stream::StreamExt;

use authd::config::Config;
use authd::service::{AuditFilter, AuditReader, audit_json};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the newest events, oldest first, one JSON object per line
    Tail {
        /// Only events about this username
        #[arg(long = "user", value_name = "USERNAME")]
        user: Option<String>,
        /// Only events of this type (e.g. login_failed)
        #[arg(long = "type", value_name = "EVENT_TYPE")]
        event_type: Option<String>,
        /// How many events (1 to 100000)
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Then keep printing new events as they are stored, until interrupted
        #[arg(long)]
        follow: bool,
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
    use authd::grpc::pb;
    check(&command)?;
    let AuditCommand::Tail {
        user,
        event_type,
        limit,
        follow,
    } = command;
    let api = remote.connect().await?;
    let request = pb::QueryAuditRequest {
        username: user.clone().unwrap_or_default(),
        event_type: event_type.clone().unwrap_or_default(),
        limit,
        ..pb::QueryAuditRequest::default()
    };
    let answer = api
        .call(|mut c, r| async move { c.query_audit(r).await }, request)
        .await?;
    let last = answer.events.last().map_or(0, |e| e.id);
    for event in answer.events {
        println!("{}", audit_json(&super::remote::audit_event(event)?));
    }
    if !follow {
        return Ok(());
    }
    // A stream ends when its connection does (the server's connection age, a restart
    // behind a load balancer): resume after the last event printed, until a call fails.
    let mut last = last;
    loop {
        let request = pb::FollowAuditRequest {
            username: user.clone().unwrap_or_default(),
            event_type: event_type.clone().unwrap_or_default(),
            after_id: last,
        };
        let mut events = api
            .call(|mut c, r| async move { c.follow_audit(r).await }, request)
            .await?;
        while let Ok(Some(event)) = events.message().await {
            last = event.id;
            println!("{}", audit_json(&super::remote::audit_event(event)?));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

pub async fn run(config: Config, command: AuditCommand) -> Result<(), String> {
    check(&command)?;
    super::with_store(&config, async |store| {
        let AuditCommand::Tail {
            user,
            event_type,
            limit,
            follow,
        } = command;
        let filter = AuditFilter::parse(
            event_type.as_deref().unwrap_or_default(),
            user.as_deref().unwrap_or_default(),
            0,
            0,
        )
        .map_err(|e| e.to_string())?;
        let reader = AuditReader::new(Arc::clone(&store));
        let records = reader
            .tail(&filter, limit)
            .await
            .map_err(|e| e.to_string())?;
        let last = records.last().map_or(0, |r| r.id);
        for record in &records {
            println!("{}", audit_json(&record.event));
        }
        if follow {
            let cursor = reader.cursor(last).await.map_err(|e| e.to_string())?;
            // Interrupting the command ends it; nothing else stops the follower.
            let stop = tokio_util::sync::CancellationToken::new();
            let mut events = reader.follow(cursor, filter, stop);
            while let Some(record) = events.next().await {
                let record = record.map_err(|e| e.to_string())?;
                println!("{}", audit_json(&record.event));
            }
        }
        Ok(())
    })
    .await
}
