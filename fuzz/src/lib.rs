//! Shared set-up for the fuzz targets: signing keys and tokens for the verifier targets
//! (`jwt`), and an in-process authd over a temporary SQLite database for the request targets
//! (`server`). The targets themselves are in `fuzz_targets/`; FUZZING.md says how to run them.

pub mod jwt;
pub mod server;
