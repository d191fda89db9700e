//! IP prefixes (`203.0.113.0/24`, `2001:db8::/32`).
//!
//! Tokens bind a URL to the client's prefix, and steering matches client
//! addresses to ISPs by prefix; both use this one type.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address with a prefix length; the host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why text is not a prefix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrefixError {
    /// Not `ADDRESS/LENGTH`.
    #[error("'{0}' is not an IP prefix (expected ADDRESS/LENGTH)")]
    Syntax(String),
    /// A length past the family's bits.
    #[error("prefix length {len} is too long for {family} (at most {max})")]
    Length {
        /// The length given.
        len: u8,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// The family's bits.
        max: u8,
    },
}

impl IpPrefix {
    /// The prefix of length `len` that contains `addr` (host bits cleared).
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        let max = max_len(&addr);
        if len > max {
            let family = if max == 32 { "IPv4" } else { "IPv6" };
            return Err(PrefixError::Length { len, family, max });
        }
        Ok(IpPrefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `0.0.0.0/0` and `::/0`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `ip` lies inside this prefix. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, as dual-stack sockets report IPv4 peers) is
    /// matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => mask(ip, self.len) == self.addr,
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses become plain IPv4; everything else is unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PrefixError::Syntax(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let len: u8 = len.parse().map_err(|_| syntax())?;
        IpPrefix::new(addr, len)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_masks_host_bits() {
        let p: IpPrefix = "203.0.113.77/24".parse().unwrap();
        assert_eq!(p.to_string(), "203.0.113.0/24");
        let p: IpPrefix = "2001:db8:1:2::9/48".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8:1::/48");
    }

    #[test]
    fn rejects_bad_syntax_and_lengths() {
        for bad in ["", "1.2.3.4", "1.2.3.4/", "1.2.3.4/+1", "1.2.3/8", "x/8", "::/1a"] {
            assert!(matches!(bad.parse::<IpPrefix>(), Err(PrefixError::Syntax(_))), "{bad}");
        }
        assert!(matches!(
            "1.2.3.4/33".parse::<IpPrefix>(),
            Err(PrefixError::Length { len: 33, .. })
        ));
        assert!(matches!(
            "::/129".parse::<IpPrefix>(),
            Err(PrefixError::Length { len: 129, .. })
        ));
    }

    #[test]
    fn contains_respects_family_and_mapping() {
        let p: IpPrefix = "198.51.100.0/22".parse().unwrap();
        assert!(p.contains("198.51.103.255".parse().unwrap()));
        assert!(!p.contains("198.51.104.0".parse().unwrap()));
        assert!(p.contains("::ffff:198.51.101.1".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.is_empty() && all.contains("8.8.8.8".parse().unwrap()));
        let v6: IpPrefix = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
    }
}
