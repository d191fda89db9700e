//! A box running the OS image in QEMU, as a member of this stack: enrolled
//! with a fresh key, its config partition written for this stack (the
//! guest reaches the host's loopback at 10.0.2.2), booted with its ports
//! forwarded to loopback. `nearcast qemu` and the image tests use it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nearcast_image::qemu::{Accel, Vm};

use crate::stack::{Stack, SITE};

/// Where the guest sees the host's loopback (QEMU user networking); the
/// box also sees every request from the host coming from there, so
/// players on the host are steered as that address (their URL tokens are
/// bound to the client's prefix).
pub const HOST_FROM_GUEST: &str = "10.0.2.2";

pub struct QemuOptions {
    pub accel: Accel,
    /// The trial boot of an update must pass its check within this.
    pub commit_within_secs: u64,
    /// The agent's download cap (fill and OS bundles); 0 = none.
    pub bandwidth_bytes_per_sec: u64,
    /// When the box may reboot into a non-emergency update; `None`: its
    /// fill window (always, here).
    pub install_window: Option<nearcast_agent::window::Window>,
}

pub struct QemuBox {
    pub id: String,
    pub vm: Vm,
    pub disk: PathBuf,
    work: PathBuf,
    accel: Accel,
    forwards: Vec<(u16, u16)>,
}

/// `url` with its loopback host swapped for the one the guest uses.
pub fn from_guest(url: &str) -> String {
    url.replacen("127.0.0.1", HOST_FROM_GUEST, 1)
}

impl Stack {
    /// Enrolls box `id`, provisions `disk`'s config partition for it and
    /// boots it. The stack's origin URL must be one the guest reaches
    /// (`Stack::start_with` and `from_guest`).
    pub fn add_qemu_box(&mut self, id: &str, disk: &Path, work: &Path, o: &QemuOptions) -> anyhow::Result<QemuBox> {
        // The ISP covers QEMU's NAT too (see HOST_FROM_GUEST).
        self.admin(
            "PUT",
            "/v1/admin/prefixes",
            "127.0.0.0/8 64500\n::1/128 64500\n10.0.2.0/24 64500\n",
        )?;
        let forwards = Vm::pick_forwards()?;
        let host = |guest: u16| forwards.iter().find(|(g, _)| *g == guest).map_or(0, |(_, h)| *h);
        let config = work.join("config");
        std::fs::create_dir_all(&config)?;
        self.enroll(id, &config.join("appliance.key"))?;
        make_tls_cert(work, &config)?;
        std::fs::write(
            config.join("appliance.toml"),
            format!(
                "listen = \"0.0.0.0:8080\"\nadmin_listen = \"0.0.0.0:9090\"\nthreads = 1\ndisks = [\"/data/content\"]\n\n\
                 [tls]\nlisten = \"0.0.0.0:8443\"\ncert = \"/config/tls.pem\"\nkey = \"/config/tls.key\"\n\n\
                 [auth]\nrequired = true\n\n[[auth.keys]]\nid = \"{}\"\nsecret_hex = \"{}\"\n",
                self.config.token_key_id, self.config.token_key_hex
            ),
        )?;
        let agent = nearcast_agent::Config {
            id: id.to_string(),
            fill_server: from_guest(&self.fill_url),
            fill_server_keys: vec![self.answer_key.clone()],
            key_file: "/config/appliance.key".into(),
            site: SITE.into(),
            public_url: format!("http://127.0.0.1:{}", host(8080)),
            appliance_admin: "http://127.0.0.1:9090".into(),
            disks: vec!["/data/content".into()],
            fill_window: nearcast_agent::window::Window::Always,
            heartbeat_secs: 2,
            manifest_poll_secs: 10,
            bandwidth_bytes_per_sec: o.bandwidth_bytes_per_sec,
            admin_listen: ([0, 0, 0, 0], 9190).into(),
            update: nearcast_agent::config::UpdateConfig {
                enabled: true,
                commit_within_secs: o.commit_within_secs,
                install_window: o.install_window,
                ..Default::default()
            },
            ..nearcast_agent::Config::default()
        };
        std::fs::write(config.join("agent.toml"), agent.to_toml())?;
        nearcast_image::build::provision(disk, &config, work).context("writing the config partition")?;
        let vm = Vm::start(disk, work, o.accel, &forwards)?;
        Ok(QemuBox {
            id: id.to_string(),
            vm,
            disk: disk.to_path_buf(),
            work: work.to_path_buf(),
            accel: o.accel,
            forwards,
        })
    }

