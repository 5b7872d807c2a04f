//! Addresses and networks as the daemons' configs spell them: one place that
//! parses `10.0.0.0/8`, `10.0.0.0 mask 255.0.0.0`, chrony's `10/8` and
//! inet_aton's `0x7f.1`, for the lint, the plan's variables and verify.
//! Pure; imports nothing of the crate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// A block of addresses: the first `prefix` bits of `bits` (an IPv4
/// address in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub family: Family,
    pub bits: u128,
    pub prefix: u32,
}

impl Net {
    /// `addr/prefix`, the address masked; `None` for a prefix too long.
    pub fn new(addr: IpAddr, prefix: u32) -> Option<Net> {
        let (family, bits) = match addr {
            IpAddr::V4(a) => (Family::V4, u128::from(u32::from(a))),
            IpAddr::V6(a) => (Family::V6, u128::from(a)),
        };
        let net = Net {
            family,
            bits,
            prefix,
        };
        (prefix <= net.width()).then(|| Net {
            bits: bits & net.mask(),
            ..net
        })
    }

    pub fn parse_cidr(s: &str) -> Option<Net> {
        let (addr, prefix) = s.split_once('/')?;
        Net::new(addr.parse().ok()?, prefix.parse().ok()?)
    }

    pub fn width(self) -> u32 {
        match self.family {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub fn mask(self) -> u128 {
        let ones = match self.family {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        };
        match self.prefix {
            0 => 0,
            p => (ones << (self.width() - p)) & ones,
        }
    }

    /// Every address of its family.
    pub fn everything(self) -> bool {
        self.prefix == 0
    }

    pub fn single_host(self) -> bool {
        self.prefix == self.width()
    }

    pub fn contains(self, other: Net) -> bool {
        self.family == other.family
            && self.prefix <= other.prefix
            && other.bits & self.mask() == self.bits
    }

    pub fn within(self, blocks: &[&str]) -> bool {
        blocks
            .iter()
            .filter_map(|b| Net::parse_cidr(b))
            .any(|b| b.contains(self))
    }

    pub fn is_loopback(self) -> bool {
        self.within(&LOOPBACK)
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr: IpAddr = match self.family {
            Family::V4 => Ipv4Addr::from(self.bits as u32).into(),
            Family::V6 => Ipv6Addr::from(self.bits).into(),
        };
        write!(f, "{addr}/{}", self.prefix)
    }
}

pub const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Networks a restrict entry may open without reaching the internet:
/// loopback, RFC 1918, IPv6 ULA and link-local.
pub const PRIVATE: [&str; 8] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

/// A numeric address as getaddrinfo(AI_NUMERICHOST) reads it: IPv6 with an
/// optional `%zone`, IPv4 in every inet_aton spelling ("0", "0x7f.1",
/// "010.0.0.1").
pub fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(a);
    }
    if let Some((a, zone)) = s.split_once('%') {
        if let (false, Ok(a)) = (zone.is_empty(), a.parse::<Ipv6Addr>()) {
            return Some(a.into());
        }
    }
    inet_aton(s).map(IpAddr::V4)
}

/// glibc's inet_aton: one to four parts, each decimal, octal (leading 0)
/// or hex (0x); the last part fills the bytes left.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let part = |p: &str| -> Option<u32> {
        let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            Some(hex) => (hex, 16),
            None if p.len() > 1 && p.starts_with('0') => (&p[1..], 8),
            None => (p, 10),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        u32::from_str_radix(digits, radix).ok()
    };
    let parts: Vec<u32> = s.split('.').map(part).collect::<Option<_>>()?;
    let (last, init) = parts.split_last()?;
    if init.len() > 3 || init.iter().any(|p| *p > 255) {
        return None;
    }
    if init.is_empty() {
        return Some(Ipv4Addr::from(*last));
    }
    let rest_bits = 8 * (4 - init.len() as u32);
    if u64::from(*last) >= 1u64 << rest_bits {
        return None;
    }
    let high = init.iter().fold(0u32, |v, p| (v << 8) | p);
    Some(Ipv4Addr::from((high << rest_bits) | last))
}

/// Prefix length of a netmask; a mask with holes counts its leading ones
/// (the block it covers lies inside that prefix).
pub fn mask_prefix(mask: IpAddr) -> u32 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones(),
        IpAddr::V6(m) => u128::from(m).leading_ones(),
    }
}

