//! The built `authd` binary as the out-of-process tests run it: a clean environment, the
//! test's database and cheap argon2 parameters; `authd serve` started on port 0 with its
//! address read from its log. Shared by the test crates that run the binary.
#![allow(dead_code)] // each test crate uses part of it

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// `authd` with nothing in its environment but `database_url`, argon2 parameters cheap enough
/// for tests, and the HTTP side port on a free port.
pub fn authd(database_url: &str) -> Command {
    test_env(Command::new(env!("CARGO_BIN_EXE_authd")), database_url)
}

/// [`authd`] started with a soft and hard open-file limit of `limit`, as systemd (1,024) or
/// `ulimit -n` would leave it: through `sh`, whose `exec` keeps the process id.
pub fn authd_with_file_limit(database_url: &str, limit: u32) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_authd"));
    test_env(cmd, database_url)
}

fn test_env(mut cmd: Command, database_url: &str) -> Command {
    cmd.env_clear()
        .env("AUTHD_DATABASE_URL", database_url)
        .env("AUTHD_ARGON2_MEMORY_KIB", "256")
        .env("AUTHD_ARGON2_ITERATIONS", "1")
        .env("AUTHD_HTTP_ADDR", "127.0.0.1:0");
    cmd
}

/// Runs `cmd` with `stdin` written to its standard input; captures stdout and stderr.
pub fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A running `authd serve`, SIGKILLed and reaped when dropped, however the test ends.
pub struct Server {
    child: Child,
    /// The gRPC address it logged (`127.0.0.1:PORT`).
    pub addr: String,
    /// The HTTP address it logged (JWKS, health, metrics).
    pub http_addr: String,
}

impl Server {
    /// Spawns `cmd` (an `authd serve --grpc-addr 127.0.0.1:0` command) and waits up to 60 s
    /// for it to log its gRPC address. Its log keeps being drained afterwards, so the server
    /// never blocks on a full pipe. Blocking: from async code, call it in `spawn_blocking`.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut server = Self {
            child,
            addr: String::new(),
            http_addr: String::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // `AUTHD_TEST_SERVER_LOG=1` echoes the server's log, for debugging a test.
        let echo = std::env::var_os("AUTHD_TEST_SERVER_LOG").is_some();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("[authd {}] {line}", std::process::id());
                }
                let logged = |key: &str| {
                    let rest = line.split(key).nth(1)?;
                    Some(rest.split_whitespace().next().unwrap_or("").to_owned())
                };
                if let Some(grpc) = logged("grpc_addr=") {
                    let _ = tx.send((grpc, logged("http_addr=").unwrap_or_default()));
                }
            }
        });
        (server.addr, server.http_addr) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve logs its address");
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap. Idempotent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
