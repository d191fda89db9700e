//! The crypto info we hand the kernel, checked against a real rustls peer:
//! records sealed and opened the way the kernel does with exactly those
//! bytes (AES-GCM from `ring`) must be what the peer expects. The kernel
//! itself is exercised in the OS image test (QEMU), as this machine's
//! kernel has no kTLS.

use std::io::{Read, Write};
use std::sync::Arc;

use ring::aead;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConnection, ServerConnection, SupportedCipherSuite};

use super::*;

#[test]
fn record_edges_are_found_however_the_bytes_are_split() {
    // Two records (5 + 3 body bytes, 5 + 0), then half a header.
    let stream = [22, 3, 3, 0, 3, 1, 2, 3, 23, 3, 3, 0, 0, 23, 3];
    for split in 0..=13 {
        let mut e = RecordEdge::default();
        e.feed(&stream[..split]);
        e.feed(&stream[split..13]);
        assert!(e.at_edge(), "split at {split}");
        e.feed(&stream[13..]);
        assert!(!e.at_edge());
    }
}

#[test]
fn tls12_handover_never_meets_a_nonce_rustls_used() {
    assert_eq!(tls12_handover_nonce(5u64.to_be_bytes(), 1), 6u64.to_be_bytes());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..200u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let base = if round < 3 {
            [0, u64::MAX, u64::MAX - 3][round as usize]
        } else {
            x
        };
        for used in [1, 2, 3, 4, 5, 17, 255, 256, 257, 1000] {
            let start = u64::from_be_bytes(tls12_handover_nonce(base.to_be_bytes(), used));
            for s in 0..used {
                let old = base ^ s;
                // The kernel uses start, start + 1, … for its records.
                assert!(
                    old.wrapping_sub(start) > 1 << 40,
                    "base {base:#x} used {used}: {old:#x} from {start:#x}"
                );
            }
        }
    }
}

fn cert(dir: &std::path::Path) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let status = std::process::Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    let chain = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (chain, PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap())
}

/// A finished handshake between a rustls client offering only `suite`
/// and our server config.
fn handshake(dir: &std::path::Path, suite: SupportedCipherSuite) -> (ClientConnection, ServerConnection) {
    let (chain, key) = cert(dir);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key)
        .unwrap();
    server_cfg.enable_secret_extraction = true;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(chain[0].clone()).unwrap();
    let client_provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        ..rustls::crypto::ring::default_provider()
    };
    let client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
        .with_protocol_versions(&[suite.version()])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client = ClientConnection::new(Arc::new(client_cfg), "localhost".try_into().unwrap()).unwrap();
    let mut server = ServerConnection::new(Arc::new(server_cfg)).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets().unwrap();
        if !client.is_handshaking() && !server.is_handshaking() && !server.wants_write() {
            break;
        }
    }
    assert!(!server.is_handshaking() && !client.is_handshaking());
    (client, server)
}

/// The fields of a crypto info, read back at the kernel's offsets.
struct Info {
    version: u16,
    cipher: u16,
    iv: [u8; 8],
    key: Vec<u8>,
    salt: [u8; 4],
    seq: u64,
}

fn parse(b: &[u8]) -> Info {
    let cipher = u16::from_ne_bytes([b[2], b[3]]);
    let klen = if cipher == TLS_CIPHER_AES_GCM_128 { 16 } else { 32 };
    assert_eq!(b.len(), 4 + 8 + klen + 4 + 8, "struct size");
    Info {
        version: u16::from_ne_bytes([b[0], b[1]]),
        cipher,
        iv: b[4..12].try_into().unwrap(),
        key: b[12..12 + klen].to_vec(),
        salt: b[12 + klen..16 + klen].try_into().unwrap(),
        seq: u64::from_be_bytes(b[16 + klen..24 + klen].try_into().unwrap()),
    }
}

