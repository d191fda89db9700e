//! Serving bytes that are not in the page cache: real files on the real
//! disk with the cache dropped between rounds, a disk made slow by a
//! cgroup throttle, and a disk that answers EIO (a FUSE filesystem served
//! by this test). Needs root, as the suite does.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nearcast_testkit::cgroup::Throttle;
use nearcast_testkit::faultfs::{Fault, FaultFs};
use support::*;

/// A directory on the build disk (a real block device, unlike a tmpfs
/// /tmp would be), fresh for this test.
fn disk_dir(name: &str) -> TempDir {
    TempDir::within(Path::new(env!("CARGO_TARGET_TMPDIR")), &format!("disk-{name}"))
}

/// Writes the file durably, so that dropping it from the cache works.
fn write_synced(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let data = write_file(path, len, seed);
    std::fs::File::open(path).unwrap().sync_all().unwrap();
    data
}

fn evict(path: &Path) {
    nearcast_testkit::evict(path).expect("drop from the page cache");
}

fn get_on(stream: &mut (impl Read + Write), target: &str, range: Option<&str>) -> Response {
    let range = range.map(|r| format!("Range: bytes={r}\r\n")).unwrap_or_default();
    // One write: pieces would meet Nagle and the delayed ACK (40 ms each).
    let req = format!("GET {} HTTP/1.1\r\nHost: t\r\n{range}\r\n", signed(target));
    stream.write_all(req.as_bytes()).unwrap();
    read_response(&mut BufReader::new(stream), false).expect("a response")
}

#[test]
fn cold_and_hot_bodies_are_byte_exact_under_concurrency() {
    cold_and_hot("cold-hot", "direct_min_kib = 0\n");
}

/// The same through `O_DIRECT` for files of 64 KiB and more (the first
/// cold read of each; asked for again, a file is read through the cache).
#[test]
fn cold_and_hot_bodies_are_byte_exact_with_direct_reads() {
    cold_and_hot("cold-hot-direct", "direct_min_kib = 64\n");
}

fn cold_and_hot(name: &str, disk_io: &str) {
    let dir = disk_dir(name);
    make_cert(&dir);
    let disk = dir.join("disk");
    let sizes = [0, 1, 4095, 4096, 4097, 65_539, 300_001, (2 << 20) + 17, (5 << 20) + 1];
    let files: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let data = write_synced(&disk.join(format!("t/r/f{i}.m4s")), len, i as u64 + 1);
                (format!("/c/t/r/f{i}.m4s"), sha256(&data))
            })
            .collect(),
    );
    // A small pool and depth, so reads queue for buffers and for the disk.
    let extra = format!(
        "{}\n[disk_io]\nqueue_depth = 2\nbuffers = 3\nbuffer_kib = 64\n{disk_io}",
        tls_toml(&dir)
    );
    let app = Appliance::start(&dir, std::slice::from_ref(&disk), &extra);
    rounds_of_cold_and_hot_reads(&app, &dir, &disk, &files);
    // Both ways were taken: cold bytes read from disk, hot ones from the cache.
    let from_disk = app.metric("nearcast_body_bytes_total{source=\"disk\"}");
    let from_cache = app.metric("nearcast_body_bytes_total{source=\"page_cache\"}");
    assert!(
        from_disk > 1e6 && from_cache > 1e6,
        "disk {from_disk}, cache {from_cache}"
    );
    assert!(app.metric("nearcast_disk_read_bytes_total{disk=\"0\"}") >= from_disk);
    assert!(app.metric("nearcast_disk_read_seconds_count{disk=\"0\"}") > 0.0);
    page_cache_admission(&app, &disk, !disk_io.contains("direct_min_kib = 0"));
    // Every buffer came back (the gauge is refreshed each 200 ms tick).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(app.metric("nearcast_read_buffers_in_use"), 0.0);
    assert_eq!(app.metric("nearcast_disk_read_queue_depth{disk=\"0\"}"), 0.0);
}

