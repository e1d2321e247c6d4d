//! The helpers every CLI test uses: `Env` (a temporary directory with its own SQLite database,
//! and the built `authd` run inside it) and `Server` (`authd serve` as a child process).

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::binary;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) struct Env {
    pub(crate) dir: TempDir,
}

impl Env {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn db_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("authd.db").display())
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = binary::authd(&self.db_url());
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    pub(crate) fn run(&self, args: &[&str], stdin: &str) -> Output {
        binary::run_with_stdin(self.command(args), stdin)
    }

    pub(crate) fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command expected to fail; returns its stderr.
    pub(crate) fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert_eq!(out.status.code(), Some(1), "{args:?} should exit 1");
        assert!(out.stdout.is_empty(), "nothing on stdout when failing");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        stderr
    }

    /// `authd client login USER --password-stdin --addr URL` with `password` on stdin.
    pub(crate) fn client_login(&self, url: &str, user: &str, password: &str) -> Output {
        self.run(
            &["client", "login", user, "--password-stdin", "--addr", url],
            &format!("{password}\n"),
        )
    }

    pub(crate) fn add(&self, name: &str) {
        self.ok(
            &["user", "add", name, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
    }
}

/// `authd serve` running as a child process, its stderr collected in the background.
pub(crate) struct Server {
    child: std::process::Child,
    pub(crate) addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(env: &Env, extra_env: &[(&str, &str)]) -> Self {
        let mut cmd = env.command(&["serve", "--grpc-addr", "127.0.0.1:0"]);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(90));
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = std::sync::Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                sink.lock().unwrap().push_str(&line);
                if !sent
                    && line.contains("authd serving")
                    && let Some(rest) = line.split("grpc_addr=").nth(1)
                {
                    let addr = rest.split_whitespace().next().unwrap().to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve logs the bound address");
        Self {
            child,
            addr,
            log,
            reader: Some(reader),
        }
    }

    pub(crate) fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, wait, and return everything the server wrote to stderr.
    pub(crate) fn stop(mut self) -> String {
        self.signal("TERM");
        assert!(self.child.wait().unwrap().success());
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.log()
    }
}

/// A self-signed certificate for `localhost` and its key, in PEM.
pub(crate) fn self_signed_localhost() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}
