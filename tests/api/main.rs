//! End-to-end tests: the real server on a real socket with a real SQLite file, called with the
//! generated gRPC client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

mod account;
mod admin;
mod api_keys;
mod audit;
mod grpc_web;
mod helpers;
mod http_json;
mod introspection;
mod keys;
mod legacy;
mod limits;
mod login;
mod logout;
mod oauth2_client;
mod oauth2_endpoints;
mod operations;
mod persistence;
mod purge;
mod refresh;
mod regressions;
mod resource_server;
mod sessions;
mod throttling;
mod tls;
