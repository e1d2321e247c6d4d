//! `authd stats`: what the database holds — rows and bytes per table, live sessions, the oldest
//! audit event — so an operator sees growth before the disk does.

use clap::Args;

use authd::config::Config;
use authd::domain::{Clock, SystemClock};

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// One JSON object instead of a table
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, args: StatsArgs) -> Result<(), String> {
    let stats = super::with_store(&config, async |store| {
        store
            .stats(SystemClock.now())
            .await
            .map_err(|e| e.to_string())
    })
    .await?;
    if args.json {
        let tables: serde_json::Map<String, serde_json::Value> = stats
            .tables
            .iter()
            .map(|t| {
                (
                    t.table.to_owned(),
                    serde_json::json!({ "rows": t.rows, "bytes": t.bytes }),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "tables": tables,
                "database_bytes": stats.database_bytes,
                "live_sessions": stats.live_sessions,
                "oldest_audit_event": stats.oldest_audit_event.map(|t| t.to_string()),
            })
        );
        return Ok(());
    }
    println!("{:<24} {:>12} {:>14}", "TABLE", "ROWS", "BYTES");
    for t in &stats.tables {
        let bytes = t.bytes.map_or_else(|| "-".to_owned(), |b| b.to_string());
        println!("{:<24} {:>12} {:>14}", t.table, t.rows, bytes);
    }
    if let Some(bytes) = stats.database_bytes {
        println!("database: {bytes} bytes");
    }
    println!("live sessions: {}", stats.live_sessions);
    match stats.oldest_audit_event {
        Some(at) => println!("oldest audit event: {at}"),
        None => println!("oldest audit event: none"),
    }
    Ok(())
}
