//! UPDATE messages (RFC 4271 §4.3, RFC 4760 for IPv6): withdrawn routes,
//! path attributes and NLRI, checked as §6.3 asks, each error carrying its
//! NOTIFICATION subcode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nearcast_common::IpPrefix;

use crate::wire::{BgpError, AFI_IPV4, AFI_IPV6, SAFI_UNICAST};

const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;
const LOCAL_PREF: u8 = 5;
const ATOMIC_AGGREGATE: u8 = 6;
const COMMUNITIES: u8 = 8;
const MP_REACH: u8 = 14;
const MP_UNREACH: u8 = 15;

const OPTIONAL: u8 = 0x80;
const TRANSITIVE: u8 = 0x40;
const EXTENDED_LEN: u8 = 0x10;

/// The attributes routes of one UPDATE share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub origin: u8,
    /// AS_SEQUENCE and AS_SET members in order.
    pub as_path: Vec<u32>,
    /// NEXT_HOP (IPv4 routes).
    pub next_hop: Option<Ipv4Addr>,
    /// MP_REACH next hop (IPv6 routes).
    pub mp_next_hop: Option<IpAddr>,
    /// (AS, value) pairs.
    pub communities: Vec<(u16, u16)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<IpPrefix>,
    pub announced: Vec<IpPrefix>,
    pub attrs: Attributes,
}

fn malformed(reason: &str) -> BgpError {
    BgpError::update(1, &[], reason)
}

/// Prefixes in NLRI encoding (length in bits, then the significant bytes).
fn prefixes(mut b: &[u8], v6: bool, out: &mut Vec<IpPrefix>) -> Result<(), BgpError> {
    let max = if v6 { 128 } else { 32 };
    while let Some(&bits) = b.first() {
        let bytes = usize::from(bits).div_ceil(8);
        if bits > max || b.len() < 1 + bytes {
            return Err(BgpError::update(10, &[], format!("invalid network field (/{bits})")));
        }
        let mut addr = [0u8; 16];
        addr[..bytes].copy_from_slice(&b[1..1 + bytes]);
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(addr))
        } else {
            IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
        };
        let p = IpPrefix::new(ip, bits).map_err(|e| BgpError::update(10, &[], e.to_string()))?;
        out.push(p);
        b = &b[1 + bytes..];
    }
    Ok(())
}

/// Encodes prefixes as NLRI (for tests and tools).
pub fn encode_prefixes(ps: &[IpPrefix]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in ps {
        let bytes = usize::from(p.len()).div_ceil(8);
        out.push(p.len());
        match p.addr() {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..bytes]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..bytes]),
        }
    }
    out
}

/// Parses an UPDATE body; `four_octet` says how AS_PATH is encoded.
pub fn parse(body: &[u8], four_octet: bool) -> Result<Update, BgpError> {
    let len_at =
        |i: usize| -> Option<usize> { Some(usize::from(u16::from_be_bytes([*body.get(i)?, *body.get(i + 1)?]))) };
    let wlen = len_at(0).ok_or_else(|| malformed("truncated"))?;
    let withdrawn = body
        .get(2..2 + wlen)
        .ok_or_else(|| malformed("withdrawn routes overrun"))?;
    let alen = len_at(2 + wlen).ok_or_else(|| malformed("truncated attributes length"))?;
    let attrs_at = 4 + wlen;
    let attrs = body
        .get(attrs_at..attrs_at + alen)
        .ok_or_else(|| malformed("path attributes overrun"))?;
    let nlri = &body[attrs_at + alen..];
    let mut u = Update::default();
    prefixes(withdrawn, false, &mut u.withdrawn)?;
    let mut seen = Vec::new();
    let mut a = attrs;
    while !a.is_empty() {
        let (flags, kind, hdr, len) = attribute_header(a)?;
        let whole = a
            .get(..hdr + len)
            .ok_or_else(|| BgpError::update(5, &a[..hdr.min(a.len())], "attribute overruns the list"))?;
        if seen.contains(&kind) {
            return Err(malformed(&format!("attribute {kind} twice")));
        }
        seen.push(kind);
        attribute(flags, kind, whole, &whole[hdr..], four_octet, &mut u)?;
        a = &a[hdr + len..];
    }
    prefixes(nlri, false, &mut u.announced)?;
    let v4_announced = !nlri.is_empty();
    if v4_announced || seen.contains(&MP_REACH) {
        for (kind, needed) in [(ORIGIN, true), (AS_PATH, true), (NEXT_HOP, v4_announced)] {
            if needed && !seen.contains(&kind) {
                return Err(BgpError::update(
                    3,
                    &[kind],
                    format!("missing well-known attribute {kind}"),
                ));
            }
        }
    }
    Ok(u)
}

