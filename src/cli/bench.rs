//! `authd bench`: the load generator's command line. Parses flags into a
//! [`crate::bench::BenchConfig`], runs it, and prints the report (a table, or one JSON object
//! with `--json`). The measuring itself lives in [`crate::bench`].

use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use crate::bench::{self, BenchConfig, Credentials, Protocol, Scenario};
use authd::config::Config;
use authd::domain::{Clock, SystemClock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchScenario {
    /// grpc.health.v1.Health/Check: the transport ceiling
    Noop,
    /// Password logins of --user
    Login,
    /// C refresh chains, each started by a login of --user, always presenting the newest token
    Refresh,
    /// 1 login per 50 refreshes
    Mixed,
    /// `refresh` alone, then again beside a stream of garbage Logouts (--garbage-rate per
    /// second, from one connection); prints both refresh rates. Run the server with
    /// per_source_rate = 0 to measure the worst case
    LogoutFlood,
    /// Time from process start to the first answer, on the configured database (starts
    /// `authd serve` --runs times; ignores --addr)
    Startup,
}

/// `--sweep`'s concurrencies (a newtype: clap reads a bare `Vec` as a repeated flag).
#[derive(Debug, Clone)]
struct Levels(Vec<usize>);

/// What `--protocol` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchProtocol {
    /// gRPC (HTTP/2) to --addr
    Grpc,
    /// The HTTP/JSON routes (HTTP/1.1) to --http-addr; noop is GET /healthz
    Http,
    /// gRPC, then HTTP, with the same settings; prints both and HTTP's requests/s over gRPC's
    Both,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    scenario: BenchScenario,
    /// Server address (default: the configured grpc_addr)
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// Over gRPC, the HTTP/JSON routes, or both one after the other (noop, login, refresh,
    /// mixed)
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: BenchProtocol,
    /// The server's HTTP port, for --protocol http|both (default: the configured http_addr)
    #[arg(long, value_name = "HOST:PORT")]
    http_addr: Option<String>,
    /// Requests in flight at once
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the requests share (default: one per 8 in flight)
    #[arg(long, value_name = "N")]
    connections: Option<usize>,
    /// Stop after this long
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many requests (whichever comes first)
    #[arg(long, short = 'n', value_name = "N")]
    requests: Option<u64>,
    /// The user to log in as (login, refresh, mixed)
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Log in as N users, NAME-0 … NAME-(N-1) for --user NAME, created first (with the given
    /// password, through the same path as `authd user add`) where missing
    #[arg(long, value_name = "N", requires = "user")]
    users: Option<usize>,
    /// Read the user's password as one line from standard input
    #[arg(long)]
    password_stdin: bool,
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// The server's process id, to report its resident memory (Linux)
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// Also measure what the database keeps per refresh: its tables before the run and after
    /// it, once ended sessions are purged (reads the server's database: run with the server's
    /// configuration)
    #[arg(long)]
    storage: bool,
    /// Startup runs to time (startup only)
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Run the scenario at each of these concurrencies in turn (e.g. 1,4,16,64,256), print a
    /// table and draw throughput and p50/p99 latency against concurrency as an SVG
    #[arg(long, value_name = "C1,C2,...", value_parser = |s: &str| bench::sweep::parse_levels(s).map(Levels),
          conflicts_with_all = ["concurrency", "storage"])]
    sweep: Option<Levels>,
    /// Where --sweep writes its SVG
    #[arg(
        long,
        value_name = "FILE",
        requires = "sweep",
        default_value = "bench-sweep.svg"
    )]
    svg: std::path::PathBuf,
    /// Draw the server's memory against time over the run as an SVG at FILE (needs --pid)
    #[arg(long, value_name = "FILE", requires = "pid", conflicts_with = "sweep")]
    memory_svg: Option<std::path::PathBuf>,
    /// Garbage Logouts per second (logout-flood only)
    #[arg(long, value_name = "N", default_value_t = bench::logout_flood::DEFAULT_GARBAGE_RATE)]
    garbage_rate: u32,
}

