//! `authd token verify`: check an access token the way a resource server would, with the
//! `authd-verifier` crate, and say exactly why it is not valid when it is not. (`authd token`
//! without a subcommand prints the current login's access token: [`super::login`].)

use clap::{Args, Subcommand};

use authd::app::key_encryption;
use authd::config::Config;
use authd::crypto::keys::KeyRing;
use authd::domain::{Clock, SystemClock};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: Option<TokenCommand>,
    #[command(flatten)]
    pub print: super::login::PrintTokenArgs,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Verify an access token; prints its header and claims, or why it is invalid
    Verify {
        /// The access token, or - to read it from standard input
        #[arg(allow_hyphen_values = true)]
        token: String,
        /// Fetch keys from this JWKS URL (e.g. http://127.0.0.1:8080/.well-known/jwks.json)
        /// instead of reading them from the database
        #[arg(long, value_name = "URL")]
        jwks_url: Option<String>,
    },
}

/// The token is a secret: `Debug` shows only the command.
impl std::fmt::Debug for TokenCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Verify { .. } => f.write_str("Verify"),
        }
    }
}

pub async fn run(config: Config, command: TokenCommand) -> Result<(), String> {
    let TokenCommand::Verify { token, jwks_url } = command;
    let token = if token == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
        line.trim().to_owned()
    } else {
        token
    };
    let verifier_config =
        authd_verifier::VerifierConfig::new(config.issuer.clone(), config.audience.clone());
    let verifier = match jwks_url {
        Some(url) => authd_verifier::Verifier::with_jwks_url(verifier_config, url)
            .map_err(|e| e.to_string())?,
        None => {
            let stored = super::with_store(&config, async |store| {
                store.signing_keys().await.map_err(|e| e.to_string())
            })
            .await?;
            let kek = key_encryption(&config).map_err(|e| e.to_string())?;
            let ring = KeyRing::from_stored(&stored, kek.as_ref())
                .map_err(|e| format!("{e} (or verify against the server with --jwks-url)"))?;
            let jwks = ring.jwks(SystemClock.now(), &config.key_policy());
            let jwks = serde_json::from_value(jwks).map_err(|e| e.to_string())?;
            authd_verifier::Verifier::with_keys(verifier_config, jwks)
        }
    };
    let claims = verifier
        .verify(&token)
        .await
        .map_err(|e| format!("invalid token: {e}"))?;
    let header = jsonwebtoken::decode_header(&token).map_err(|e| e.to_string())?;
    let out = serde_json::json!({
        "valid": true,
        "header": { "alg": format!("{:?}", header.alg), "typ": header.typ, "kid": header.kid },
        "claims": claims,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}
