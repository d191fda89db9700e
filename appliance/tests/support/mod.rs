//! Test harness: starts the real `nearcast-appliance` binary on loopback
//! with a fresh content store, and speaks HTTP/1.1 to it over plain sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nearcast_common::{Grant, SigningKey};
pub use nearcast_testkit::http::{self, Response};
use nearcast_testkit::metrics;
pub use nearcast_testkit::TempDir;

pub const KEY_ID: &str = "k1";
pub const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub fn key() -> SigningKey {
    SigningKey::from_hex(KEY_ID, KEY_HEX).unwrap()
}

pub use nearcast_common::unix_now;

/// `path?token=…` valid for a minute for any client.
pub fn signed(path: &str) -> String {
    let t = key().sign(
        path,
        &Grant {
            expires: unix_now() + 60,
            client_prefix: None,
        },
    );
    format!("{path}?token={t}")
}

/// A scratch directory for one test (see `nearcast_testkit::TempDir`).
pub fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("test-{name}"))
}

/// Writes `len` pseudo-random bytes (seeded by `seed`) to `path`.
pub fn write_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, &data).unwrap();
    data
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

pub struct Appliance {
    child: Child,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    /// A scratch directory removed only after the process is gone.
    scratch: Option<TempDir>,
}

impl Appliance {
    /// Starts the binary with `disks` and extra TOML appended to a base
    /// config (auth on with the test key, short timeouts).
    pub fn start(dir: &Path, disks: &[PathBuf], extra_toml: &str) -> Appliance {
        Self::start_with(dir, disks, extra_toml, |_| {})
    }

    /// `start`, with `setup` applied to the command first (to start it in
    /// a cgroup, say).
    pub fn start_with(dir: &Path, disks: &[PathBuf], extra_toml: &str, setup: impl FnOnce(&mut Command)) -> Appliance {
        let disks: Vec<String> = disks.iter().map(|d| format!("{:?}", d.display().to_string())).collect();
        // Two workers unless the extra TOML says how many.
        let threads = if extra_toml.lines().any(|l| l.starts_with("threads")) {
            ""
        } else {
            "threads = 2\n"
        };
        let cfg = format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{threads}disks = [{}]\n{extra_toml}\n\
             [[auth.keys]]\nid = \"{KEY_ID}\"\nsecret_hex = \"{KEY_HEX}\"\n",
            disks.join(", ")
        );
        let cfg_path = dir.join("appliance.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        Self::spawn_with(dir, &["--config", cfg_path.to_str().unwrap()], setup)
    }

    pub fn spawn(dir: &Path, args: &[&str]) -> Appliance {
        Self::spawn_with(dir, args, |_| {})
    }

    fn spawn_with(dir: &Path, args: &[&str], setup: impl FnOnce(&mut Command)) -> Appliance {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nearcast-appliance"));
        cmd.args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("start nearcast-appliance");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("nearcast-appliance ready"),
            "unexpected start line: {line:?}"
        );
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(|a| a.parse().unwrap())
        };
        Appliance {
            http: field("http").unwrap(),
            https: field("https"),
            admin: field("admin").unwrap(),
            child,
            dir: dir.to_path_buf(),
            scratch: None,
        }
    }

    /// Keeps `dir` until this appliance is stopped (for a helper that
    /// starts it and returns).
    pub fn owning(mut self, dir: TempDir) -> Appliance {
        self.scratch = Some(dir);
        self
    }

    pub fn connect(&self) -> TcpStream {
        http::connect(self.http).unwrap()
    }

    pub fn get(&self, target: &str) -> Response {
        http::get(self.http, target)
    }

    /// Sends raw bytes on a fresh connection and reads one response.
    pub fn request(&self, raw: &str) -> Response {
        http::send(self.http, raw)
    }

    pub fn metrics(&self) -> String {
        self.admin_call("GET", "/metrics").text()
    }

    /// One request to the admin listener.
    pub fn admin_call(&self, method: &str, path: &str) -> Response {
        http::call(self.admin, method, path, &[], b"")
    }

    /// The value of the series `selector` picks (see
    /// `nearcast_testkit::metrics`).
    pub fn metric(&self, selector: &str) -> f64 {
        let m = self.metrics();
        metrics::metric(&m, selector).unwrap_or_else(|| panic!("no {selector} in\n{m}"))
    }

    /// Waits (up to 5 s) until `selector` reaches at least `want`, and
    /// returns its value. A response is counted just after its last byte
    /// is handed to the kernel, so a client can see the bytes first.
    pub fn metric_at_least(&self, selector: &str, want: f64) -> f64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.metric(selector);
            if v >= want || std::time::Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM (the drain signal) without waiting.
    pub fn signal_term(&self) {
        // SAFETY: kill(2) takes plain integers; the pid is our own child,
        // not yet reaped, so it cannot name another process.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_term();
        self.child.wait().unwrap()
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one response from a connection the test keeps; `None` on a clean
/// end before any byte.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> Option<Response> {
    http::read_response(r, head_request).expect("a well-formed response")
}

/// Lifts this test process's descriptor limit (many client sockets).
pub fn raise_fd_limit() {
    // SAFETY: rlimit is plain integers (all-zero is valid), and both calls
    // only read or write the struct they are given.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// A test CA (`ca.pem`) and a leaf for localhost signed by it
/// (`cert.pem`, `key.pem`).
pub fn make_cert(dir: &Path) {
    nearcast_testkit::tls::make_cert(&dir.join("ca.pem"), &dir.join("cert.pem"), &dir.join("key.pem"))
        .expect("openssl makes the test certificates");
}

/// A rustls client trusting `make_cert`'s CA in `dir`.
pub fn client_config(dir: &Path) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS stream to `addr` for server name `localhost`.
pub fn tls_connect(dir: &Path, addr: SocketAddr) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let conn = rustls::ClientConnection::new(client_config(dir), "localhost".try_into().unwrap()).unwrap();
    rustls::StreamOwned::new(conn, http::connect(addr).unwrap())
}

/// The `[tls]` section for a listener on a free port with `make_cert`'s leaf.
pub fn tls_toml(dir: &Path) -> String {
    format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string()
    )
}

/// The body curl gets from `https://localhost:{port}{target}`, trusting
/// `make_cert`'s CA in `dir`.
pub fn curl_https(dir: &Path, addr: SocketAddr, target: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(dir.join("ca.pem"))
        .arg(format!("https://localhost:{}{target}", addr.port()))
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
        .output()
        .expect("curl is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
pub mod origin;
