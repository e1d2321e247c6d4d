//! The standard gRPC health service (`grpc.health.v1.Health`) and server reflection.
//!
//! Health reports `auth.v1.AuthService` and the whole server (`""`). A background probe asks
//! the service whether it can work (database answers, a signing key can sign) and flips both
//! to NOT_SERVING while it cannot, back to SERVING when it can again. One failure is not
//! waited out: the store's rotation writer having died (it is never restarted), the probe
//! reports NOT_SERVING for good and stops the server, which then exits with an error so
//! that an orchestrator restarts the process instead of it queueing requests forever.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::pb;
use crate::service::TokenService;

/// How often the health probe runs.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

const SERVICE_NAME: &str = "auth.v1.AuthService";

/// The health server to mount, and the reporter the probe updates.
pub fn health_service() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Probes once and publishes the result; returns whether the service is ready.
pub async fn probe_once(service: &TokenService, reporter: &HealthReporter) -> bool {
    let ready = service.ready().await.is_ok();
    let status = if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    reporter.set_service_status(SERVICE_NAME, status).await;
    reporter.set_service_status("", status).await;
    ready
}

/// How the probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeEnd {
    /// `stop` was cancelled.
    Stopped,
    /// The store's rotation writer died; the probe cancelled `stop` itself.
    WriterDied,
}

/// Runs the probe every [`PROBE_INTERVAL`] until `stop` is cancelled, or until it finds the
/// rotation writer dead, when it cancels `stop` itself. Then it reports NOT_SERVING and
/// unregisters both names, which ends open `Watch` streams: otherwise they would hold the
/// graceful shutdown open forever.
pub async fn run_probe(
    service: Arc<TokenService>,
    mut reporter: HealthReporter,
    stop: CancellationToken,
) -> ProbeEnd {
    let mut was_ready = true;
    let mut end = ProbeEnd::Stopped;
    loop {
        let ready = probe_once(&service, &reporter).await;
        if !service.rotation_writer_running() && !stop.is_cancelled() {
            tracing::error!(
                "the rotation writer has stopped and cannot be restarted: not serving, \
                 shutting down so the process can be restarted"
            );
            end = ProbeEnd::WriterDied;
            stop.cancel();
            break;
        }
        if ready != was_ready {
            if ready {
                tracing::info!("health: serving again");
            } else {
                tracing::warn!("health: not serving (database unreachable or no signing key)");
            }
            was_ready = ready;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
    for name in [SERVICE_NAME, ""] {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
        reporter.clear_service_status(name).await;
    }
    end
}

/// Reflection services (v1 and v1alpha) describing `auth.v1` and the health service, so
/// grpcurl and similar tools work without the proto files.
///
/// # Errors
/// Only if the embedded descriptor sets do not decode, which the build guarantees.
pub fn reflection_services() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
