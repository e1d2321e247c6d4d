//! The serde forms of configuration values: human durations, lists given as arrays or
//! comma-separated strings, networks, and addresses that can be switched off.

/// Durations as humans write them: `15m`, `30d`, `0s`, `1h 30m`; a bare number is seconds.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration {t:?} ({e}); use e.g. 15m, 14d, 0s"
                ))
            }),
        }
    }
}

/// Networks as CIDRs (`10.0.0.0/8`) or bare addresses, in an array or a comma-separated string.
pub(super) mod net_list {
    use ipnet::IpNet;
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(v: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        super::list::deserialize(d)?
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        de::Error::custom(format!(
                            "invalid network {s:?}; use a CIDR such as 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }
}

/// An address that can be switched off: `HOST:PORT`, or `off` (also `""`) for `None`, which
/// is how it is serialised too (so the key stays known to the environment layer).
pub(super) mod optional_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(a: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.collect_str(a),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "" | "off" => Ok(None),
            addr => addr.parse().map(Some).map_err(|_| {
                de::Error::custom(format!("invalid address {text:?}; use HOST:PORT or off"))
            }),
        }
    }
}

/// An optional duration; absent or `null` is `None`.
pub(super) mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    struct Wrapped(#[serde(with = "super::duration")] Duration);

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

/// A list given either as an array (TOML) or as a comma-separated string (environment).
pub(crate) mod list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Raw::deserialize(d)? {
            Raw::List(v) => v,
            Raw::Text(t) => t.split(',').map(|s| s.trim().to_owned()).collect(),
        })
    }
}
