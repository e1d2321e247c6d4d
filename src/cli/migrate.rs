//! `authd migrate`: apply pending database migrations, then exit.
//!
//! `authd serve` applies them too, under the same lock; this command lets an operator migrate
//! once before rolling out new replicas.

use authd::config::Config;
use authd::store;

pub async fn run(config: Config) -> Result<(), String> {
    let store = store::open_with(&config.database_url, &config.store_options())
        .await
        .map_err(|e| format!("cannot migrate the database: {e}"))?;
    store.close().await;
    println!("database is up to date");
    Ok(())
}
