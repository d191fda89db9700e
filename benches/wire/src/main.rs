//! `cargo run --release -- [files] [v4 prefixes] [v6 prefixes]`: the two
//! largest messages a box exchanges with the fill server, in protobuf (the
//! boxes' encoding) and in JSON (people's): bytes, and the median of five
//! encode and decode runs each, with protobuf's figure over JSON's; and
//! prost's share of protobuf's time (the rest is the conversion to and
//! from our types).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use nearcast_common::control::{RouteGroup, Routes};
use nearcast_common::manifest::{FillManifest, ManifestFile, ManifestTitle};
use nearcast_common::wire::{self, Wire};
use prost::Message;
use nearcast_common::{Name, TitlePath};

const RUNS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let files = arg(1, 10_000);
    let (v4, v6) = (arg(2, 1_000_000), arg(3, 200_000));
    println!("message                        encoding     bytes   encode ms   decode ms");
    compare(&format!("manifest, {files} files"), &manifest(files));
    compare(&format!("routes, {} prefixes", v4 + v6), &routes(v4, v6));
}

/// A manifest of `files` files: titles of 100 files each (a ladder's
/// segments), SHA-256s, two sources, a token per title.
fn manifest(files: u64) -> FillManifest {
    let titles = (0..files.div_ceil(100))
        .map(|t| ManifestTitle {
            rank: t as u32 + 1,
            title: Name::new(format!("title-{t:05}")).unwrap(),
            predicted_bytes: 1 << 30,
            replicated: t % 3 == 0,
            files: (0..100.min(files - t * 100))
                .map(|f| ManifestFile {
                    path: TitlePath::new(format!("{}p/seg-{f:05}.m4s", [1080, 720, 480, 360][f as usize % 4])).unwrap(),
                    size: 1_000_000 + f,
                    sha256: nearcast_common::sha256_hex(format!("{t}/{f}").as_bytes()),
                    sources: vec!["http://10.1.2.3:8080".into(), "https://origin.example.net".into()],
                })
                .collect(),
            token: "k1.1767225600.0.3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8".into(),
        })
        .collect();
    FillManifest {
        appliance: "box-1".into(),
        site: "site-1".into(),
        version: "v".repeat(16),
        day: 20_500,
        capacity_bytes: 1 << 44,
        planned_bytes: 1 << 43,
        titles,
    }
}

/// A full table: `v4` /24s and `v6` /48s in groups of 1,000 prefixes
/// sharing a path, as BGP carries them.
fn routes(v4: u64, v6: u64) -> Routes {
    let v4 = (0..v4).map(|i| format!("{}/24", Ipv4Addr::from((1u32 << 24) + i as u32 * 256)));
    let v6 = (0..v6).map(|i| format!("{}/48", Ipv6Addr::from((0x2a00u128 << 112) | (u128::from(i) << 80))));
    let all: Vec<String> = v4.chain(v6).collect();
    let groups = all
        .chunks(1000)
        .enumerate()
        .map(|(i, c)| RouteGroup {
            as_path: vec![64500, 3356, 64512 + i as u32 % 1000],
            next_hop: Some("192.0.2.1".parse().unwrap()),
            communities: vec![(64500, i as u16)],
            prefixes: c.to_vec(),
        })
        .collect();
    Routes {
        session: "established".into(),
        groups,
    }
}

fn median(mut f: impl FnMut() -> Duration) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS).map(|_| f().as_secs_f64() * 1e3).collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn compare<T: Wire + serde::Serialize + serde::de::DeserializeOwned>(what: &str, v: &T) {
    let json = serde_json::to_vec(v).unwrap();
    let proto = wire::encode(v).unwrap();
    let je = median(|| timed(|| serde_json::to_vec(v).unwrap()).1);
    let pe = median(|| timed(|| wire::encode(v).unwrap()).1);
    let jd = median(|| timed(|| serde_json::from_slice::<T>(&json).unwrap()).1);
    let pd = median(|| timed(|| wire::decode::<T>(&proto).unwrap()).1);
    // prost alone, without the conversion to and from our types (which
    // checks names and hashes, and turns prefix text into binary).
    let msg = v.to_msg().unwrap();
    let prost_e = median(|| timed(|| msg.encode_to_vec()).1);
    let prost_d = median(|| timed(|| T::Msg::decode(proto.as_slice()).unwrap()).1);
    println!("{what:<30} json     {:>11} {je:>11.1} {jd:>11.1}", json.len());
    println!("{what:<30} protobuf {:>11} {pe:>11.1} {pd:>11.1}", proto.len());
    println!("{what:<30}  (prost) {:>11} {prost_e:>11.1} {prost_d:>11.1}", proto.len());
    println!(
        "{what:<30} ratio    {:>11.2} {:>11.2} {:>11.2}",
        proto.len() as f64 / json.len() as f64,
        pe / je,
        pd / jd
    );
}
