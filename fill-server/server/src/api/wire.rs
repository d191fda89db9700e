//! Content negotiation with boxes: protobuf (`application/x-protobuf`,
//! the schema in `common/proto/wire.proto`) when a box sends it
//! (`Content-Type`) or asks for it (`Accept`), JSON otherwise, so people
//! and curl keep reading and writing the same calls. Acknowledgements
//! (`{"registered": …}`, `{"ok": true}`) stay JSON: no box reads them.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use nearcast_common::wire::{self, Wire, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{error, parse, reply, ApiError, Resp};

/// How a call's body came and how its answer goes.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Format {
    proto_in: bool,
    proto_out: bool,
}

impl Format {
    pub fn of(parts: &hyper::http::request::Parts) -> Format {
        let says = |name: hyper::header::HeaderName| {
            parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.split(',').any(|t| t.trim().starts_with(CONTENT_TYPE)))
        };
        Format {
            proto_in: says(hyper::header::CONTENT_TYPE),
            proto_out: says(hyper::header::ACCEPT),
        }
    }

    /// The body as a `T`, from whichever encoding it came in.
    pub fn parse<T: Wire + DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError> {
        if self.proto_in {
            wire::decode(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad protobuf: {e}")))
        } else {
            parse(body)
        }
    }

    /// `v` in the encoding the box asked for; `json` shapes the JSON.
    pub fn answer<T: Wire + Serialize>(
        &self,
        v: &T,
        json: impl FnOnce(serde_json::Value) -> serde_json::Value,
    ) -> Resp {
        if !self.proto_out {
            return reply(StatusCode::OK, json(serde_json::to_value(v).unwrap_or_default()));
        }
        match wire::encode(v) {
            Ok(bytes) => Response::builder()
                .header("content-type", CONTENT_TYPE)
                .body(Full::new(Bytes::from(bytes)))
                .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response")),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
}
