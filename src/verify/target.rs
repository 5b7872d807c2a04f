//! `verify`'s TARGET and `--from`: IP address literals only.
//!
//! Pure parsing. DNS is never used: a probe that resolves names could be
//! pointed at anything, and a name says nothing about which address the
//! daemon's restrict lines see.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub const NTP_PORT: u16 = 123;
/// The node itself.
pub const DEFAULT_TARGET: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), NTP_PORT);
/// A loopback address that the usual `restrict 127.0.0.1` does not match, so
/// the daemon treats it like any host on the Internet.
pub const DEFAULT_FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// `HOST[:PORT]`: `127.0.0.1`, `127.0.0.1:123`, `::1`, `[::1]`, `[::1]:123`.
/// A bare IPv6 address never carries a port (`::1:123` is an address).
pub fn parse_target(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!(
                "target {text:?}: port 0 is not a port a daemon listens on"
            ));
        }
        return Ok(addr);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, NTP_PORT));
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<std::net::Ipv6Addr>() {
            return Ok(SocketAddr::new(IpAddr::V6(ip), NTP_PORT));
        }
    }
    Err(format!(
        "target {text:?} is not an IP address literal with an optional port \
         (127.0.0.1, 192.0.2.1:123, ::1, [2001:db8::1]:123); names are not resolved, DNS is never used"
    ))
}

/// The source address for the probes: a literal of the target's family.
/// IPv6 has no second loopback address to stand in for a remote host, so an
/// IPv6 target needs an explicit `--from`.
pub fn parse_from(text: Option<&str>, target: SocketAddr) -> Result<IpAddr, String> {
    let from = match text {
        Some(t) => t.trim().parse::<IpAddr>().map_err(|_| {
            format!("--from {t:?} is not an IP address literal (127.0.0.2, 2001:db8::2); DNS is never used")
        })?,
        None if target.is_ipv4() => DEFAULT_FROM,
        None => {
            return Err(format!(
                "target {target} is IPv6: give --from ADDR, an address of this host that the daemon's \
                 restrict lines treat as remote (IPv6 has only one loopback address, ::1, which they trust)"
            ))
        }
    };
    if from.is_ipv4() != target.is_ipv4() {
        return Err(format!(
            "--from {from} and target {target} are not the same address family"
        ));
    }
    Ok(from)
}

/// Sources the usual config trusts (`restrict 127.0.0.1`, `restrict ::1`):
/// answers to them are expected and are no amplification risk.
pub fn is_trusted_source(from: IpAddr) -> bool {
    from == IpAddr::V4(Ipv4Addr::LOCALHOST) || from == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_ip_literals_with_an_optional_port() {
        let ok =
            |t: &str, want: &str| assert_eq!(parse_target(t).unwrap().to_string(), want, "{t}");
        ok("127.0.0.1", "127.0.0.1:123");
        ok("127.0.0.1:1123", "127.0.0.1:1123");
        ok(" 192.0.2.7 ", "192.0.2.7:123");
        ok("::1", "[::1]:123");
        ok("[::1]", "[::1]:123");
        ok("[::1]:5123", "[::1]:5123");
        ok("::1:123", "[::1:123]:123");
        ok("2001:db8::1", "[2001:db8::1]:123");
    }

    #[test]
    fn names_and_garbage_are_refused_without_dns() {
        for bad in [
            "localhost",
            "ntp.example.net:123",
            "",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "[::1",
            "1.2.3",
            "127.0.0.1:0",
        ] {
            let err = parse_target(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(parse_target("localhost")
            .unwrap_err()
            .contains("DNS is never used"));
        assert!(parse_target("127.0.0.1:0").unwrap_err().contains("port 0"));
    }

    #[test]
    fn from_defaults_to_127_0_0_2_and_must_match_the_family() {
        let v4 = parse_target("127.0.0.1").unwrap();
        let v6 = parse_target("::1").unwrap();
        assert_eq!(parse_from(None, v4).unwrap().to_string(), "127.0.0.2");
        assert_eq!(
            parse_from(Some("10.0.0.5"), v4).unwrap().to_string(),
            "10.0.0.5"
        );
        assert!(parse_from(None, v6).unwrap_err().contains("give --from"));
        assert_eq!(parse_from(Some("::1"), v6).unwrap().to_string(), "::1");
        assert!(parse_from(Some("::1"), v4)
            .unwrap_err()
            .contains("same address family"));
        assert!(parse_from(Some("localhost"), v4)
            .unwrap_err()
            .contains("DNS is never used"));
    }

    #[test]
    fn only_the_loopback_addresses_the_config_names_are_trusted() {
        assert!(is_trusted_source("127.0.0.1".parse().unwrap()));
        assert!(is_trusted_source("::1".parse().unwrap()));
        assert!(!is_trusted_source(DEFAULT_FROM));
        assert!(!is_trusted_source("192.0.2.1".parse().unwrap()));
    }
}
