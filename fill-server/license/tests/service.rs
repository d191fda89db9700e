//! The license service on a real key store: what it answers to each kind
//! of caller, from a key store the packager's own code wrote.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use nearcast_license::jwt::sign_hs256;
use nearcast_license::{Auth, Config, JwtError, JwtKey, LicenseError, LicenseService};
use nearcast_packager::cenc::{KeyStore, Scheme, TitleKeys};
use nearcast_testkit::TempDir;

const ACCOUNTS: &[u8] = b"the account system's HS256 secret";
const NOW: u64 = 1_000_000;

/// Whether an error is the one expected.
type Is = fn(&LicenseError) -> bool;

fn entitlement(sub: &str, titles: &[&str], exp: u64, max: Option<u32>) -> String {
    let mut c = serde_json::json!({ "sub": sub, "exp": exp, "titles": titles });
    if let Some(m) = max {
        c["max_streams"] = m.into();
    }
    sign_hs256("accounts-1", ACCOUNTS, &c)
}

fn request(kids: &[[u8; 16]]) -> Vec<u8> {
    let kids: Vec<String> = kids.iter().map(|k| B64.encode(k)).collect();
    serde_json::to_vec(&serde_json::json!({ "kids": kids, "type": "temporary" })).unwrap()
}

fn service(dir: &TempDir) -> (LicenseService, TitleKeys) {
    let keys = TitleKeys::generate("film", Scheme::Cenc);
    KeyStore::new(&dir.join("keys")).save(&keys).unwrap();
    let s = LicenseService::new(Config {
        entitlement_keys: vec![JwtKey::hs256("accounts-1", ACCOUNTS).unwrap()],
        session_secret: b"our own session secret, 32 bytes".to_vec(),
        key_store: dir.join("keys"),
        session_ttl_secs: 3600,
        lease_secs: 60,
        device_window_secs: 86_400,
    })
    .unwrap();
    (s, keys)
}

#[test]
fn keys_go_only_to_entitled_players_within_their_stream_limit() {
    let dir = TempDir::new("license-service");
    let (s, keys) = service(&dir);
    assert!(s.protected("film") && !s.protected("other"));
    let video = keys.key("video").unwrap();
    let ok = entitlement("alice", &["film"], NOW + 600, Some(1));
    let license: serde_json::Value =
        serde_json::from_slice(&s.license(Auth::Bearer(&ok), &request(&[video.kid]), NOW).unwrap()).unwrap();
    assert_eq!(license["keys"][0]["k"], B64.encode(video.key));
    assert_eq!(s.key(Auth::Bearer(&ok), &video.kid, NOW).unwrap(), video.key);
    // Each refusal, with its reason.
    let cases: Vec<(Auth, Is)> = vec![
        (Auth::None, |e| matches!(e, LicenseError::NoEntitlement)),
        (Auth::Bearer("junk"), |e| {
            matches!(e, LicenseError::Entitlement(JwtError::Malformed))
        }),
        (Auth::Bearer(&ok[..ok.len() - 2]), |e| {
            matches!(
                e,
                LicenseError::Entitlement(JwtError::BadSignature | JwtError::Malformed)
            )
        }),
        (Auth::Session(&ok), |e| {
            matches!(e, LicenseError::Session(JwtError::UnknownKey(_)))
        }),
    ];
    for (auth, is) in cases {
        let e = s.license(auth, &request(&[video.kid]), NOW).unwrap_err();
        assert!(is(&e), "{auth:?}: {e}");
    }
    let expired = entitlement("alice", &["film"], NOW - 100, None);
    assert!(matches!(
        s.license(Auth::Bearer(&expired), &request(&[video.kid]), NOW),
        Err(LicenseError::Entitlement(JwtError::Expired { .. }))
    ));
    let forged = sign_hs256(
        "accounts-1",
        b"not the account system's secret!",
        &serde_json::json!({"sub": "mallory", "exp": NOW + 600, "titles": ["*"]}),
    );
    assert!(matches!(
        s.license(Auth::Bearer(&forged), &request(&[video.kid]), NOW),
        Err(LicenseError::Entitlement(JwtError::BadSignature))
    ));
    let other = entitlement("bob", &["another"], NOW + 600, None);
    assert!(matches!(
        s.license(Auth::Bearer(&other), &request(&[video.kid]), NOW),
        Err(LicenseError::NotEntitled { .. })
    ));
    assert!(matches!(
        s.license(Auth::Bearer(&ok), &request(&[[9; 16]]), NOW),
        Err(LicenseError::UnknownKey(_))
    ));
    assert!(matches!(
        s.license(Auth::Bearer(&ok), b"{}", NOW),
        Err(LicenseError::BadRequest(_))
    ));
    // alice's limit is one stream: a second token of hers (another
    // stream) waits until the first one's lease lapses.
    let second = entitlement("alice", &["*"], NOW + 601, Some(1));
    assert!(matches!(
        s.license(Auth::Bearer(&second), &request(&[video.kid]), NOW + 10),
        Err(LicenseError::StreamLimit { max: 1, .. })
    ));
    assert_eq!(s.renew(Auth::Bearer(&ok), NOW + 50).unwrap(), 60);
    assert!(
        s.license(Auth::Bearer(&second), &request(&[video.kid]), NOW + 100)
            .is_err(),
        "renewed, so still playing"
    );
    assert!(
        s.license(Auth::Bearer(&second), &request(&[video.kid]), NOW + 111)
            .is_ok(),
        "lapsed, so the place is free"
    );
}

