//! `authd keys …`: list the signing keys, force a rotation, retire a compromised key at once,
//! re-seal every key under a new key encryption key.

use std::sync::Arc;

use clap::Subcommand;

use authd::app::key_encryption;
use authd::config::{Config, KeyEncryptionKey};
use authd::crypto::key_encryption::KeyEncryption;
use authd::domain::{Clock, SystemClock, Timestamp};
use authd::service::{Actor, EmergencyRetirement, KeyInfo, KeyManager, RotateOutcome, list_keys};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys: kid, algorithm, state and dates
    List,
    /// Schedule a new signing key now; it is published at once and signs after the
    /// pre-publication period (key_prepublish). Running servers pick it up within a minute.
    Rotate,
    /// Emergency (a compromised key): stop signing with KID and remove it from the JWKS at
    /// once, so every token it signed fails verification and Introspect; a new key signs from
    /// now. Running servers pick it up within a minute; verifiers within their JWKS cache age.
    Retire {
        kid: String,
        /// Required: retire at once rather than on the usual schedule
        #[arg(long)]
        now: bool,
    },
    /// Rotate the key encryption key: re-seal every private signing key under the key in
    /// PATH (32 random bytes, base64, like AUTHD_KEY_ENCRYPTION_KEY), opening them with the
    /// current AUTHD_KEY_ENCRYPTION_KEY. All or nothing. Then restart every server with the
    /// new key (README: rotating the key encryption key).
    Rewrap {
        /// File holding the new key (base64 of 32 random bytes)
        #[arg(long, value_name = "PATH")]
        new_key_file: std::path::PathBuf,
    },
}

/// The key encryption key in `path` (base64 of 32 bytes, surrounding whitespace ignored).
fn read_key_file(path: &std::path::Path) -> Result<KeyEncryption, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let bytes = KeyEncryptionKey::new(text.trim()).bytes().map_err(|_| {
        format!(
            "{} must hold 32 random bytes, base64-encoded (openssl rand -base64 32)",
            path.display()
        )
    })?;
    KeyEncryption::new(&bytes).map_err(|e| e.to_string())
}

pub async fn run(config: Config, command: KeysCommand) -> Result<(), String> {
    super::with_store(&config, async |store| {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let policy = config.key_policy();
        match command {
            KeysCommand::List => {
                let keys = list_keys(store.as_ref(), &policy, clock.now())
                    .await
                    .map_err(|e| e.to_string())?;
                print_keys(&keys);
            }
            KeysCommand::Retire { kid, now } => {
                require_now(now)?;
                let manager = KeyManager::start(
                    Arc::clone(&store),
                    Arc::clone(&clock),
                    policy,
                    config.signing_algorithm,
                    key_encryption(&config).map_err(|e| e.to_string())?,
                )
                .await
                .map_err(|e| e.to_string())?;
                let done = manager
                    .retire_as(&kid, &Actor::cli())
                    .await
                    .map_err(|e| e.to_string())?;
                print_retirement(&done);
            }
            KeysCommand::Rewrap { new_key_file } => {
                let new = read_key_file(&new_key_file)?;
                let current = key_encryption(&config).map_err(|e| e.to_string())?;
                let count = authd::service::rewrap_keys(store.as_ref(), current.as_ref(), &new)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "{count} signing keys are now sealed under the key in {}; set \
                     AUTHD_KEY_ENCRYPTION_KEY to it and restart every authd",
                    new_key_file.display()
                );
            }
            KeysCommand::Rotate => {
                let manager = KeyManager::start(
                    store,
                    clock,
                    policy,
                    config.signing_algorithm,
                    key_encryption(&config).map_err(|e| e.to_string())?,
                )
                .await
                .map_err(|e| e.to_string())?;
                let outcome = manager.rotate_now().await.map_err(|e| e.to_string())?;
                print_rotation(&outcome, config.signing_algorithm.as_str());
            }
        }
        Ok(())
    })
    .await
}

fn print_keys(keys: &[KeyInfo]) {
    println!(
        "{:<44} {:<6} {:<9} {:<9} {:<24} {:<24} {:<24} UNPUBLISHED",
        "KID", "ALG", "STATE", "ENCRYPTED", "CREATED", "ACTIVATES", "RETIRES"
    );
    let or_dash = |t: Option<Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    for k in keys {
        println!(
            "{:<44} {:<6} {:<9} {:<9} {:<24} {:<24} {:<24} {}",
            k.kid,
            k.algorithm,
            k.state.as_str(),
            if k.encrypted { "yes" } else { "no" },
            k.created_at,
            k.activates_at,
            or_dash(k.retires_at),
            or_dash(k.unpublished_at),
        );
    }
}

/// Retirement has only the emergency form here; the scheduled one is a rotation.
fn require_now(now: bool) -> Result<(), String> {
    if now {
        Ok(())
    } else {
        Err("keys retire needs --now (scheduled retirement is `keys rotate`)".into())
    }
}

fn print_retirement(done: &EmergencyRetirement) {
    println!(
        "key {} retired and unpublished; new key {} signs from now",
        done.retired, done.replacement
    );
}

fn print_rotation(outcome: &RotateOutcome, algorithm: &str) {
    match outcome {
        RotateOutcome::Scheduled { kid, activates_at } => {
            println!("new {algorithm} key {kid} is published now and signs from {activates_at}")
        }
        RotateOutcome::AlreadyPending { kid, activates_at } => {
            println!("key {kid} is already waiting to sign from {activates_at}; nothing added");
        }
    }
}

/// The same commands through the admin API of `remote`.
pub(super) async fn run_remote(remote: &super::Remote, command: KeysCommand) -> Result<(), String> {
    use authd::grpc::pb;
    let api = remote.connect().await?;
    let list = async || -> Result<Vec<KeyInfo>, String> {
        let answer = api
            .call(
                |mut c, r| async move { c.list_signing_keys(r).await },
                pb::ListSigningKeysRequest {},
            )
            .await?;
        answer.keys.iter().map(super::remote::signing_key).collect()
    };
    match command {
        KeysCommand::List => print_keys(&list().await?),
        KeysCommand::Retire { kid, now } => {
            require_now(now)?;
            let answer = api
                .call(
                    |mut c, r| async move { c.retire_signing_key(r).await },
                    pb::RetireSigningKeyRequest { kid },
                )
                .await?;
            print_retirement(&EmergencyRetirement {
                retired: answer.retired,
                replacement: answer.replacement,
            });
        }
        KeysCommand::Rewrap { .. } => {
            return Err(
                "keys rewrap is not in the admin API (the key encryption key never crosses the \
                 network): run it on the host, against the database"
                    .into(),
            );
        }
        KeysCommand::Rotate => {
            let answer = api
                .call(
                    |mut c, r| async move { c.rotate_signing_key(r).await },
                    pb::RotateSigningKeyRequest {},
                )
                .await?;
            let activates_at = Timestamp::from_unix_millis(answer.activates_at_ms);
            let algorithm = list()
                .await?
                .into_iter()
                .find(|k| k.kid == answer.kid)
                .map(|k| k.algorithm)
                .unwrap_or_default();
            let outcome = if answer.scheduled {
                RotateOutcome::Scheduled {
                    kid: answer.kid,
                    activates_at,
                }
            } else {
                RotateOutcome::AlreadyPending {
                    kid: answer.kid,
                    activates_at,
                }
            };
            print_rotation(&outcome, &algorithm);
        }
    }
    Ok(())
}
