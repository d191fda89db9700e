//! The fill server's appliance API, each call signed with the box's
//! Ed25519 key (see `nearcast_common::request_auth`).

use hyper::body::Bytes;
use nearcast_common::control::{Heartbeat, HeartbeatReply, Inventory, Registration};
use nearcast_common::manifest::FillManifest;
use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::unix_now;

use crate::http::{fetch_small, HttpError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("fill server sent a bad {what}: {reason}")]
    BadAnswer { what: &'static str, reason: String },
}

pub struct FillServer {
    base: String,
    id: String,
    key: ApplianceKey,
}

impl FillServer {
    pub fn new(base: &str, id: &str, key: ApplianceKey) -> FillServer {
        FillServer {
            base: base.trim_end_matches('/').to_string(),
            id: id.to_string(),
            key,
        }
    }

    async fn call(&self, method: &str, action: &str, body: Vec<u8>) -> Result<Bytes, ApiError> {
        let path = format!("/v1/appliances/{}/{action}", self.id);
        let headers: Vec<(&str, String)> = self
            .key
            .sign(&self.id, method, &path, unix_now(), &body)
            .into_iter()
            .chain([("content-type", "application/json".to_string())])
            .collect();
        Ok(fetch_small(method, &format!("{}{path}", self.base), &headers, Bytes::from(body)).await?)
    }

    pub async fn register(&self, r: &Registration) -> Result<(), ApiError> {
        self.call("POST", "register", to_json(r)).await.map(drop)
    }

    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatReply, ApiError> {
        let body = self.call("POST", "heartbeat", to_json(hb)).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::BadAnswer {
            what: "heartbeat answer",
            reason: e.to_string(),
        })
    }

    /// The bundle of the OS release this box should run, as a stream.
    pub async fn os_bundle(&self) -> Result<hyper::Response<hyper::body::Incoming>, ApiError> {
        let path = format!("/v1/appliances/{}/os", self.id);
        let headers = self.key.sign(&self.id, "GET", &path, unix_now(), b"");
        let resp = crate::http::send("GET", &format!("{}{path}", self.base), &headers, Bytes::new()).await?;
        if !resp.status().is_success() {
            return Err(ApiError::BadAnswer {
                what: "OS bundle",
                reason: resp.status().to_string(),
            });
        }
        Ok(resp)
    }

    pub async fn inventory(&self, inv: &Inventory) -> Result<(), ApiError> {
        self.call("PUT", "inventory", to_json(inv)).await.map(drop)
    }

    pub async fn routes(&self, r: &nearcast_common::control::Routes) -> Result<(), ApiError> {
        self.call("PUT", "routes", to_json(r)).await.map(drop)
    }

    pub async fn manifest(&self) -> Result<FillManifest, ApiError> {
        let body = self.call("GET", "manifest", Vec::new()).await?;
        let m: FillManifest = serde_json::from_slice(&body).map_err(|e| ApiError::BadAnswer {
            what: "manifest",
            reason: e.to_string(),
        })?;
        if m.appliance != self.id {
            return Err(ApiError::BadAnswer {
                what: "manifest",
                reason: format!("it is for '{}'", m.appliance),
            });
        }
        Ok(m)
    }
}

fn to_json(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}
