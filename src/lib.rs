//! authd: a small token service. Password login over gRPC, short-lived signed JWT access
//! tokens, and opaque refresh tokens rotated on every use with reuse detection.
//!
//! See ARCHITECTURE.md for the map of the code and its invariants.

pub mod app;
pub mod config;
pub mod console;
pub mod crypto;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod ldap;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;
