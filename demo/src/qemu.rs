//! `nearcast qemu`: the developer's QEMU runner. A fresh stack on
//! loopback, the image booted as one of its boxes, then the three things
//! that say the image works: it serves (`/healthz`, with the
//! boot-to-serving time), it fills, and a steered segment it serves has
//! the origin's bytes.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use nearcast::qemu_box::{from_guest, QemuOptions};
use nearcast::stack::{Ports, Stack, TITLE};
use nearcast_image::qemu::Accel;

pub fn run(image: &Path, dir: &Path, kvm: bool, keep: bool) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let disk = dir.join("disk.img");
    std::fs::copy(image, &disk).with_context(|| format!("{} (build it: scripts/image)", image.display()))?;
    println!("starting the stack …");
    let mut stack = Stack::start_with(&dir.join("stack"), Ports::EPHEMERAL, 30, |c| {
        c.origin_url = from_guest(&c.origin_url);
    })?;
    stack.make_popular(TITLE, 500)?;
    let accel = if kvm { Accel::Kvm } else { Accel::Tcg };
    let opts = QemuOptions {
        accel,
        commit_within_secs: 180,
        bandwidth_bytes_per_sec: 0,
        install_window: None,
    };
    println!("booting {} in QEMU ({accel:?}) …", disk.display());
    let qbox = stack.add_qemu_box("qemu-1", &disk, &dir.join("vm"), &opts)?;
    let booted = stack
        .wait_http(&format!("{}/healthz", qbox.admin_url()), Duration::from_secs(300))
        .with_context(|| format!("console: {}", qbox.vm.serial_log.display()))?;
    println!("boot to serving: {:.1} s", booted.as_secs_f64());
    stack.wait_title(&qbox.id, TITLE, Duration::from_secs(300))?;
    println!("filled: {TITLE}");
    let n = stack.check_segment(&qbox.url())?;
    println!(
        "segment {} from the box: {n} bytes, same as the origin's",
        nearcast::qemu_box::SEGMENT
    );
    if keep {
        println!(
            "  box:      {}  (admin {}, agent {})",
            qbox.url(),
            qbox.admin_url(),
            qbox.vm.url(9190)
        );
        println!(
            "  https:    https://localhost:{}  (kernel TLS; curl --cacert {} --resolve localhost:{}:127.0.0.1)",
            qbox.https_port(),
            qbox.tls_ca().display(),
            qbox.https_port()
        );
        println!("  steering: curl '{}/v1/steer?title={TITLE}'", stack.fill_url);
        println!("  console:  tail -f {}", qbox.vm.serial_log.display());
        println!("  Ctrl-C stops everything.");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(tokio::signal::ctrl_c())?;
    }
    drop(qbox);
    stack.origin.shutdown();
    Ok(())
}
