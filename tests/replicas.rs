//! Scale-out on PostgreSQL: several `authd serve` processes (the built binary) on one fresh
//! database, and one replica whose database connection goes through a proxy that the test
//! cuts. Skipped with a printed reason when `AUTHD_TEST_POSTGRES_URL` is unset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/binary.rs"]
mod binary;
#[path = "support/postgres.rs"]
mod pg;
#[path = "support/proxy.rs"]
mod proxy;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{
    PasswordCredential, RefreshTokenRequest, TokenRequest, TokenResponse, token_request,
};
use tonic::Code;
use tonic::transport::Channel;

use proxy::{Link, Proxy};

const PASSWORD: &str = "correct horse battery staple";

/// One `authd serve` process; SIGKILLed on drop.
struct Replica {
    server: binary::Server,
    client: AuthServiceClient<Channel>,
}

fn authd(db_url: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = binary::authd(db_url);
    // All test traffic comes from 127.0.0.1: the per-source limit is tested elsewhere.
    cmd.env("AUTHD_PER_SOURCE_RATE", "0")
        .env("RUST_LOG", "warn,authd=info")
        .envs(env.iter().copied());
    cmd
}

fn add_user(db_url: &str, name: &str) {
    let mut child = authd(db_url, &[])
        .args(["user", "add", name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success(), "authd user add {name}");
}

impl Replica {
    async fn start(db_url: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = authd(db_url, env);
        cmd.args(["serve", "--grpc-addr", "127.0.0.1:0"]);
        // Off the runtime: a replica behind the test's proxy needs the proxy's tasks to run
        // while it starts.
        let server = tokio::task::spawn_blocking(move || binary::Server::start(cmd))
            .await
            .unwrap();
        let client = AuthServiceClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap();
        Self { server, client }
    }

    fn kill(&mut self) {
        self.server.kill();
    }

    async fn login(&self, name: &str) -> TokenResponse {
        let request = TokenRequest {
            credential: Some(token_request::Credential::PasswordCredential(
                PasswordCredential {
                    username: name.into(),
                    password: PASSWORD.into(),
                },
            )),
        };
        self.client
            .clone()
            .token(request)
            .await
            .unwrap()
            .into_inner()
    }

    async fn refresh(&self, token: &str) -> Result<String, tonic::Status> {
        refresh(&self.client, token).await
    }
}

async fn refresh(
    client: &AuthServiceClient<Channel>,
    token: &str,
) -> Result<String, tonic::Status> {
    let request = RefreshTokenRequest {
        refresh_token: token.into(),
    };
    client
        .clone()
        .refresh_token(request)
        .await
        .map(|r| r.into_inner().refresh_token)
}

/// A fresh database with user `alice` and three replicas (the first started alone, so it
/// creates the signing key the others load).
async fn three_replicas(
    test: &str,
    env: &[(&str, &str)],
) -> Option<(pg::TestDatabase, Vec<Replica>)> {
    let db = pg::TestDatabase::create(test).await?;
    let first = Replica::start(&db.url, env).await;
    add_user(&db.url, "alice");
    let (b, c) = tokio::join!(Replica::start(&db.url, env), Replica::start(&db.url, env));
    Some((db, vec![first, b, c]))
}

fn assert_refused(result: Result<String, tonic::Status>) {
    let status = result.expect_err("must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refreshes_at_any_replica_and_reuse_revokes_it_everywhere() {
    let Some((_db, r)) = three_replicas(
        "a_token_refreshes_at_any_replica_and_reuse_revokes_it_everywhere",
        &[("AUTHD_REFRESH_REUSE_GRACE", "0s")],
    )
    .await
    else {
        return;
    };
    let first = r[0].login("alice").await.refresh_token;
    let second = r[1].refresh(&first).await.unwrap();
    let third = r[2].refresh(&second).await.unwrap();
    // `second` was rotated (at C); replaying it at A is reuse...
    assert_refused(r[0].refresh(&second).await);
    // ...and the family's newest token is dead on every replica.
    for replica in &r {
        assert_refused(replica.refresh(&third).await);
    }
    // Reuse at C of a token rotated at B, in a new family.
    let first = r[0].login("alice").await.refresh_token;
    let second = r[1].refresh(&first).await.unwrap();
    assert_refused(r[2].refresh(&first).await);
    for replica in &r {
        assert_refused(replica.refresh(&second).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_across_replicas_have_exactly_one_winner() {
    let Some((_db, r)) = three_replicas(
        "concurrent_refreshes_across_replicas_have_exactly_one_winner",
        &[("AUTHD_REFRESH_REUSE_GRACE", "0s")],
    )
    .await
    else {
        return;
    };
    for round in 0..50 {
        let token = r[round % 3].login("alice").await.refresh_token;
        let attempts = (0..16).map(|i| {
            let client = r[i % 3].client.clone();
            let token = token.clone();
            tokio::spawn(async move { refresh(&client, &token).await })
        });
        let results: Vec<_> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        for result in results.into_iter().filter(Result::is_err) {
            assert_refused(result);
        }
    }
    // Each replica applied its rotations in batches, and says so.
    for replica in &r {
        let metrics = reqwest::get(format!("http://{}/metrics", replica.server.management_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let batches = metrics
            .lines()
            .find_map(|l| l.strip_prefix("authd_postgres_rotation_batch_size_count "))
            .unwrap_or_else(|| panic!("no batch size in {metrics}"));
        assert!(batches.parse::<f64>().unwrap() >= 1.0, "{metrics}");
        assert!(metrics.contains("authd_postgres_rotation_batch_seconds_bucket"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_mid_load_loses_no_acknowledged_rotation() {
    // The default grace window: a client whose response was lost with the replica retries
    // the same token elsewhere and gets the successor that was committed.
    let Some((_db, mut r)) = three_replicas(
        "killing_a_replica_mid_load_loses_no_acknowledged_rotation",
        &[],
    )
    .await
    else {
        return;
    };
    const CLIENTS: usize = 8;
    const ROTATIONS: usize = 30;
    let clients: Vec<_> = r.iter().map(|x| x.client.clone()).collect();
    let killed = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let start = r[c % 3].login("alice").await.refresh_token;
        let clients = clients.clone();
        let killed = Arc::clone(&killed);
        let acknowledged = Arc::clone(&acknowledged);
        tasks.push(tokio::spawn(async move {
            let mut current = start;
            let mut failures = 0;
            let mut seen = HashSet::new();
            for i in 0.. {
                if seen.len() == ROTATIONS {
                    break;
                }
                // Round-robin over the replicas; once B is dead, skip it.
                let mut target = (c + i) % 3;
                if target == 1 && killed.load(Ordering::SeqCst) {
                    target = 2;
                }
                match refresh(&clients[target], &current).await {
                    Ok(next) => {
                        assert!(
                            seen.insert(next.clone()),
                            "a successor is never handed out twice"
                        );
                        current = next;
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(status) => {
                        // Only the dying replica may fail a call; the token is kept and
                        // presented again elsewhere.
                        assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
                        failures += 1;
                        assert!(failures < 100, "{status:?}");
                    }
                }
            }
            (current, failures)
        }));
    }
    while acknowledged.load(Ordering::SeqCst) < CLIENTS * ROTATIONS / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    killed.store(true, Ordering::SeqCst);
    r[1].kill();
    let mut failed_calls = 0;
    for task in tasks {
        let (last, failures) = task.await.unwrap();
        failed_calls += failures;
        // The last acknowledged successor of every client still works, on both survivors.
        let next = r[0].refresh(&last).await.unwrap();
        r[2].refresh(&next).await.unwrap();
    }
    eprintln!(
        "{} acknowledged rotations, {failed_calls} calls failed with the killed replica",
        CLIENTS * ROTATIONS
    );
}

async fn outage(test: &str, down: Link) {
    let Some(db) = pg::TestDatabase::create(test).await else {
        return;
    };
    add_user(&db.url, "alice");
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let proxy = Proxy::start(upstream).await;
    let via_proxy = db.url.replacen(
        &format!(":{}/", options.get_port()),
        &format!(":{}/", proxy.port),
        1,
    );
    assert_ne!(via_proxy, db.url, "the URL names the port explicitly");
    // A long grace window: a rotation committed just as the link went down, whose response
    // never arrived, is recovered by presenting the same token again.
    let replica = Replica::start(&via_proxy, &[("AUTHD_REFRESH_REUSE_GRACE", "2m")]).await;
    let mut current = replica.login("alice").await.refresh_token;
    for _ in 0..5 {
        current = replica.refresh(&current).await.unwrap();
    }

    proxy.set(down);
    // Every call fails UNAVAILABLE, and does so within 2 s (the client's deadline: a server
    // that took longer would show as DEADLINE_EXCEEDED or CANCELLED instead). Concurrent
    // calls too, more than the pool has connections.
    for _ in 0..3 {
        let started = Instant::now();
        let calls = (0..12).map(|_| {
            let mut request = tonic::Request::new(RefreshTokenRequest {
                refresh_token: current.clone(),
            });
            request.set_timeout(Duration::from_secs(2));
            let mut client = replica.client.clone();
            async move { client.refresh_token(request).await }
        });
        for result in futures::future::join_all(calls).await {
            let status = result.expect_err("no success while the database is unreachable");
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        }
        eprintln!(
            "{down:?}: 12 calls UNAVAILABLE after {:?}",
            started.elapsed()
        );
    }

    proxy.set(Link::Up);
    let reopened = Instant::now();
    // Recovers by itself, without a restart, within 30 s; the token held across the outage
    // still works (or yields the successor committed just before the cut).
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        match replica.refresh(&current).await {
            Ok(next) => break next,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(Instant::now() < deadline, "not recovered within 30 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    eprintln!(
        "{down:?}: recovered {:?} after the database returned",
        reopened.elapsed()
    );
    replica.refresh(&recovered).await.unwrap();
    let _ = replica.login("alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_going_away_fails_unavailable_and_recovers_without_restart() {
    outage(
        "database_going_away_fails_unavailable_and_recovers_without_restart",
        Link::Closed,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_partition_fails_unavailable_and_recovers_without_restart() {
    outage(
        "network_partition_fails_unavailable_and_recovers_without_restart",
        Link::Silent,
    )
    .await;
}

/// `FollowAudit` polls the database: a follower on one replica sees the events the others
/// write (a broadcast from its own process's audit writer would see only its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_audit_on_one_replica_streams_events_written_by_the_others() {
    let Some((db, r)) = three_replicas(
        "follow_audit_on_one_replica_streams_events_written_by_the_others",
        &[],
    )
    .await
    else {
        return;
    };
    let out = authd(&db.url, &[])
        .args(["user", "roles", "alice", "--add", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = r[0].login("alice").await.access_token;
    let mut admin =
        authd::grpc::admin::AdminServiceClient::connect(format!("http://{}", r[0].server.addr))
            .await
            .unwrap();
    let mut request = tonic::Request::new(authd::grpc::pb::FollowAuditRequest {
        event_type: "login_failed".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut events = admin.follow_audit(request).await.unwrap().into_inner();
    for replica in &r[1..] {
        let wrong = TokenRequest {
            credential: Some(token_request::Credential::PasswordCredential(
                PasswordCredential {
                    username: "alice".into(),
                    password: "not the password, though long".into(),
                },
            )),
        };
        let refused = replica.client.clone().token(wrong).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let mut ids = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(15), events.message())
            .await
            .expect("an event within 15 s")
            .unwrap()
            .expect("the stream stays open");
        assert_eq!(
            (event.event_type.as_str(), event.username.as_str()),
            ("login_failed", "alice")
        );
        ids.push(event.id);
    }
    assert!(ids[0] < ids[1], "in id order: {ids:?}");
}
