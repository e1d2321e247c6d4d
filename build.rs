//! Compiles `proto/auth/v1/auth.proto` with protox (pure Rust), so building authd needs no
//! system `protoc`. The file descriptor set is also kept for gRPC server reflection (with the
//! vendored `google/api` files its `google.api.http` annotations import), and pbjson-build
//! generates the proto3 JSON mapping (serde) of the `auth.v1` messages for the HTTP/JSON API.
//!
//! It also compiles the *original* two-RPC contract (`tests/proto/legacy/`) into
//! `$OUT_DIR/legacy/`, client only: the end-to-end tests use it to show that clients built
//! before the additive changes keep working. The library never includes it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/auth/v1/auth.proto";
    let legacy = "tests/proto/legacy/auth/v1/auth.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=proto/google");
    // sqlx::migrate! embeds the migrations; rebuild when one is added or changed.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed={legacy}");
    let admin = "proto/auth/v1/admin.proto";
    let account = "proto/auth/v1/account.proto";
    println!("cargo:rerun-if-changed={admin}");
    println!("cargo:rerun-if-changed={account}");
    let fds = protox::compile([proto, admin, account], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("auth_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    pbjson_build::Builder::new()
        .register_descriptors(&prost::Message::encode_to_vec(&fds))?
        .out_dir(&out_dir)
        // proto3 JSON: unknown fields are ignored, so newer clients work with this server.
        .ignore_unknown_fields()
        .build(&[".auth.v1"])?;
    // Code only for auth.v1: the google.api and google.protobuf files are there for the
    // annotations, which no Rust code reads.
    let mut own = fds.clone();
    own.file.retain(|f| f.package() == "auth.v1");
    // Every RPC path of the auth.v1 services, from the descriptors: the metrics' method
    // labels (a bounded set that grows with the contract, never with client input).
    let rpc_paths: Vec<String> = own
        .file
        .iter()
        .flat_map(|f| {
            f.service.iter().flat_map(move |s| {
                s.method
                    .iter()
                    .map(move |m| format!("/{}.{}/{}", f.package(), s.name(), m.name()))
            })
        })
        .collect();
    std::fs::write(
        out_dir.join("rpc_paths.rs"),
        format!("pub const RPC_PATHS: &[&str] = &{rpc_paths:?};\n"),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // These carry secrets; src/grpc/mod.rs implements a redacting Debug for them.
        .skip_debug([
            ".auth.v1.PasswordCredential",
            ".auth.v1.ApiKeyCredential",
            ".auth.v1.RefreshTokenRequest",
            ".auth.v1.TokenResponse",
            ".auth.v1.LogoutRequest",
            ".auth.v1.IntrospectRequest",
            ".auth.v1.CreateUserRequest",
            ".auth.v1.SetUserPasswordRequest",
            ".auth.v1.CreateApiKeyResponse",
            ".auth.v1.ChangePasswordRequest",
        ])
        .compile_fds(own)?;

    let legacy_out = out_dir.join("legacy");
    std::fs::create_dir_all(&legacy_out)?;
    let legacy_fds = protox::compile([legacy], ["tests/proto/legacy"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .out_dir(legacy_out)
        .compile_fds(legacy_fds)?;
    Ok(())
}
