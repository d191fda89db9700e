//! How an appliance proves who it is to the fill server: every request is
//! signed with the appliance's own Ed25519 key.
//!
//! Headers: `x-nearcast-appliance` (its id), `x-nearcast-time` (unix
//! seconds) and `x-nearcast-signature` (hex Ed25519 signature) over
//!
//! ```text
//! nearcast-request-v1\n{id}\n{METHOD}\n{path and query}\n{time}\n{hex SHA-256 of the body}
//! ```
//!
//! so the id, the request, the time and the body are all bound: one
//! appliance cannot speak for another (the server checks the signature with
//! the key registered for that id), and a captured request stops verifying
//! after `MAX_SKEW_SECS`.

use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::digest::{hex, sha256_hex};
use crate::token::decode_hex;

/// The header naming the appliance that signed.
pub const HEADER_ID: &str = "x-nearcast-appliance";
/// The header with the signing time (unix seconds).
pub const HEADER_TIME: &str = "x-nearcast-time";
/// The header with the Ed25519 signature (hex).
pub const HEADER_SIGNATURE: &str = "x-nearcast-signature";
/// How far a request's time may be from the server's clock.
pub const MAX_SKEW_SECS: u64 = 300;

/// Why a signed request is refused (or a key unusable).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// A header is absent.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// A header or the public key is not what it should be.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Signed too long ago or too far ahead (a replay, or a bad clock).
    #[error("request time {time} is more than {MAX_SKEW_SECS} s from now ({now})")]
    Stale {
        /// The request's time.
        time: u64,
        /// The verifier's.
        now: u64,
    },
    /// The signature does not verify with the appliance's key.
    #[error("signature does not verify")]
    BadSignature,
    /// A key is unusable; ring's reason (a fixed string: ring errors carry
    /// no further cause) or what is wrong with the public key's text.
    #[error("key: {0}")]
    Key(String),
}

/// An appliance's signing key (PKCS#8 v2, as stored in its config).
pub struct ApplianceKey {
    pair: Ed25519KeyPair,
}

impl ApplianceKey {
    /// A new random key, as PKCS#8 bytes to store.
    pub fn generate_pkcs8() -> Result<Vec<u8>, AuthError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| AuthError::Key(e.to_string()))
    }

    /// The key stored as PKCS#8 `der`.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, AuthError> {
        Ed25519KeyPair::from_pkcs8(der)
            .map(|pair| ApplianceKey { pair })
            .map_err(|e| AuthError::Key(e.to_string()))
    }

    /// The public key as hex, as the fill server registers it.
    pub fn public_hex(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    /// The three header values (id, time, signature) for a request.
    pub fn sign(&self, id: &str, method: &str, path: &str, time: u64, body: &[u8]) -> [(&'static str, String); 3] {
        let sig = self.pair.sign(message(id, method, path, time, body).as_bytes());
        [
            (HEADER_ID, id.to_string()),
            (HEADER_TIME, time.to_string()),
            (HEADER_SIGNATURE, hex(sig.as_ref())),
        ]
    }
}

fn message(id: &str, method: &str, path: &str, time: u64, body: &[u8]) -> String {
    format!(
        "nearcast-request-v1\n{id}\n{method}\n{path}\n{time}\n{}",
        sha256_hex(body)
    )
}

/// A received request's parts, as the headers and request line give them.
pub struct Signed<'a> {
    /// The `x-nearcast-appliance` value.
    pub id: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The request target's path and query.
    pub path: &'a str,
    /// Raw `x-nearcast-time` value.
    pub time: &'a str,
    /// Raw `x-nearcast-signature` value.
    pub signature: &'a str,
    /// The request body.
    pub body: &'a [u8],
}

impl Signed<'_> {
    /// Checks the signature against the appliance's registered public key
    /// (hex) and the time against `now`.
    pub fn verify(&self, public_hex: &str, now: u64) -> Result<(), AuthError> {
        let time: u64 = self.time.parse().map_err(|_| AuthError::Malformed(HEADER_TIME))?;
        if time.abs_diff(now) > MAX_SKEW_SECS {
            return Err(AuthError::Stale { time, now });
        }
        let sig = decode_hex(self.signature).ok_or(AuthError::Malformed(HEADER_SIGNATURE))?;
        let key = decode_hex(public_hex).ok_or_else(|| AuthError::Key("public key is not hex".into()))?;
        UnparsedPublicKey::new(&signature::ED25519, key)
            .verify(
                message(self.id, self.method, self.path, time, self.body).as_bytes(),
                &sig,
            )
            .map_err(|_| AuthError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[allow(clippy::too_many_arguments)] // a table of cases reads best flat
    fn verify(
        pk: &str,
        id: &str,
        method: &str,
        path: &str,
        time: &str,
        signature: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(), AuthError> {
        Signed {
            id,
            method,
            path,
            time,
            signature,
            body,
        }
        .verify(pk, now)
    }

    fn key() -> ApplianceKey {
        ApplianceKey::from_pkcs8(&ApplianceKey::generate_pkcs8().unwrap()).unwrap()
    }

    #[test]
    fn signed_requests_verify_and_every_part_is_bound() {
        let k = key();
        let [(_, id), (_, time), (_, sig)] = k.sign("box-1", "POST", "/v1/heartbeat", NOW, b"{}");
        let pk = k.public_hex();
        assert_eq!(
            verify(&pk, &id, "POST", "/v1/heartbeat", &time, &sig, b"{}", NOW + 10),
            Ok(())
        );
        let bad = [
            verify(&pk, "box-2", "POST", "/v1/heartbeat", &time, &sig, b"{}", NOW),
            verify(&pk, &id, "GET", "/v1/heartbeat", &time, &sig, b"{}", NOW),
            verify(&pk, &id, "POST", "/v1/inventory", &time, &sig, b"{}", NOW),
            verify(
                &pk,
                &id,
                "POST",
                "/v1/heartbeat",
                &(NOW + 1).to_string(),
                &sig,
                b"{}",
                NOW,
            ),
            verify(&pk, &id, "POST", "/v1/heartbeat", &time, &sig, b"{\"load\":0}", NOW),
            verify(
                &key().public_hex(),
                &id,
                "POST",
                "/v1/heartbeat",
                &time,
                &sig,
                b"{}",
                NOW,
            ),
        ];
        for (i, r) in bad.iter().enumerate() {
            assert_eq!(*r, Err(AuthError::BadSignature), "case {i}");
        }
    }

    #[test]
    fn stale_and_malformed() {
        let k = key();
        let [_, (_, time), (_, sig)] = k.sign("b", "GET", "/", NOW, b"");
        let pk = k.public_hex();
        assert!(matches!(
            verify(&pk, "b", "GET", "/", &time, &sig, b"", NOW + 301),
            Err(AuthError::Stale { .. })
        ));
        assert_eq!(
            verify(&pk, "b", "GET", "/", "soon", &sig, b"", NOW),
            Err(AuthError::Malformed(HEADER_TIME))
        );
        assert_eq!(
            verify(&pk, "b", "GET", "/", &time, "zz", b"", NOW),
            Err(AuthError::Malformed(HEADER_SIGNATURE))
        );
        assert!(matches!(
            verify("nothex", "b", "GET", "/", &time, &sig, b"", NOW),
            Err(AuthError::Key(_))
        ));
        assert!(ApplianceKey::from_pkcs8(b"not a key").is_err());
    }
}
