//! HTTP bodies on the side port: the JSON API (`/v1/auth/*`, proto3 JSON decoded by serde
//! into the same messages) and the OAuth 2.0 endpoints (`/oauth2/token`, `revoke`,
//! `introspect`, form-encoded), through the real router and layer stack into the real
//! service layer over a temporary SQLite database.
//!
//! Input: a byte choosing the route, a byte choosing the bearer token and whether the right
//! content type is sent, then the body (see `authd_fuzz::server` for the token
//! placeholders). Properties: a request refused as malformed (`invalid_request`, a
//! google.rpc.Status with INVALID_ARGUMENT, 413, 415) commits nothing to the database; no
//! request is answered 5xx.
#![no_main]

use std::sync::Mutex;

use authd_fuzz::server::{Bearer, Server};
use libfuzzer_sys::fuzz_target;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";
const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/v1/auth/token", JSON),
    ("POST", "/v1/auth/refresh", JSON),
    ("POST", "/v1/auth/logout", JSON),
    ("POST", "/v1/auth/introspect", JSON),
    ("POST", "/oauth2/token", FORM),
    ("POST", "/oauth2/revoke", FORM),
    ("POST", "/oauth2/introspect", FORM),
    ("GET", "/.well-known/jwks.json", JSON),
    ("GET", "/.well-known/openid-configuration", JSON),
];

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let [route, flags, body @ ..] = data else {
        return;
    };
    let (method, path, right_type) = ROUTES[usize::from(*route) % ROUTES.len()];
    let content_type = match (flags >> 2) & 3 {
        0 | 1 => right_type,
        2 => {
            if right_type == JSON {
                FORM
            } else {
                JSON
            }
        }
        _ => "text/plain",
    };
    let mut guard = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let server = guard.get_or_insert_with(Server::start);
    let answer = server.http(method, path, content_type, Bearer::from_byte(*flags), body);

    let malformed = matches!(answer.code, 413 | 415)
        || (answer.code == 400
            && (answer.message.contains("\"invalid_request\"")
                || answer.message.contains("\"code\":3")));
    assert!(
        !(malformed && answer.committed),
        "{method} {path}: refused as malformed but committed to the database: {answer:?}"
    );
    assert!(answer.code < 500, "{method} {path}: {answer:?}");
});
