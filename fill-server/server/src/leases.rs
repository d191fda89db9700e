//! Sharing the license service's leases between replicas, so a subject's
//! stream and device limits hold across them: twice a second the leases
//! this replica admitted (new ones, and renewals half a lease on) go into
//! the change log as one `Changed::Leases`, which the other replicas'
//! followers apply (`replica.rs`). No database write on a license's path;
//! on SQLite (one server) nothing is written.

use std::sync::Arc;
use std::time::Duration;

use crate::app::{App, Changed};

/// How often admitted leases are shared.
pub const SHARE_EVERY: Duration = Duration::from_millis(500);

/// Starts the thread that shares `app`'s leases; it ends with the app.
pub fn spawn(app: &Arc<App>) -> std::io::Result<()> {
    let weak = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("nearcast-leases".into())
        .spawn(move || loop {
            std::thread::sleep(SHARE_EVERY);
            let Some(app) = weak.upgrade() else {
                return;
            };
            let shared = app.license.take_shared();
            if shared.is_empty() {
                continue;
            }
            if let Err(e) = app.store.share(Changed::Leases(shared)) {
                tracing::warn!(error = %e, "license leases not shared");
            }
        })?;
    Ok(())
}