/// `server_args` are the global options (arguments and environment) to hand to a server
/// started by `bench startup`.
pub async fn run(
    config: Config,
    args: BenchArgs,
    server_args: bench::ServerSetup,
) -> Result<(), String> {
    let scenario = match args.scenario {
        BenchScenario::Noop => Scenario::Noop,
        BenchScenario::Login => Scenario::Login,
        BenchScenario::Refresh => Scenario::Refresh,
        BenchScenario::Mixed => Scenario::Mixed,
        // Two refresh runs; the flood beside the second.
        BenchScenario::LogoutFlood => Scenario::Refresh,
        BenchScenario::Startup => return startup(args, &server_args).await,
    };
    let credentials = match (&args.user, scenario.needs_user()) {
        (Some(username), true) => {
            let password = super::user::read_password(args.password_stdin, false)?;
            let usernames = match args.users {
                None => vec![username.clone()],
                Some(n) => create_users(&config, username, n, &password).await?,
            };
            Some((usernames, SecretString::from(password)))
        }
        _ => None,
    };
    // The physical limit of logins, measured here before the run while the server is idle.
    let login_limit = if scenario == Scenario::Login {
        Some(
            bench::measure_login_limit(config.argon2())
                .await
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let settings = config;
    let protocols: &[Protocol] = match args.protocol {
        BenchProtocol::Grpc => &[Protocol::Grpc],
        BenchProtocol::Http => &[Protocol::Http],
        BenchProtocol::Both => &[Protocol::Grpc, Protocol::Http],
    };
    let config_for = |protocol: Protocol, concurrency: usize| BenchConfig {
        scenario,
        protocol,
        addr: match protocol {
            Protocol::Grpc => args
                .addr
                .clone()
                .unwrap_or_else(|| settings.grpc_addr.to_string()),
            Protocol::Http => args
                .http_addr
                .clone()
                .unwrap_or_else(|| settings.http_addr.to_string()),
        },
        concurrency,
        connections: args
            .connections
            .unwrap_or_else(|| concurrency.div_ceil(8).max(1)),
        duration: args.duration,
        requests: args.requests,
        // Each run takes its users in turn from the first.
        credentials: credentials
            .as_ref()
            .map(|(usernames, password)| Credentials::new(usernames.clone(), password.clone())),
        server_pid: args.pid,
    };
    if let Some(Levels(levels)) = &args.sweep {
        let [protocol] = protocols else {
            return Err("--sweep draws one protocol: give --protocol grpc or http".into());
        };
        return sweep(levels, |c| config_for(*protocol, c), args.json, &args.svg).await;
    }
    if args.scenario == BenchScenario::LogoutFlood {
        let report = bench::logout_flood::run_logout_flood(
            config_for(Protocol::Grpc, args.concurrency),
            config_for(Protocol::Grpc, args.concurrency),
            args.garbage_rate,
        )
        .await
        .map_err(|e| e.to_string())?;
        if args.json {
            println!("{}", report.to_json());
        } else {
            print!("{report}");
        }
        return Ok(());
    }
    if (args.storage || args.memory_svg.is_some()) && protocols.len() > 1 {
        return Err(
            "--storage and --memory-svg measure one run: give --protocol grpc or http".into(),
        );
    }
    let mut rps = Vec::new();
    for &protocol in protocols {
        let before = if args.storage {
            Some(super::with_store(&settings, storage_snapshot).await?)
        } else {
            None
        };
        let mut report = bench::run(config_for(protocol, args.concurrency))
            .await
            .map_err(|e| e.to_string())?;
        report.login_limit = login_limit;
        let storage = match before {
            Some(before) => Some(storage_after(&settings, &report, before).await?),
            None => None,
        };
        if let Some(path) = &args.memory_svg {
            let title = format!("{}: server memory", scenario.as_str());
            let drawing = bench::rss::svg(&title, &report.server_memory.trace)?;
            std::fs::write(path, drawing)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if args.json {
            let mut json = report.to_json();
            if let (Some(storage), Some(object)) = (&storage, json.as_object_mut()) {
                object.insert("storage".into(), storage.to_json());
            }
            println!("{json}");
        } else {
            print!("{report}");
            if let Some(storage) = &storage {
                print!("{storage}");
            }
        }
        rps.push(report.total.rps);
    }
    // Both: the ratio the target is stated in (HTTP/JSON ≥ 0.8 × gRPC).
    if let [grpc, http] = rps[..]
        && grpc > 0.0
    {
        let ratio = http / grpc;
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "scenario": scenario.as_str(), "http_over_grpc": (ratio * 1000.0).round() / 1000.0 })
            );
        } else {
            println!(
                "{}: HTTP/JSON requests/s over gRPC's: {ratio:.3}",
                scenario.as_str()
            );
        }
    }
    Ok(())
}

