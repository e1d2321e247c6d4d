#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/ (checked in; rerun after changing a target's input
format). Small on purpose: a few valid inputs per target, so the fuzzer starts deep."""
import base64, json, os, shutil, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
PASSWORD = b"correct horse battery staple"
REFRESH = b"REFRESH_TOKEN_PLACEHOLDER_____________________________"
ACCESS = b"ACCESS_TOKEN_PLACEHOLDER"


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def s(field, value):  # a length-delimited field (string, bytes, message)
    value = value if isinstance(value, bytes) else value.encode()
    return varint(field << 3 | 2) + varint(len(value)) + value


def v(field, value):  # a varint field
    return varint(field << 3) + varint(value)


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


for t in os.listdir(ROOT) if os.path.isdir(ROOT) else []:
    shutil.rmtree(os.path.join(ROOT, t))

# refresh_token: the current form (54 characters) and the earlier one (43).
write("refresh_token", "current", base64.urlsafe_b64encode(struct.pack(">q", 1_700_000_000_000) + bytes(range(32))).rstrip(b"="))
write("refresh_token", "legacy", base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"="))
write("refresh_token", "short", "abc")

# api_key
write("api_key", "key", "authd_0123456789abcdef01234567_" + base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode())
write("api_key", "upper", "authd_0123456789ABCDEF01234567_" + "A" * 43)

# username, password (the password target's first byte is the minimum length)
for name, text in [("ascii", "Alice"), ("nfd", "Jose\u0301"), ("dotted", "\u0130stanbul"), ("greek", "\u03a3\u03b1\u03c3"), ("fullwidth", "\uff21bc"), ("mixed", "a.b-c_d@e")]:
    write("username", name, text)
for name, text in [("ascii", "correct horse battery staple"), ("nfd", "cafe\u0301 au lait"), ("spaces", "a\u00a0b\u3000c"), ("cjk", "\u4e2d\u6587\u5bc6\u7801")]:
    write("password", name, b"\x0f" + text.encode())

# forwarded_for: first byte = peer (low 3 bits) and trusted networks (the rest)
write("forwarded_for", "chain", b"\x08" + b"203.0.113.9, 10.0.0.2")
write("forwarded_for", "ports", b"\x18" + b"[2001:db8::1]:443, 192.0.2.1:80, 192.168.0.9")
write("forwarded_for", "v6", b"\x7b" + b"2001:db8::5,fd00::2, ::1")

# config: TOML, then NUL-separated environment entries
write("config", "defaults", "")
write("config", "file", 'issuer = "https://auth.example"\naudience = ["a", "b"]\naccess_token_ttl = "5m"\ntrusted_proxies = ["10.0.0.0/8", "::1"]\nrefresh_reuse_grace = 30\n[ldap]\n')
write("config", "env", 'database_url = "postgres://authd:s3cretpassword@db/authd"\n\0AUTHD_AUDIENCE=x, y\0AUTHD_REFRESH_TOKEN_TTL=1h 30m\0AUTHD_PER_SOURCE_RATE=0')
write("config", "tls", 'tls_cert = "c.pem"\ntls_key = "k.pem"\nmax_connections = 10\nmax_connections_per_source = 2\nidentity_sources = "local"\naudit_refresh = "sample:10"\n')

# jwt_verifier: mode byte, then header 0xFF claims (mode 0: a whole token)
claims = {"iss": "https://issuer.test", "sub": "u", "aud": "api", "exp": 1_700_000_600, "iat": 1_700_000_000, "jti": "j", "roles": ["user"]}
for mode, (alg, kid) in [(1, ("ES256", "es")), (2, ("EdDSA", "ed"))]:
    header = {"alg": alg, "typ": "at+jwt", "kid": kid}
    write("jwt_verifier", f"valid-{kid}", bytes([mode]) + json.dumps(header).encode() + b"\xff" + json.dumps(claims).encode())
write("jwt_verifier", "nbf-aud-list", b"\x04" + json.dumps({"alg": "ES256", "typ": "application/at+jwt", "kid": "es"}).encode() + b"\xff" + json.dumps(dict(claims, aud=["other", "api"], nbf=1_700_000_010)).encode())
write("jwt_verifier", "none", b"\x00" + b"eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.")

# jwks: documents shaped like ours (the numbers are not this process's keys)
write("jwks", "ours", json.dumps({"keys": [
    {"kty": "EC", "crv": "P-256", "kid": "es", "alg": "ES256", "use": "sig", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
    {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}))
write("jwks", "rsa-oct", json.dumps({"keys": [
    {"kty": "RSA", "kid": "es", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
    {"kty": "oct", "kid": "ed", "k": "c2VjcmV0"}]}))
write("jwks", "empty", '{"keys": []}')

# grpc_requests: RPC index, bearer (0 none, 1 fuzz, 2 fuzzadmin, 3 garbage), message
RPCS = ["Token", "RefreshToken", "Logout", "Introspect", "CreateUser", "GetUser", "ListUsers", "UpdateUserRoles",
        "SetUserEnabled", "SetUserPassword", "UnlockUser", "DeleteUser", "ListSessions", "RevokeSession",
        "RevokeUserSessions", "CreateApiKey", "ListApiKeys", "RevokeApiKey", "ListSigningKeys", "RotateSigningKey",
        "QueryAudit", "GetMe", "ChangePassword", "ListMySessions", "RevokeMySession", "RevokeAllMySessions",
        "CreateMyApiKey", "ListMyApiKeys", "RevokeMyApiKey"]
grpc = {
    ("Token", 0, "login"): s(1, s(1, "fuzz") + s(2, PASSWORD)),
    ("Token", 0, "wrong-password"): s(1, s(1, "Fuzz") + s(2, "wrong password here")),
    ("Token", 0, "api-key"): s(2, s(1, "authd_0123456789abcdef01234567_" + "A" * 43)),
    ("RefreshToken", 0, "refresh"): s(1, REFRESH),
    ("Logout", 1, "logout"): s(1, REFRESH),
    ("Introspect", 2, "introspect"): s(1, REFRESH) + s(2, "refresh_token"),
    ("CreateUser", 2, "create"): s(1, "bob") + s(2, PASSWORD) + s(3, "user"),
    ("ListUsers", 2, "list"): v(1, 2) + s(3, "f") + s(4, "user"),
    ("UpdateUserRoles", 2, "roles"): s(1, "bob") + s(2, "ops") + s(3, "user"),
    ("SetUserEnabled", 2, "disable"): s(1, "bob") + v(2, 0),
    ("ListSessions", 2, "sessions"): s(1, "fuzz") + v(2, 1),
    ("CreateApiKey", 2, "api-key"): s(1, "fuzz") + s(2, "ci") + s(3, "user") + v(4, 3600),
    ("QueryAudit", 2, "audit"): s(1, "fuzz") + v(2, 5),
    ("GetMe", 1, "me"): b"",
    ("ChangePassword", 1, "change"): s(1, PASSWORD) + s(2, "another long passphrase"),
    ("CreateMyApiKey", 1, "my-key"): s(1, "laptop") + v(3, 60),
    ("ListMySessions", 1, "my-sessions"): v(1, 1) + s(2, "AAAA"),
}
for (rpc, bearer, name), message in grpc.items():
    write("grpc_requests", f"{rpc}-{name}", bytes([RPCS.index(rpc), bearer]) + message)

# http_requests: route index, flags (bearer in the low 2 bits; bits 2-3: content type), body
ROUTES = ["/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/introspect",
          "/oauth2/token", "/oauth2/revoke", "/oauth2/introspect", "jwks", "discovery"]
http = {
    ("/v1/auth/token", 0, "login"): json.dumps({"passwordCredential": {"username": "fuzz", "password": PASSWORD.decode()}}),
    ("/v1/auth/token", 0, "api-key"): json.dumps({"apiKeyCredential": {"apiKey": "authd_0123456789abcdef01234567_" + "A" * 43}}),
    ("/v1/auth/refresh", 0, "refresh"): json.dumps({"refreshToken": REFRESH.decode()}),
    ("/v1/auth/logout", 0, "logout"): json.dumps({"refreshToken": REFRESH.decode(), "accessToken": ACCESS.decode()}),
    ("/v1/auth/introspect", 2, "introspect"): json.dumps({"token": ACCESS.decode(), "tokenTypeHint": "access_token"}),
    ("/oauth2/token", 0, "password"): "grant_type=password&username=fuzz&password=correct+horse+battery+staple",
    ("/oauth2/token", 0, "refresh"): "grant_type=refresh_token&refresh_token=" + REFRESH.decode(),
    ("/oauth2/revoke", 0, "revoke"): "token=" + REFRESH.decode() + "&token_type_hint=refresh_token",
    ("/oauth2/introspect", 2, "introspect"): "token=" + ACCESS.decode(),
    ("jwks", 0, "get"): "",
}
for (route, flags, name), body in http.items():
    write("http_requests", f"{route.strip('/').replace('/', '-')}-{name}", bytes([ROUTES.index(route), flags]) + body.encode())
