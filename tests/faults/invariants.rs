//! The invariant check every scenario ends with, over a snapshot of the database (SQLite or
//! PostgreSQL, read directly, not through authd):
//!
//! - no refresh family has two live heads (two rows in `refresh_tokens`: a family keeps only its
//!   newest token there; a used one keeps its 16-byte key prefix in `used_refresh_tokens`);
//! - no half-written rows: every family has its head, a head's predecessor link names a used
//!   token of its own family, and a revoked family records its reason;
//! - every refresh token a client received is stored, in the client's session;
//! - audit events match rotations: with `audit_refresh = all`, one `token_refreshed` event per
//!   rotation of the family, one `login_succeeded` per session, and a family revoked for reuse
//!   has its `refresh_reuse_detected` and `family_revoked` events;
//! - a session whose client was refused is revoked for a recorded reason;
//! - token and session lifetimes: `expires_at - issued_at` is the idle timeout, the family's
//!   `expires_at - created_at` its absolute lifetime, and no rotation happened at or after the
//!   family's end (by the server's clock: a rotated head's `issued_at` is its rotation time);
//! - SQLite: `PRAGMA integrity_check` is `ok` and `PRAGMA foreign_key_check` finds nothing.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use authd::crypto::refresh_token::RefreshToken;
use sqlx::Connection;

use crate::harness::{Clients, Database};

#[derive(Debug, Clone)]
pub struct Family {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

/// A family's newest token (a row of `refresh_tokens`).
#[derive(Debug, Clone)]
pub struct Token {
    pub hash: Vec<u8>,
    pub family_id: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// The previous token's 16-byte key prefix, while its grace window lasts.
    pub predecessor: Option<Vec<u8>>,
}

/// A used token: its key prefix and its family (none when two used tokens share a prefix).
#[derive(Debug, Clone)]
pub struct Used {
    pub prefix: Vec<u8>,
    pub family_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub user_id: Option<String>,
    pub detail: Option<String>,
}

/// The rows the invariants are about.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub families: Vec<Family>,
    pub tokens: Vec<Token>,
    pub used: Vec<Used>,
    pub events: Vec<Event>,
    /// SQLite's `integrity_check` and `foreign_key_check` findings (empty: none).
    pub corruption: Vec<String>,
}

type FamilyRow = (String, String, i64, i64, Option<i64>, Option<String>);
type TokenRow = (Vec<u8>, String, i64, i64, Option<Vec<u8>>);
type UsedRow = (Vec<u8>, Option<String>);
type EventRow = (String, Option<String>, Option<String>);

const FAMILIES: &str = "SELECT id, user_id, created_at, expires_at, revoked_at, revoked_reason \
     FROM refresh_families";
const TOKENS: &str = "SELECT t.hash, f.id, t.issued_at, t.expires_at, t.predecessor \
     FROM refresh_tokens t JOIN refresh_families f ON f.seq = t.family";
const USED: &str = "SELECT u.hash, f.id FROM used_refresh_tokens u \
     LEFT JOIN refresh_families f ON f.seq = u.family";
const EVENTS: &str = "SELECT event_type, user_id, detail FROM audit_events ORDER BY id";

/// The same three queries on either backend's connection.
macro_rules! load {
    ($conn:expr) => {{
        let families: Vec<FamilyRow> = sqlx::query_as(FAMILIES)
            .fetch_all(&mut *$conn)
            .await
            .unwrap();
        let tokens: Vec<TokenRow> = sqlx::query_as(TOKENS).fetch_all(&mut *$conn).await.unwrap();
        let used: Vec<UsedRow> = sqlx::query_as(USED).fetch_all(&mut *$conn).await.unwrap();
        let events: Vec<EventRow> = sqlx::query_as(EVENTS).fetch_all(&mut *$conn).await.unwrap();
        Snapshot {
            families: families
                .into_iter()
                .map(|f| Family {
                    id: f.0,
                    user_id: f.1,
                    created_at: f.2,
                    expires_at: f.3,
                    revoked_at: f.4,
                    revoked_reason: f.5,
                })
                .collect(),
            tokens: tokens
                .into_iter()
                .map(|t| Token {
                    hash: t.0,
                    family_id: t.1,
                    issued_at: t.2,
                    expires_at: t.3,
                    predecessor: t.4,
                })
                .collect(),
            used: used
                .into_iter()
                .map(|u| Used {
                    prefix: u.0,
                    family_id: u.1,
                })
                .collect(),
            events: events
                .into_iter()
                .map(|e| Event {
                    kind: e.0,
                    user_id: e.1,
                    detail: e.2,
                })
                .collect(),
            corruption: Vec::new(),
        }
    }};
}

