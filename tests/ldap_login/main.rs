//! LDAP as an identity source, end to end (issue 19): the real server on port 0 with a fresh
//! SQLite file, logins and refreshes over gRPC, against a real OpenLDAP (`slapd`, started by
//! each test on a free port; `tests/support/slapd.rs`). `login.rs`: logins, roles, refusals,
//! coexistence with local users, set-password; `recheck.rs`: the directory going away and
//! coming back, and what a refresh's recheck does; `serve.rs`: `authd serve` configured from
//! the environment as the README shows. (The directory client alone, StartTLS,
//! failover and `authd ldap test` are in `tests/ldap.rs`.) Skipped, with the reason printed,
//! where slapd is not installed; `.ci/run` installs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on the unexpected

#[path = "../support/binary.rs"]
mod binary;
#[allow(dead_code)] // shared with tests/api, which uses all of it
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../support/slapd.rs"]
mod slapd;

mod login;
mod recheck;
mod serve;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use authd::config::Config;
use authd::domain::{Clock, ManualClock, SystemClock};
use authd::ldap::{BindPassword, LdapSettings, Membership};
use helpers::{TestApp, spawn_on_with_clock, test_config};
use slapd::{ADMIN_DN, ADMIN_PASSWORD, Slapd};

macro_rules! require_slapd {
    () => {
        if let Some(why) = crate::slapd::unavailable() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}
pub(crate) use require_slapd;

/// The recheck interval the tests configure; they move a manual clock past it.
pub const RECHECK: Duration = Duration::from_secs(60);
/// The directory's timeout in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The reference configuration (README): `dcpower-users` → admin, `rogroup` → viewer.
pub fn ldap_settings(url: &str, membership: Membership) -> LdapSettings {
    LdapSettings {
        url: vec![url.to_owned()],
        bind_dn: ADMIN_DN.into(),
        bind_password: Some(BindPassword::new(ADMIN_PASSWORD)),
        user_base: "ou=people,dc=example,dc=org".into(),
        group_base: "ou=groups,dc=example,dc=org".into(),
        membership,
        role_map: BTreeMap::from([
            ("dcpower-users".into(), "admin".into()),
            ("rogroup".into(), "viewer".into()),
        ]),
        timeout: TIMEOUT,
        recheck_interval: RECHECK,
        ..LdapSettings::default()
    }
}

/// authd with `identity_sources = local, ldap` against `slapd`, on a manual clock.
pub async fn spawn_with_directory(
    slapd: &Slapd,
    membership: Membership,
) -> (TestApp, Arc<ManualClock>) {
    spawn_with(slapd, membership, |_| {}).await
}

pub async fn spawn_with(
    slapd: &Slapd,
    membership: Membership,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, Arc<ManualClock>) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    config.identity_sources = vec!["local".into(), "ldap".into()];
    config.ldap = ldap_settings(&slapd.url(), membership);
    tweak(&mut config);
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = spawn_on_with_clock(dir, config, clock.clone()).await;
    (app, clock)
}

/// The roles an access token carries.
pub fn roles_of(app: &TestApp, access_token: &str) -> Vec<String> {
    app.verify(access_token).1.roles
}
