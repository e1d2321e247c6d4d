//! Connection-level abuse (issue 25), against the real binary started with an open-file limit
//! of 1,024 (systemd's default soft limit): one source opens 1,100 connections that send
//! nothing and 1,100 that send half an HTTP request, while a client from another source logs
//! in, refreshes and asks `/healthz`. Also: 10,000 connections opened and closed leave no
//! descriptor behind. The tests print the figures RELIABILITY.md records
//! (`cargo test --test connections -- --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "../support/binary.rs"]
mod binary;

mod caps;
mod descriptors;
mod idle_timeout;
mod one_source;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authd::grpc::AuthServiceClient;
use authd::grpc::pb::{PasswordCredential, RefreshTokenRequest, TokenRequest, token_request};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use binary::Server;

const PASSWORD: &str = "correct horse battery staple";
const FILE_LIMIT: u32 = 1024;
/// Connections the attacker opens of each kind.
const ATTACK: usize = 1100;
/// The server's header-read and TLS handshake timeouts in these tests: long enough that the
/// attack is still held while the legitimate client calls.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Connections one source may hold per listener under 1,024 descriptors: (1,024 − 104
/// reserved − 16 for the management listener) / 2 listeners / 8.
const PER_SOURCE: f64 = 56.0;
/// The attacker's source address and the legitimate client's.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// What the issue asks of the legitimate client's calls while under attack.
const LEGITIMATE_DEADLINE: Duration = Duration::from_secs(1);

struct Running {
    server: Server,
    grpc: SocketAddr,
    http: SocketAddr,
    /// The management listener (metrics), over the same TLS.
    management: SocketAddr,
    /// The self-signed certificate, when TLS is on.
    cert: Option<String>,
    _dir: TempDir,
}

/// A user `alice`, then `authd serve` with the open-file limit at 1,024 and header-read and
/// handshake timeouts of [`TIMEOUT`]; TLS on both ports when `tls`.
fn start(tls: bool) -> Running {
    start_with(tls, &[])
}

/// [`start`] with more environment.
fn start_with(tls: bool, env: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("authd.db").display());
    let mut add = binary::authd(&db);
    add.args(["user", "add", "alice", "--password-stdin"]);
    let out = binary::run_with_stdin(add, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");

    let mut cmd = binary::authd_with_file_limit(&db, FILE_LIMIT);
    cmd.args(["serve", "--grpc-addr", "127.0.0.1:0"])
        .env(
            "AUTHD_HEADER_READ_TIMEOUT",
            format!("{}s", TIMEOUT.as_secs()),
        )
        .env(
            "AUTHD_TLS_HANDSHAKE_TIMEOUT",
            format!("{}s", TIMEOUT.as_secs()),
        )
        .envs(env.iter().copied());
    let cert = tls.then(|| {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = certified.cert.pem();
        let cert_path = write(dir.path(), "cert.pem", &cert);
        let key_path = write(
            dir.path(),
            "key.pem",
            &certified.signing_key.serialize_pem(),
        );
        cmd.env("AUTHD_TLS_CERT", cert_path)
            .env("AUTHD_TLS_KEY", key_path);
        cert
    });
    let server = Server::start(cmd);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().nth(3) == Some(&FILE_LIMIT.to_string()),
        "{open_files}"
    );
    Running {
        grpc: server.addr.parse().unwrap(),
        http: server.http_addr.parse().unwrap(),
        management: server.management_addr.parse().unwrap(),
        server,
        cert,
        _dir: dir,
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

/// The tests run one at a time: each measures latencies and counts descriptors, which a
/// neighbour's thousands of connections would disturb.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn runtime() -> tokio::runtime::Runtime {
    // The attack needs ~2,200 descriptors in this process besides the server's.
    rlimit::increase_nofile_limit(16_384).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One attacking connection: sends `bytes` (maybe nothing), then waits for the server to
/// close it; yields how long after connecting that happened (`None`: still open at `limit`).
async fn attack(to: SocketAddr, bytes: &'static [u8], limit: Duration) -> Option<Duration> {
    // From 127.0.0.1, the source the kernel picks for 127.0.0.1 (binding first would make it
    // search for a free port among thousands in TIME_WAIT).
    let mut stream = TcpStream::connect(to).await.unwrap();
    let start = Instant::now();
    // A refused connection may be closed before the bytes are written.
    let _ = stream.write_all(bytes).await;
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| start.elapsed())
}