/// An attribute's flags, type, header length and value length.
fn attribute_header(a: &[u8]) -> Result<(u8, u8, usize, usize), BgpError> {
    let (flags, kind) = match a {
        [f, k, ..] => (*f, *k),
        _ => return Err(BgpError::update(5, a, "truncated attribute header")),
    };
    let ext = flags & EXTENDED_LEN != 0;
    let len = match (ext, a) {
        (true, [_, _, h, l, ..]) => usize::from(u16::from_be_bytes([*h, *l])),
        (false, [_, _, l, ..]) => usize::from(*l),
        _ => return Err(BgpError::update(5, a, "truncated attribute length")),
    };
    Ok((flags, kind, if ext { 4 } else { 3 }, len))
}

/// One path attribute (`whole` with its header, `v` its value) into `u`.
/// Well-known attributes must be flagged transitive and not optional
/// (RFC 4271 §6.3); unknown optional ones are skipped.
fn attribute(flags: u8, kind: u8, whole: &[u8], v: &[u8], four_octet: bool, u: &mut Update) -> Result<(), BgpError> {
    let well_known = matches!(kind, ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE);
    if well_known && flags & (OPTIONAL | TRANSITIVE) != TRANSITIVE {
        return Err(BgpError::update(
            4,
            whole,
            format!("flags {flags:#04x} on well-known attribute {kind}"),
        ));
    }
    match kind {
        ORIGIN => match v {
            [o @ 0..=2] => u.attrs.origin = *o,
            [_] => return Err(BgpError::update(6, whole, "invalid ORIGIN")),
            _ => return Err(BgpError::update(5, whole, "ORIGIN length")),
        },
        AS_PATH => u.attrs.as_path = as_path(v, four_octet)?,
        NEXT_HOP => u.attrs.next_hop = Some(next_hop(v, whole)?),
        // Well-known discretionary: checked, not used (the box does not
        // choose between paths; it only learns which prefixes are near).
        LOCAL_PREF if v.len() != 4 => return Err(BgpError::update(5, whole, "LOCAL_PREF length")),
        ATOMIC_AGGREGATE if !v.is_empty() => return Err(BgpError::update(5, whole, "ATOMIC_AGGREGATE length")),
        LOCAL_PREF | ATOMIC_AGGREGATE => {}
        COMMUNITIES => {
            if !v.len().is_multiple_of(4) {
                return Err(BgpError::update(9, whole, "COMMUNITIES length"));
            }
            u.attrs.communities = v
                .chunks(4)
                .map(|c| (u16::from_be_bytes([c[0], c[1]]), u16::from_be_bytes([c[2], c[3]])))
                .collect();
        }
        MP_REACH => mp_reach(v, whole, u)?,
        MP_UNREACH => mp_unreach(v, whole, u)?,
        _ if flags & OPTIONAL == 0 => {
            return Err(BgpError::update(
                2,
                whole,
                format!("unrecognized well-known attribute {kind}"),
            ))
        }
        _ => {} // optional attributes we do not use (MED, AGGREGATOR, …)
    }
    Ok(())
}

fn next_hop(v: &[u8], whole: &[u8]) -> Result<Ipv4Addr, BgpError> {
    let [a, b, c, d] = v else {
        return Err(BgpError::update(5, whole, "NEXT_HOP length"));
    };
    let nh = Ipv4Addr::new(*a, *b, *c, *d);
    if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
        return Err(BgpError::update(8, whole, format!("invalid NEXT_HOP {nh}")));
    }
    Ok(nh)
}

