//! The built `authd` binary, run as an operator would: each subcommand, each bad input with
//! its message and exit code, and `serve` started and stopped with a signal.
//!
//! `env` holds the `Env` and `Server` helpers; the tests are grouped by job in the other modules.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "../support/binary.rs"]
mod binary;

mod apikeys_sessions;
mod bad_input;
mod client;
mod config_and_database;
mod env;
mod keys_tokens;
mod serve;
mod users;
