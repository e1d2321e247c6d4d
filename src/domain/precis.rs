//! Enforcing an RFC 8265 PRECIS profile so that its result is stable: the one rule `Username`
//! and `Password` share. It does not choose the profile or any length limit.

use precis_core::profile::Profile;

/// `raw` enforced with `profile`, or `None` when the profile refuses it or its result is not
/// stable: enforcing the result again must give the result (RFC 8264 §7 asks for rules
/// applied until stable, and for input whose result changes to be refused). Without this,
/// normalisation can make what the profile refuses: `>` followed by U+0338 composes to `≯`, a
/// symbol usernames may not hold, and U+0387 becomes a middle dot outside its `l·l` context
/// (both found by fuzzing, FUZZING.md). Such a stored name or password could not be presented
/// in its own normalised form.
pub(crate) fn enforce_stable(profile: &impl Profile, raw: &str) -> Option<String> {
    let once = profile.enforce(raw).ok()?.into_owned();
    let again = profile.enforce(once.as_str()).ok()?;
    (again == once).then_some(once)
}

#[cfg(test)]
mod tests {
    use super::*;
    use precis_profiles::{OpaqueString, UsernameCaseMapped};

    #[test]
    fn stable_results_are_kept() {
        let name = enforce_stable(&UsernameCaseMapped::new(), "Jose\u{301}");
        assert_eq!(name.as_deref(), Some("jos\u{e9}"));
        let password = enforce_stable(&OpaqueString::new(), "a\u{a0}b");
        assert_eq!(password.as_deref(), Some("a b"));
    }

    /// Issue 23, fuzz targets `username` and `password`: each input passed its profile once,
    /// but its result did not.
    #[test]
    fn results_the_profile_would_refuse_are_refused() {
        let profile = UsernameCaseMapped::new();
        let raw = "\u{338}\u{338}>>\u{338}uu";
        assert!(profile.enforce(raw).is_ok());
        assert_eq!(enforce_stable(&profile, raw), None);
        let profile = OpaqueString::new();
        let raw = "cafccaf\u{301} aue\u{387}'";
        assert!(profile.enforce(raw).is_ok());
        assert_eq!(enforce_stable(&profile, raw), None);
    }
}