impl Snapshot {
    /// Reads the database (the server may be running or not).
    pub async fn load(db: &Database) -> Self {
        match db {
            Database::Sqlite { url, .. } => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).unwrap();
                let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap();
                let mut snapshot = load!(&mut conn);
                let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                if integrity != ["ok"] {
                    snapshot.corruption.extend(integrity);
                }
                let foreign: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                snapshot.corruption.extend(
                    foreign
                        .into_iter()
                        .map(|(t,)| format!("foreign key in {t}")),
                );
                conn.close().await.unwrap();
                snapshot
            }
            Database::Postgres { db } => {
                let mut conn = sqlx::postgres::PgConnection::connect(&db.url)
                    .await
                    .unwrap();
                let snapshot = load!(&mut conn);
                conn.close().await.unwrap();
                snapshot
            }
        }
    }
}

/// The limits the server ran with, to check stored lifetimes against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub refresh_ttl: Duration,
    pub max_lifetime: Duration,
    /// When set, a refusal may also be the session or its last token having ended by this
    /// time (Unix ms, the latest the server's clock reached), not only a revocation.
    pub ended_by: Option<i64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            refresh_ttl: Duration::from_secs(14 * 24 * 3600),
            max_lifetime: Duration::from_secs(30 * 24 * 3600),
            ended_by: None,
        }
    }
}

/// What the check counted, for the figures.
#[derive(Debug, Default)]
pub struct Verdict {
    pub families: usize,
    pub tokens: usize,
    pub rotations: usize,
    pub grace_retries: usize,
    pub revoked: usize,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariants hold: {} sessions, {} tokens, {} rotations, {} grace retries, {} revoked",
            self.families, self.tokens, self.rotations, self.grace_retries, self.revoked
        )
    }
}

/// Checks every invariant; panics with every violation found.
pub async fn check(db: &Database, clients: &Clients, limits: Limits) -> Verdict {
    let snapshot = Snapshot::load(db).await;
    let (verdict, violations) = violations(&snapshot, clients, limits);
    assert!(
        violations.is_empty(),
        "{} invariant violations in {}:\n{}",
        violations.len(),
        db.label(),
        violations.join("\n")
    );
    verdict
}

