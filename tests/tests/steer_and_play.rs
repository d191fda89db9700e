//! Steering with a real player: the sample title is packaged into the
//! origin store and placed on an appliance that enforces tokens; the
//! appliance is enrolled, registered and heartbeats with signed calls;
//! ffmpeg then plays the title through the fill server's rewritten HLS and
//! DASH manifests. Every media request must reach the appliance with a
//! valid token (no 403 anywhere) and none may fall back to the origin.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use nearcast_appliance::config::{AuthConfig, Config as ApplianceConfig, KeyConfig};
use nearcast_common::request_auth::ApplianceKey;
use nearcast_e2e::{assert_plays, sample_inputs};
use nearcast_fill_server::app::App;
use nearcast_fill_server::config::Config;
use nearcast_packager::{package, Options};

const KEY_HEX: &str = "7777777777777777777777777777777777777777777777777777777777777777";
const ADMIN: &str = "e2e-admin-token-0123456789";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn curl(method: &str, url: &str, headers: &[(&str, String)], body: &str) -> String {
    let mut c = Command::new("curl");
    c.args(["-sS", "--fail-with-body", "-X", method, url, "--data-binary", body]);
    for (k, v) in headers {
        c.args(["-H", &format!("{k}: {v}")]);
    }
    let out = c.output().expect("curl installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{method} {url}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn metric(admin: std::net::SocketAddr, series: &str) -> f64 {
    let text = curl("GET", &format!("http://{admin}/metrics"), &[], "");
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn a_player_is_steered_to_the_appliance_and_plays_with_tokens() {
    let root = std::env::temp_dir().join(format!("nearcast-e2e-steer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let inputs = sample_inputs();
    let opts = Options {
        title: "sample".into(),
        store: root.join("origin"),
        target: 4.0,
        progress: false,
    };
    package(&inputs, &opts).expect("package");
    // The fill is the agent's job (not built yet): place the title by copy.
    copy_dir(&root.join("origin/sample"), &root.join("disk0/sample"));

    let appliance = nearcast_appliance::Server::start(ApplianceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        threads: 2,
        disks: vec![root.join("disk0")],
        auth: AuthConfig {
            required: true,
            keys: vec![KeyConfig {
                id: "k1".into(),
                secret_hex: KEY_HEX.into(),
            }],
        },
        ..ApplianceConfig::default()
    })
    .unwrap();
    let config = Config {
        database: root.join("fs.db").display().to_string(),
        origin_store: root.join("origin"),
        origin_listen: "127.0.0.1:0".parse().unwrap(),
        origin_admin_listen: "127.0.0.1:0".parse().unwrap(),
        token_key_id: "k1".into(),
        token_key_hex: KEY_HEX.into(),
        admin_token: ADMIN.into(),
        ..Config::default()
    };
    let origin = nearcast_fill_server::origin::start_origin(&config).unwrap();
    let config = Config {
        origin_url: format!("http://{}", origin.http_addr),
        ..config
    };
    let store = nearcast_fill_server::store::open(&config.database).unwrap();
    let app = Arc::new(App::new(store, config).unwrap());
    let bg = nearcast_fill_server::server::spawn_background(app, "127.0.0.1:0".parse().unwrap()).unwrap();
    let fs = format!("http://{}", bg.addr);

    // Operator: ISP covering loopback clients, a site, the box's key.
    let bearer = [("authorization", format!("Bearer {ADMIN}"))];
    curl(
        "POST",
        &format!("{fs}/v1/admin/isps"),
        &bearer,
        r#"{"name":"lo-isp","asns":[64500]}"#,
    );
    curl(
        "PUT",
        &format!("{fs}/v1/admin/prefixes"),
        &bearer,
        "127.0.0.0/8 64500\n",
    );
    curl(
        "POST",
        &format!("{fs}/v1/admin/sites"),
        &bearer,
        r#"{"name":"lo-site","isp":"lo-isp"}"#,
    );
    let key = ApplianceKey::from_pkcs8(&ApplianceKey::generate_pkcs8().unwrap()).unwrap();
    curl(
        "POST",
        &format!("{fs}/v1/admin/appliances"),
        &bearer,
        &format!(r#"{{"id":"box-1","public_key":"{}"}}"#, key.public_hex()),
    );
    // The appliance: register, heartbeat, inventory, each signed.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let signed = |method: &str, path: &str, body: &str| {
        let h: Vec<(&str, String)> = key
            .sign("box-1", method, path, now, body.as_bytes())
            .into_iter()
            .collect();
        curl(method, &format!("{fs}{path}"), &h, body)
    };
    let reg = format!(
        r#"{{"site":"lo-site","url":"http://{}","capacity_bytes":100000000}}"#,
        appliance.http_addr
    );
    signed("POST", "/v1/appliances/box-1/register", &reg);
    signed(
        "POST",
        "/v1/appliances/box-1/heartbeat",
        r#"{"health":"ok","load":0.1,"free_bytes":1}"#,
    );
    signed(
        "PUT",
        "/v1/appliances/box-1/inventory",
        r#"{"version":"1","titles":["sample"]}"#,
    );

    // Steering names the appliance first, the origin last.
    let answer = curl("GET", &format!("{fs}/v1/steer?title=sample"), &[], "");
    assert!(
        answer.contains(&format!("\"http://{}/c/sample/master.m3u8?token=", appliance.http_addr)),
        "{answer}"
    );

    // A real player, through both manifests.
    for manifest in ["master.m3u8", "manifest.mpd"] {
        assert_plays(&format!("{fs}/v1/play/sample/{manifest}"));
    }
    // ffmpeg asks for `bytes=0-`, answered 206 like nginx does.
    let served = metric(appliance.admin_addr, "nearcast_requests_total{code=\"200\"}")
        + metric(appliance.admin_addr, "nearcast_requests_total{code=\"206\"}");
    assert!(served > 20.0, "the appliance served the segments ({served})");
    assert_eq!(
        metric(appliance.admin_addr, "nearcast_requests_total{code=\"403\"}"),
        0.0,
        "every token was accepted"
    );
    for code in ["200", "206"] {
        let series = format!("nearcast_requests_total{{code=\"{code}\"}}");
        assert_eq!(metric(origin.admin_addr, &series), 0.0, "nothing from the origin");
    }
    // Without the fill server's token, the appliance refuses.
    let bare = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/c/sample/360p/init.mp4", appliance.http_addr),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bare.stdout), "403");
    appliance.shutdown();
    origin.shutdown();
}
