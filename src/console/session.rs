//! The console's browser session and its CSRF token.
//!
//! A browser session is an authd session: logging in runs the password-login use case and
//! keeps its pair of tokens in two cookies, both `HttpOnly; SameSite=Strict; Path=/admin`
//! and `Secure` unless the console is served over plain HTTP on a loopback address:
//!
//! - `authd_console`: `<csrf>.<refresh token>`, the session itself;
//! - `authd_console_at`: the access token, checked on every request by [`AdminAccess::admin`],
//!   the admin API's one rule (active, its user enabled and an administrator now). When it has
//!   expired the refresh token is rotated, as any client does, and both cookies are replaced.
//!
//! The CSRF token is 256 random bits made at login and kept in the session cookie, so it is
//! bound to the session: every form carries it in a hidden field and a POST whose field does
//! not equal the cookie's (compared in constant time) is refused before anything changes. An
//! attacker who could plant a cookie would replace the whole session, not only the token.
//! The login form has its own token the same way, in `authd_console_login`.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::ConsoleState;
use crate::domain::User;
use crate::service::{Actor, AuthError, IssuedTokens, Principal, RequestContext};

pub const SESSION_COOKIE: &str = "authd_console";
pub const ACCESS_COOKIE: &str = "authd_console_at";
pub const LOGIN_COOKIE: &str = "authd_console_login";
/// The hidden form field every POST carries.
pub const CSRF_FIELD: &str = "csrf";

/// A fresh CSRF token: 256 bits from the system's CSPRNG, base64url.
///
/// # Errors
/// When the CSPRNG fails.
pub fn new_csrf_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| AuthError::Unavailable("the system random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `presented` is the `expected` token (constant time; an empty one never is).
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    let presented = presented.unwrap_or_default();
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the console's path with its attributes; `None` deletes it.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!("{name}={v}; Path=/admin; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    };
    // Our tokens are base64url and JWTs: always valid header text.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The cookies that keep a session made of `tokens` with CSRF token `csrf`.
pub fn session_cookies(tokens: &IssuedTokens, csrf: &str, secure: bool) -> Vec<HeaderValue> {
    let session = format!("{csrf}.{}", tokens.refresh_token.expose());
    vec![
        set_cookie(SESSION_COOKIE, Some(&session), secure),
        set_cookie(ACCESS_COOKIE, Some(&tokens.access_token), secure),
    ]
}

/// The cookies that end the browser's hold on a session.
pub fn cleared_cookies(secure: bool) -> Vec<HeaderValue> {
    vec![
        set_cookie(SESSION_COOKIE, None, secure),
        set_cookie(ACCESS_COOKIE, None, secure),
    ]
}

/// The session cookie's parts: the CSRF token and the refresh token.
pub fn session_parts(headers: &HeaderMap) -> Option<(&str, &str)> {
    cookie(headers, SESSION_COOKIE)?
        .split_once('.')
        .filter(|(csrf, refresh)| !csrf.is_empty() && !refresh.is_empty())
}

/// A request made by a signed-in administrator.
pub struct Admin {
    pub user: User,
    pub actor: Actor,
    pub csrf: String,
    /// Cookies to send back (the session was refreshed on the way).
    pub set_cookies: Vec<HeaderValue>,
}

/// Why a request has no administrator behind it.
pub enum Refused {
    /// No session, or one that has ended: sign in again.
    SignIn,
    /// Signed in, but not (or no longer) an administrator.
    NotAdmin,
    /// The check could not be made.
    Unavailable(AuthError),
}

/// The administrator behind a request: the access token if it is still good, else the refresh
/// token rotated for a new pair.
///
/// # Errors
/// See [`Refused`].
pub async fn admit(
    state: &ConsoleState,
    headers: &HeaderMap,
    ctx: &RequestContext,
) -> Result<Admin, Refused> {
    let (csrf, refresh) = session_parts(headers).ok_or(Refused::SignIn)?;
    let mut set_cookies = Vec::new();
    let mut result = match cookie(headers, ACCESS_COOKIE) {
        Some(access) => state.access.admin(Some(access), None).await,
        None => Err(AuthError::CallerUnauthenticated),
    };
    if matches!(result, Err(AuthError::CallerUnauthenticated)) {
        let tokens = state
            .tokens
            .refresh(refresh, ctx)
            .await
            .map_err(|e| match e {
                AuthError::Unavailable(_) | AuthError::Overloaded => Refused::Unavailable(e),
                _ => Refused::SignIn,
            })?;
        result = state
            .access
            .admin(Some(tokens.access_token.as_str()), None)
            .await;
        set_cookies = session_cookies(&tokens, csrf, state.secure_cookies);
    }
    match result {
        Ok(Principal::User(user)) => Ok(Admin {
            actor: Actor::remote(format!("user:{}", user.username), ctx),
            user,
            csrf: csrf.to_owned(),
            set_cookies,
        }),
        Ok(Principal::Certificate(_)) | Err(AuthError::CallerUnauthenticated) => {
            Err(Refused::SignIn)
        }
        Err(AuthError::CallerForbidden) => Err(Refused::NotAdmin),
        Err(e) => Err(Refused::Unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; authd_console=x.y"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("authd_console_at=z"),
        );
        assert_eq!(session_parts(&headers), Some(("x", "y")));
        assert_eq!(cookie(&headers, ACCESS_COOKIE), Some("z"));
        assert_eq!(cookie(&headers, "authd"), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let token = new_csrf_token().unwrap_or_default();
        assert_eq!(token.len(), 43);
        assert!(csrf_matches(&token, Some(&token)));
        assert!(!csrf_matches(&token, None));
        assert!(!csrf_matches(&token, Some(&token[1..])));
        assert!(!csrf_matches("", Some("")));
    }

    #[test]
    fn cookie_attributes_follow_transport() {
        let secure = set_cookie(SESSION_COOKIE, Some("v"), true);
        assert_eq!(
            secure.to_str().unwrap_or_default(),
            "authd_console=v; Path=/admin; HttpOnly; SameSite=Strict; Secure"
        );
        let cleared = set_cookie(SESSION_COOKIE, None, false);
        assert!(cleared.to_str().unwrap_or_default().contains("Max-Age=0"));
    }
}