    /// Polls `url` until it answers 2xx; the time it took.
    pub fn wait_http(&self, url: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if self.get(url).is_ok() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                anyhow::bail!("{url} did not answer within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The segment `check_segment` fetches.
pub const SEGMENT: &str = "360p/seg-00001.m4s";

/// A test CA (`work/tls-ca.pem`, for clients on the host) and a leaf for
/// `localhost` signed by it (`config/tls.pem`, `config/tls.key`, for the
/// box's HTTPS listener), made with openssl.
fn make_tls_cert(work: &Path, config: &Path) -> anyhow::Result<()> {
    nearcast_testkit::tls::make_cert(
        &work.join("tls-ca.pem"),
        &config.join("tls.pem"),
        &config.join("tls.key"),
    )
    .context("making the box's test certificate (apt-get install openssl)")
}

impl Stack {
    /// Box `id` as the fill server stores it (`null` when not enrolled).
    pub fn appliance(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        let list: serde_json::Value = serde_json::from_str(&self.admin("GET", "/v1/admin/appliances", "")?)?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or_default())
    }

    /// Waits until the fill server lists `title` in box `id`'s inventory.
    pub fn wait_title(&self, id: &str, title: &str, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let holds = self.appliance(id)?["inventory"]["titles"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == title));
            if holds {
                return Ok(());
            }
            if start.elapsed() > timeout {
                anyhow::bail!("{id} did not report {title} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Steers a player to `SEGMENT` of the sample title, fetches it from
    /// the first URL, which must be `box_url`'s, and compares it with the
    /// origin's file; its size.
    pub fn check_segment(&self, box_url: &str) -> anyhow::Result<usize> {
        let url = format!(
            "{}/v1/steer?title={}&file={SEGMENT}",
            self.fill_url,
            crate::stack::TITLE
        );
        let forwarded = [("x-forwarded-for", HOST_FROM_GUEST.to_string())];
        let answer: serde_json::Value = serde_json::from_str(&self.get_with("GET", &url, &forwarded, "")?)?;
        let first = answer["urls"][0].as_str().context("steering named no URL")?;
        anyhow::ensure!(
            first.starts_with(box_url),
            "steered to {first}, not to the box at {box_url}"
        );
        let got = self.get_bytes(first)?;
        let want = std::fs::read(self.config.origin_store.join(crate::stack::TITLE).join(SEGMENT))?;
        anyhow::ensure!(
            got.as_ref() == want.as_slice(),
            "the box served {} bytes that differ from the origin's {}",
            got.len(),
            want.len()
        );
        Ok(got.len())
    }
}

impl QemuBox {
    /// The box's serving URL on the host.
    pub fn url(&self) -> String {
        self.vm.url(8080)
    }

    /// Its HTTPS listener: `https://localhost:{port}` on the host (the
    /// certificate names localhost; `work/tls-ca.pem` signed it).
    pub fn https_port(&self) -> u16 {
        self.vm.host_port(8443)
    }

    /// The CA that signed the box's HTTPS certificate.
    pub fn tls_ca(&self) -> PathBuf {
        self.work.join("tls-ca.pem")
    }

    pub fn admin_url(&self) -> String {
        self.vm.url(9090)
    }

    /// Pulls the plug and powers the box on again (same disk, same ports).
    pub fn power_cycle(&mut self) -> anyhow::Result<()> {
        self.vm.kill();
        self.vm = Vm::start(&self.disk, &self.work, self.accel, &self.forwards)?;
        Ok(())
    }
}
