//! What boxes learn from the heartbeat answer: OS releases, and where to
//! pull live objects from.

use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::unix_now;

use crate::support::*;

/// OS releases: an operator uploads bundles and points a box at one; the
/// box learns it from the heartbeat answer (only while it runs another
/// release and has not failed it) and fetches the bundle, signed.
fn os_updates(backend: &Backend) {
    let s = start(backend, &format!("os_{}", backend.label()), 30);
    let key = fleet(&s);
    let bundle = signed_bundle("2", b"a squashfs image, as far as this test cares".to_vec());
    let auth = [("authorization", format!("Bearer {ADMIN}"))];
    let put = |path: &str, body: &[u8]| call(s.admin, "PUT", path, &auth, body);
    // Refused: not a bundle, a truncated one, another release's name, a
    // name that is a path, no admin token.
    assert_eq!(put("/v1/admin/os/2", b"hsqs not a bundle").0, 422);
    assert_eq!(put("/v1/admin/os/2", &bundle[..bundle.len() - 1]).0, 422);
    assert_eq!(put("/v1/admin/os/3", &bundle).0, 422);
    assert_eq!(put("/v1/admin/os/..", &bundle).0, 422);
    assert_eq!(call(s.admin, "PUT", "/v1/admin/os/2", &[], &bundle).0, 401);
    // Nothing set yet: the box has nothing to fetch, an unknown release
    // cannot be set.
    assert_eq!(
        signed(s.addr, &key, "box-1", "GET", "/v1/appliances/box-1/os", "").0,
        404
    );
    assert_eq!(put("/v1/admin/appliances/box-1/os", br#"{"release":"2"}"#).0, 404);
    let (st, body) = put("/v1/admin/os/2", &bundle);
    assert_eq!(st, 200, "{body}");
    let (_, list) = admin(s.admin, "GET", "/v1/admin/os", "");
    assert!(list.contains(r#""version":"2""#), "{list}");
    assert_eq!(put("/v1/admin/appliances/nobox/os", br#"{"release":"2"}"#).0, 422);
    assert_eq!(put("/v1/admin/appliances/box-1/os", br#"{"release":"2"}"#).0, 200);

    let beat = |os: &str| {
        let hb = format!(r#"{{"health":"ok","load":0.1,"free_bytes":5000{os}}}"#);
        let (st, body) = signed(s.addr, &key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", &hb);
        assert_eq!(st, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["os_update"].clone()
    };
    assert_eq!(beat(r#","os":{"release":"1","slot":"A"}"#), "2");
    assert_eq!(beat(r#","os":{"release":"2","slot":"B"}"#), serde_json::Value::Null);
    assert_eq!(
        beat(r#","os":{"release":"1","slot":"A","failed":["2"]}"#),
        serde_json::Value::Null
    );
    // A box not running the image is never told to update.
    assert_eq!(beat(""), serde_json::Value::Null);
    live_plan_in_the_heartbeat(&s, &key);
    let headers: Vec<(&str, String)> = key
        .sign("box-1", "GET", "/v1/appliances/box-1/os", unix_now(), b"")
        .into_iter()
        .collect();
    let (st, got) = call_bytes(s.addr, "GET", "/v1/appliances/box-1/os", &headers, b"");
    assert_eq!(st, 200);
    assert!(got == bundle, "the box gets the stored bundle byte for byte");
    // A cut download resumes from a byte on; past the end is refused.
    let ranged = |range: String| {
        let mut h = headers.clone();
        h.push(("range", range));
        call_bytes(s.addr, "GET", "/v1/appliances/box-1/os", &h, b"")
    };
    let (st, tail) = ranged("bytes=100-".into());
    assert_eq!((st, tail.as_slice()), (206, &bundle[100..]));
    assert_eq!(ranged(format!("bytes={}-", bundle.len())).0, 416);
    assert_eq!(ranged("bytes=-5".into()).0, 416);
    // Unsigned or signed by another key: refused.
    assert_eq!(call(s.addr, "GET", "/v1/appliances/box-1/os", &[], b"").0, 403);
    assert_eq!(
        signed(s.addr, &new_key(), "box-1", "GET", "/v1/appliances/box-1/os", "").0,
        403
    );
}

/// Every heartbeat answer names the box's site (healthy boxes, itself
/// included) and the live door, for the agent to hand to the appliance.
fn live_plan_in_the_heartbeat(s: &Server, key: &ApplianceKey) {
    let hb = r#"{"health":"ok","load":0.1,"free_bytes":5000}"#;
    let (_, body) = signed(s.addr, key, "box-1", "POST", "/v1/appliances/box-1/heartbeat", hb);
    let live = serde_json::from_str::<serde_json::Value>(&body).unwrap()["live"].clone();
    assert_eq!(live["self_id"], "box-1", "{body}");
    assert_eq!(
        live["peers"],
        serde_json::json!([{"id": "box-1", "url": "http://box-1.test:8080"}])
    );
    assert_eq!(live["origins"], serde_json::json!(["http://127.0.0.1:7073"]));
    assert!(live["cache_mib"].as_u64() > Some(0));
}

on_both_stores!(os_updates);

/// Delta updates: a bundle whose manifest signs its chunk index is cut
/// into the chunk store on upload; a box fetches the index (behind the
/// bundle's header) and chunks by hash, signed. A bundle whose signed
/// index is not its own, or that signs none, is served whole only.
/// Chunk names are hashes and nothing else.
fn chunked_bundles(backend: &Backend) {
    use nearcast_common::chunks;
    let s = start(backend, &format!("chunks_{}", backend.label()), 30);
    let key = fleet(&s);
    let auth = [("authorization", format!("Bearer {ADMIN}"))];
    let put = |path: &str, body: &[u8]| call(s.admin, "PUT", path, &auth, body);
    let get = |path: &str| {
        let headers: Vec<(&str, String)> = key.sign("box-1", "GET", path, unix_now(), b"").into_iter().collect();
        call_bytes(s.addr, "GET", path, &headers, b"")
    };
    let mut x = 7u64;
    let rootfs: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let cut = chunks::chunk(&rootfs);
    let index = chunks::encode(&cut);
    let bundle = signed_bundle_with_index("2", rootfs.clone(), Some(chunks::index_sha256(&index)));
    assert_eq!(put("/v1/admin/os/2", &bundle).0, 200);
    assert_eq!(get("/v1/appliances/box-1/os/index").0, 404, "no target yet");
    assert_eq!(put("/v1/admin/appliances/box-1/os", br#"{"release":"2"}"#).0, 200);
    let (st, body) = get("/v1/appliances/box-1/os/index");
    assert_eq!(st, 200);
    let header = nearcast_common::bundle::Header::parse(&body).unwrap().unwrap();
    assert!(body[..header.len] == bundle[..header.len], "the bundle's own header");
    assert_eq!(chunks::parse(&body[header.len..], rootfs.len() as u64).unwrap(), cut);
    for c in &cut {
        let (st, got) = get(&format!("/v1/appliances/box-1/os/chunks/{}", c.hex()));
        assert_eq!(st, 200);
        assert!(got == rootfs[c.range()], "chunk {}", c.hex());
    }
    let unknown = "0".repeat(64);
    assert_eq!(get(&format!("/v1/appliances/box-1/os/chunks/{unknown}")).0, 404);
    for bad in [
        "..",
        "%2e%2e%2fos",
        &cut[0].hex().to_uppercase(),
        &cut[0].hex()[1..],
        "x",
    ] {
        let (st, _) = get(&format!("/v1/appliances/box-1/os/chunks/{bad}"));
        assert!(st == 422 || st == 404, "chunk name {bad}: {st}");
    }
    let path = format!("/v1/appliances/box-1/os/chunks/{}", cut[0].hex());
    assert_eq!(call(s.addr, "GET", &path, &[], b"").0, 403, "unsigned");
    // Signs an index that is not its own, or none: whole only.
    for (release, signed) in [("3", Some("ab".repeat(32))), ("4", None)] {
        let b = signed_bundle_with_index(release, rootfs.clone(), signed);
        assert_eq!(put(&format!("/v1/admin/os/{release}"), &b).0, 200);
        let target = format!(r#"{{"release":"{release}"}}"#);
        assert_eq!(put("/v1/admin/appliances/box-1/os", target.as_bytes()).0, 200);
        assert_eq!(get("/v1/appliances/box-1/os/index").0, 404, "release {release}");
        assert_eq!(get("/v1/appliances/box-1/os").0, 200);
    }
    let stored = std::fs::read_dir(s.dir().join("os-bundles/chunks")).unwrap().count();
    assert_eq!(stored, cut.len(), "each chunk kept once");
}
on_both_stores!(chunked_bundles);

/// A bundle of `rootfs_size` zero bytes for release `release`: its header
/// (the test streams the zeros itself, never holding them).
fn zeros_bundle_header(release: &str, rootfs_size: u64) -> Vec<u8> {
    let signer = ApplianceKey::generate_pkcs8().unwrap();
    let manifest = nearcast_common::bundle::Manifest {
        version: nearcast_common::Name::new(release).unwrap(),
        key_id: "dev".into(),
        rootfs_size,
        rootfs_sha256: "0".repeat(64),
        verity: None,
        chunk_index_sha256: None,
    };
    nearcast_common::bundle::sign_header(&manifest, &signer).unwrap()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends a PUT of `header` then `zeros` zero bytes to the admin listener:
/// with a `Content-Length` of `declared` (or chunked), the connection
/// closed for writing after `zeros` bytes if they are fewer than declared.
/// The status, if an answer came.
fn put_streamed(s: &Server, path: &str, header: &[u8], zeros: u64, declared: Option<u64>) -> Option<u16> {
    use std::io::{BufReader, Write};
    let mut c = std::net::TcpStream::connect(s.admin).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let length = match declared {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".into(),
    };
    let head = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n{length}\r\n\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut send = |bytes: &[u8]| -> std::io::Result<()> {
        match declared {
            Some(_) => c.write_all(bytes),
            None => c
                .write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
                .and_then(|_| c.write_all(bytes))
                .and_then(|_| c.write_all(b"\r\n")),
        }
    };
    let mut sent = send(header);
    let mut left = zeros;
    while sent.is_ok() && left > 0 {
        let n = left.min(block.len() as u64) as usize;
        sent = send(&block[..n]);
        left -= n as u64;
    }
    if sent.is_ok() && declared.is_none() {
        let _ = c.write_all(b"0\r\n\r\n");
    }
    if declared.is_some_and(|n| n > header.len() as u64 + zeros) {
        // Cut: the body ends early.
        let _ = c.shutdown(std::net::Shutdown::Write);
    }
    let mut r = BufReader::new(c);
    nearcast_testkit::http::read_response(&mut r, false)
        .ok()
        .flatten()
        .map(|resp| resp.status)
}

/// What the bundle directory holds, hidden partial files included.
fn bundle_files(s: &Server) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.dir().join("os-bundles"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Bundles stream to disk: 96 MiB through this process (which runs the
/// server) raise its peak memory by a few MiB at most; over the limit
/// (declared or streamed), cut mid-way or malformed, nothing is kept.
fn bundles_stream_to_disk(backend: &Backend) {
    let s = start_tuned(backend, &format!("os_stream_{}", backend.label()), |c| {
        c.os_bundle_max_mib = 100;
    });
    let big = 96 << 20;
    let header = zeros_bundle_header("7", big);
    let total = header.len() as u64 + big;
    let before = peak_rss_kib();
    assert_eq!(put_streamed(&s, "/v1/admin/os/7", &header, big, Some(total)), Some(200));
    let grew = peak_rss_kib().saturating_sub(before);
    eprintln!("a 96 MiB bundle uploaded: peak RSS grew {grew} KiB");
    assert!(grew < 16 * 1024, "peak RSS grew {grew} KiB for a 96 MiB upload");
    assert_eq!(bundle_files(&s), ["7.bundle"]);
    let size = std::fs::metadata(s.dir().join("os-bundles/7.bundle")).unwrap().len();
    assert_eq!(size, total);

    // Chunked, so only counted as it streams: refused past 100 MiB.
    let header = zeros_bundle_header("8", 120 << 20);
    assert_eq!(put_streamed(&s, "/v1/admin/os/8", &header, 120 << 20, None), Some(413));
    // Declared too large: refused before a byte is read.
    assert_eq!(
        put_streamed(
            &s,
            "/v1/admin/os/8",
            &header,
            0,
            Some(header.len() as u64 + (120 << 20))
        ),
        Some(413)
    );
    // Cut after half its bytes.
    let header = zeros_bundle_header("9", 8 << 20);
    let declared = Some(header.len() as u64 + (8 << 20));
    let answer = put_streamed(&s, "/v1/admin/os/9", &header, 4 << 20, declared);
    assert!(answer.is_none_or(|st| st == 400), "{answer:?}");
    // A whole body whose manifest says more bytes than came.
    let header = zeros_bundle_header("10", 8 << 20);
    assert_eq!(put_streamed(&s, "/v1/admin/os/10", &header, 1 << 20, None), Some(422));
    let start = std::time::Instant::now();
    while bundle_files(&s) != ["7.bundle"] && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(bundle_files(&s), ["7.bundle"], "refused uploads leave nothing");
}

on_both_stores!(bundles_stream_to_disk);
