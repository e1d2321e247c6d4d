//! `authd client` against a running server over TLS.

use crate::env::{Env, PASSWORD, Server};

/// Issue 16: `authd client` could not reach a TLS server at all (it trusted no roots). It
/// trusts the system's roots, and `--ca-file` adds a private CA.
#[test]
fn client_reaches_a_tls_server_with_its_ca_file() {
    let env = Env::new();
    env.add("alice");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_path = env.dir.path().join("cert.pem");
    let key_path = env.dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        &env,
        &[
            ("AUTHD_TLS_CERT", cert_path.to_str().unwrap()),
            ("AUTHD_TLS_KEY", key_path.to_str().unwrap()),
        ],
    );
    let url = format!("https://{}", server.addr);
    let login = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "login",
            "alice",
            "--password-stdin",
            "--addr",
            &url,
        ];
        args.extend_from_slice(extra);
        env.run(&args, &format!("{PASSWORD}\n"))
    };

    // A self-signed certificate is not among the system's roots: a clear refusal.
    let refused = login(&[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("cannot connect to https://"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let ok = login(&["--ca-file", cert_path.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let pair: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(pair["access_token"].as_str().is_some_and(|t| !t.is_empty()));

    // --ca-file with a plain-HTTP URL is a mistake worth saying.
    let plain = env.run(
        &[
            "client",
            "refresh",
            "x",
            "--addr",
            "http://127.0.0.1:1",
            "--ca-file",
            cert_path.to_str().unwrap(),
        ],
        "",
    );
    assert!(String::from_utf8_lossy(&plain.stderr).contains("--ca-file needs an https://"));
    server.stop();
}
