//! Whatever a BGP peer sends: framing, then OPEN or UPDATE parsing (both
//! AS_PATH widths), then the table. Must never panic; an UPDATE that
//! parses must only hold valid prefixes, and applying it must leave the
//! table no bigger than `size_after` said.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nearcast_bgp::{update, wire, Rib};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut rib = Rib::default();
    while let Ok(Some(wire::Framed { kind, body, len })) = wire::split(rest) {
        match kind {
            wire::OPEN => {
                let _ = wire::Open::parse(body);
            }
            wire::UPDATE => {
                for four_octet in [true, false] {
                    if let Ok(u) = update::parse(body, four_octet) {
                        let want = rib.size_after(&u);
                        rib.apply(&u);
                        assert_eq!(rib.len(), want);
                    }
                }
            }
            _ => {}
        }
        let _ = wire::describe_notification(body);
        rest = &rest[len..];
    }
});
