//! The client address behind trusted proxies: `limits::client_address(peer, x-forwarded-for,
//! trusted)`, the one place a header decides whose rate-limit bucket and audit source a
//! request gets.
//!
//! The first byte picks the TCP peer and the trusted networks from small palettes (so the
//! fuzzer spends its time on the header); the rest is the header's lines (split at `\n`). Properties: an untrusted
//! peer is the client whatever it sends; the answer is the peer or an address the header
//! names; every entry right of the chosen one parsed and was a trusted proxy (an address a
//! client wrote to the left of an untrusted hop is never believed).
#![no_main]

use std::net::IpAddr;

use authd::limits::{client_address, is_trusted};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

const PEERS: [&str; 8] = [
    "10.0.0.1",
    "192.168.1.1",
    "203.0.113.5",
    "fd00::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "127.0.0.1",
    "::1",
];
const NETS: [&str; 5] = [
    "10.0.0.0/8",
    "192.168.0.0/16",
    "fd00::/8",
    "127.0.0.1/32",
    "::1/128",
];

/// One entry as the parser reads it (an address, with a port or in brackets), written
/// independently of the code under test.
fn entry_address(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    e.parse::<IpAddr>()
        .ok()
        .or_else(|| e.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| e.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(header) = std::str::from_utf8(rest) else {
        return;
    };
    let peer: IpAddr = PEERS[usize::from(pick & 7)].parse().expect("palette");
    let trusted: Vec<IpNet> = NETS
        .iter()
        .enumerate()
        .filter(|(i, _)| (pick >> 3) & (1 << i) != 0)
        .map(|(_, n)| n.parse().expect("palette"))
        .collect();

    // A newline separates header lines: a request may carry several x-forwarded-for lines,
    // read as one list, the last line rightmost.
    let lines: Vec<&str> = header.split('\n').collect();
    assert_eq!(client_address(None, &lines, &trusted), None);
    let client = client_address(Some(peer), &lines, &trusted).expect("a peer gives a client");
    if !is_trusted(peer, &trusted) {
        assert_eq!(client, peer, "an untrusted peer chose its own address");
        return;
    }
    if client == peer {
        return;
    }
    // The first (rightmost) entry naming the client: every entry right of it was a trusted
    // proxy's.
    let entries: Vec<&str> = lines.iter().rev().flat_map(|l| l.rsplit(',')).collect();
    let at = entries
        .iter()
        .position(|e| entry_address(e) == Some(client))
        .unwrap_or_else(|| panic!("{client} is neither the peer nor in the header"));
    for e in &entries[..at] {
        let ip = entry_address(e).expect("a malformed entry was skipped");
        assert!(is_trusted(ip, &trusted), "skipped past untrusted {ip}");
    }
});
