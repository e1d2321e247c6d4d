//! `authd serve`: build the application and run it until SIGINT or SIGTERM.

use crate::app::Application;
use crate::config::Config;

pub async fn run(config: Config) -> Result<(), String> {
    crate::telemetry::init("info");
    if config.key_encryption_key.is_none() {
        tracing::warn!(
            "AUTHD_KEY_ENCRYPTION_KEY is not set: private signing keys are stored UNENCRYPTED \
             in the database; anyone who can read it can forge tokens. Set it to 32 random \
             bytes, base64 (e.g. `openssl rand -base64 32`)"
        );
    }
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