/// `192.0.2.0/24` (or a bare address) contains `ip`.
pub fn network_contains(net: &str, ip: IpAddr) -> bool {
    let (addr, prefix) = net
        .split_once('/')
        .map_or((net, None), |(a, p)| (a, p.parse::<u32>().ok()));
    match (addr.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(n)), IpAddr::V4(i)) => {
            let bits = prefix.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (Ok(IpAddr::V6(n)), IpAddr::V6(i)) => {
            let bits = prefix.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// chrony's subnet syntax: `192.0.2.1`, `10/8`, `10.0.0.0/8`, `::1/128`,
/// `0/0`, a partial IPv4 address (`10`, `192.168`: that many octets as the
/// prefix), and a dotted mask after `/`; `None` for a hostname.
pub fn chrony_subnet(subnet: &str) -> Option<Net> {
    let (addr, bits) = match subnet.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (subnet, None),
    };
    let (ip, default_prefix) = match addr.parse::<IpAddr>() {
        Ok(ip) => (ip, if ip.is_ipv4() { 32 } else { 128 }),
        Err(_) => {
            let octets: Vec<u8> = addr
                .split('.')
                .map(|o| o.parse::<u8>().ok())
                .collect::<Option<_>>()?;
            if octets.is_empty() || octets.len() > 3 {
                return None;
            }
            let mut full = [0u8; 4];
            full[..octets.len()].copy_from_slice(&octets);
            (IpAddr::from(full), 8 * octets.len() as u32)
        }
    };
    let prefix = match bits {
        None => default_prefix,
        Some(b) => match b.parse::<u32>() {
            Ok(p) => p,
            Err(_) => mask_prefix(b.parse::<IpAddr>().ok()?),
        },
    };
    Net::new(ip, prefix)
}

/// `ADDRESS`, `ADDRESS mask MASK` or NTPsec's `ADDRESS/PREFIX`; with both a
/// prefix and a mask, the larger block.
pub fn ntp_net(address: &str, mask: Option<&str>) -> Option<Net> {
    let (addr, cidr) = match address.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u32>().ok()?)),
        None => (address, None),
    };
    let addr = parse_addr(addr)?;
    let masked = match mask {
        Some(m) => {
            let m = parse_addr(m)?;
            if m.is_ipv4() != addr.is_ipv4() {
                return None;
            }
            Some(mask_prefix(m))
        }
        None => None,
    };
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match (cidr, masked) {
        (Some(c), Some(m)) => c.min(m),
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => width,
    };
    Net::new(addr, prefix)
}

/// A client network: an address, or an address with a prefix length.
pub fn parse_network(s: &str) -> Result<(), String> {
    let refuse =
        || format!("{s:?} is not a network (an address, or ADDRESS/PREFIX like 192.0.2.0/24)");
    let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
    let ip: IpAddr = addr.parse().map_err(|_| refuse())?;
    if let Some(p) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match p.parse::<u8>() {
            Ok(n) if n <= max && !p.starts_with('+') => {}
            _ => return Err(refuse()),
        }
    }
    Ok(())
}

/// A client network as ntpd's and NTPsec's restrict lines spell it:
/// `192.0.2.0/24` becomes `192.0.2.0 mask 255.255.255.0`, a bare address
/// stays a host entry; `None` for what `parse_network` refuses.
pub fn restrict_spelling(network: &str) -> Option<String> {
    parse_network(network).ok()?;
    let Some((addr, prefix)) = network.split_once('/') else {
        return Some(network.to_string());
    };
    let net = Net::new(addr.parse().ok()?, prefix.parse().ok()?)?;
    let (addr, mask): (IpAddr, IpAddr) = match net.family {
        Family::V4 => (
            Ipv4Addr::from(net.bits as u32).into(),
            Ipv4Addr::from(net.mask() as u32).into(),
        ),
        Family::V6 => (
            Ipv6Addr::from(net.bits).into(),
            Ipv6Addr::from(net.mask()).into(),
        ),
    };
    Some(format!("{addr} mask {mask}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_networks_are_spelled_as_restrict_lines_read_them() {
        let spelled = |n| restrict_spelling(n);
        assert_eq!(
            spelled("10.123.0.128/25").as_deref(),
            Some("10.123.0.128 mask 255.255.255.128")
        );
        // Host bits are dropped: ntpd masks them too, the line says what it does.
        assert_eq!(
            spelled("192.0.2.7/24").as_deref(),
            Some("192.0.2.0 mask 255.255.255.0")
        );
        assert_eq!(spelled("192.0.2.7").as_deref(), Some("192.0.2.7"));
        assert_eq!(
            spelled("2001:db8::/32").as_deref(),
            Some("2001:db8:: mask ffff:ffff::")
        );
        assert_eq!(
            spelled("0.0.0.0/0").as_deref(),
            Some("0.0.0.0 mask 0.0.0.0")
        );
        assert_eq!(spelled("10/8"), None);
        assert_eq!(spelled("a.example"), None);
    }
}