/// Three rounds, each after evicting the disk's files: 12 clients (every
/// third over TLS) ask for six files each on one connection; every body
/// must hash as written.
fn rounds_of_cold_and_hot_reads(app: &Appliance, dir: &Path, disk: &Path, files: &Arc<Vec<(String, Vec<u8>)>>) {
    let https = app.https.unwrap();
    for round in 0..3u64 {
        evict(disk);
        let clients: Vec<_> = (0..12u64)
            .map(|c| {
                let (files, http, dir) = (files.clone(), app.http, dir.to_path_buf());
                std::thread::spawn(move || {
                    let mut stream: Box<dyn ReadWrite> = if c % 3 == 0 {
                        Box::new(tls_connect(&dir, https))
                    } else {
                        let s = TcpStream::connect(http).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                        Box::new(s)
                    };
                    for k in 0..6 {
                        let (path, sha) = &files[((c * 7 + k * 3 + round) as usize) % files.len()];
                        let r = get_on(&mut stream, path, None);
                        assert_eq!(r.status, 200, "{path}");
                        assert_eq!(
                            &sha256(&r.body),
                            sha,
                            "{path} over {}",
                            if c % 3 == 0 { "TLS" } else { "HTTP" }
                        );
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    }
}

/// Buffered reads leave a file in the page cache; O_DIRECT ones (`direct`)
/// do not, until the file is asked for again (of the same worker: one
/// connection).
fn page_cache_admission(app: &Appliance, disk: &Path, direct: bool) {
    let fresh = disk.join("t/r/fresh.m4s");
    let data = write_synced(&fresh, 3 << 20, 99);
    evict(&fresh);
    let mut conn = app.connect();
    for ask in 1..=2 {
        let r = get_on(&mut conn, "/c/t/r/fresh.m4s", None);
        assert_eq!(sha256(&r.body), sha256(&data));
        let cached = resident_fraction(&fresh);
        if direct && ask == 1 {
            assert!(cached < 0.05, "the first O_DIRECT read filled the page cache: {cached}");
        } else {
            assert!(
                cached > 0.9,
                "ask {ask}: the file was not admitted to the page cache: {cached}"
            );
        }
    }
}

/// The fraction of `path`'s pages in the page cache (this test runs as
/// root, so the kernel answers truthfully).
fn resident_fraction(path: &Path) -> f64 {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of the whole file, only passed to
    // mincore, then unmapped.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        assert_eq!(libc::mincore(p, len, vec.as_mut_ptr()), 0);
        libc::munmap(p, len);
    }
    vec.iter().filter(|&&v| v & 1 == 1).count() as f64 / pages as f64
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn ranges_over_cold_bytes() {
    ranges("ranges", "");
}

/// Unaligned ranges through aligned `O_DIRECT` reads.
#[test]
fn ranges_over_cold_bytes_with_direct_reads() {
    ranges("ranges-direct", "[disk_io]\ndirect_min_kib = 1\n");
}

fn ranges(name: &str, extra: &str) {
    let dir = disk_dir(name);
    make_cert(&dir);
    let disk = dir.join("disk");
    let data = write_synced(&disk.join("t/r/big.m4s"), 3 * 1024 * 1024 + 5, 9);
    let extra = format!("{}{extra}", tls_toml(&dir));
    let app = Appliance::start(&dir, std::slice::from_ref(&disk), &extra);
    let len = data.len();
    let cases: [(&str, std::ops::Range<usize>); 6] = [
        ("0-0", 0..1),
        ("4095-4096", 4095..4097),
        ("1000000-2500000", 1_000_000..2_500_001),
        ("-70000", len - 70_000..len),
        ("3000000-", 3_000_000..len),
        ("262143-262145", 262_143..262_146),
    ];
    let mut plain = app.connect();
    let mut tls = tls_connect(&dir, app.https.unwrap());
    for (spec, want) in cases {
        for tls_too in [false, true] {
            evict(&disk);
            let r = if tls_too {
                get_on(&mut tls, "/c/t/r/big.m4s", Some(spec))
            } else {
                get_on(&mut plain, "/c/t/r/big.m4s", Some(spec))
            };
            assert_eq!(r.status, 206, "{spec}");
            let range = format!("bytes {}-{}/{len}", want.start, want.end - 1);
            assert_eq!(r.header("content-range"), Some(range.as_str()));
            assert!(r.body == data[want.clone()], "{spec} (tls {tls_too})");
        }
    }
    assert!(app.metric("nearcast_body_bytes_total{source=\"disk\"}") > 0.0);
}

/// One worker and a disk throttled to 2 MB/s: while a 4 MiB cold body
/// crawls out, hot requests on the same worker are answered; the file is
/// replaced mid-read and the response is all old bytes; the next request
/// gets the new file.
#[test]
fn a_crawling_disk_holds_up_nothing_and_replacement_mid_read_serves_the_old_file() {
    let dir = disk_dir("crawl");
    let disk = dir.join("disk");
    let old = write_synced(&disk.join("t/r/cold.m4s"), 4 * 1024 * 1024, 3);
    let hot = write_synced(&disk.join("t/r/hot.m4s"), 64 * 1024, 4);
    let throttle = Throttle::reads("crawl", &disk, 2_000_000).expect("a blkio throttle");
    let app = Appliance::start_with(
        &dir,
        std::slice::from_ref(&disk),
        "threads = 1\n[file_cache]\nvalid_ms = 100\n",
        |cmd| throttle.enter_on_exec(cmd),
    );
    // The hot file is read once, so it is in the page cache.
    assert_eq!(sha256(&app.get(&signed("/c/t/r/hot.m4s")).body), sha256(&hot));
    evict(&disk.join("t/r/cold.m4s"));

    let done = Arc::new(AtomicBool::new(false));
    let mut cold = app.connect();
    write!(cold, "GET {} HTTP/1.1\r\nHost: t\r\n\r\n", signed("/c/t/r/cold.m4s")).unwrap();
    let mut cold = BufReader::new(cold);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut cold, &mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    // The head is out, so the first read completed; the rest crawls. Now
    // the fill replaces the file.
    let new = write_synced(&disk.join("t/r/.cold.tmp"), 100_000, 5);
    std::fs::rename(disk.join("t/r/.cold.tmp"), disk.join("t/r/cold.m4s")).unwrap();
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut rest = Vec::new();
            let mut head = line;
            loop {
                let mut h = String::new();
                std::io::BufRead::read_line(&mut cold, &mut h).unwrap();
                head.push_str(&h);
                if h == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; 4 * 1024 * 1024];
            cold.read_exact(&mut body).unwrap();
            rest.extend_from_slice(&body);
            done.store(true, Ordering::Release);
            rest
        })
    };
    let started = Instant::now();
    let mut conn = app.connect();
    for _ in 0..20 {
        let r = get_on(&mut conn, "/c/t/r/hot.m4s", None);
        assert_eq!(sha256(&r.body), sha256(&hot));
        assert!(!done.load(Ordering::Acquire), "a hot request waited for the cold body");
    }
    let hot_time = started.elapsed();
    let body = reader.join().unwrap();
    assert!(body == old, "the response mixed old and new bytes");
    assert!(started.elapsed() > Duration::from_secs(1), "the disk was not throttled");
    assert!(
        hot_time < started.elapsed() / 2,
        "hot {hot_time:?} of {:?}",
        started.elapsed()
    );
    // The replaced file is what new requests get (once the cached
    // descriptor is re-checked).
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(sha256(&app.get(&signed("/c/t/r/cold.m4s")).body), sha256(&new));
}

/// A disk that answers EIO: before any body byte went out, a clean 500 on
/// a connection that stays usable; mid-body, that response alone is cut;
/// the disk's error count rises; other files and disks serve on.
#[test]
fn eio_ends_only_that_response_and_counts_against_the_disk() {
    let dir = disk_dir("eio");
    make_cert(&dir);
    let backing = dir.join("backing");
    let bad = write_file(&backing.join("t/r/bad.m4s"), 2 * 1024 * 1024, 1);
    write_file(&backing.join("t/r/bad0.m4s"), 300_000, 2);
    let good = write_file(&backing.join("t/r/good.m4s"), 2 * 1024 * 1024, 3);
    let other_disk = dir.join("other");
    let other = write_file(&other_disk.join("t/r/other.m4s"), 1024 * 1024, 4);
    let fs = FaultFs::mount(&backing, &dir.join("mnt")).expect("mount the FUSE test filesystem");
    fs.set_faults(vec![
        Fault::eio("t/r/bad.m4s", 1024 * 1024),
        Fault::eio("t/r/bad0.m4s", 0),
    ]);
    let app = Appliance::start(&dir, &[fs.path().to_path_buf(), other_disk], &tls_toml(&dir));

    for tls in [false, true] {
        let mut s: Box<dyn ReadWrite> = if tls {
            Box::new(tls_connect(&dir, app.https.unwrap()))
        } else {
            Box::new(app.connect())
        };
        let r = get_on(&mut s, "/c/t/r/bad0.m4s", None);
        assert_eq!(r.status, 500, "EIO before the first body byte (tls {tls})");
        let r = get_on(&mut s, "/c/t/r/good.m4s", None);
        assert_eq!(
            (r.status, sha256(&r.body)),
            (200, sha256(&good)),
            "same connection, next request"
        );

        // Mid-body: the head promised 2 MiB; the body stops short, with
        // only true bytes, and the connection closes.
        write!(s, "GET {} HTTP/1.1\r\nHost: t\r\n\r\n", signed("/c/t/r/bad.m4s")).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
        let head = String::from_utf8_lossy(&all[..head_end]);
        assert!(
            head.starts_with("HTTP/1.1 200") && head.contains("Content-Length: 2097152"),
            "{head}"
        );
        let body = &all[head_end..];
        assert!(body.len() < bad.len(), "the body cannot be complete");
        assert!(body == &bad[..body.len()], "only true bytes before the cut");
    }
    // Others are untouched: another file of the failing disk, another disk.
    assert_eq!(sha256(&app.get(&signed("/c/t/r/good.m4s")).body), sha256(&good));
    assert_eq!(sha256(&app.get(&signed("/c/t/r/other.m4s")).body), sha256(&other));
    let errors = app.metric("nearcast_disk_read_errors_total{disk=\"0\"}");
    assert!(errors >= 4.0, "read errors counted: {errors}");
    assert_eq!(app.metric("nearcast_disk_read_errors_total{disk=\"1\"}"), 0.0);
    assert!(app.metric("nearcast_requests_total{code=\"500\"}") >= 2.0);
    assert!(fs.reads() > 0);
    drop(app);
}

/// A disk whose lookups crawl (a FUSE filesystem answering each LOOKUP
/// after 700 ms): opening a file there waits, the worker does not. With
/// one worker, hot requests for a file on another disk are answered
/// while the slow file's path is still being looked up.
#[test]
fn a_crawling_lookup_holds_up_nothing() {
    let dir = disk_dir("lookup");
    let backing = dir.join("backing");
    let slow = write_file(&backing.join("t/r/slow.m4s"), 100_000, 1);
    let real = dir.join("real");
    let hot = write_file(&real.join("h/r/hot.m4s"), 64 * 1024, 2);
    let fs = FaultFs::mount(&backing, &dir.join("mnt")).expect("mount the FUSE test filesystem");
    fs.set_faults(vec![Fault::slow_lookups("t", Duration::from_millis(700))]);
    let app = Appliance::start(&dir, &[real, fs.path().to_path_buf()], "threads = 1\n");
    assert_eq!(sha256(&app.get(&signed("/c/h/r/hot.m4s")).body), sha256(&hot));

    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let slow_get = {
        let (done, addr) = (done.clone(), app.http);
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let r = get_on(&mut s, "/c/t/r/slow.m4s", None);
            done.store(true, Ordering::Release);
            r
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let mut conn = app.connect();
    for _ in 0..20 {
        let r = get_on(&mut conn, "/c/h/r/hot.m4s", None);
        assert_eq!(sha256(&r.body), sha256(&hot));
        assert!(
            !done.load(Ordering::Acquire),
            "a hot request waited for the slow lookup"
        );
    }
    let r = slow_get.join().unwrap();
    assert_eq!((r.status, sha256(&r.body)), (200, sha256(&slow)));
    assert!(
        started.elapsed() >= Duration::from_millis(2100),
        "three lookups of 700 ms: t, r, slow.m4s"
    );
    assert!(
        app.metric("nearcast_async_opens_total") >= 2.0,
        "opened through io_uring"
    );
    // Once opened, the file is served from the open-file cache at once.
    let t = Instant::now();
    assert_eq!(sha256(&app.get(&signed("/c/t/r/slow.m4s")).body), sha256(&slow));
    assert!(t.elapsed() < Duration::from_millis(700));
}