/// Opens the attack: `ATTACK` idle connections to the gRPC port and `ATTACK` half-sent
/// requests to the HTTP port, all from [`ATTACKER`]. Each task ends when the server closes
/// its connection, and counts itself in `closed`.
async fn open_attack(
    running: &Running,
    closed: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Option<Duration>>> {
    let half_request: &'static [u8] = if running.cert.is_some() {
        // On a TLS port, bytes that are not a complete ClientHello.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    } else {
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
    };
    let limit = TIMEOUT * 10;
    let mut tasks = Vec::with_capacity(2 * ATTACK);
    let counted = |to, bytes| {
        let closed = Arc::clone(closed);
        tokio::spawn(async move {
            let result = attack(to, bytes, limit).await;
            closed.fetch_add(1, Ordering::Relaxed);
            result
        })
    };
    for i in 0..ATTACK {
        tasks.push(counted(running.grpc, b""));
        tasks.push(counted(running.http, half_request));
        // At a pace the kernel's accept queues (1,024 each) absorb: past them, the kernel
        // drops handshakes the client already counts as done, and retries them for a minute.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
    tasks
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Logs in, refreshes and GETs `/healthz` from [`CLIENT`], each within the deadline; returns
/// the three latencies.
async fn legitimate_calls(running: &Running) -> [Duration; 3] {
    let scheme = if running.cert.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", running.grpc))
        .unwrap()
        .local_address(Some(CLIENT))
        .connect_timeout(LEGITIMATE_DEADLINE);
    if let Some(cert) = &running.cert {
        endpoint = endpoint
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(cert))
                    .domain_name("localhost"),
            )
            .unwrap();
    }
    let within = |what: &str, started: Instant| {
        let took = started.elapsed();
        assert!(
            took < LEGITIMATE_DEADLINE,
            "{what} took {took:?} under attack"
        );
        took
    };

    let started = Instant::now();
    let channel = tokio::time::timeout(LEGITIMATE_DEADLINE, endpoint.connect())
        .await
        .expect("connects in time")
        .expect("connects");
    let mut client = AuthServiceClient::new(channel);
    let pair = tokio::time::timeout(
        LEGITIMATE_DEADLINE,
        client.token(TokenRequest {
            credential: Some(token_request::Credential::PasswordCredential(
                PasswordCredential {
                    username: "alice".into(),
                    password: PASSWORD.into(),
                },
            )),
        }),
    )
    .await
    .expect("login in time")
    .expect("login succeeds")
    .into_inner();
    let login = within("login", started);

    let started = Instant::now();
    tokio::time::timeout(
        LEGITIMATE_DEADLINE,
        client.refresh_token(RefreshTokenRequest {
            refresh_token: pair.refresh_token,
        }),
    )
    .await
    .expect("refresh in time")
    .expect("refresh succeeds");
    let refresh = within("refresh", started);

    let started = Instant::now();
    let health = http_get(running, "/healthz")
        .timeout(LEGITIMATE_DEADLINE)
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(health.status(), 200);
    let healthz = within("healthz", started);
    [login, refresh, healthz]
}

/// A GET of `path` on the HTTP side port from [`CLIENT`], over TLS when it is on.
fn http_get(running: &Running, path: &str) -> reqwest::RequestBuilder {
    get_from(running, running.http, path)
}

/// `GET path` from the legitimate client's address to `addr` (plain or TLS, as the server).
fn get_from(running: &Running, addr: SocketAddr, path: &str) -> reqwest::RequestBuilder {
    let mut http = reqwest::Client::builder()
        .local_address(CLIENT)
        .resolve("localhost", addr);
    let scheme = match &running.cert {
        Some(cert) => {
            let cert = reqwest::Certificate::from_pem(cert.as_bytes()).unwrap();
            http = http.add_root_certificate(cert);
            "https"
        }
        None => "http",
    };
    http.build()
        .unwrap()
        .get(format!("{scheme}://localhost:{}{path}", addr.port()))
}

async fn metrics(running: &Running) -> String {
    let response = get_from(running, running.management, "/metrics")
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

/// The value of the metric line starting with `series`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
