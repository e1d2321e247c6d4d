//! Compiles `proto/auth/v1/auth.proto` with protox (pure Rust), so building authd needs no
//! system `protoc`. The file descriptor set is also kept for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/auth/v1/auth.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("auth_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // These carry secrets; src/grpc/mod.rs implements a redacting Debug for them.
        .skip_debug([
            ".auth.v1.PasswordCredential",
            ".auth.v1.RefreshTokenRequest",
            ".auth.v1.TokenResponse",
        ])
        .compile_fds(fds)?;
    Ok(())
}
