//! The synthetic routing table both the seeder and the micro-benchmark use:
//! deterministic, IPv4 /12–/24 spread over many ASNs, plus IPv6 /32–/48.

/// `n` lines of `PREFIX ASN`, ASNs 64500..64500+isps.
pub fn table(n: usize, isps: u32) -> String {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = String::with_capacity(n * 24);
    for i in 0..n {
        let r = next();
        let asn = 64500 + (i as u32 % isps);
        if i % 6 == 5 {
            let len = 32 + (r % 17) as u8;
            let a = ((r as u128) << 64 | 0x2001_0db8_0000_0000_0000_0000_0000_0000) & (u128::MAX << (128 - len));
            out.push_str(&format!("{}/{len} {asn}\n", std::net::Ipv6Addr::from(a)));
        } else {
            let len = 12 + (r % 13) as u8;
            let a = (r >> 32) as u32 & (u32::MAX << (32 - len));
            out.push_str(&format!("{}/{len} {asn}\n", std::net::Ipv4Addr::from(a)));
        }
    }
    out
}
