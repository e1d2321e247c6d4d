//! Issue 16 item 6: readiness tells the truth when the store's rotation writer (SQLite's
//! writer thread, PostgreSQL's batcher task) has died, and the process exits with an error so
//! that an orchestrator restarts it, rather than queueing refreshes forever.
//!
//! The writer is stopped through a `#[doc(hidden)]` hook that stops it as a crash would (its
//! end of the queue gone, the rest of the store open); no configuration reaches it.

use std::sync::Arc;
use std::time::Duration;

use authd::app::{Application, StartupError};
use authd::config::Config;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::test_config;

use crate::pg;

async fn a_dead_rotation_writer_stops_the_server(config: Config) {
    let app = Application::build(config).await.unwrap();
    let (grpc, http, service) = (app.grpc_addr(), app.http_addr(), app.service());
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let readyz = format!("http://{http}/readyz");
    assert_eq!(reqwest::get(&readyz).await.unwrap().status(), 200);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "auth.v1.AuthService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    service.stop_rotation_writer_for_tests().await;
    assert!(!service.rotation_writer_running());
    // /readyz reads the writer's state itself: not ready at once (the probe, which stops
    // the server, runs every 2 s).
    let response = reqwest::get(&readyz).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("rotation writer"));
    // gRPC health turns NOT_SERVING (and the stream ends as the server stops).
    let not_serving = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(update)) = watch.message().await {
            if update.status == ServingStatus::NotServing as i32 {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(not_serving, "health never said NOT_SERVING");
    // The server stops by itself, with an error: `authd serve` exits non-zero.
    let ended = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops by itself")
        .unwrap();
    assert!(matches!(ended, Err(StartupError::WriterDied)), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_sqlite_rotation_writer_means_not_serving_and_exit() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    a_dead_rotation_writer_stops_the_server(test_config(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_postgres_rotation_batcher_means_not_serving_and_exit() {
    let Some(db) =
        pg::TestDatabase::create("a_dead_postgres_rotation_batcher_means_not_serving_and_exit")
            .await
    else {
        return;
    };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    config.database_url = db.url.clone();
    a_dead_rotation_writer_stops_the_server(config).await;
}
