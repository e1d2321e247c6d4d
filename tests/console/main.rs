//! The admin web console, end to end: the real server on port 0 with a real SQLite file,
//! driven by headless Chromium over WebDriver (`browser`) and, for what a browser would never
//! send, by plain HTTP (`http`). Browser tests skip, saying why, when Chromium or chromedriver
//! is missing (`.ci/run` installs both). Screenshots of the main pages go to
//! `target/console-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "../api/helpers.rs"]
#[allow(dead_code)] // this crate uses part of it
mod helpers;
#[path = "../support/postgres.rs"]
mod postgres;

mod browser;
mod flows;
mod http;
