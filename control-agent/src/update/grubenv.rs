//! GRUB's environment block (`grubenv`): the file the boot menu and the
//! agent share to choose a slot. A 1024-byte file: a fixed first line,
//! `name=value` lines, `#` padding. GRUB writes it in place over the
//! blocks it occupies, so the agent also rewrites it in place, same size,
//! then syncs: the file never moves and is never half-written by rename.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::UpdateError;

pub const SIZE: usize = 1024;
const HEADER: &str = "# GRUB Environment Block\n";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrubEnv {
    vars: Vec<(String, String)>,
}

fn bad(reason: impl Into<String>) -> UpdateError {
    UpdateError::BootEnv(reason.into())
}

// GRUB escapes backslash and newline in values.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl GrubEnv {
    pub fn parse(block: &[u8]) -> Result<GrubEnv, UpdateError> {
        if block.len() != SIZE {
            return Err(bad(format!("block is {} bytes, not {SIZE}", block.len())));
        }
        let text = std::str::from_utf8(block).map_err(|_| bad("block is not text"))?;
        let body = text.strip_prefix(HEADER).ok_or_else(|| bad("no GRUB header line"))?;
        let mut vars = Vec::new();
        for line in body.split('\n') {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("line '{line}' has no '='")))?;
            vars.push((k.to_string(), unescape(v)));
        }
        Ok(GrubEnv { vars })
    }

    pub fn to_block(&self) -> Result<Vec<u8>, UpdateError> {
        let mut out = HEADER.to_string();
        for (k, v) in &self.vars {
            out.push_str(&format!("{k}={}\n", escape(v)));
        }
        if out.len() > SIZE {
            return Err(bad("variables do not fit in 1024 bytes"));
        }
        let mut block = out.into_bytes();
        block.resize(SIZE, b'#');
        Ok(block)
    }

    pub fn get(&self, name: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
    }

    pub fn read(path: &Path) -> Result<GrubEnv, UpdateError> {
        let mut block = Vec::with_capacity(SIZE);
        std::fs::File::open(path)
            .and_then(|f| f.take(SIZE as u64 + 1).read_to_end(&mut block))
            .map_err(|source| UpdateError::BootEnvIo {
                path: path.display().to_string(),
                source,
            })?;
        GrubEnv::parse(&block)
    }

    /// Overwrites the existing block at `path` in place and syncs it.
    pub fn write(&self, path: &Path) -> Result<(), UpdateError> {
        let block = self.to_block()?;
        let io = |source: std::io::Error| UpdateError::BootEnvIo {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
        if f.metadata().map_err(io)?.len() != SIZE as u64 {
            return Err(bad(format!("{} is not a {SIZE}-byte block", path.display())));
        }
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&block).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn round_trip_and_escapes() {
        let mut env = GrubEnv::default();
        env.set("boot_slot", "A");
        env.set("trial_slot", "");
        env.set("odd", "a\\b\nc");
        env.set("boot_slot", "B");
        let block = env.to_block().unwrap();
        assert_eq!(block.len(), SIZE);
        let back = GrubEnv::parse(&block).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.get("boot_slot"), "B");
        assert_eq!(back.get("odd"), "a\\b\nc");
        assert_eq!(back.get("missing"), "");
        assert!(GrubEnv::parse(&block[..SIZE - 1]).is_err());
        assert!(GrubEnv::parse(&[b'#'; SIZE]).is_err());
        env.set("big", &"x".repeat(SIZE));
        assert!(env.to_block().is_err());
    }

    /// GRUB's own tool reads what we write and we read what it writes.
    #[test]
    fn agrees_with_grub_editenv() {
        let dir = nearcast_testkit::TempDir::new("grubenv");
        let file = dir.join("grubenv");
        let ok = Command::new("grub-editenv")
            .arg(&file)
            .args(["create"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "grub-editenv (grub-common) is needed");
        let ok = Command::new("grub-editenv")
            .arg(&file)
            .args(["set", "boot_slot=A", "trial_left=0"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok);
        let mut env = GrubEnv::read(&file).unwrap();
        assert_eq!((env.get("boot_slot"), env.get("trial_left")), ("A", "0"));
        env.set("trial_slot", "B");
        env.set("trial_left", "1");
        env.write(&file).unwrap();
        let out = Command::new("grub-editenv").arg(&file).arg("list").output().unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(listed, "boot_slot=A\ntrial_left=1\ntrial_slot=B\n");
        // Not a block: refused, file left alone.
        std::fs::write(&file, "short").unwrap();
        assert!(env.write(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"short");
    }
}
