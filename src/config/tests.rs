//! Unit tests of configuration loading, layering, validation and redaction.

use std::path::Path;

use super::*;

#[test]
fn defaults_match_the_documentation() {
    let c = Config::default();
    assert_eq!(c.database_url, "sqlite://authd.db");
    assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:50051");
    assert_eq!(c.access_token_ttl, Duration::from_secs(900));
    assert_eq!(c.refresh_reuse_grace, Duration::from_secs(10));
    assert_eq!(c.database_max_connections, 10);
    assert_eq!(c.purge_interval, Duration::from_secs(600));
    assert_eq!(
        (
            c.argon2_memory_kib,
            c.argon2_iterations,
            c.argon2_parallelism
        ),
        (19456, 2, 1)
    );
    assert_eq!(
        (
            c.throttle_free_failures,
            c.throttle_max_delay,
            c.throttle_max_failures
        ),
        (5, Duration::from_secs(900), 100)
    );
    assert_eq!(
        (c.hash_queue_max, c.hash_queue_timeout),
        (64, Duration::from_secs(2))
    );
    assert_eq!((c.per_source_rate, c.per_source_burst), (10, 20));
    assert_eq!(c.max_message_bytes, 16 * 1024);
    assert_eq!(c.request_timeout, Duration::from_secs(10));
    assert_eq!(c.audit_retention, Duration::from_secs(90 * 24 * 3600));
    assert_eq!(c.audit_refresh, "none");
    assert!(c.tls().is_none() && c.trusted_proxies.is_empty());
    c.validate().unwrap();
}

#[test]
fn layers_apply_in_order() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "authd.toml",
            "issuer = \"https://file\"\naccess_token_ttl = \"5m\"\naudience = [\"a\", \"b\"]\n",
        )?;
        jail.set_env("AUTHD_ACCESS_TOKEN_TTL", "1h 30m");
        jail.set_env("AUTHD_DATABASE_URL", "sqlite://env.db");
        jail.set_env("AUTHD_REFRESH_REUSE_GRACE", "0s");
        jail.set_env("AUTHD_DATABASE_MAX_CONNECTIONS", "3");
        jail.set_env("AUTHD_PURGE_INTERVAL", "90s");
        let overrides = Overrides {
            database_url: Some("sqlite://flag.db".into()),
            ..Overrides::default()
        };
        let c = Config::load(None, &overrides).map_err(|e| e.to_string())?;
        assert_eq!(c.issuer, "https://file");
        assert_eq!(c.audience, vec!["a", "b"]);
        assert_eq!(c.access_token_ttl, Duration::from_secs(5400));
        assert_eq!(c.refresh_reuse_grace, Duration::ZERO);
        assert_eq!(c.database_url, "sqlite://flag.db");
        assert_eq!(c.store_options().max_connections, 3);
        assert_eq!(c.purge_interval, Duration::from_secs(90));
        Ok(())
    });
}

#[test]
fn management_addr_defaults_to_loopback_9090_and_can_be_switched_off() {
    assert_eq!(
        Config::default().management_addr,
        Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
    );
    assert_eq!(Config::default().default_client_id, "authd");
    for (value, expected) in [
        ("off", None),
        ("", None),
        ("0.0.0.0:9100", Some(SocketAddr::from(([0, 0, 0, 0], 9100)))),
    ] {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTHD_MANAGEMENT_ADDR", value);
            let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.management_addr, expected, "{value:?}");
            Ok(())
        });
    }
    figment::Jail::expect_with(|jail| {
        jail.set_env("AUTHD_MANAGEMENT_ADDR", "127.0.0.1:9090");
        let overrides = Overrides {
            management_addr: Some("off".into()),
            ..Overrides::default()
        };
        let c = Config::load(None, &overrides).map_err(|e| e.to_string())?;
        assert_eq!(c.management_addr, None, "the flag wins");
        Ok(())
    });
    let e = load_error("AUTHD_MANAGEMENT_ADDR", "nowhere");
    assert!(e.contains("HOST:PORT or off"), "{e}");
}

