//! The `authd` binary: parse the command line and hand over to [`authd::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    authd::cli::run(authd::cli::Cli::parse())
}
