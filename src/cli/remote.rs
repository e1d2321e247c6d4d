//! Connecting to a running authd from the command line: `http://` in the clear, `https://`
//! verified against the system's trusted roots plus, optionally, a CA file (`--ca-file`, for
//! a private CA or a self-signed certificate). Every CLI command that talks to a server goes
//! through [`channel`].

use std::path::Path;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// A channel to `url` (`http://HOST:PORT` or `https://HOST:PORT`; a bare `HOST:PORT` means
/// `http://`).
///
/// # Errors
/// A message for a person: a bad URL, an unreadable CA file, or a server that cannot be
/// reached (including a certificate that does not verify).
pub async fn channel(url: &str, ca_file: Option<&Path>) -> Result<Channel, String> {
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let mut endpoint =
        Endpoint::from_shared(url.clone()).map_err(|_| format!("invalid server URL {url:?}"))?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS set-up for {url}: {e}"))?;
    } else if ca_file.is_some() {
        return Err(format!("--ca-file needs an https:// server URL, not {url}"));
    }
    endpoint.connect().await.map_err(|e| {
        // tonic's top-level message is "transport error"; the cause says why.
        let cause = std::error::Error::source(&e).map_or_else(String::new, |s| format!(": {s}"));
        format!("cannot connect to {url}: {e}{cause}")
    })
}
