//! Protobuf requests through the gRPC services: every `auth.v1` RPC (AuthService's Token,
//! RefreshToken, Logout, Introspect; AdminService; AccountService), as raw message bytes
//! framed and decoded by tonic, through the server's request layer stack, into the real
//! service layer over a temporary SQLite database.
//!
//! Input: a byte choosing the RPC, a byte choosing the bearer token (none, `fuzz`'s,
//! `fuzzadmin`'s, garbage), then the protobuf message (see `authd_fuzz::server` for the
//! refresh-token placeholder). Properties: a request refused as malformed
//! (INVALID_ARGUMENT, OUT_OF_RANGE, or a message that does not decode) commits nothing to
//! the database; no request is answered UNKNOWN, UNAVAILABLE (the database is healthy) or
//! INTERNAL other than for an undecodable message.
#![no_main]

use std::sync::Mutex;

use authd_fuzz::server::{Bearer, Server};
use libfuzzer_sys::fuzz_target;

const RPCS: &[&str] = &[
    "/auth.v1.AuthService/Token",
    "/auth.v1.AuthService/RefreshToken",
    "/auth.v1.AuthService/Logout",
    "/auth.v1.AuthService/Introspect",
    "/auth.v1.AdminService/CreateUser",
    "/auth.v1.AdminService/GetUser",
    "/auth.v1.AdminService/ListUsers",
    "/auth.v1.AdminService/UpdateUserRoles",
    "/auth.v1.AdminService/SetUserEnabled",
    "/auth.v1.AdminService/SetUserPassword",
    "/auth.v1.AdminService/UnlockUser",
    "/auth.v1.AdminService/DeleteUser",
    "/auth.v1.AdminService/ListSessions",
    "/auth.v1.AdminService/RevokeSession",
    "/auth.v1.AdminService/RevokeUserSessions",
    "/auth.v1.AdminService/CreateApiKey",
    "/auth.v1.AdminService/ListApiKeys",
    "/auth.v1.AdminService/RevokeApiKey",
    "/auth.v1.AdminService/ListSigningKeys",
    "/auth.v1.AdminService/RotateSigningKey",
    "/auth.v1.AdminService/QueryAudit",
    "/auth.v1.AccountService/GetMe",
    "/auth.v1.AccountService/ChangePassword",
    "/auth.v1.AccountService/ListMySessions",
    "/auth.v1.AccountService/RevokeMySession",
    "/auth.v1.AccountService/RevokeAllMySessions",
    "/auth.v1.AccountService/CreateMyApiKey",
    "/auth.v1.AccountService/ListMyApiKeys",
    "/auth.v1.AccountService/RevokeMyApiKey",
];

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let [rpc, bearer, message @ ..] = data else {
        return;
    };
    let path = RPCS[usize::from(*rpc) % RPCS.len()];
    let mut guard = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let server = guard.get_or_insert_with(Server::start);
    let answer = server.grpc(path, Bearer::from_byte(*bearer), message);

    let undecodable = answer.code == 13 && answer.message.contains("decode");
    let malformed = answer.code == 3 || answer.code == 11 || undecodable;
    assert!(
        !(malformed && answer.committed),
        "{path}: refused as malformed but committed to the database: {answer:?}"
    );
    assert!(
        !matches!(answer.code, 2 | 14) && (answer.code != 13 || undecodable),
        "{path}: {answer:?}"
    );
});
