//! `authd serve`: build the application and run it until SIGINT or SIGTERM.

use authd::app::Application;
use authd::config::Config;

pub async fn run(config: Config) -> Result<(), String> {
    authd::telemetry::init("info");
    if config.key_encryption_key.is_none() {
        tracing::warn!(
            "AUTHD_KEY_ENCRYPTION_KEY is not set: private signing keys are stored UNENCRYPTED \
             in the database; anyone who can read it can forge tokens. Set it to 32 random \
             bytes, base64 (e.g. `openssl rand -base64 32`)"
        );
    }
    // Listen for the signals before anything is bound or logged: a SIGTERM that arrives
    // right after "authd serving" must stop the server gracefully, not kill it.
    let shutdown = shutdown_signal().map_err(|e| format!("cannot listen for signals: {e}"))?;
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    app.run_until_stopped(shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// Registers for SIGINT and SIGTERM now; the returned future completes on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    })
}