#[test]
fn a_play_session_carries_its_entitlement_for_one_title() {
    let dir = TempDir::new("license-session");
    let (s, keys) = service(&dir);
    let audio = keys.key("audio").unwrap();
    let ent = entitlement("carol", &["*"], NOW + 100, None);
    let session = s.open_session(&ent, "film", NOW).unwrap();
    assert_eq!(s.key(Auth::Session(&session), &audio.kid, NOW).unwrap(), audio.key);
    // It lives no longer than its entitlement.
    assert!(matches!(
        s.key(Auth::Session(&session), &audio.kid, NOW + 200),
        Err(LicenseError::Session(JwtError::Expired { .. }))
    ));
    // A title packaged after start is found (the key store read again).
    let later = TitleKeys::generate("later", Scheme::Cbcs);
    KeyStore::new(&dir.join("keys")).save(&later).unwrap();
    let later_kid = later.key("video").unwrap().kid;
    assert!(matches!(
        s.key(Auth::Bearer(&ent), &later_kid, NOW + 1),
        Err(LicenseError::UnknownKey(_))
    ));
    assert!(s.may_reread(NOW + 1) && !s.may_reread(NOW + 1), "once a second");
    assert_eq!(s.reload().unwrap(), 2);
    assert!(
        s.key(Auth::Session(&session), &later_kid, NOW + 1).is_err(),
        "the session is for 'film' only"
    );
    assert!(s.key(Auth::Bearer(&ent), &later_kid, NOW + 2).is_ok());
    assert!(matches!(
        s.open_session(&entitlement("dan", &["x"], NOW + 100, None), "film", NOW),
        Err(LicenseError::NotEntitled { .. })
    ));
}

#[test]
fn a_device_limit_counts_the_devices_entitlements_name() {
    let dir = TempDir::new("license-devices");
    let (s, keys) = service(&dir);
    let kid = keys.key("video").unwrap().kid;
    let on = |device: Option<&str>, jti: &str| {
        let mut c =
            serde_json::json!({ "sub": "erin", "exp": NOW + 200_000, "titles": ["*"], "max_devices": 1, "jti": jti });
        if let Some(d) = device {
            c["device"] = d.into();
        }
        sign_hs256("accounts-1", ACCOUNTS, &c)
    };
    let tv = on(Some("tv-1"), "a");
    assert!(s.key(Auth::Bearer(&tv), &kid, NOW).is_ok());
    // Another stream on the same device is fine; another device is not.
    assert!(s.key(Auth::Bearer(&on(Some("tv-1"), "b")), &kid, NOW).is_ok());
    assert!(matches!(
        s.key(Auth::Bearer(&on(Some("phone-1"), "c")), &kid, NOW),
        Err(LicenseError::DeviceLimit { max: 1, .. })
    ));
    assert!(matches!(
        s.key(Auth::Bearer(&on(None, "d")), &kid, NOW),
        Err(LicenseError::NoDevice)
    ));
    // A play session carries the device: the phone's session is refused too.
    let session = s.open_session(&on(Some("phone-1"), "e"), "film", NOW).unwrap();
    assert!(matches!(
        s.key(Auth::Session(&session), &kid, NOW),
        Err(LicenseError::DeviceLimit { .. })
    ));
    // After the window (a day here) the phone may take the place.
    assert!(s
        .key(Auth::Bearer(&on(Some("phone-1"), "f")), &kid, NOW + 86_401)
        .is_ok());
}
