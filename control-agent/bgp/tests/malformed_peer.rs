//! A router that sends garbage: the speaker answers with the NOTIFICATION
//! RFC 4271 §6 names, closes, and comes back with a fresh session — it
//! never crashes and keeps nothing from the bad session.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use nearcast_bgp::wire::{self, Open, AFI_IPV4, SAFI_UNICAST};
use nearcast_bgp::{Neighbor, SessionState, Speaker};

/// Reads one whole message; its type and body.
fn read_msg(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; wire::HEADER_LEN];
    s.read_exact(&mut head).unwrap();
    let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
    let mut body = vec![0u8; len - wire::HEADER_LEN];
    s.read_exact(&mut body).unwrap();
    (head[18], body)
}

/// Accepts the speaker and brings the session to Established.
fn establish(l: &TcpListener) -> TcpStream {
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_msg(&mut s).0, wire::OPEN);
    let ours = Open {
        asn: 64500,
        hold_time: 30,
        router_id: Ipv4Addr::new(192, 0, 2, 254),
        families: vec![(AFI_IPV4, SAFI_UNICAST)],
        four_octet_as: true,
    };
    s.write_all(&ours.encode()).unwrap();
    s.write_all(&wire::keepalive()).unwrap();
    assert_eq!(read_msg(&mut s).0, wire::KEEPALIVE);
    s
}

#[test]
fn malformed_messages_get_their_notification_and_a_clean_reset() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let speaker = Speaker::new(Neighbor {
        address: l.local_addr().unwrap(),
        local_address: None,
        local_as: 64501,
        peer_as: 64500,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        hold_time: 30,
        max_prefixes: 100,
        md5_password: None,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(speaker.clone().run());

    let good_update = good_update();
    for (what, garbage, (code, subcode)) in garbage(&good_update) {
        let mut s = establish(&l);
        // A good route first: it must not survive the bad session.
        s.write_all(&good_update).unwrap();
        for _ in 0..100 {
            if speaker.table_len() == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(speaker.table_len(), 1, "{what}: the good route arrived");
        s.write_all(&garbage).unwrap();
        let (kind, body) = read_msg(&mut s);
        assert_eq!((kind, body[0], body[1]), (wire::NOTIFICATION, code, subcode), "{what}");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{what}: the speaker closed after the NOTIFICATION");
        for _ in 0..100 {
            if speaker.state() != SessionState::Established {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(speaker.table_len(), 0, "{what}: routes of a failed session are dropped");
    }
    // And it keeps reconnecting: one more clean session.
    let _s = establish(&l);
}

/// ORIGIN IGP, AS_PATH [64500], NEXT_HOP, NLRI 198.51.100.0/24.
fn good_update() -> Vec<u8> {
    let attrs = [
        0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfb, 0xf4, 0x40, 3, 4, 192, 0, 2, 1,
    ];
    let mut b = vec![0, 0, 0, attrs.len() as u8];
    b.extend_from_slice(&attrs);
    b.extend_from_slice(&[24, 198, 51, 100]);
    wire::frame(wire::UPDATE, &b)
}

/// What the router sends, and the NOTIFICATION code/subcode expected.
fn garbage(good_update: &[u8]) -> Vec<(&'static str, Vec<u8>, (u8, u8))> {
    let mut bad_origin = good_update.to_vec();
    bad_origin[wire::HEADER_LEN + 7] = 9; // ORIGIN value 9
    let mut bad_marker = wire::keepalive();
    bad_marker[3] = 0;
    vec![
        ("bad marker", bad_marker, (1, 1)),
        ("unknown message type", wire::frame(9, &[]), (1, 3)),
        ("invalid ORIGIN", bad_origin, (3, 6)),
        (
            "prefix longer than /32",
            wire::frame(wire::UPDATE, &[0, 0, 0, 0, 33, 1, 2, 3, 4, 5]),
            (3, 10),
        ),
        (
            "OPEN when established",
            Open {
                asn: 64500,
                hold_time: 30,
                router_id: Ipv4Addr::new(192, 0, 2, 254),
                families: vec![],
                four_octet_as: true,
            }
            .encode(),
            (5, 0),
        ),
    ]
}
