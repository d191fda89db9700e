//! The appliance's admin API as the agent uses it: its typed status
//! (`GET /status`, `common::appliance::ApplianceStatus`), taking a disk
//! out of serving or back (`POST /disks/{i}/fail|restore`) and the live
//! upstream lists and cache size (`PUT /live`).

use hyper::body::Bytes;
use nearcast_common::appliance::ApplianceStatus;
use nearcast_common::live::LiveSetting;

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

    /// Hands the appliance the fill server's live setting.
    pub async fn set_live(&self, setting: &LiveSetting) -> Result<(), HttpError> {
        let body = Bytes::from(serde_json::to_vec(setting).unwrap_or_default());
        let url = format!("{}/live", self.admin);
        fetch_small("PUT", &url, &[("content-type", "application/json".to_string())], body)
            .await
            .map(drop)
    }

    /// Takes disk `i` out of serving (`failed`) or puts it back.
    pub async fn set_disk_failed(&self, i: usize, failed: bool) -> Result<(), HttpError> {
        let action = if failed { "fail" } else { "restore" };
        let url = format!("{}/disks/{i}/{action}", self.admin);
        fetch_small("POST", &url, &[], Bytes::new()).await.map(drop)
    }
}
