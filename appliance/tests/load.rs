//! Many clients at once, and files replaced while they are being served.

mod support;

use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::*;

#[test]
fn thousand_concurrent_clients_get_exact_bytes() {
    raise_fd_limit();
    let dir = temp_dir("thousand");
    let disk = dir.join("disk");
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let data = write_file(&disk.join(format!("t/r/seg-{i}.m4s")), 16_384 + i * 9_973, i as u64);
            (signed(&format!("/c/t/r/seg-{i}.m4s")), sha256(&data))
        })
        .collect();
    let app = Appliance::start(&dir, &[disk], "");
    let files = Arc::new(files);
    let clients = 1000;
    let barrier = Arc::new(Barrier::new(clients));
    let ok = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (files, barrier, ok, addr) = (files.clone(), barrier.clone(), ok.clone(), app.http);
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut s = std::net::TcpStream::connect(addr).expect("connect");
                    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    barrier.wait();
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    // Two requests on one kept-alive connection per client.
                    for k in 0..2 {
                        let (target, digest) = &files[(c * 7 + k * 13) % files.len()];
                        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                            .unwrap();
                        let resp = read_response(&mut r, false).expect("response");
                        assert_eq!(resp.status, 200);
                        assert_eq!(&sha256(&resp.body), digest, "client {c} request {k}");
                    }
                    ok.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    assert_eq!(ok.load(Ordering::Relaxed), clients);
    assert!(app.metric_at_least("nearcast_requests_total{code=\"200\"}", 2000.0) >= 2000.0);
}

#[test]
fn atomic_replacement_under_load() {
    let dir = temp_dir("replace");
    let disk = dir.join("disk");
    let target = disk.join("t/r/seg.m4s");
    let a = write_file(&dir.join("a.bin"), 300_000, 1);
    let b = write_file(&dir.join("b.bin"), 200_000, 2);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, &a).unwrap();
    let app = Appliance::start(&dir, std::slice::from_ref(&disk), "[file_cache]\nvalid_ms = 20\n");
    let (da, db) = (sha256(&a), sha256(&b));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, target, a, b, tmp_dir) = (stop.clone(), target.clone(), a.clone(), b.clone(), disk.join("t/r"));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // The fill's way: write a hidden temp file, then rename over.
                let tmp = tmp_dir.join(format!(".tmp-{n}"));
                std::fs::write(&tmp, if n.is_multiple_of(2) { &b } else { &a }).unwrap();
                std::fs::rename(&tmp, &target).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };
    let url = signed("/c/t/r/seg.m4s");
    let deadline = Instant::now() + Duration::from_secs(3);
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (url, da, db, addr) = (url.clone(), da.clone(), db.clone(), app.http);
            std::thread::spawn(move || {
                let (mut seen_a, mut seen_b) = (0, 0);
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                while Instant::now() < deadline {
                    s.write_all(format!("GET {url} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                        .unwrap();
                    let resp = read_response(&mut r, false).unwrap();
                    assert_eq!(resp.status, 200);
                    let d = sha256(&resp.body);
                    assert!(d == da || d == db, "a mix of versions ({} bytes)", resp.body.len());
                    if d == da {
                        seen_a += 1
                    } else {
                        seen_b += 1
                    }
                }
                (seen_a, seen_b)
            })
        })
        .collect();
    let (mut total_a, mut total_b) = (0, 0);
    for h in readers {
        let (x, y) = h.join().unwrap();
        total_a += x;
        total_b += y;
    }
    stop.store(true, Ordering::Relaxed);
    let replacements = writer.join().unwrap();
    assert!(replacements > 50, "writer replaced the file {replacements} times");
    assert!(
        total_a > 0 && total_b > 0,
        "both versions served: {total_a} / {total_b}"
    );
}
