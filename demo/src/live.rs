//! A live event on the stack: created through the admin API, with
//! Debian's ffmpeg as its encoder pushing a test ladder (wall clock burned
//! in) into the live door. `nearcast demo --live` runs one; the browser
//! tests play one.

use std::process::Child;

use anyhow::Context;
use nearcast_packager::live::encoder::{self, Rung};

use crate::stack::{random_secret, Stack};

/// The demo's ladder: two video rungs and AAC audio.
pub const LADDER: [Rung; 2] = [Rung { height: 360, kbps: 800 }, Rung { height: 180, kbps: 300 }];

/// A running encoder; dropped, it is killed.
pub struct LiveEncoder {
    pub event: String,
    ingest: String,
    rungs: Vec<Rung>,
    secs: Option<u32>,
    child: Child,
}

impl LiveEncoder {
    fn spawn(ingest: &str, rungs: &[Rung], secs: Option<u32>) -> anyhow::Result<Child> {
        encoder::command(&encoder::Push {
            codecs: encoder::Codecs::H264Aac,
            muxer: encoder::Muxer::Dash,
            ingest,
            rungs,
            secs,
            clock: true,
            copy_to: None,
            segment_secs: 2.0,
            part_secs: 0.5,
        })
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("starting ffmpeg (Debian's ffmpeg package)")
    }

    /// A new encoder process pushing into the same event (after `kill`,
    /// as an operator restarts a crashed one).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = LiveEncoder::spawn(&self.ingest, &self.rungs, self.secs)?;
        Ok(())
    }

    /// Whether ffmpeg is still pushing.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the encoder as a crash would (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LiveEncoder {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Stack {
    /// Creates live event `event` (2 s segments, 0.5 s parts) and starts
    /// an encoder pushing `rungs` into it, for `secs` or until dropped.
    pub fn start_live(&self, event: &str, rungs: &[Rung], secs: Option<u32>) -> anyhow::Result<LiveEncoder> {
        let secret = nearcast_common::digest::hex(&random_secret()?[..16]);
        self.admin(
            "POST",
            "/v1/admin/live",
            &format!(r#"{{"name":"{event}","secret":"{secret}"}}"#),
        )
        .context("creating the live event")?;
        let ingest = format!("{}/ingest/{event}/{secret}", self.live_url);
        let child = LiveEncoder::spawn(&ingest, rungs, secs)?;
        Ok(LiveEncoder {
            event: event.to_string(),
            ingest,
            rungs: rungs.to_vec(),
            secs,
            child,
        })
    }
}
