//! The W3C Clear Key license exchange (Encrypted Media Extensions §9.1):
//! the CDM asks with the key IDs it needs and takes a JSON Web Key set.
//!
//! ```text
//! request:  {"kids": ["<base64url kid>", …], "type": "temporary"}
//! response: {"keys": [{"kty": "oct", "kid": "<base64url>", "k": "<base64url>"}, …],
//!            "type": "temporary"}
//! ```

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;

/// A request naming more key IDs than this is refused (a title has two).
pub const MAX_KIDS: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("not a Clear Key license request: {0}")]
    Json(String),
    #[error("the request names no key ID")]
    NoKids,
    #[error("the request names {0} key IDs (at most {MAX_KIDS})")]
    TooMany(usize),
    #[error("key ID '{0}' is not 16 bytes of base64url")]
    BadKid(String),
}

#[derive(Deserialize)]
struct Request {
    kids: Vec<String>,
}

/// The key IDs a license request asks for.
pub fn parse_request(body: &[u8]) -> Result<Vec<[u8; 16]>, RequestError> {
    let req: Request = serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
    if req.kids.is_empty() {
        return Err(RequestError::NoKids);
    }
    if req.kids.len() > MAX_KIDS {
        return Err(RequestError::TooMany(req.kids.len()));
    }
    req.kids
        .iter()
        .map(|k| decode_kid(k).ok_or_else(|| RequestError::BadKid(k.clone())))
        .collect()
}

/// A base64url key ID, with or without padding.
pub fn decode_kid(s: &str) -> Option<[u8; 16]> {
    let bytes = URL_SAFE_NO_PAD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()?;
    bytes.try_into().ok()
}

/// The license: a JWK set of `keys` (kid, key).
pub fn response(keys: &[([u8; 16], [u8; 16])]) -> Vec<u8> {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(kid, key)| {
            serde_json::json!({
                "kty": "oct",
                "kid": URL_SAFE_NO_PAD.encode(kid),
                "k": URL_SAFE_NO_PAD.encode(key),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "keys": keys, "type": "temporary" })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        let kid = [0xfb; 16];
        let body = format!(r#"{{"kids":["{}"],"type":"temporary"}}"#, URL_SAFE_NO_PAD.encode(kid));
        assert_eq!(parse_request(body.as_bytes()), Ok(vec![kid]));
        let padded = format!(r#"{{"kids":["{}"]}}"#, URL_SAFE.encode(kid));
        assert_eq!(parse_request(padded.as_bytes()), Ok(vec![kid]));
        assert!(matches!(parse_request(b"{"), Err(RequestError::Json(_))));
        assert_eq!(parse_request(br#"{"kids":[]}"#), Err(RequestError::NoKids));
        assert_eq!(
            parse_request(br#"{"kids":["AAAA"]}"#),
            Err(RequestError::BadKid("AAAA".into()))
        );
        let many = serde_json::json!({ "kids": vec![URL_SAFE_NO_PAD.encode(kid); 17] }).to_string();
        assert_eq!(parse_request(many.as_bytes()), Err(RequestError::TooMany(17)));
        let license: serde_json::Value = serde_json::from_slice(&response(&[(kid, [1; 16])])).unwrap();
        assert_eq!(license["keys"][0]["kty"], "oct");
        assert_eq!(license["keys"][0]["k"], URL_SAFE_NO_PAD.encode([1u8; 16]));
    }
}
