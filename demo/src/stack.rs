//! Building the stack: each step is what an operator would do (package a
//! title, start the fill server, create the ISP and site, enroll a box,
//! start its appliance, feed play logs), done through the real APIs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hyper::body::Bytes;
use nearcast_agent::http::fetch_small;
use nearcast_appliance::config::{AuthConfig, Config as ApplianceConfig, KeyConfig};
use nearcast_appliance::Server;
use nearcast_common::request_auth::ApplianceKey;
use nearcast_fill_server::app::App;
use nearcast_fill_server::config::Config as FillConfig;
use nearcast_fill_server::server::Background;

/// The one ISP of the stack, covering every loopback client.
pub const ISP: &str = "loopback-isp";
pub const SITE: &str = "loopback-site";
/// The sample title's name once packaged.
pub const TITLE: &str = "sample";
/// The fill server's admin bearer token in this stack.
pub const ADMIN_TOKEN: &str = "nearcast-demo-admin-token";
const TOKEN_KEY_ID: &str = "demo";
/// The key id of the stack's stand-in account system.
const ENTITLEMENT_KEY_ID: &str = "demo-accounts";

/// Ports to listen on; 0 picks a free one.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub fill: u16,
    /// The fill server's admin listener (operators, the dashboard).
    pub fill_admin: u16,
    pub origin: u16,
    pub origin_admin: u16,
    /// The live door: encoders' ingest and players' `/l/`.
    pub live: u16,
    /// Box `i` serves on `box_http + i`, its admin on `box_admin + i` and
    /// its agent's admin on `agent_admin + i`.
    pub box_http: u16,
    pub box_admin: u16,
    pub agent_admin: u16,
}

impl Ports {
    /// Free ports everywhere (tests).
    pub const EPHEMERAL: Ports = Ports {
        fill: 0,
        fill_admin: 0,
        origin: 0,
        origin_admin: 0,
        live: 0,
        box_http: 0,
        box_admin: 0,
        agent_admin: 0,
    };
    /// The demo's well-known ports.
    pub const DEMO: Ports = Ports {
        fill: 7070,
        fill_admin: 7074,
        origin: 7071,
        origin_admin: 7072,
        live: 7073,
        box_http: 8080,
        box_admin: 9090,
        agent_admin: 9190,
    };

