//! How every Nearcast binary logs: human-readable lines on stderr, the
//! level set by `RUST_LOG` (e.g. `RUST_LOG=nearcast_agent=debug`) or the
//! binary's default. One set-up, so every part's logs read alike.

/// Installs the stderr logger with `default` as the filter when `RUST_LOG`
/// is unset or unreadable.
pub fn init(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