#[test]
fn env_audience_is_a_comma_list() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("AUTHD_AUDIENCE", "api, admin");
        let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(c.audience, vec!["api", "admin"]);
        Ok(())
    });
}

#[test]
fn abuse_settings_come_from_the_environment() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("AUTHD_PER_SOURCE_RATE", "0");
        jail.set_env("AUTHD_PER_SOURCE_BURST", "7");
        jail.set_env("AUTHD_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1");
        jail.set_env("AUTHD_TLS_CERT", "/etc/authd/cert.pem");
        jail.set_env("AUTHD_TLS_KEY", "/etc/authd/key.pem");
        let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!((c.per_source_rate, c.per_source_burst), (0, 7));
        assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(c.is_trusted_proxy("192.0.2.1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("192.0.2.2".parse().unwrap()));
        assert!(c.tls().is_some());
        Ok(())
    });
    let e = load_error("AUTHD_TLS_CERT", "/etc/authd/cert.pem");
    assert!(e.contains("together"), "{e}");
}

/// The error of loading the configuration with `key` = `value` in the environment.
fn load_error(key: &str, value: &str) -> String {
    let mut error = String::new();
    figment::Jail::expect_with(|jail| {
        jail.set_env(key, value);
        error = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        Ok(())
    });
    error
}

#[test]
fn debug_output_redacts_the_database_password() {
    for (url, shown) in [
        ("sqlite://authd.db", "sqlite://authd.db"),
        (
            "postgres://authd:pw@db.internal:5432/authd?sslmode=require",
            "postgres://authd:<redacted>@db.internal:5432/authd?sslmode=require",
        ),
        ("postgres://authd@db/authd", "postgres://authd@db/authd"),
        (
            "postgres://db/authd?user=a&Password=pw&sslmode=verify-full",
            "postgres://db/authd?user=a&Password=<redacted>&sslmode=verify-full",
        ),
        ("postgres://a:p@ss@db/x", "postgres://a:<redacted>@db/x"),
    ] {
        assert_eq!(redact_url(url), shown);
    }
    let config = Config {
        database_url: "postgres://authd:hunter2-S3CRET@db/authd".into(),
        ..Config::default()
    };
    let debug = format!("{config:?}");
    assert!(!debug.contains("S3CRET"), "{debug}");
    assert!(debug.contains("grpc_addr"), "{debug}");
    let overrides = Overrides {
        database_url: Some(config.database_url.clone()),
        ..Overrides::default()
    };
    assert!(!format!("{overrides:?}").contains("S3CRET"));
}

#[test]
fn bad_values_are_clear_errors() {
    let e = load_error("AUTHD_ACCESS_TOKEN_TTL", "soon");
    assert!(e.contains("invalid duration"), "{e}");
    load_error("AUTHD_SIGNING_ALGORITHM", "RS256");
    figment::Jail::expect_with(|jail| {
        jail.set_env("AUTHD_INTROSPECT_ROLE", "introspector");
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.introspect_role, "introspector");
        Ok(())
    });
    let e = load_error("AUTHD_REFRESH_TOKEN_MAX_LIFETIME", "31d");
    assert!(e.contains("at most 30d"), "{e}");
    let e = load_error("AUTHD_AUDIT_REFRESH", "sample:0");
    assert!(e.contains("use all, none or sample:N"), "{e}");
    // Issue 16: the grace window had no upper bound.
    let e = load_error("AUTHD_REFRESH_REUSE_GRACE", "121s");
    assert!(e.contains("refresh_reuse_grace must be at most 2m"), "{e}");
    let e = load_error("AUTHD_INTROSPECT_ROLE", "Not A Role");
    assert!(e.contains("introspect_role"), "{e}");
    // NIST allows at most 100 consecutive failures; 0 would lock every name at once.
    for bad in ["0", "101"] {
        let e = load_error("AUTHD_THROTTLE_MAX_FAILURES", bad);
        assert!(e.contains("throttle_max_failures"), "{e}");
    }
    let missing = Config::load(
        Some(Path::new("/nonexistent/authd.toml")),
        &Overrides::default(),
    );
    assert!(matches!(missing, Err(ConfigError::MissingFile(_))));
}