fn aead_key(info: &Info) -> aead::LessSafeKey {
    let alg = if info.cipher == TLS_CIPHER_AES_GCM_128 {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    aead::LessSafeKey::new(aead::UnboundKey::new(alg, &info.key).unwrap())
}

/// Seals `plain` as the kernel's `k`-th record after the handover.
fn kernel_seal(info: &Info, k: u64, plain: &[u8]) -> Vec<u8> {
    let key = aead_key(info);
    let seq = info.seq + k;
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&info.salt);
    if info.version == TLS_1_3_VERSION {
        nonce[4..].copy_from_slice(&(u64::from_be_bytes(info.iv) ^ seq).to_be_bytes());
        let mut body = plain.to_vec();
        body.push(23); // the inner content type
        let len = (body.len() + 16) as u16;
        let header = [23, 3, 3, (len >> 8) as u8, len as u8];
        let aad = aead::Aad::from(header);
        key.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aad, &mut body)
            .unwrap();
        [&header[..], &body].concat()
    } else {
        let explicit = u64::from_be_bytes(info.iv).wrapping_add(k).to_be_bytes();
        nonce[4..].copy_from_slice(&explicit);
        let mut aad = seq.to_be_bytes().to_vec();
        aad.extend_from_slice(&[23, 3, 3, (plain.len() >> 8) as u8, plain.len() as u8]);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut body,
        )
        .unwrap();
        let len = (8 + body.len()) as u16;
        [&[23, 3, 3, (len >> 8) as u8, len as u8][..], &explicit, &body].concat()
    }
}

/// Opens one record the way the kernel's receive side would.
fn kernel_open(info: &Info, record: &[u8]) -> Vec<u8> {
    let key = aead_key(info);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&info.salt);
    let (header, body) = record.split_at(5);
    if info.version == TLS_1_3_VERSION {
        nonce[4..].copy_from_slice(&(u64::from_be_bytes(info.iv) ^ info.seq).to_be_bytes());
        let mut body = body.to_vec();
        let plain = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(header),
                &mut body,
            )
            .expect("the kernel could open it");
        let typ = plain.iter().rposition(|&b| b != 0).unwrap();
        assert_eq!(plain[typ], 23, "application data");
        plain[..typ].to_vec()
    } else {
        let (explicit, sealed) = body.split_at(8);
        nonce[4..].copy_from_slice(explicit);
        let plain_len = sealed.len() - 16;
        let mut aad = info.seq.to_be_bytes().to_vec();
        aad.extend_from_slice(&[23, 3, 3, (plain_len >> 8) as u8, plain_len as u8]);
        let mut sealed = sealed.to_vec();
        let nonce = aead::Nonce::assume_unique_for_key(nonce);
        key.open_in_place(nonce, aead::Aad::from(aad), &mut sealed)
            .expect("the kernel could open it")
            .to_vec()
    }
}

#[test]
fn the_kernel_gets_keys_the_peer_agrees_with() {
    use rustls::crypto::ring::cipher_suite::*;
    let dir = nearcast_testkit::TempDir::new("ktls-keys");
    for suite in [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ] {
        let (mut client, server) = handshake(&dir, suite);
        assert!(kernel_suite(server.negotiated_cipher_suite().unwrap().suite()));
        let version = server.protocol_version().unwrap();
        // The client's first request, sealed by rustls, before the handover.
        client.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut request = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut request).unwrap();
        }
        let secrets = server.dangerous_extract_secrets().unwrap();
        let tx = parse(&crypto_info(version, secrets.tx.0, &secrets.tx.1, Direction::Send).unwrap());
        let rx = parse(&crypto_info(version, secrets.rx.0, &secrets.rx.1, Direction::Receive).unwrap());
        let want = if version == ProtocolVersion::TLSv1_3 {
            TLS_1_3_VERSION
        } else {
            TLS_1_2_VERSION
        };
        assert_eq!((tx.version, rx.version), (want, want), "{suite:?}");
        // Receive: the kernel opens what the client sent.
        assert_eq!(kernel_open(&rx, &request), b"GET / HTTP/1.1\r\n\r\n", "{suite:?}");
        // Send: the client opens what the kernel seals, record after record.
        let mut records = Vec::new();
        for k in 0..3 {
            records.extend(kernel_seal(&tx, k, format!("body part {k};").as_bytes()));
        }
        client.read_tls(&mut records.as_slice()).unwrap();
        client
            .process_new_packets()
            .unwrap_or_else(|e| panic!("{suite:?}: {e}"));
        let mut got = String::new();
        let _ = client.reader().read_to_string(&mut got);
        assert_eq!(got, "body part 0;body part 1;body part 2;", "{suite:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