fn as_path(mut v: &[u8], four_octet: bool) -> Result<Vec<u32>, BgpError> {
    let width = if four_octet { 4 } else { 2 };
    let mut path = Vec::new();
    while !v.is_empty() {
        let (kind, count) = match v {
            [k, c, ..] => (*k, usize::from(*c)),
            _ => return Err(BgpError::update(11, &[], "truncated AS_PATH segment")),
        };
        if !(1..=4).contains(&kind) {
            return Err(BgpError::update(11, &[], format!("AS_PATH segment type {kind}")));
        }
        let asns = v
            .get(2..2 + count * width)
            .ok_or_else(|| BgpError::update(11, &[], "AS_PATH segment overrun"))?;
        path.extend(asns.chunks(width).map(|c| match c {
            [a, b, c2, d] => u32::from_be_bytes([*a, *b, *c2, *d]),
            [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        }));
        v = &v[2 + count * width..];
    }
    Ok(path)
}

fn family(v: &[u8], whole: &[u8]) -> Result<bool, BgpError> {
    match v {
        [a, b, safi, ..] if *safi == SAFI_UNICAST => match u16::from_be_bytes([*a, *b]) {
            AFI_IPV6 => Ok(true),
            AFI_IPV4 => Ok(false),
            afi => Err(BgpError::update(9, whole, format!("AFI {afi} not negotiated"))),
        },
        _ => Err(BgpError::update(
            9,
            whole,
            "multiprotocol attribute for an unsupported family",
        )),
    }
}

fn mp_reach(v: &[u8], whole: &[u8], u: &mut Update) -> Result<(), BgpError> {
    let v6 = family(v, whole)?;
    let nh_len = usize::from(
        *v.get(3)
            .ok_or_else(|| BgpError::update(9, whole, "MP_REACH truncated"))?,
    );
    let nh = v
        .get(4..4 + nh_len)
        .ok_or_else(|| BgpError::update(9, whole, "MP_REACH next hop overrun"))?;
    u.attrs.mp_next_hop = match (v6, nh.len()) {
        // Global, or global + link-local.
        (true, 16 | 32) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&nh[..16]);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        (false, 4) => Some(IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))),
        _ => {
            return Err(BgpError::update(
                9,
                whole,
                format!("MP_REACH next hop of {nh_len} bytes"),
            ))
        }
    };
    let nlri = v
        .get(5 + nh_len..)
        .ok_or_else(|| BgpError::update(9, whole, "MP_REACH truncated"))?;
    prefixes(nlri, v6, &mut u.announced)
}

