//! Passwords as clients send them: `Password::presented` and `Password::new_secret` (RFC 8265
//! PRECIS OpaqueString, the 1024-byte cap before any Unicode work).
//!
//! Properties: normalisation is idempotent (the normalised form, presented again, gives the
//! same bytes), so a password set once verifies however the client composes it; input over
//! the cap is refused; a new secret's minimum length counts characters of the normalised
//! form; `Debug` is redacted.
#![no_main]

use authd::domain::{MAX_PASSWORD_BYTES, Password, PasswordError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&min, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let presented = Password::presented(s);
    if s.len() > MAX_PASSWORD_BYTES {
        assert_eq!(presented.as_ref().err(), Some(&PasswordError::TooLong));
    }
    let Ok(password) = presented else {
        return;
    };
    assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    let normalised = std::str::from_utf8(password.expose_bytes()).expect("normalised is UTF-8");
    let again = Password::presented(normalised).expect("the normalised form is accepted");
    assert_eq!(
        again.expose_bytes(),
        password.expose_bytes(),
        "normalisation is not idempotent"
    );
    let min = usize::from(min % 70);
    let chars = normalised.chars().count();
    match Password::new_secret(s, min) {
        Ok(p) => {
            assert!(chars >= min);
            assert_eq!(p.expose_bytes(), password.expose_bytes());
        }
        Err(e) => assert_eq!((e, chars < min), (PasswordError::TooShort(min), true)),
    }
});
