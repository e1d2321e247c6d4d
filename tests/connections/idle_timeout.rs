//! A gRPC connection with nothing in flight is closed after the idle timeout.

use super::*;

#[test]
fn a_grpc_connection_with_no_request_in_flight_is_closed_after_the_idle_timeout() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let running = start_with(false, &[("AUTHD_IDLE_CONNECTION_TIMEOUT", "1s")]);
    runtime().block_on(async {
        let open = || async {
            metric(
                &metrics(&running).await,
                "authd_connections_open{listener=\"grpc\"}",
            )
        };
        let connect = || async {
            let channel = Endpoint::from_shared(format!("http://{}", running.grpc))
                .unwrap()
                .connect()
                .await
                .unwrap();
            HealthClient::new(channel)
        };
        let request = || HealthCheckRequest {
            service: String::new(),
        };
        // One connection makes a call and then idles; another keeps a Watch stream open,
        // which sends nothing while the status does not change.
        let mut idle = connect().await;
        idle.check(request()).await.unwrap();
        let mut watching = connect().await;
        let mut watch = watching.watch(request()).await.unwrap().into_inner();
        watch.message().await.unwrap().unwrap();
        assert_eq!(open().await, 2.0);

        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(open().await, 1.0, "the idle connection is closed");
        // The stream is still served; ending it makes its connection idle.
        drop(watch);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(open().await, 0.0, "then the other one too");
        // A closed connection is only a reconnect away for the client.
        idle.check(request()).await.unwrap();
    });
}
