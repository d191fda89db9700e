//! Every message round-trips to the same value as JSON gives, and what
//! JSON decoding refuses the wire refuses too.

use super::*;

fn same<T: Wire + serde::Serialize>(v: &T) {
    let back: T = decode(&encode(v).unwrap()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(v).unwrap());
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_json::from_str(s).unwrap()
}

#[test]
fn every_message_round_trips() {
    same::<Registration>(&from_json(
        r#"{"site":"s1","url":"http://b:8080","capacity_bytes":1000,"disks":["/d0","/d1"]}"#,
    ));
    same::<Heartbeat>(&from_json(
        r#"{"health":"degraded","load":0.25,"free_bytes":5,"disks":[{"name":"d0","health":"failed","free_bytes":0}],
            "bytes_by_title":{"movie":12,"show":3},"fill":{"manifest_version":"v","running":true,"files_total":3,
            "files_done":1,"bytes_total":30,"bytes_done":10,"rate_bytes_per_sec":7,
            "failures":[{"title":"movie","path":"a.m4s","reason":"404"}]},
            "bgp":{"session":"established","prefixes":9},"version":"0.1.0",
            "os":{"release":"2","slot":"B","update":"trial 2","failed":["3"]},
            "playback":{"requests":40,"errors":2,"failed_by_title":{"movie":2},"sessions":[{"sid":"6e2f","title":"movie","content_id":"c1",
            "bitrate_kbps":3200,"buffer_ms":21300,"measured_kbps":25400,"requested_kbps":15000,
            "media_requests":9,"starved":1,"bitrate_sum_kbps":28800,"bitrate_samples":9,"startup_ms":640,
            "first":true},{"sid":"x","title":null}]}}"#,
    ));
    same::<Heartbeat>(&Heartbeat::new(Health::Ok, 0.0, 0));
    same::<HeartbeatReply>(&from_json(
        r#"{"os_update":"2","os_emergency":true,"live":{"self_id":"b1","peers":[{"id":"b1","url":"http://b1"}],
            "origins":["http://o"],"cache_mib":256}}"#,
    ));
    same::<HeartbeatReply>(&HeartbeatReply::default());
    same::<Inventory>(&from_json(r#"{"version":"v1","titles":["movie","show"]}"#));
    same::<Routes>(&from_json(
        r#"{"session":"established","groups":[{"as_path":[64500,64501],"next_hop":"192.0.2.1",
            "communities":[[64500,7]],"prefixes":["198.51.100.0/24","10.0.0.0/8","2001:db8::/32"]},
            {"as_path":[],"next_hop":null,"communities":[],"prefixes":["::/0"]}]}"#,
    ));
    let sha = "ab".repeat(32);
    same::<FillManifest>(&from_json(&format!(
        r#"{{"appliance":"b1","site":"s1","version":"v9","day":20000,"capacity_bytes":9,"planned_bytes":8,
            "titles":[{{"rank":1,"title":"movie","predicted_bytes":5,"replicated":true,"token":"t",
            "files":[{{"path":"720p/seg-00001.m4s","size":4,"sha256":"{sha}","sources":["http://o"]}}]}}]}}"#
    )));
}

#[test]
fn what_json_refuses_the_wire_refuses() {
    let bad_title = v1::Inventory {
        version: "v".into(),
        titles: vec!["../etc".into()],
    };
    assert!(decode::<Inventory>(&bad_title.encode_to_vec()).is_err());
    let bad_path = v1::FillManifest {
        titles: vec![v1::ManifestTitle {
            title: "movie".into(),
            files: vec![v1::ManifestFile {
                path: "../../x".into(),
                sha256: vec![0; 32],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(decode::<FillManifest>(&bad_path.encode_to_vec()).is_err());
    let short_hash = v1::ManifestFile {
        path: "a.m4s".into(),
        sha256: vec![0; 31],
        ..Default::default()
    };
    assert!(file_from(short_hash).is_err());
    let unknown_health = v1::Heartbeat {
        health: 42,
        ..Default::default()
    };
    assert!(decode::<Heartbeat>(&unknown_health.encode_to_vec()).is_err());
    let lengths = v1::RouteGroup {
        ipv4: vec![1, 2],
        ipv4_lengths: vec![24],
        ..Default::default()
    };
    assert!(group_from(lengths).is_err());
    let too_long = v1::RouteGroup {
        ipv4: vec![1],
        ipv4_lengths: vec![33],
        ..Default::default()
    };
    assert!(group_from(too_long).is_err());
    for (sid, title) in [("a b", "movie"), ("ok", "../x")] {
        let bad = v1::Heartbeat {
            playback: Some(v1::Playback {
                sessions: vec![v1::SessionStats {
                    sid: sid.into(),
                    title: title.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(decode::<Heartbeat>(&bad.encode_to_vec()).is_err(), "{sid} {title}");
    }
    assert!(decode::<Heartbeat>(b"\xff\xff\xff\xff garbage").is_err());
    // Sending checks too: a prefix that is not one, a hash that is not hex.
    let routes: Routes = from_json(r#"{"session":"s","groups":[{"as_path":[],"next_hop":null,"prefixes":["x/99"]}]}"#);
    assert!(encode(&routes).is_err());
}

#[test]
fn ipv4_prefixes_read_as_display_writes_them() {
    for text in [
        "0.0.0.0/0",
        "1.2.3.0/24",
        "10.0.0.0/8",
        "255.255.255.255/32",
        "100.64.0.0/10",
        "9.99.199.0/24",
    ] {
        let p: IpPrefix = text.parse().unwrap();
        assert_eq!(v4_text(&p), p.to_string());
        assert_eq!(v4_text(&p), text);
    }
}