#[test]
fn connection_settings_load_and_are_checked() {
    let c = Config::default();
    assert_eq!(
        (c.max_connections, c.max_connections_per_source),
        (None, None)
    );
    assert_eq!(
        (
            c.header_read_timeout,
            c.tls_handshake_timeout,
            c.idle_connection_timeout
        ),
        (
            Duration::from_secs(10),
            Duration::from_secs(10),
            Duration::from_secs(300)
        )
    );
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "authd.toml",
            "max_connections = 500\nheader_read_timeout = \"3s\"\n",
        )?;
        jail.set_env("AUTHD_MAX_CONNECTIONS_PER_SOURCE", "20");
        jail.set_env("AUTHD_IDLE_CONNECTION_TIMEOUT", "1m");
        let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(
            (c.max_connections, c.max_connections_per_source),
            (Some(500), Some(20))
        );
        assert_eq!(c.header_read_timeout, Duration::from_secs(3));
        assert_eq!(c.idle_connection_timeout, Duration::from_secs(60));
        Ok(())
    });
    let e = load_error("AUTHD_MAX_CONNECTIONS", "0");
    assert!(e.contains("max_connections"), "{e}");
    let e = load_error("AUTHD_HEADER_READ_TIMEOUT", "0s");
    assert!(e.contains("header_read_timeout"), "{e}");
    let e = load_error("AUTHD_TLS_HANDSHAKE_TIMEOUT", "0s");
    assert!(e.contains("tls_handshake_timeout"), "{e}");
    let too_many_per_source = Config {
        max_connections: Some(10),
        max_connections_per_source: Some(11),
        ..Config::default()
    };
    let e = too_many_per_source.validate().unwrap_err().to_string();
    assert!(e.contains("must not exceed max_connections"), "{e}");
}

#[test]
fn key_prepublish_defaults_to_ttl_plus_jwks_age_and_must_outlast_caches() {
    let c = Config::default();
    assert_eq!(c.key_prepublish(), Duration::from_secs(20 * 60));
    assert_eq!(c.jwks_uri(), "http://localhost:8080/.well-known/jwks.json");
    let short_ttl = Config {
        access_token_ttl: Duration::from_secs(10),
        ..Config::default()
    };
    // Never below max-age plus two reload intervals, whatever the TTL.
    assert_eq!(short_ttl.key_prepublish(), Duration::from_secs(7 * 60));
    short_ttl.validate().unwrap();
    let too_short = Config {
        key_prepublish: Some(Duration::from_secs(5 * 60)),
        ..Config::default()
    };
    assert!(too_short.validate().is_err());
    let rotation_too_fast = Config {
        key_rotation_interval: Duration::from_secs(60),
        ..Config::default()
    };
    assert!(rotation_too_fast.validate().is_err());
}

#[test]
fn key_encryption_key_is_32_bytes_of_base64_and_never_shown() {
    figment::Jail::expect_with(|jail| {
        jail.set_env(
            "AUTHD_KEY_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
        jail.set_env("AUTHD_KEY_PREPUBLISH", "30m");
        let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        let key = c.key_encryption_key.as_ref().unwrap().bytes().unwrap();
        assert_eq!(key[31], 31);
        assert_eq!(c.key_prepublish(), Duration::from_secs(1800));
        assert!(!format!("{c:?}").contains("AAECAw"));
        Ok(())
    });
    for bad in ["c2VjcmV0", "not base64!", ""] {
        let c = Config {
            key_encryption_key: Some(KeyEncryptionKey::new(bad)),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("32 random bytes"), "{e}");
    }
}
