//! Access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with the active key.

use serde::{Deserialize, Serialize};

/// The `aud` claim: a single string when there is one audience, an array otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(list: &[String]) -> Self {
        match list {
            [one] => Self::One(one.clone()),
            many => Self::Many(many.to_vec()),
        }
    }
}

/// The claims authd puts in every access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's stable id, never the username.
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    /// Unique per token: 128 random bits, base64url.
    pub jti: String,
    pub roles: Vec<String>,
    pub preferred_username: String,
}

/// The JOSE `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