    fn at(base: u16, i: usize) -> SocketAddr {
        let port = if base == 0 { 0 } else { base + i as u16 };
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

pub use crate::sample::{sample_extras, sample_inputs};

/// One appliance: its engine (running until stopped) and the config its
/// agent runs with (written to `agent_config`).
pub struct BoxSide {
    pub id: String,
    pub appliance: Option<Server>,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Its first disk.
    pub disk: PathBuf,
    pub agent: nearcast_agent::Config,
    pub agent_config: PathBuf,
}

impl BoxSide {
    /// Stops the appliance (drains, then closes its listeners).
    pub fn stop_appliance(&mut self) {
        if let Some(s) = self.appliance.take() {
            s.shutdown();
            let _ = s.join();
        }
    }
}

pub struct Stack {
    pub root: PathBuf,
    pub fill_url: String,
    /// The HS256 secret the stack's stand-in account system signs
    /// entitlements with (`entitlement`).
    pub entitlement_secret: [u8; 32],
    /// The fill server's answer key as boxes trust it (`"{id} {hex}"`).
    pub answer_key: String,
    /// The fill server's admin listener (`/v1/admin/…`, the dashboard).
    pub admin_url: String,
    /// The live door's base URL.
    pub live_url: String,
    pub origin: Server,
    pub config: FillConfig,
    pub boxes: Vec<BoxSide>,
    ports: Ports,
    _fill: Background,
    _admin: Background,
    _live: Background,
    /// Runs the stack's own control calls.
    rt: tokio::runtime::Runtime,
}

impl Stack {
    /// Starts the origin and the fill server under `root` (SQLite there),
    /// packages the sample title if the origin lacks it, and creates the
    /// ISP and site. `heartbeat_timeout_secs` is how long a silent box
    /// stays steerable.
    pub fn start(root: &Path, ports: Ports, heartbeat_timeout_secs: u64) -> anyhow::Result<Stack> {
        Stack::start_with(root, ports, heartbeat_timeout_secs, |_| {})
    }

    /// `start`, with `tune` changing the fill server's config once the
    /// origin listens (a QEMU box reaches the host at another address).
    pub fn start_with(
        root: &Path,
        ports: Ports,
        heartbeat_timeout_secs: u64,
        tune: impl FnOnce(&mut FillConfig),
    ) -> anyhow::Result<Stack> {
        std::fs::create_dir_all(root).with_context(|| root.display().to_string())?;
        let origin_store = root.join("origin");
        package_sample(&origin_store)?;
        let key_hex = nearcast_common::digest::hex(&random_secret()?);
        let entitlement_secret = random_secret()?;
        let config = FillConfig {
            listen: Ports::at(ports.fill, 0),
            admin_listen: Ports::at(ports.fill_admin, 0),
            database: root.join("fill-server.db").display().to_string(),
            origin_store,
            origin_listen: Ports::at(ports.origin, 0),
            origin_admin_listen: Ports::at(ports.origin_admin, 0),
            heartbeat_timeout_secs,
            token_key_id: TOKEN_KEY_ID.into(),
            token_key_hex: key_hex,
            admin_token: ADMIN_TOKEN.into(),
            // Tests steer for other client addresses with X-Forwarded-For.
            trusted_proxies: vec!["127.0.0.1/32".into()],
            license: license_config(root, &entitlement_secret),
            ..FillConfig::default()
        };
        let origin = nearcast_fill_server::origin::start_origin(&config).context("starting the origin")?;
        // The live door listens first: the fill server hands out its URL.
        let live_listener = std::net::TcpListener::bind(Ports::at(ports.live, 0)).context("the live port")?;
        let live_addr = live_listener.local_addr()?;
        drop(live_listener);
        let mut config = FillConfig {
            origin_url: format!("http://{}", origin.http_addr),
            os_bundles: root.join("os-bundles"),
            answer_key_file: root.join("answer.key"),
            live_listen: live_addr,
            live_url: format!("http://{live_addr}"),
            ..config
        };
        tune(&mut config);
        let store = nearcast_fill_server::store::open(&config.database)?;
        let app = App::start(store, config.clone())?;
        app.misses.watch(origin.viewer_bytes());
        let answer_key = app.answer.public_entry();
        let live = nearcast_fill_server::live::spawn_background(app.clone(), config.live_listen)
            .context("starting the live door")?;
        let admin = nearcast_fill_server::server::spawn_admin_background(app.clone(), config.admin_listen)
            .context("starting the fill server's admin listener")?;
        let fill =
            nearcast_fill_server::server::spawn_background(app, config.listen).context("starting the fill server")?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let stack = Stack {
            root: root.to_path_buf(),
            entitlement_secret,
            fill_url: format!(
                "{}://{}",
                if config.tls_cert.is_some() { "https" } else { "http" },
                fill.addr
            ),
            answer_key,
            admin_url: format!("http://{}", admin.addr),
            live_url: format!("http://{}", live.addr),
            origin,
            config,
            boxes: Vec::new(),
            ports,
            _fill: fill,
            _admin: admin,
            _live: live,
            rt,
        };
        stack.add_isp_and_site()?;
        Ok(stack)
    }

    /// The one ISP (all of loopback) and its site.
    fn add_isp_and_site(&self) -> anyhow::Result<()> {
        self.admin(
            "POST",
            "/v1/admin/isps",
            &format!(r#"{{"name":"{ISP}","asns":[64500]}}"#),
        )?;
        self.admin("PUT", "/v1/admin/prefixes", "127.0.0.0/8 64500\n::1/128 64500\n")?;
        self.admin(
            "POST",
            "/v1/admin/sites",
            &format!(r#"{{"name":"{SITE}","isp":"{ISP}"}}"#),
        )?;
        Ok(())
    }

    /// An admin call (bearer token) to the fill server.
    pub fn admin(&self, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
        let auth = [("authorization", format!("Bearer {ADMIN_TOKEN}"))];
        self.get_with(method, &format!("{}{path}", self.admin_url), &auth, body)
    }

    /// An admin call with a binary body (an OS bundle upload).
    pub fn admin_bytes(&self, method: &str, path: &str, body: Vec<u8>) -> anyhow::Result<String> {
        let auth = [("authorization", format!("Bearer {ADMIN_TOKEN}"))];
        let url = format!("{}{path}", self.admin_url);
        let bytes = self.rt.block_on(fetch_small(method, &url, &auth, Bytes::from(body)))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A plain request; the body of a 2xx answer as text.
    pub fn get(&self, url: &str) -> anyhow::Result<String> {
        self.get_with("GET", url, &[], "")
    }

    /// A plain GET; the body of a 2xx answer as bytes.
    pub fn get_bytes(&self, url: &str) -> anyhow::Result<Bytes> {
        Ok(self.rt.block_on(fetch_small("GET", url, &[], Bytes::new()))?)
    }

    /// A request with extra headers; the body of a 2xx answer as text.
    pub fn get_with(&self, method: &str, url: &str, headers: &[(&str, String)], body: &str) -> anyhow::Result<String> {
        let bytes = self
            .rt
            .block_on(fetch_small(method, url, headers, Bytes::from(body.to_string())))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Makes a new key for appliance `id`, writes it (PKCS#8) to
    /// `key_file` and enrolls its public half with the fill server.
    pub fn enroll(&self, id: &str, key_file: &Path) -> anyhow::Result<()> {
        let der = ApplianceKey::generate_pkcs8()?;
        std::fs::write(key_file, &der).with_context(|| key_file.display().to_string())?;
        let public = ApplianceKey::from_pkcs8(&der)?.public_hex();
        self.admin(
            "POST",
            "/v1/admin/appliances",
            &format!(r#"{{"id":"{id}","public_key":"{public}"}}"#),
        )?;
        Ok(())
    }

    /// Enrolls box number `self.boxes.len()`, writes its agent's key and
    /// config (`tune` may change it; `disk0` is its one disk by default)
    /// and starts its appliance (tokens required) on the agent's disks.
    pub fn add_box(&mut self, tune: impl FnOnce(&mut nearcast_agent::Config)) -> anyhow::Result<&mut BoxSide> {
        self.add_box_with(tune, |_| {})
    }

    /// `add_box`, with `tune_appliance` changing the appliance's config too
    /// (a rate cap, say).
    pub fn add_box_with(
        &mut self,
        tune: impl FnOnce(&mut nearcast_agent::Config),
        tune_appliance: impl FnOnce(&mut ApplianceConfig),
    ) -> anyhow::Result<&mut BoxSide> {
        let i = self.boxes.len();
        let id = format!("box-{}", i + 1);
        let dir = self.root.join(&id);
        let disk = dir.join("disk0");
        std::fs::create_dir_all(&disk)?;
        let key_file = dir.join("appliance.key");
        self.enroll(&id, &key_file)?;
        let mut agent = nearcast_agent::Config {
            id: id.clone(),
            fill_server: self.fill_url.clone(),
            fill_server_keys: vec![self.answer_key.clone()],
            key_file,
            site: SITE.into(),
            disks: vec![disk.clone()],
            capacity_bytes: 1 << 30,
            fill_window: nearcast_agent::window::Window::Always,
            heartbeat_secs: 1,
            admin_listen: Ports::at(self.ports.agent_admin, i),
            // Set below once the appliance listens.
            public_url: String::new(),
            ..nearcast_agent::Config::default()
        };
        tune(&mut agent);
        // The appliance serves the disks the agent fills.
        let mut appliance = ApplianceConfig {
            listen: Ports::at(self.ports.box_http, i),
            admin_listen: Ports::at(self.ports.box_admin, i),
            threads: 1,
            disks: agent.disks.clone(),
            auth: AuthConfig {
                required: true,
                keys: vec![KeyConfig {
                    id: TOKEN_KEY_ID.into(),
                    secret_hex: self.config.token_key_hex.clone(),
                }],
            },
            ..ApplianceConfig::default()
        };
        tune_appliance(&mut appliance);
        let appliance = Server::start(appliance).with_context(|| format!("starting {id}'s appliance"))?;
        // Players reach the appliance itself, unless `tune` put something
        // in front of it (a test's proxy).
        if agent.public_url.is_empty() {
            agent.public_url = format!("http://{}", appliance.http_addr);
        }
        agent.appliance_admin = format!("http://{}", appliance.admin_addr);
        let agent_config = dir.join("agent.toml");
        std::fs::write(&agent_config, agent.to_toml())?;
        self.boxes.push(BoxSide {
            id,
            http_addr: appliance.http_addr,
            admin_addr: appliance.admin_addr,
            appliance: Some(appliance),
            disk: agent.disks.first().cloned().unwrap_or(disk),
            agent,
            agent_config,
        });
        Ok(self.boxes.last_mut().expect("just pushed"))
    }

    /// A title-wide URL token for `title` (any client, an hour), as a
    /// steered player would hold.
    pub fn title_token(&self, title: &str) -> anyhow::Result<String> {
        let key = nearcast_common::SigningKey::from_hex(&self.config.token_key_id, &self.config.token_key_hex)?;
        let grant = nearcast_common::Grant {
            expires: unix_now() + 3600,
            client_prefix: None,
        };
        Ok(key.sign(&format!("/c/{title}/"), &grant))
    }

    /// Packages the sample's renditions again as another title.
    pub fn package_copy(&self, title: &str) -> anyhow::Result<nearcast_packager::TitleIndex> {
        let opts = nearcast_packager::Options {
            title: nearcast_common::Name::new(title)?,
            store: self.config.origin_store.clone(),
            target: 4.0,
            progress: false,
            extras: sample_extras(),
            encrypt: None,
        };
        Ok(nearcast_packager::package(&sample_inputs(), &opts)?)
    }

    /// Packages the sample's renditions again as `title`, encrypted with
    /// `scheme`; keys in the stack's key store, licenses from its fill
    /// server.
    pub fn package_encrypted(
        &self,
        title: &str,
        scheme: nearcast_packager::cenc::Scheme,
    ) -> anyhow::Result<nearcast_packager::TitleIndex> {
        let opts = nearcast_packager::Options {
            title: nearcast_common::Name::new(title)?,
            store: self.config.origin_store.clone(),
            target: 4.0,
            progress: false,
            extras: Default::default(),
            encrypt: Some(nearcast_packager::package::Encryption {
                scheme,
                key_store: self.config.license.key_store.clone(),
                license_url: format!("{}/v1/license", self.fill_url),
                cpix: None,
                key_per_rung_group: false,
            }),
        };
        Ok(nearcast_packager::package(&sample_inputs(), &opts)?)
    }

    /// An entitlement as the streaming service's account system would
    /// issue it: `sub` may watch `titles` (`*`: all) for `ttl_secs`, at
    /// most `max_streams` at once.
    pub fn entitlement(&self, sub: &str, titles: &[&str], ttl_secs: u64, max_streams: Option<u32>) -> String {
        let mut claims = serde_json::json!({ "sub": sub, "exp": unix_now() + ttl_secs, "titles": titles });
        if let Some(m) = max_streams {
            claims["max_streams"] = m.into();
        }
        nearcast_license::jwt::sign_hs256(ENTITLEMENT_KEY_ID, &self.entitlement_secret, &claims)
    }

    /// Play logs that make `title` the ISP's most watched yesterday, so
    /// tomorrow's manifests rank it first.
    pub fn make_popular(&self, title: &str, plays: usize) -> anyhow::Result<()> {
        let yesterday = unix_now().saturating_sub(86_400);
        let log: String = (0..plays)
            .map(|i| {
                format!(
                    "{},{title},127.0.0.{},{}\n",
                    yesterday + i as u64,
                    1 + i % 200,
                    50_000_000
                )
            })
            .collect();
        self.admin("POST", "/v1/admin/playlogs", &format!("time,title,client,bytes\n{log}"))?;
        Ok(())
    }
}

pub use nearcast_common::unix_now;

/// A fresh random URL-token secret for this stack.
/// Packages the sample title into `origin_store` unless it is there.
fn package_sample(origin_store: &Path) -> anyhow::Result<()> {
    let index = origin_store.join(TITLE).join(nearcast_packager::index::INDEX_FILE);
    if index.is_file() {
        return Ok(());
    }
    let opts = nearcast_packager::Options {
        title: nearcast_common::Name::new(TITLE)?,
        store: origin_store.to_path_buf(),
        target: 4.0,
        progress: false,
        extras: sample_extras(),
        encrypt: None,
    };
    nearcast_packager::package(&sample_inputs(), &opts).context("packaging the sample title")?;
    Ok(())
}

pub(crate) fn random_secret() -> anyhow::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .context("reading /dev/urandom")?;
    Ok(b)
}

/// The stack's license service: keys in `root/keys`, entitlements from
/// its stand-in account system's HS256 `secret`.
fn license_config(root: &Path, secret: &[u8; 32]) -> nearcast_fill_server::config::LicenseConfig {
    nearcast_fill_server::config::LicenseConfig {
        key_store: root.join("keys"),
        entitlement_keys: vec![nearcast_fill_server::config::EntitlementKey {
            id: ENTITLEMENT_KEY_ID.into(),
            alg: nearcast_license::Alg::HS256,
            secret_hex: nearcast_common::digest::hex(secret),
            public_key_hex: String::new(),
        }],
        ..Default::default()
    }
}
