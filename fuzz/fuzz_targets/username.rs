//! Usernames as clients send them: `Username::parse` (RFC 8265 PRECIS UsernameCaseMapped,
//! length limits).
//!
//! Properties: a name that parses is a fixed point (parsing its normalised form gives the
//! same name), is 1 to 64 characters, and the input it came from was at most 1024 bytes.
#![no_main]

use authd::domain::{MAX_USERNAME_CHARS, Username};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = Username::parse(s) else {
        return;
    };
    assert!(s.len() <= 1024, "over-long input accepted");
    let n = name.as_str().chars().count();
    assert!((1..=MAX_USERNAME_CHARS).contains(&n), "{n} characters");
    let again = Username::parse(name.as_str());
    assert_eq!(again.as_ref(), Ok(&name), "normalisation is not idempotent");
});
