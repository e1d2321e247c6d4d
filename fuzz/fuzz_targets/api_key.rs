//! API keys as clients present them (`authd_<id>_<secret>`): `ApiKeySecret::parse`.
//!
//! Properties: a string that parses re-encodes to exactly itself; its id is the 24 hex digits
//! after the prefix; two parses give the same stored hash; `Debug` never shows the secret.
#![no_main]

use authd::crypto::api_key::{API_KEY_CHARS, API_KEY_PREFIX, ApiKeySecret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Some(key) = ApiKeySecret::parse(s) else {
        return;
    };
    assert_eq!(s.len(), API_KEY_CHARS);
    assert_eq!(
        key.expose(),
        s,
        "a parsed key re-encodes to the same string"
    );
    let id = &s[API_KEY_PREFIX.len()..API_KEY_PREFIX.len() + 24];
    assert_eq!(key.id().as_str(), id);
    let again = ApiKeySecret::parse(&key.expose()).expect("its own string parses");
    assert!(
        again.hash().matches(&key.hash()),
        "one key, one stored hash"
    );
    let secret = &s[API_KEY_PREFIX.len() + 25..];
    assert!(
        !format!("{key:?}").contains(secret),
        "Debug shows the secret"
    );
});
