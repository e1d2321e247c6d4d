//! Login latency for unknown vs known users: the timing side channel a user-enumeration attack
//! would exploit. Not a test: it prints figures (recorded in BENCHMARKS.md).
//!
//! Runs the real server (default argon2id parameters, SQLite in a temporary directory) and
//! calls it over loopback gRPC, interleaving the cases so drift affects them equally:
//! - unknown username (verification against the dummy hash, failure counter upsert, audit
//!   event);
//! - known username, wrong password (the case an attacker compares against);
//! - known username, right password (for reference: also signs a JWT and starts a family).
//!
//! `cargo bench --bench login_timing` (`LOGIN_TIMING_ATTEMPTS` sets the attempts per case).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may panic on the unexpected

use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::app::Application;
use authd::config::Config;
use authd::crypto::password::PasswordHasher;
use authd::domain::SystemClock;
use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{PasswordCredential, TokenRequest, token_request::Credential};
use authd::service::UserAdmin;
use tonic::transport::Channel;

const PASSWORD: &str = "correct horse battery staple";

fn request(username: &str, password: &str) -> TokenRequest {
    TokenRequest {
        credential: Some(Credential::PasswordCredential(PasswordCredential {
            username: username.into(),
            password: password.into(),
        })),
    }
}

async fn timed(
    client: &mut AuthServiceClient<Channel>,
    username: &str,
    password: &str,
) -> (Duration, tonic::Code) {
    let start = Instant::now();
    let code = match client.token(request(username, password)).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    (start.elapsed(), code)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    // `samples` is sorted by `median`.
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let attempts: usize = std::env::var("LOGIN_TIMING_ATTEMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            database_url: format!("sqlite://{}", dir.path().join("authd.db").display()),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            // Measure the hashing path, not the limits: no per-source limit, and throttling
            // far away (the counter is still read and updated on every failure).
            per_source_rate: 0,
            throttle_free_failures: 1_000_000,
            ..Config::default()
        };
        let store = authd::store::open(&config.database_url).await.unwrap();
        let admin = UserAdmin::new(
            store,
            Arc::new(PasswordHasher::new(config.argon2(), 1).unwrap()),
            Arc::new(SystemClock),
            config.password_policy().unwrap(),
        );
        admin.add("alice", PASSWORD, &[]).await.unwrap();
        let app = Application::build(config.clone()).await.unwrap();
        let addr = app.grpc_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let mut client = AuthServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();

        // Warm-up: connections, caches, the first blocking threads.
        for i in 0..10 {
            timed(&mut client, &format!("warm-{i}"), "a wrong password").await;
            timed(&mut client, "alice", "a wrong password").await;
        }

        let mut unknown = Vec::with_capacity(attempts);
        let mut known_wrong = Vec::with_capacity(attempts);
        let mut known_right = Vec::with_capacity(attempts / 3);
        for i in 0..attempts {
            let (d, code) = timed(&mut client, &format!("nobody-{i}"), "a wrong password").await;
            assert_eq!(code, tonic::Code::Unauthenticated);
            unknown.push(d);
            let (d, code) = timed(&mut client, "alice", "a wrong password").await;
            assert_eq!(code, tonic::Code::Unauthenticated);
            known_wrong.push(d);
            if i % 3 == 0 {
                let (d, code) = timed(&mut client, "alice", PASSWORD).await;
                assert_eq!(code, tonic::Code::Ok);
                known_right.push(d);
            }
        }
        let _ = stop.send(());
        server.await.unwrap().unwrap();

        let m_unknown = median(&mut unknown);
        let m_wrong = median(&mut known_wrong);
        let m_right = median(&mut known_right);
        println!(
            "login_timing: {attempts} attempts per case, argon2id m={} KiB t={} p={}",
            config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism
        );
        println!(
            "  unknown user              median {:8.2} ms   p10 {:8.2}   p90 {:8.2}",
            ms(m_unknown),
            ms(percentile(&unknown, 0.1)),
            ms(percentile(&unknown, 0.9))
        );
        println!(
            "  known user, wrong pass    median {:8.2} ms   p10 {:8.2}   p90 {:8.2}",
            ms(m_wrong),
            ms(percentile(&known_wrong, 0.1)),
            ms(percentile(&known_wrong, 0.9))
        );
        println!(
            "  known user, right pass    median {:8.2} ms   p10 {:8.2}   p90 {:8.2}  ({} attempts)",
            ms(m_right),
            ms(percentile(&known_right, 0.1)),
            ms(percentile(&known_right, 0.9)),
            known_right.len()
        );
        println!(
            "  ratio unknown / known-wrong medians: {:.3}",
            m_unknown.as_secs_f64() / m_wrong.as_secs_f64()
        );
    });
}
