//! Scratch directories for tests: `/tmp/nearcast-{name}-{pid}`, fresh when
//! made, removed when the test passes and kept (its path printed) when it
//! fails, so a failure can be looked at and a green suite leaves nothing.

use std::path::{Path, PathBuf};

/// A test's scratch directory. Declare it before anything that writes into
/// it (a server, a mount) so it is dropped after them.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Makes `/tmp/nearcast-{name}-{pid}` empty (a crashed earlier run's
    /// copy is removed first).
    pub fn new(name: &str) -> TempDir {
        TempDir::within(&std::env::temp_dir(), name)
    }

    /// `new`, under `base` instead of `/tmp` (a real disk where /tmp is a
    /// tmpfs, say).
    pub fn within(base: &Path, name: &str) -> TempDir {
        TempDir::at(base.join(format!("nearcast-{name}-{}", std::process::id())))
    }

    /// `/tmp/nearcast-{name}` with no process id, for a test whose paths
    /// must be the same on every run (its disks' names pick placement).
    pub fn fixed(name: &str) -> TempDir {
        TempDir::at(std::env::temp_dir().join(format!("nearcast-{name}")))
    }

    fn at(path: PathBuf) -> TempDir {
        let _ = std::fs::remove_dir_all(&path);
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("cannot make {}: {e}", path.display());
        }
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl From<&TempDir> for PathBuf {
    fn from(d: &TempDir) -> PathBuf {
        d.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: its files are kept in {}", self.path.display());
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("could not remove {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_success_kept_on_failure() {
        let kept = std::thread::spawn(|| {
            let d = TempDir::new("temp-kept");
            std::fs::write(d.join("f"), b"x").unwrap();
            let p = d.path().to_path_buf();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _d = d;
                panic!("a failing test");
            }));
            assert!(r.is_err());
            p
        })
        .join()
        .unwrap();
        assert!(kept.join("f").is_file());
        std::fs::remove_dir_all(&kept).unwrap();

        let d = TempDir::new("temp-removed");
        std::fs::write(d.join("f"), b"x").unwrap();
        let p = d.path().to_path_buf();
        drop(d);
        assert!(!p.exists());
    }
}
