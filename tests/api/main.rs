//! End-to-end tests: the real server on a real socket with a real SQLite file, called with the
//! generated gRPC client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

// Shared with the other test crates; this one uses part of it.
#[allow(dead_code)]
#[path = "../support/postgres.rs"]
mod pg;

mod account;
mod admin_authz;
mod admin_http;
mod admin_keys_audit;
mod admin_sessions;
mod admin_users;
mod api_keys;
mod audit;
mod client_id;
mod clock_skew;
mod garbage_logout;
mod grpc_web;
mod helpers;
mod http_json;
mod introspection;
mod key_rewrap;
mod keys;
mod legacy;
mod limits;
mod login;
mod logout;
mod management;
mod oauth2_client;
mod oauth2_endpoints;
mod operations;
mod persistence;
mod purge;
mod readiness;
mod refresh;
mod regressions;
mod resource_server;
mod sessions;
mod throttling;
mod tls;
