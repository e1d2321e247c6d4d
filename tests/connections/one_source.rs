//! One source holding idle and half-sent connections, plain and over TLS.

use super::*;

fn one_source_cannot_hold_the_server_down(tls: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let running = start(tls);
    let pid = running.server.pid();
    runtime().block_on(async {
        let [login, refresh, healthz] = legitimate_calls(&running).await;
        println!(
            "issue 25 figures (tls: {tls}): without attack: login {login:.2?}, refresh \
             {refresh:.2?}, /healthz {healthz:.2?}"
        );
        let attack_started = Instant::now();
        let closed_so_far = Arc::new(AtomicUsize::new(0));
        let tasks = open_attack(&running, &closed_so_far).await;
        let opened = attack_started.elapsed();
        // The burst settles (the server accepts and closes the connections over the caps, the
        // test's tasks see it) before the legitimate client comes: until no attacking
        // connection has been closed for 100 ms, before the held ones time out.
        let mut seen = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = closed_so_far.load(Ordering::Relaxed);
            if now == seen {
                break;
            }
            seen = now;
        }
        let refused_within = attack_started.elapsed();
        let descriptors_under_attack = open_descriptors(pid);
        let held_now = metric(
            &metrics(&running).await,
            "authd_connections_open{listener=\"grpc\"}",
        );
        assert_eq!(held_now, PER_SOURCE, "the attacker holds its share of gRPC connections");
        let [login, refresh, healthz] = legitimate_calls(&running).await;

        let mut closed = Vec::new();
        for task in tasks {
            closed.push(task.await.unwrap());
        }
        let still_open = closed.iter().filter(|c| c.is_none()).count();

        assert_eq!(still_open, 0, "every attacking connection is closed in the end");
        // The last one closed: a connection the server held until its timeout.
        let shed = closed.iter().flatten().max().copied().unwrap_or_default();
        assert!(
            (TIMEOUT..TIMEOUT * 3).contains(&shed),
            "held connections are closed after the timeout, not {shed:?}"
        );

        let text = metrics(&running).await;
        let refused = |listener: &str| {
            metric(
                &text,
                &format!(
                    "authd_connections_refused_total{{listener=\"{listener}\",reason=\"max_connections_per_source\"}}"
                ),
            )
        };
        let (grpc_refused, http_refused) = (refused("grpc"), refused("http"));
        assert!(grpc_refused > 0.0 && http_refused > 0.0, "{text}");
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // counts
        let held = 2 * ATTACK - (grpc_refused + http_refused) as usize;
        println!(
            "issue 25 figures (tls: {tls}): {} attacking connections from {ATTACKER} opened in \
             {opened:.2?}, those over the caps closed within {refused_within:.2?}; server descriptors during the attack: {descriptors_under_attack} \
             (limit {FILE_LIMIT}); held by the server: {held}, refused at accept: \
             {grpc_refused} (gRPC) + {http_refused} (HTTP); the last held one closed \
             {shed:.2?} after connecting (timeout {TIMEOUT:?}); legitimate client from \
             {CLIENT}: login {login:.2?}, refresh {refresh:.2?}, /healthz {healthz:.2?}",
            2 * ATTACK,
        );
    });
}

#[test]
fn issue_25_idle_and_half_sent_connections_from_one_source_do_not_lock_others_out() {
    one_source_cannot_hold_the_server_down(false);
}

#[test]
fn issue_25_same_with_tls() {
    one_source_cannot_hold_the_server_down(true);
}
