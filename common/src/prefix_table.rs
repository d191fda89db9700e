//! Longest-prefix match over IPv4 and IPv6 prefixes.
//!
//! One hash map per prefix length, probed from the longest length present
//! down: at most 33 (IPv4) or 129 (IPv6) probes, usually far fewer because
//! only lengths that hold a prefix are tried. Simple, compact for a full
//! routing table (about a million entries), and fast enough that steering
//! answers from it directly.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::prefix::{canonical, IpPrefix};

/// Values by IP prefix, looked up by longest match.
#[derive(Debug, Clone)]
pub struct PrefixTable<T> {
    v4: Family<u32, T>,
    v6: Family<u128, T>,
}

#[derive(Debug, Clone)]
struct Family<K, T> {
    by_len: Vec<HashMap<K, T>>,
    /// Lengths that hold at least one prefix, longest first.
    lengths: Vec<u8>,
}

impl<K: std::hash::Hash + Eq + Copy, T> Family<K, T> {
    fn new(max: usize) -> Self {
        Family {
            by_len: (0..=max).map(|_| HashMap::new()).collect(),
            lengths: Vec::new(),
        }
    }

    fn insert(&mut self, len: u8, key: K, value: T) -> Option<T> {
        let old = self.by_len[usize::from(len)].insert(key, value);
        if !self.lengths.contains(&len) {
            self.lengths.push(len);
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        old
    }

    fn remove(&mut self, len: u8, key: K) -> Option<T> {
        let old = self.by_len[usize::from(len)].remove(&key);
        if self.by_len[usize::from(len)].is_empty() {
            self.lengths.retain(|&l| l != len);
        }
        old
    }

    fn lookup(&self, mask: impl Fn(u8) -> K) -> Option<(u8, &T)> {
        self.lengths
            .iter()
            .find_map(|&len| self.by_len[usize::from(len)].get(&mask(len)).map(|v| (len, v)))
    }

    fn len(&self) -> usize {
        self.by_len.iter().map(HashMap::len).sum()
    }
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            v4: Family::new(32),
            v6: Family::new(128),
        }
    }
}

fn mask4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - len))
    }
}

fn mask6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - len))
    }
}

impl<T> PrefixTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces `prefix`; returns the value it had.
    pub fn insert(&mut self, prefix: IpPrefix, value: T) -> Option<T> {
        match prefix.addr() {
            IpAddr::V4(a) => self.v4.insert(prefix.len(), u32::from(a), value),
            IpAddr::V6(a) => self.v6.insert(prefix.len(), u128::from(a), value),
        }
    }

    /// Removes `prefix` (exactly that one); returns its value.
    pub fn remove(&mut self, prefix: &IpPrefix) -> Option<T> {
        match prefix.addr() {
            IpAddr::V4(a) => self.v4.remove(prefix.len(), u32::from(a)),
            IpAddr::V6(a) => self.v6.remove(prefix.len(), u128::from(a)),
        }
    }

    /// The most specific prefix containing `ip`, and its value.
    /// IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<(IpPrefix, &T)> {
        let found = match canonical(ip) {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                self.v4.lookup(|l| mask4(bits, l))
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                self.v6.lookup(|l| mask6(bits, l))
            }
        };
        let (len, v) = found?;
        IpPrefix::new(canonical(ip), len).ok().map(|p| (p, v))
    }

    /// How many prefixes it holds.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// It holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_match_wins() {
        let mut t = PrefixTable::new();
        t.insert(p("10.0.0.0/8"), "wide");
        t.insert(p("10.1.0.0/16"), "mid");
        t.insert(p("10.1.2.0/24"), "narrow");
        t.insert(p("2001:db8::/32"), "v6");
        t.insert(p("2001:db8:aa::/48"), "v6-narrow");
        assert_eq!(t.lookup(ip("10.1.2.3")), Some((p("10.1.2.0/24"), &"narrow")));
        assert_eq!(t.lookup(ip("10.1.3.3")).map(|x| *x.1), Some("mid"));
        assert_eq!(t.lookup(ip("10.200.0.1")).map(|x| *x.1), Some("wide"));
        assert_eq!(t.lookup(ip("11.0.0.1")), None);
        assert_eq!(t.lookup(ip("::ffff:10.1.2.9")).map(|x| *x.1), Some("narrow"));
        assert_eq!(t.lookup(ip("2001:db8:aa::1")).map(|x| *x.1), Some("v6-narrow"));
        assert_eq!(t.lookup(ip("2001:db8:ab::1")).map(|x| *x.1), Some("v6"));
        assert_eq!(t.len(), 5);
        assert_eq!(t.remove(&p("10.1.2.0/24")), Some("narrow"));
        assert_eq!(t.lookup(ip("10.1.2.3")).map(|x| *x.1), Some("mid"));
        t.insert(p("0.0.0.0/0"), "default");
        assert_eq!(t.lookup(ip("192.0.2.1")).map(|x| *x.1), Some("default"));
    }

    #[test]
    fn agrees_with_a_linear_scan() {
        // Pseudo-random prefixes and addresses; the table must agree with
        // the obvious O(n) answer.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut t = PrefixTable::new();
        let mut all = Vec::new();
        for i in 0..2000 {
            let len = (next() % 25 + 8) as u8;
            let addr = std::net::Ipv4Addr::from((next() as u32) & 0x0fff_ffff);
            let pre = IpPrefix::new(IpAddr::V4(addr), len).unwrap();
            t.insert(pre, i);
            all.retain(|(q, _)| *q != pre);
            all.push((pre, i));
        }
        for _ in 0..5000 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from((next() as u32) & 0x0fff_ffff));
            let want = all
                .iter()
                .filter(|(q, _)| q.contains(a))
                .max_by_key(|(q, _)| q.len())
                .map(|(q, v)| (*q, v));
            assert_eq!(t.lookup(a), want);
        }
    }
}
