//! Connection caps per source and per listener, and the trusted proxies they spare.

use super::*;

#[test]
fn caps_refuse_at_accept_per_source_and_per_listener_and_spare_trusted_proxies() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let proxy = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let running = start_with(
        false,
        &[
            ("AUTHD_MAX_CONNECTIONS", "5"),
            ("AUTHD_MAX_CONNECTIONS_PER_SOURCE", "2"),
            ("AUTHD_TRUSTED_PROXIES", "127.0.0.3"),
        ],
    );
    runtime().block_on(async {
        let connect = |source: IpAddr| async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(source, 0)).unwrap();
            socket.connect(running.grpc).await.unwrap()
        };
        // Whether the server closes `stream` within a moment (nothing is ever sent on it).
        let closed_at_once = |mut stream: TcpStream| async move {
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_millis(500), async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        // The server's HTTP/2 settings.
                        Ok(_) => {}
                    }
                }
            });
            (read.await.is_ok(), stream)
        };
        let mut held = Vec::new();
        for (source, expect_closed) in [
            (ATTACKER, false),
            (ATTACKER, false),
            // Past the per-source cap.
            (ATTACKER, true),
            // A trusted proxy carries many clients: only the listener's cap applies.
            (proxy, false),
            (proxy, false),
            (proxy, false),
            // Past the listener's cap, whoever comes.
            (CLIENT, true),
        ] {
            let (closed, stream) = closed_at_once(connect(source).await).await;
            assert_eq!(closed, expect_closed, "connection from {source}");
            held.push(stream);
        }
        let text = metrics(&running).await;
        let refused = |reason: &str| {
            metric(
                &text,
                &format!(
                    "authd_connections_refused_total{{listener=\"grpc\",reason=\"{reason}\"}}"
                ),
            )
        };
        assert_eq!(refused("max_connections_per_source"), 1.0, "{text}");
        assert_eq!(refused("max_connections"), 1.0, "{text}");
        assert_eq!(
            metric(&text, "authd_connections_open{listener=\"grpc\"}"),
            5.0
        );
        // A slot freed is a slot taken.
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (closed, _stream) = closed_at_once(connect(CLIENT).await).await;
        assert!(!closed);
    });
}
