//! The fill server's appliance API, each call signed with the box's
//! Ed25519 key (see `nearcast_common::request_auth`), and each answer
//! checked against the server keys the box trusts before a byte of it is
//! used (`nearcast_common::answer_auth`): an answer altered on the way,
//! replayed from another request or meant for another box is an error.

use hyper::body::Bytes;
use nearcast_common::control::{Heartbeat, HeartbeatReply, Inventory, Registration};
use nearcast_common::manifest::FillManifest;
use nearcast_common::request_auth::ApplianceKey;
use nearcast_common::unix_now;

use nearcast_common::answer_auth::{AnswerError, AnswerHeaders, AnswerKeys, HEADER_KEY, HEADER_SIGNATURE, HEADER_TIME};

use std::sync::Arc;

use nearcast_common::wire::{self, Wire};
use tokio_rustls::rustls::ClientConfig;

use crate::config::WireFormat;

use crate::http::{fetch_with_head, HttpError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("fill server sent a bad {what}: {reason}")]
    BadAnswer { what: &'static str, reason: String },
    /// Not the fill server's answer to this request: nothing in it is used.
    #[error("{url}: refused the answer: {source}")]
    Unverified { url: String, source: AnswerError },
}

pub struct FillServer {
    base: String,
    id: String,
    key: ApplianceKey,
    trusted: AnswerKeys,
    /// How bodies go both ways.
    wire: WireFormat,
    /// For an `https://` fill server: its pinned CA.
    tls: Option<Arc<ClientConfig>>,
    /// Answers refused since start, and why the last one was.
    refused: std::sync::atomic::AtomicU64,
    last_refusal: std::sync::Mutex<Option<String>>,
}

impl FillServer {
    pub fn new(
        base: &str,
        id: &str,
        key: ApplianceKey,
        trusted: AnswerKeys,
        wire: WireFormat,
        tls: Option<Arc<ClientConfig>>,
    ) -> FillServer {
        FillServer {
            base: base.trim_end_matches('/').to_string(),
            id: id.to_string(),
            key,
            trusted,
            wire,
            tls,
            refused: Default::default(),
            last_refusal: Default::default(),
        }
    }

    /// Answers refused since start, and the last one's reason.
    pub fn refusals(&self) -> (u64, Option<String>) {
        let last = self.last_refusal.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (self.refused.load(std::sync::atomic::Ordering::Relaxed), last)
    }

    fn refuse(&self, url: String, source: AnswerError) -> ApiError {
        let e = ApiError::Unverified { url, source };
        tracing::warn!(error = %e, "fill server answer refused");
        self.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.last_refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        e
    }

    /// A signed call with `body` (sent in the configured encoding); the
    /// body of its verified 2xx answer, and whether it is protobuf.
    async fn call(&self, method: &str, action: &str, body: Vec<u8>) -> Result<(Bytes, bool), ApiError> {
        let path = format!("/v1/appliances/{}/{action}", self.id);
        let url = format!("{}{path}", self.base);
        let signed = self.key.sign(&self.id, method, &path, unix_now(), &body);
        let request_signature = signed[2].1.clone();
        let media = self.wire.media_type();
        let headers: Vec<(&str, String)> = signed
            .into_iter()
            .chain([("content-type", media.to_string()), ("accept", media.to_string())])
            .collect();
        let (status, head, answer) =
            fetch_with_head(method, &url, &headers, Bytes::from(body), self.tls.as_ref()).await?;
        let header = |name: &str| head.get(name).and_then(|v| v.to_str().ok());
        let h = AnswerHeaders {
            key: header(HEADER_KEY),
            time: header(HEADER_TIME),
            signature: header(HEADER_SIGNATURE),
        };
        self.trusted
            .verify(&self.id, &request_signature, status.as_u16(), h, &answer, unix_now())
            .map_err(|source| self.refuse(url.clone(), source))?;
        if !status.is_success() {
            return Err(HttpError::status(&url, status, &answer).into());
        }
        let proto = header("content-type").is_some_and(|t| t.starts_with(wire::CONTENT_TYPE));
        Ok((answer, proto))
    }

