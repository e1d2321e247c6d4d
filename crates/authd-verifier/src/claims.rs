//! The claims of an authd access token, typed: the one definition authd signs and every
//! verifier (resource servers, `authd token verify`, authd's own Logout and Introspect) reads.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The JOSE `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What an authd access token says about its holder. Dates are Unix seconds.
///
/// Serialised in this field order, `aud` as a string when there is one audience (an array
/// otherwise), absent optional claims omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user's stable id (never the username).
    pub sub: String,
    /// Audiences; a single string in the token becomes a one-element list.
    #[serde(deserialize_with = "one_or_many", serialize_with = "one_or_array")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique per token (authd: 128 random bits, base64url); what a logout revokes.
    pub jti: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// For tokens obtained with an API key: the key's id. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// For tokens of a password session: the session (refresh family) id, which ends with a
    /// logout, a session revoke or reuse detection. Absent for API-key tokens (`key_id` plays
    /// that part) and for tokens issued before authd carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The OAuth 2.0 client the token was issued to (RFC 9068 §2.2): for API-key tokens the
    /// key's id, for session tokens the server's `default_client_id`. Absent in tokens issued
    /// before authd carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Claims {
    /// Whether the token grants `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(a) => vec![a],
        Aud::Many(v) => v,
    })
}

fn one_or_array<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &[&str]) -> Claims {
        Claims {
            iss: "https://issuer".into(),
            sub: "u1".into(),
            aud: aud.iter().map(|a| (*a).to_owned()).collect(),
            exp: 20,
            iat: 10,
            nbf: Some(10),
            jti: "j".into(),
            roles: vec!["r".into()],
            preferred_username: Some("alice".into()),
            key_id: None,
            sid: None,
            client_id: None,
        }
    }

    #[test]
    fn one_audience_is_a_string_and_the_round_trip_is_exact() {
        let one = claims(&["api"]);
        let json = serde_json::to_string(&one).unwrap();
        assert_eq!(
            json,
            r#"{"iss":"https://issuer","sub":"u1","aud":"api","exp":20,"iat":10,"nbf":10,"jti":"j","roles":["r"],"preferred_username":"alice"}"#
        );
        assert_eq!(serde_json::from_str::<Claims>(&json).unwrap(), one);
        let many = Claims {
            key_id: Some("k".into()),
            ..claims(&["a", "b"])
        };
        let json = serde_json::to_string(&many).unwrap();
        assert!(json.contains(r#""aud":["a","b"]"#), "{json}");
        assert!(json.ends_with(r#""key_id":"k"}"#), "{json}");
        assert_eq!(serde_json::from_str::<Claims>(&json).unwrap(), many);
    }
}