/// The violations of `snapshot` (empty: none), and the counts.
pub fn violations(
    snapshot: &Snapshot,
    clients: &Clients,
    limits: Limits,
) -> (Verdict, Vec<String>) {
    let mut bad: Vec<String> = snapshot
        .corruption
        .iter()
        .map(|c| format!("corruption: {c}"))
        .collect();
    let families: HashMap<&str, &Family> = snapshot
        .families
        .iter()
        .map(|f| (f.id.as_str(), f))
        .collect();
    let tokens: HashMap<&[u8], &Token> = snapshot
        .tokens
        .iter()
        .map(|t| (t.hash.as_slice(), t))
        .collect();
    let used: HashMap<&[u8], Option<&str>> = snapshot
        .used
        .iter()
        .map(|u| (u.prefix.as_slice(), u.family_id.as_deref()))
        .collect();
    let mut by_family: HashMap<&str, Vec<&Token>> = HashMap::new();
    for token in &snapshot.tokens {
        by_family.entry(&token.family_id).or_default().push(token);
    }
    let mut used_by_family: HashMap<&str, usize> = HashMap::new();
    for u in &snapshot.used {
        if let Some(family) = u.family_id.as_deref() {
            *used_by_family.entry(family).or_default() += 1;
        }
    }
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap();
    let mut verdict = Verdict {
        families: snapshot.families.len(),
        tokens: snapshot.tokens.len(),
        ..Verdict::default()
    };

    // Audit events, by family (the detail starts `family=ID`).
    let mut refreshed: HashMap<&str, usize> = HashMap::new();
    let mut kinds_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut logins: HashMap<&str, usize> = HashMap::new();
    for event in &snapshot.events {
        if event.kind == "login_succeeded" {
            *logins
                .entry(event.user_id.as_deref().unwrap_or(""))
                .or_default() += 1;
        }
        let Some(detail) = event.detail.as_deref() else {
            continue;
        };
        let Some(rest) = detail.strip_prefix("family=") else {
            continue;
        };
        let (family, note) = rest.split_once("; ").unwrap_or((rest, ""));
        kinds_of.entry(family).or_default().insert(&event.kind);
        if event.kind == "token_refreshed" {
            if note == "grace retry" {
                verdict.grace_retries += 1;
            } else {
                *refreshed.entry(family).or_default() += 1;
            }
        }
    }

    let mut sessions_of: HashMap<&str, usize> = HashMap::new();
    for family in &snapshot.families {
        *sessions_of.entry(&family.user_id).or_default() += 1;
        let id = family.id.as_str();
        let heads = by_family.get(id).map(Vec::as_slice).unwrap_or(&[]);
        match heads.len() {
            0 => bad.push(format!("family {id} has no token")),
            1 => {}
            n => bad.push(format!("family {id} has {n} live heads")),
        }
        if family.revoked_at.is_some() != family.revoked_reason.is_some() {
            bad.push(format!(
                "family {id}: revoked_at without reason or the reverse"
            ));
        }
        if family.revoked_at.is_some() {
            verdict.revoked += 1;
        }
        if family.expires_at - family.created_at != ms(limits.max_lifetime) {
            bad.push(format!(
                "family {id} lives {} ms, not {:?}",
                family.expires_at - family.created_at,
                limits.max_lifetime
            ));
        }
        // Every rotation left its presented token behind as a used one.
        let rotations = used_by_family.get(id).copied().unwrap_or(0);
        for head in heads {
            if head.expires_at - head.issued_at != ms(limits.refresh_ttl) {
                bad.push(format!(
                    "a token of family {id} lives {} ms, not {:?}",
                    head.expires_at - head.issued_at,
                    limits.refresh_ttl
                ));
            }
            if let Some(prefix) = &head.predecessor {
                match used.get(prefix.as_slice()) {
                    Some(Some(f)) if *f == id => {}
                    // Two used tokens share the prefix: neither names a family.
                    Some(None) => {}
                    Some(Some(_)) => {
                        bad.push(format!("family {id}: predecessor in another family"))
                    }
                    None => bad.push(format!("family {id}: the predecessor is not stored")),
                }
            }
            if rotations > 0 && head.issued_at >= family.expires_at {
                bad.push(format!(
                    "family {id}: a token was rotated after the session ended"
                ));
            }
        }
        verdict.rotations += rotations;
        let audited = refreshed.get(id).copied().unwrap_or(0);
        if audited != rotations {
            bad.push(format!(
                "family {id}: {rotations} rotations but {audited} token_refreshed events"
            ));
        }
        let kinds = kinds_of.get(id).cloned().unwrap_or_default();
        if family.revoked_reason.as_deref() == Some("refresh token reuse")
            && !(kinds.contains("refresh_reuse_detected") && kinds.contains("family_revoked"))
        {
            bad.push(format!("family {id}: revoked for reuse without its events"));
        }
    }
    for (user, sessions) in &sessions_of {
        let recorded = logins.get(user).copied().unwrap_or(0);
        if recorded != *sessions {
            bad.push(format!(
                "user {user}: {sessions} sessions but {recorded} login_succeeded events"
            ));
        }
    }
    for family in refreshed.keys() {
        if !families.contains_key(family) {
            bad.push(format!(
                "token_refreshed events for a family not stored: {family}"
            ));
        }
    }

    // What the clients received.
    for chain in clients.chains() {
        let Some(family) = families.get(chain.family.as_str()) else {
            bad.push(format!(
                "session {} a client holds is not stored",
                chain.family
            ));
            continue;
        };
        for (n, token) in chain.received.iter().enumerate() {
            let hash = RefreshToken::parse(token).unwrap().hash();
            let stored_in = match tokens.get(&hash.0[..]) {
                Some(t) => Some(Some(t.family_id.as_str())),
                None => used.get(&hash.0[..16]).copied(),
            };
            match stored_in {
                Some(Some(f)) if f == chain.family => {}
                Some(None) => {} // a used token whose prefix another shares
                Some(Some(_)) => bad.push(format!(
                    "session {}: token {n} in another family",
                    chain.family
                )),
                None => bad.push(format!(
                    "session {}: token {n} of {} the client received is not stored",
                    chain.family,
                    chain.received.len()
                )),
            }
        }
        let ended = limits.ended_by.is_some_and(|by| {
            let last = RefreshToken::parse(&chain.token).unwrap().hash();
            family.expires_at <= by || tokens.get(&last.0[..]).is_some_and(|t| t.expires_at <= by)
        });
        if chain.refused && family.revoked_reason.is_none() && !ended {
            bad.push(format!(
                "session {}: the client was refused but the family is not revoked",
                chain.family
            ));
        }
    }
    (verdict, bad)
}
