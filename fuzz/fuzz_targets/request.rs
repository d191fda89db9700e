//! Feeds arbitrary bytes through everything the appliance does with a
//! request before touching a file: the head parser, the path rules, the
//! token reader and the range evaluator. None of it may panic, and what the
//! path rules accept must be a plain relative path.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use nearcast_appliance::http::range::{evaluate_range, not_modified, Validators};
use nearcast_appliance::http::{parse_request, Parsed};
use nearcast_appliance::path::{query_param, ContentPath};
use nearcast_common::{Keyring, SigningKey};

fuzz_target!(|data: &[u8]| {
    let Ok(Parsed::Complete(req, used)) = parse_request(data, 8192) else {
        return;
    };
    assert!(used <= data.len());
    if let Ok(path) = ContentPath::parse(req.path) {
        let rel = path.relative();
        assert!(!rel.starts_with('/') && !rel.split('/').any(|s| s.is_empty() || s.starts_with('.')));
        let mut buf = [0u8; 256];
        if let Some(token) = query_param(req.query, "token", &mut buf) {
            let ring = Keyring::new(vec![SigningKey::new("k1", &[7; 32]).unwrap()]);
            let _ = ring.verify(path.url_path(), token, "192.0.2.1".parse().unwrap(), 1_800_000_000);
        }
    }
    let v = Validators { etag: b"\"1-2-3\"", modified: SystemTime::UNIX_EPOCH };
    for len in [0u64, 1, 1000, u64::MAX / 2] {
        let _ = evaluate_range(req.range, req.if_range, len, &v);
    }
    let _ = not_modified(req.if_none_match, req.if_modified_since, &v);
});