async fn storage_snapshot(
    store: std::sync::Arc<dyn authd::store::Store>,
) -> Result<authd::store::StoreStats, String> {
    bench::storage::snapshot(store.as_ref(), SystemClock.now())
        .await
        .map_err(|e| e.to_string())
}

/// The database after the run, purged as the retention job would, against `before`.
async fn storage_after(
    settings: &Config,
    report: &bench::Report,
    before: authd::store::StoreStats,
) -> Result<bench::storage::StorageUse, String> {
    let grace = settings.refresh_reuse_grace;
    let refreshes = report
        .operations
        .get(&bench::Operation::Refresh)
        .map_or(0, |op| op.requests.saturating_sub(op.errors));
    super::with_store(settings, async |store| {
        let purged = bench::storage::purge(store.as_ref(), SystemClock.now(), grace)
            .await
            .map_err(|e| e.to_string())?;
        let after = storage_snapshot(store).await?;
        Ok(bench::storage::StorageUse {
            refreshes,
            before,
            after,
            purged,
        })
    })
    .await
}

/// `NAME-0` … `NAME-(n-1)`, each created with `password` unless it exists. Hashes two at a
/// time (a one-off: existing users are kept for the next run).
async fn create_users(
    config: &Config,
    name: &str,
    n: usize,
    password: &str,
) -> Result<Vec<String>, String> {
    if n == 0 {
        return Err("--users must be at least 1".into());
    }
    super::with_store(config, async |store| {
        create_users_in(store, config, name, n, password).await
    })
    .await
}

async fn create_users_in(
    store: std::sync::Arc<dyn authd::store::Store>,
    config: &Config,
    name: &str,
    n: usize,
    password: &str,
) -> Result<Vec<String>, String> {
    let admin = super::user::admin(store, config, 2)?;
    let usernames: Vec<String> = (0..n).map(|i| format!("{name}-{i}")).collect();
    // Two at a time: the even-numbered names and the odd-numbered ones.
    let create_every_other = |first: usize| {
        let (admin, usernames) = (&admin, &usernames);
        async move {
            let mut created = 0;
            for username in usernames.iter().skip(first).step_by(2) {
                match admin.add(username, password, &[]).await {
                    Ok(_) => created += 1,
                    Err(authd::service::AdminError::DuplicateUser(_)) => {}
                    Err(e) => return Err(format!("cannot create bench user {username}: {e}")),
                }
            }
            Ok::<usize, String>(created)
        }
    };
    let (even, odd) = tokio::join!(create_every_other(0), create_every_other(1));
    let created = even? + odd?;
    if created > 0 {
        eprintln!(
            "created {created} bench users ({name}-0 … {name}-{})",
            n - 1
        );
    }
    Ok(usernames)
}

/// `--sweep`: one run per level, then the table (or JSON) and the SVG at `svg`.
async fn sweep(
    levels: &[usize],
    config_for: impl FnMut(usize) -> BenchConfig,
    json: bool,
    svg: &std::path::Path,
) -> Result<(), String> {
    let reports = bench::sweep::run(levels, config_for)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!("{}", bench::sweep::to_json(&reports));
    } else {
        print!("{}", bench::sweep::table(&reports));
    }
    let drawing = bench::sweep::svg(&reports)?;
    std::fs::write(svg, drawing).map_err(|e| format!("cannot write {}: {e}", svg.display()))?;
    eprintln!("wrote {}", svg.display());
    Ok(())
}

async fn startup(args: BenchArgs, server_args: &bench::ServerSetup) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the authd binary: {e}"))?;
    let report = bench::measure_startup(&exe, server_args, args.runs.max(1))
        .await
        .map_err(|e| e.to_string())?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "scenario": "startup",
                "runs": report.runs_ms.len(),
                "min_ms": report.min_ms(),
                "median_ms": report.median_ms(),
                "max_ms": report.max_ms(),
            })
        );
    } else {
        println!(
            "startup to first answer over {} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
            report.runs_ms.len(),
            report.min_ms(),
            report.median_ms(),
            report.max_ms()
        );
    }
    Ok(())
}
