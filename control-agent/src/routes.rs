//! Reporting the BGP-learned table to the fill server: after every change,
//! batched (a second's quiet, so a full table arriving in thousands of
//! UPDATEs is sent once), and again after a failed report.

use std::sync::Arc;
use std::time::Duration;

use nearcast_common::control::Routes;

use crate::agent::Agent;

/// Quiet time that batches a burst of UPDATEs into one report.
const BATCH: Duration = Duration::from_secs(1);
/// A report is retried (and the table re-checked) this often.
const RECHECK: Duration = Duration::from_secs(5);

pub async fn report_loop(agent: Arc<Agent>) {
    let Some(speaker) = agent.bgp.clone() else {
        return;
    };
    let mut sent: Option<Routes> = None;
    loop {
        tokio::select! {
            _ = speaker.changed.notified() => {}
            _ = tokio::time::sleep(RECHECK) => {}
        }
        tokio::time::sleep(BATCH).await;
        let now = speaker.report();
        if sent.as_ref() == Some(&now) {
            continue;
        }
        match agent.server.routes(&now).await {
            Ok(()) => {
                tracing::info!(session = %now.session, prefixes = now.len(), "BGP routes reported");
                sent = Some(now);
            }
            Err(e) => tracing::warn!(error = %e, "BGP routes report failed"),
        }
    }
}
