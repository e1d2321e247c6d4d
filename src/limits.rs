//! Per-source rate limiting and client-address resolution.
//!
//! [`SourceLimiter`] is a token bucket per client address (governor's keyed GCRA limiter):
//! `rate` requests per second with a `burst`. IPv6 clients are keyed by their /64, since one
//! host usually owns a whole /64. Keyed memory stays bounded: [`SourceLimiter::retain_recent`]
//! drops every key whose bucket is full again, and runs periodically (and early, when the map
//! grows past [`MAX_TRACKED_SOURCES`]).
//!
//! [`client_address`] decides which address a request comes from: the TCP peer, or the
//! `x-forwarded-for` entry a trusted proxy added. This module knows no transport: the request
//! layer stack (`crate::middleware`) resolves the address once per request and charges the
//! limiter there, for every RPC.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

/// Above this many tracked sources, stale ones are dropped at once instead of waiting for the
/// periodic clean-up.
pub const MAX_TRACKED_SOURCES: usize = 100_000;

/// A request over the per-source rate; retry after this many whole seconds (≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after_secs: u64,
}

/// A token bucket per source address. Disabled when the rate is 0.
pub struct SourceLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for SourceLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceLimiter")
            .field("enabled", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

impl SourceLimiter {
    /// `rate` requests per second per source, with bursts of up to `burst`; a rate of 0
    /// disables the limit.
    pub fn new(rate: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(rate).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// Takes one token from `source`'s bucket. Requests without a known source share one
    /// bucket (the unspecified address).
    ///
    /// # Errors
    /// [`RateLimited`] when the bucket is empty.
    pub fn check(&self, source: Option<IpAddr>) -> Result<(), RateLimited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > MAX_TRACKED_SOURCES {
            limiter.retain_recent();
        }
        let key = bucket_key(source.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RateLimited {
                retry_after_secs: whole_seconds(wait),
            }
        })
    }

    /// Forgets sources whose bucket has refilled; call periodically.
    pub fn retain_recent(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many sources are tracked now.
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// IPv4 addresses are keyed as they are; IPv6 by their /64 (IPv4-mapped ones as IPv4).
/// The per-source connection cap counts by the same key.
pub(crate) fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's address: the TCP `peer`, unless the peer is a trusted proxy and
/// `forwarded_for` (every `x-forwarded-for` header line, in the order received) names one.
/// Then the entries are read from the right, across all lines (a proxy appends to the last
/// line or adds a line of its own), skipping trusted proxies, and the first untrusted address
/// is the client: entries further left were written by the client itself and prove nothing.
/// A line that is not text should be passed as `""`: like any malformed entry, it ends what
/// can be believed.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut client = peer;
    let entries = forwarded_for.iter().rev().flat_map(|line| line.rsplit(','));
    for entry in entries {
        let Some(ip) = parse_forwarded_entry(entry) else {
            // A malformed entry ends what can be believed.
            break;
        };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    Some(client)
}

/// Whether `ip` is one of the `trusted` proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// One `x-forwarded-for` entry: an address, possibly with a port or in brackets.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(Some(ip("192.0.2.7")), &["203.0.113.9"], &trusted),
            Some(ip("192.0.2.7"))
        );
    }

    #[test]
    fn trusted_proxy_forwards_the_rightmost_untrusted_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(
                Some(ip("10.0.0.1")),
                &["1.1.1.1, 203.0.113.9, 10.0.0.2"],
                &trusted
            ),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &[], &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &["garbage"], &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), &["[2001:db8::1]"], &trusted),
            Some(ip("2001:db8::1"))
        );
    }

    /// Issue 16 item 4: the header may repeat; every line counts, the last one nearest.
    #[test]
    fn every_forwarded_for_line_is_read_right_to_left() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.1"));
        // The client's own line first, then the trusted proxy's: the proxy's hop wins.
        assert_eq!(
            client_address(peer, &["198.51.100.1", "203.0.113.9, 10.0.0.2"], &trusted),
            Some(ip("203.0.113.9"))
        );
        // A proxy that adds a line of its own: its line is nearest, skipped as trusted,
        // and the walk goes on into the line before.
        assert_eq!(
            client_address(peer, &["198.51.100.1, 203.0.113.9", "10.0.0.3"], &trusted),
            Some(ip("203.0.113.9"))
        );
        // An unreadable line ends the walk where it is.
        assert_eq!(
            client_address(peer, &["203.0.113.9", "", "10.0.0.3"], &trusted),
            Some(ip("10.0.0.3"))
        );
    }

    #[test]
    fn bucket_is_per_source_and_refuses_past_the_burst() {
        let limiter = SourceLimiter::new(1, 2);
        let a = Some(ip("192.0.2.1"));
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        let refused = limiter.check(a).unwrap_err();
        assert!(refused.retry_after_secs >= 1);
        assert!(limiter.check(Some(ip("192.0.2.2"))).is_ok());
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn ipv6_hosts_share_their_64() {
        let limiter = SourceLimiter::new(1, 1);
        assert!(limiter.check(Some(ip("2001:db8:1:2::1"))).is_ok());
        assert!(limiter.check(Some(ip("2001:db8:1:2::ffff"))).is_err());
        assert!(limiter.check(Some(ip("2001:db8:1:3::1"))).is_ok());
    }

    #[test]
    fn zero_rate_disables_the_limit() {
        let limiter = SourceLimiter::new(0, 0);
        for _ in 0..1000 {
            assert!(limiter.check(Some(ip("192.0.2.1"))).is_ok());
        }
    }
}