    /// `v` in the configured encoding.
    fn body<T: Wire + serde::Serialize>(&self, what: &'static str, v: &T) -> Result<Vec<u8>, ApiError> {
        match self.wire {
            WireFormat::Json => Ok(serde_json::to_vec(v).unwrap_or_default()),
            WireFormat::Protobuf => wire::encode(v).map_err(|e| ApiError::BadAnswer {
                what,
                reason: format!("cannot be sent: {e}"),
            }),
        }
    }

    pub async fn register(&self, r: &Registration) -> Result<(), ApiError> {
        let body = self.body("registration", r)?;
        self.call("POST", "register", body).await.map(drop)
    }

    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatReply, ApiError> {
        let body = self.body("heartbeat", hb)?;
        let (answer, proto) = self.call("POST", "heartbeat", body).await?;
        read_answer("heartbeat answer", &answer, proto)
    }

    /// The bundle of the OS release this box should run, as a stream. Not
    /// an answer checked here: which release to run came in a verified
    /// heartbeat answer, and the bundle carries its own signature, which
    /// the updater checks before writing a byte (`update`).
    /// The box's OS bundle from byte `from` on (a resumed download asks
    /// with a range and wants exactly that back), and the release the
    /// server says it is.
    pub async fn os_bundle(&self, from: u64) -> Result<(hyper::Response<hyper::body::Incoming>, String), ApiError> {
        let path = format!("/v1/appliances/{}/os", self.id);
        let mut headers: Vec<(&str, String)> = self
            .key
            .sign(&self.id, "GET", &path, unix_now(), b"")
            .into_iter()
            .collect();
        if from > 0 {
            headers.push(("range", format!("bytes={from}-")));
        }
        let url = format!("{}{path}", self.base);
        let resp = crate::http::send_with("GET", &url, &headers, Bytes::new(), self.tls.as_ref()).await?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        let resumed = header("content-range").starts_with(&format!("bytes {from}-"));
        let ok = match from {
            0 => resp.status().is_success(),
            _ => resp.status() == hyper::StatusCode::PARTIAL_CONTENT && resumed,
        };
        if !ok {
            return Err(ApiError::BadAnswer {
                what: "OS bundle",
                reason: format!("{} for bytes {from}-", resp.status()),
            });
        }
        let release = header(nearcast_common::bundle::RELEASE_HEADER).to_string();
        Ok((resp, release))
    }

    /// The target release's bundle header and chunk index (a signed
    /// answer); `None` when the release has none (404): the bundle is then
    /// downloaded whole.
    pub async fn os_index(&self) -> Result<Option<Bytes>, ApiError> {
        match self.call("GET", "os/index", Vec::new()).await {
            Ok((answer, _)) => Ok(Some(answer)),
            Err(ApiError::Http(HttpError::Status { status, .. })) if status == hyper::StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One chunk of a delta update, by its SHA-256 (a signed answer; the
    /// caller checks the hash).
    pub async fn os_chunk(&self, hex: &str) -> Result<Bytes, ApiError> {
        self.call("GET", &format!("os/chunks/{hex}"), Vec::new())
            .await
            .map(|(answer, _)| answer)
    }

    pub async fn inventory(&self, inv: &Inventory) -> Result<(), ApiError> {
        let body = self.body("inventory", inv)?;
        self.call("PUT", "inventory", body).await.map(drop)
    }

    pub async fn routes(&self, r: &nearcast_common::control::Routes) -> Result<(), ApiError> {
        let body = self.body("routes", r)?;
        self.call("PUT", "routes", body).await.map(drop)
    }

    pub async fn manifest(&self) -> Result<FillManifest, ApiError> {
        let (answer, proto) = self.call("GET", "manifest", Vec::new()).await?;
        let m: FillManifest = read_answer("manifest", &answer, proto)?;
        if m.appliance != self.id {
            return Err(ApiError::BadAnswer {
                what: "manifest",
                reason: format!("it is for '{}'", m.appliance),
            });
        }
        Ok(m)
    }
}

/// An answer as a `T`, from protobuf or JSON as its content type says.
fn read_answer<T: Wire + serde::de::DeserializeOwned>(
    what: &'static str,
    body: &[u8],
    proto: bool,
) -> Result<T, ApiError> {
    let bad = |reason: String| ApiError::BadAnswer { what, reason };
    if proto {
        wire::decode(body).map_err(|e| bad(e.to_string()))
    } else {
        serde_json::from_slice(body).map_err(|e| bad(e.to_string()))
    }
}
