//! The `authd` binary: the command line (`cli/`) and the load generator (`bench/`) on top of
//! the server library. The library never imports either, so it does not carry the CLI's
//! dependencies (clap's derive, the benchmark's histograms and plots).

mod bench;
mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::run(cli::Cli::parse())
}
