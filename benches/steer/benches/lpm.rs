//! Longest-prefix lookup on the synthetic full table (criterion).

use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use nearcast_common::{IpPrefix, PrefixTable};

fn lookup(c: &mut Criterion) {
    let mut table = PrefixTable::new();
    for line in nearcast_steer_bench::table(1_000_000, 50).lines() {
        let (p, asn) = line.split_once(' ').unwrap();
        table.insert(p.parse::<IpPrefix>().unwrap(), asn.parse::<u32>().unwrap());
    }
    let addrs: Vec<IpAddr> = (0..4096u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761);
            if i % 6 == 5 {
                IpAddr::V6(std::net::Ipv6Addr::from(
                    0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(x) << 64,
                ))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::from(x))
            }
        })
        .collect();
    let mut i = 0;
    c.bench_function("lpm lookup, 1M prefixes", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            std::hint::black_box(table.lookup(addrs[i]))
        })
    });
}

criterion_group!(benches, lookup);
criterion_main!(benches);
