//! The configuration loader, `Config::load`: a TOML file and `AUTHD_*` environment variables,
//! as an operator (or whoever can write either) gives them.
//!
//! Input: the TOML text, then NUL-separated `NAME=VALUE` environment entries. Properties: a
//! configuration that loads passes `validate`; written back as TOML it loads to the same
//! configuration (nothing is accepted that cannot be written down); `Debug` never shows a
//! database password.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use authd::config::{Config, Overrides};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        // Kept for the life of the process.
        dir.keep()
    })
}

fn set_env(vars: &[(&str, &str)]) {
    let stale: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("AUTHD_"))
        .collect();
    for (k, v) in vars {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return;
        }
    }
    // SAFETY: libFuzzer runs this target on one thread and nothing here starts another, so no
    // thread reads the environment while it changes.
    unsafe {
        for k in stale {
            std::env::remove_var(k);
        }
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
    }
}

fn load(toml_text: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
    let path = dir().join("authd.toml");
    std::fs::write(&path, toml_text).map_err(|e| e.to_string())?;
    set_env(vars);
    Config::load(Some(&path), &Overrides::default()).map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let toml_text = parts.next().unwrap_or_default();
    let vars: Vec<(&str, &str)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k, v))
        .filter(|(k, _)| k.starts_with("AUTHD_"))
        .collect();
    let Ok(config) = load(toml_text, &vars) else {
        return;
    };
    config.validate().expect("a loaded configuration is valid");

    // The two secrets serialise as `<redacted>` on purpose: the key encryption key is left
    // out (a redacted one would not load) and both are put back before comparing.
    let mut written = config.clone();
    written.key_encryption_key = None;
    let text = toml::to_string(&written).expect("a loaded configuration serialises");
    let mut reloaded = load(&text, &[])
        .unwrap_or_else(|e| panic!("written back, the configuration no longer loads: {e}\n{text}"));
    reloaded.key_encryption_key = config.key_encryption_key.clone();
    reloaded.ldap.bind_password = config.ldap.bind_password.clone();
    assert!(
        reloaded == config,
        "written back, the configuration changed:\n{text}"
    );

    // The URL's password never appears. Checked with a marker put in the password's place:
    // the fuzzer's own password text can also appear elsewhere in the configuration (another
    // field, the URL's path, or the password `<redacted>` itself), which is no leak.
    if let Some((scheme, after)) = config.database_url.split_once("://")
        && let authority = after.split(['/', '?', '#']).next().unwrap_or("")
        && let Some((user_info, _)) = authority.rsplit_once('@')
        && let Some((user, password)) = user_info.split_once(':')
        && !password.is_empty()
    {
        const MARKER: &str = "fuzz-marker-password-5b1e";
        let rest = &after[user_info.len()..];
        let mut marked = config.clone();
        marked.database_url = format!("{scheme}://{user}:{MARKER}{rest}");
        let shown = format!("{marked:?}");
        assert!(
            !shown.contains(MARKER),
            "Debug shows the database password of {:?}",
            marked.database_url
        );
    }
});
