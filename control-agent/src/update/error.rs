//! Why an update step failed, each with its cause kept: the agent logs the
//! chain and puts the message in the heartbeat's `os.update`.

use nearcast_common::bundle::BundleError;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// GRUB's environment block is malformed (what is wrong with it).
    #[error("boot environment: {0}")]
    BootEnv(String),
    /// GRUB's environment block cannot be read or written.
    #[error("boot environment {path}: {source}")]
    BootEnvIo { path: String, source: std::io::Error },
    /// The booted or the other slot cannot be found.
    #[error("slot: {0}")]
    Slot(String),
    /// `/sys/block` (or the test's stand-in) cannot be read.
    #[error("{path}: {source}")]
    SysBlock { path: String, source: std::io::Error },
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("bundle is release {got}, not the {want} asked for")]
    WrongRelease { got: String, want: String },
    /// The manifest's dm-verity parameters are missing or do not fit it.
    #[error("bundle's verity parameters: {0}")]
    Verity(String),
    /// The chunk index is not the signed one, or malformed.
    #[error("bundle's chunk index: {0}")]
    Chunks(String),
    #[error("rootfs of {size} bytes does not fit slot {slot} ({room} bytes)")]
    TooBig { size: u64, slot: &'static str, room: u64 },
    /// The bundle could not be fetched (or its body broke off).
    #[error("download: {0}")]
    Download(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("writing slot {slot}: {source}")]
    Write { slot: &'static str, source: std::io::Error },
    /// The slot holds other bytes than were written.
    #[error("slot {slot} reads back {got} bytes hashing {hash}, not the {size} bytes hashing {sha} written")]
    ReadBack {
        slot: &'static str,
        got: u64,
        hash: String,
        size: u64,
        sha: String,
    },
    /// A blocking task (slot writes, state files) panicked or was dropped.
    #[error("a blocking task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The slot writer ended before the bundle did, without an error.
    #[error("the slot writer stopped")]
    WriterStopped,
    #[error("state file {path}: {source}")]
    State { path: String, source: std::io::Error },
    #[error("trusted keys in {dir}: {source}")]
    Keys { dir: String, source: std::io::Error },
}

impl UpdateError {
    /// Errors that say the bundle itself is bad (retrying cannot help),
    /// as against a download or a disk that failed this time.
    pub(super) fn condemns_release(&self) -> bool {
        matches!(
            self,
            UpdateError::Bundle(_)
                | UpdateError::WrongRelease { .. }
                | UpdateError::TooBig { .. }
                | UpdateError::Verity(_)
                | UpdateError::Chunks(_)
        )
    }
}
