//! End-to-end tests: the real server on a real socket with a real SQLite file, called with the
//! generated gRPC client.

mod helpers;
mod login;
mod persistence;
mod refresh;
