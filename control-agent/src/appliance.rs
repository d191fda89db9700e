//! The appliance's admin API as the agent uses it: its typed status
//! (`GET /status`, `common::appliance::ApplianceStatus`) and taking a disk
//! out of serving or back (`POST /disks/{i}/fail|restore`).

use hyper::body::Bytes;
use nearcast_common::appliance::ApplianceStatus;

use crate::http::{fetch_small, HttpError};

#[derive(Clone, Debug)]
pub struct Appliance {
    admin: String,
}

impl Appliance {
    /// `admin`: the admin listener's base URL.
    pub fn new(admin: &str) -> Appliance {
        Appliance {
            admin: admin.trim_end_matches('/').to_string(),
        }
    }

    /// What the appliance says of itself; not serving (and empty) when it
    /// does not answer or answers nonsense.
    pub async fn status(&self) -> ApplianceStatus {
        match fetch_small("GET", &format!("{}/status", self.admin), &[], Bytes::new()).await {
            Ok(body) => serde_json::from_slice(&body).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the appliance's status does not parse");
                ApplianceStatus::default()
            }),
            Err(_) => ApplianceStatus::default(),
        }
    }

    /// Takes disk `i` out of serving (`failed`) or puts it back.
    pub async fn set_disk_failed(&self, i: usize, failed: bool) -> Result<(), HttpError> {
        let action = if failed { "fail" } else { "restore" };
        let url = format!("{}/disks/{i}/{action}", self.admin);
        fetch_small("POST", &url, &[], Bytes::new()).await.map(drop)
    }
}
