//! Refresh tokens as clients present them: `RefreshToken::parse`, and opening a sealed
//! successor from bytes that were not sealed by us.
//!
//! Properties: a string that parses re-encodes to exactly itself (so one token has one
//! string and one stored key); its stored key is stable across parses; bytes we did not seal
//! never open as a successor.
#![no_main]

use authd::crypto::refresh_token::RefreshToken;
use authd::domain::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Some(token) = RefreshToken::parse(s)
    {
        assert_eq!(
            token.expose(),
            s,
            "a parsed token re-encodes to the same string"
        );
        let again = RefreshToken::parse(&token.expose()).expect("its own string parses");
        assert!(again == token, "parsing twice gives the same token");
        assert_eq!(again.hash().0, token.hash().0, "one token, one stored key");
        assert_eq!(format!("{token:?}"), "RefreshToken(<redacted>)");
    }
    // Arbitrary "sealed successors" never open: AES-GCM under a key only the presented token
    // gives. A fresh token each time, so no input can carry a matching seal.
    let holder =
        RefreshToken::generate(Timestamp::from_unix_millis(1_700_000_000_000)).expect("randomness");
    assert!(
        holder.open_successor(data).is_none(),
        "forged sealed successor opened"
    );
});
