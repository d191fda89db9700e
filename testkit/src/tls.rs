//! Test certificates: a CA and a leaf for `localhost` and 127.0.0.1 signed
//! by it, made with the openssl command (a real X.509 toolchain, as an
//! operator would use).

use std::io;
use std::path::Path;
use std::process::Command;

/// Writes the CA to `ca` (its key beside it, `ca` with `.key`) and a leaf
/// signed by it to `cert` with its key at `key`. EC P-256, valid 30 days.
pub fn make_cert(ca: &Path, cert: &Path, key: &Path) -> io::Result<()> {
    let openssl = |args: &[&str]| -> io::Result<()> {
        let out = Command::new("openssl").args(args).output()?;
        if !out.status.success() {
            let e = String::from_utf8_lossy(&out.stderr);
            return Err(io::Error::other(format!("openssl {args:?}: {e}")));
        }
        Ok(())
    };
    let ca_key = ca.with_extension("key");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let (ca_key, ca, cert, key) = (s(&ca_key), s(ca), s(cert), s(key));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "30",
    ];
    let subject = ["-subj", "/CN=nearcast test CA", "-keyout", &ca_key, "-out", &ca];
    openssl(&[&["req", "-x509"], &ec[..], &subject[..]].concat())?;
    let leaf = [
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
    ];
    let signed_by = ["req", "-x509", "-CA", &ca, "-CAkey", &ca_key];
    openssl(&[&signed_by[..], &ec[..], &leaf[..], &["-keyout", &key, "-out", &cert]].concat())
}