fn mp_unreach(v: &[u8], whole: &[u8], u: &mut Update) -> Result<(), BgpError> {
    let v6 = family(v, whole)?;
    prefixes(&v[3..], v6, &mut u.withdrawn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(flags: u8, kind: u8, v: &[u8]) -> Vec<u8> {
        let mut a = vec![flags, kind, v.len() as u8];
        a.extend_from_slice(v);
        a
    }

    fn body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
        b.extend_from_slice(withdrawn);
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        b
    }

    fn base_attrs() -> Vec<u8> {
        let mut a = attr(0x40, ORIGIN, &[0]);
        a.extend(attr(0x40, AS_PATH, &[2, 2, 0, 0, 0xfd, 0xe8, 0, 0, 0xfd, 0xe9]));
        a.extend(attr(0x40, NEXT_HOP, &[192, 0, 2, 1]));
        a.extend(attr(0xc0, COMMUNITIES, &[0xfd, 0xe8, 0, 7]));
        a
    }

    fn p(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    #[test]
    fn v4_and_v6_announcements_and_withdrawals() {
        let nlri = encode_prefixes(&[p("198.51.100.0/24"), p("10.0.0.0/8")]);
        let w = encode_prefixes(&[p("203.0.113.0/25")]);
        let u = parse(&body(&w, &base_attrs(), &nlri), true).unwrap();
        assert_eq!(u.announced, [p("198.51.100.0/24"), p("10.0.0.0/8")]);
        assert_eq!(u.withdrawn, [p("203.0.113.0/25")]);
        assert_eq!(u.attrs.as_path, [65000, 65001]);
        assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(u.attrs.communities, [(65000, 7)]);

        let mut reach = vec![0, 2, 1, 16];
        reach.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        reach.push(0);
        reach.extend(encode_prefixes(&[p("2001:db8:100::/40")]));
        let mut a = attr(0x40, ORIGIN, &[0]);
        a.extend(attr(0x40, AS_PATH, &[]));
        a.extend(attr(0x80, MP_REACH, &reach));
        let u = parse(&body(&[], &a, &[]), true).unwrap();
        assert_eq!(u.announced, [p("2001:db8:100::/40")]);
        let mut unreach = vec![0, 2, 1];
        unreach.extend(encode_prefixes(&[p("2001:db8:200::/48")]));
        let u = parse(&body(&[], &attr(0x80, MP_UNREACH, &unreach), &[]), true).unwrap();
        assert_eq!(u.withdrawn, [p("2001:db8:200::/48")]);
        // Two-octet AS paths before the capability.
        let a2 = attr(0x40, AS_PATH, &[2, 1, 0xfd, 0xe8]);
        assert_eq!(as_path(&a2[3..], false).unwrap(), [65000]);
    }

    #[test]
    fn well_known_discretionary_attributes_are_accepted() {
        // LOCAL_PREF (iBGP) and ATOMIC_AGGREGATE (an aggregating router)
        // were answered with "unrecognized well-known attribute" and a
        // session reset.
        let nlri = encode_prefixes(&[p("198.51.100.0/24")]);
        let mut a = base_attrs();
        a.extend(attr(0x40, LOCAL_PREF, &[0, 0, 0, 100]));
        a.extend(attr(0x40, ATOMIC_AGGREGATE, &[]));
        assert_eq!(
            parse(&body(&[], &a, &nlri), true).unwrap().announced,
            [p("198.51.100.0/24")]
        );
        let mut bad = base_attrs();
        bad.extend(attr(0x40, LOCAL_PREF, &[0, 100]));
        assert_eq!(parse(&body(&[], &bad, &nlri), true).unwrap_err().subcode, 5);
        let mut optional = base_attrs();
        optional.extend(attr(0xc0, ATOMIC_AGGREGATE, &[]));
        assert_eq!(parse(&body(&[], &optional, &nlri), true).unwrap_err().subcode, 4);
    }

    #[test]
    fn each_malformation_gets_its_subcode() {
        let nlri = encode_prefixes(&[p("198.51.100.0/24")]);
        let sub = |b: Vec<u8>| parse(&b, true).unwrap_err().subcode;
        // Lengths that overrun the message: malformed attribute list.
        assert_eq!(sub(vec![0, 9, 1]), 1);
        assert_eq!(sub(body(&[], &base_attrs()[..5], &[])), 5);
        // Missing NEXT_HOP with IPv4 NLRI.
        let mut a = attr(0x40, ORIGIN, &[0]);
        a.extend(attr(0x40, AS_PATH, &[]));
        let e = parse(&body(&[], &a, &nlri), true).unwrap_err();
        assert_eq!((e.subcode, e.data), (3, vec![NEXT_HOP]));
        // Bad ORIGIN value, wrong flags, unknown well-known attribute,
        // a /33, a bad NEXT_HOP, a broken AS_PATH, a repeated attribute.
        let mut bad_origin = attr(0x40, ORIGIN, &[7]);
        bad_origin.extend(&base_attrs()[4..]);
        assert_eq!(sub(body(&[], &bad_origin, &nlri)), 6);
        let mut flags = attr(0xc0, ORIGIN, &[0]);
        flags.extend(&base_attrs()[4..]);
        assert_eq!(sub(body(&[], &flags, &nlri)), 4);
        let mut unknown = base_attrs();
        unknown.extend(attr(0x40, 99, &[1]));
        assert_eq!(sub(body(&[], &unknown, &nlri)), 2);
        assert_eq!(sub(body(&[], &base_attrs(), &[33, 1, 2, 3, 4, 5])), 10);
        let mut nh = attr(0x40, ORIGIN, &[0]);
        nh.extend(attr(0x40, AS_PATH, &[]));
        nh.extend(attr(0x40, NEXT_HOP, &[0, 0, 0, 0]));
        assert_eq!(sub(body(&[], &nh, &nlri)), 8);
        let mut path = attr(0x40, ORIGIN, &[0]);
        path.extend(attr(0x40, AS_PATH, &[2, 5, 0, 0]));
        assert_eq!(sub(body(&[], &path, &nlri)), 11);
        let mut twice = base_attrs();
        twice.extend(attr(0x40, ORIGIN, &[0]));
        assert_eq!(sub(body(&[], &twice, &nlri)), 1);
    }
}
