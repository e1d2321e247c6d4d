//! `authd bench`: the load generator's command line. Parses flags into a
//! [`crate::bench::BenchConfig`], runs it, and prints the report (a table, or one JSON object
//! with `--json`). The measuring itself lives in [`crate::bench`].

use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use crate::bench::{self, BenchConfig, Credentials, Scenario};
use crate::config::Config;

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
    /// Time from process start to the first answer, on the configured database (starts
    /// `authd serve` --runs times; ignores --addr)
    Startup,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    scenario: BenchScenario,
    /// Server address (default: the configured grpc_addr)
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
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
    /// Read the user's password as one line from standard input
    #[arg(long)]
    password_stdin: bool,
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// The server's process id, to report its resident memory (Linux)
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// Startup runs to time (startup only)
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

/// `server_args` are the global options to hand to a server started by `bench startup`.
pub async fn run(config: Config, args: BenchArgs, server_args: Vec<String>) -> Result<(), String> {
    let scenario = match args.scenario {
        BenchScenario::Noop => Scenario::Noop,
        BenchScenario::Login => Scenario::Login,
        BenchScenario::Refresh => Scenario::Refresh,
        BenchScenario::Mixed => Scenario::Mixed,
        BenchScenario::Startup => return startup(args, &server_args).await,
    };
    let credentials = match (&args.user, scenario.needs_user()) {
        (Some(username), true) => Some(Credentials {
            username: username.clone(),
            password: SecretString::from(super::user::read_password(args.password_stdin, false)?),
        }),
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
    let config = BenchConfig {
        scenario,
        addr: args.addr.unwrap_or_else(|| config.grpc_addr.to_string()),
        concurrency: args.concurrency,
        connections: args
            .connections
            .unwrap_or_else(|| args.concurrency.div_ceil(8).max(1)),
        duration: args.duration,
        requests: args.requests,
        credentials,
        server_pid: args.pid,
    };
    let mut report = bench::run(config).await.map_err(|e| e.to_string())?;
    report.login_limit = login_limit;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}

async fn startup(args: BenchArgs, server_args: &[String]) -> Result<(), String> {
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
