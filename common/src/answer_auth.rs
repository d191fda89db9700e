//! How a box knows an answer came from its fill server: the server signs
//! every answer to an appliance's signed request with its own Ed25519 key,
//! and the agent checks it against the server keys in its config (several,
//! for rotation) before it acts on a byte of it.
//!
//! Headers: `x-nearcast-answer-key` (the key's id), `x-nearcast-answer-time`
//! (unix seconds) and `x-nearcast-answer-signature` (hex) over
//!
//! ```text
//! nearcast-answer-v1\n{appliance id}\n{the request's x-nearcast-signature}\n{status}\n{time}\n{hex SHA-256 of the body}
//! ```
//!
//! The request's own signature covers its id, method, path, time and body
//! (`request_auth`), so an answer is good for exactly the request it
//! answers: a recorded answer replayed to a later request, or one meant
//! for another box, does not verify. An answer older than `MAX_SKEW_SECS`
//! is refused as well (a request held back and answered late).

use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::digest::{hex, sha256_hex};
use crate::token::decode_hex;

/// The header naming the server key that signed.
pub const HEADER_KEY: &str = "x-nearcast-answer-key";
/// The header with the signing time (unix seconds).
pub const HEADER_TIME: &str = "x-nearcast-answer-time";
/// The header with the Ed25519 signature (hex).
pub const HEADER_SIGNATURE: &str = "x-nearcast-answer-signature";
/// How far an answer's time may be from the box's clock.
pub const MAX_SKEW_SECS: u64 = 300;

/// Why an answer is refused (or a key unusable).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    /// No signature headers at all.
    #[error("the answer is not signed")]
    Unsigned,
    /// Signed with a key this box does not hold.
    #[error("the answer is signed with key '{0}', which this box does not trust")]
    UnknownKey(String),
    /// A header is not what it should be.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Signed too long ago or too far ahead.
    #[error("the answer's time {time} is more than {MAX_SKEW_SECS} s from now ({now})")]
    Stale {
        /// The answer's time.
        time: u64,
        /// The box's.
        now: u64,
    },
    /// The signature does not verify: altered, or not for this request.
    #[error("the answer's signature does not verify (altered, or not an answer to this request)")]
    BadSignature,
    /// A key is unusable.
    #[error("key: {0}")]
    Key(String),
}

fn message(appliance: &str, request_signature: &str, status: u16, time: u64, body: &[u8]) -> String {
    format!(
        "nearcast-answer-v1\n{appliance}\n{request_signature}\n{status}\n{time}\n{}",
        sha256_hex(body)
    )
}

/// The fill server's answer key (PKCS#8 v2, as stored in its key file).
pub struct AnswerSigner {
    id: String,
    pair: Ed25519KeyPair,
}

impl AnswerSigner {
    /// A new random key, as PKCS#8 bytes to store.
    pub fn generate_pkcs8() -> Result<Vec<u8>, AnswerError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| AnswerError::Key(e.to_string()))
    }

    /// Key `id` stored as PKCS#8 `der`.
    pub fn from_pkcs8(id: &str, der: &[u8]) -> Result<Self, AnswerError> {
        if id.is_empty() || id.contains(char::is_whitespace) {
            return Err(AnswerError::Key("a key id is one word".into()));
        }
        Ed25519KeyPair::from_pkcs8(der)
            .map(|pair| AnswerSigner {
                id: id.to_string(),
                pair,
            })
            .map_err(|e| AnswerError::Key(e.to_string()))
    }

    /// `"{id} {hex public key}"`: the line a box's config trusts.
    pub fn public_entry(&self) -> String {
        format!("{} {}", self.id, hex(self.pair.public_key().as_ref()))
    }

    /// The three header values for an answer.
    pub fn sign(
        &self,
        appliance: &str,
        request_signature: &str,
        status: u16,
        time: u64,
        body: &[u8],
    ) -> [(&'static str, String); 3] {
        let msg = message(appliance, request_signature, status, time, body);
        let sig = self.pair.sign(msg.as_bytes());
        [
            (HEADER_KEY, self.id.clone()),
            (HEADER_TIME, time.to_string()),
            (HEADER_SIGNATURE, hex(sig.as_ref())),
        ]
    }
}

/// The server keys a box trusts.
#[derive(Clone, Debug, Default)]
pub struct AnswerKeys {
    keys: Vec<(String, Vec<u8>)>,
}

/// The signature headers of a received answer, as given (`None`: absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct AnswerHeaders<'a> {
    /// `x-nearcast-answer-key`.
    pub key: Option<&'a str>,
    /// `x-nearcast-answer-time`.
    pub time: Option<&'a str>,
    /// `x-nearcast-answer-signature`.
    pub signature: Option<&'a str>,
}

impl AnswerKeys {
    /// Keys from `"{id} {hex Ed25519 public key}"` entries.
    pub fn parse(entries: &[String]) -> Result<AnswerKeys, AnswerError> {
        let keys = entries
            .iter()
            .map(|e| {
                let mut words = e.split_whitespace();
                let (Some(id), Some(key), None) = (words.next(), words.next(), words.next()) else {
                    return Err(AnswerError::Key(format!("'{e}' is not '{{id}} {{hex key}}'")));
                };
                match decode_hex(key) {
                    Some(k) if k.len() == 32 => Ok((id.to_string(), k)),
                    _ => Err(AnswerError::Key(format!("key '{id}' is not 32 bytes of hex"))),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(AnswerKeys { keys })
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted (every answer is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks an answer with status `status` and `body` to the request
    /// appliance `appliance` signed with `request_signature`.
    pub fn verify(
        &self,
        appliance: &str,
        request_signature: &str,
        status: u16,
        h: AnswerHeaders<'_>,
        body: &[u8],
        now: u64,
    ) -> Result<(), AnswerError> {
        let (Some(id), Some(time), Some(sig)) = (h.key, h.time, h.signature) else {
            return Err(AnswerError::Unsigned);
        };
        let Some((_, key)) = self.keys.iter().find(|(k, _)| k == id) else {
            return Err(AnswerError::UnknownKey(id.to_string()));
        };
        let time: u64 = time.parse().map_err(|_| AnswerError::Malformed(HEADER_TIME))?;
        if time.abs_diff(now) > MAX_SKEW_SECS {
            return Err(AnswerError::Stale { time, now });
        }
        let sig = decode_hex(sig).ok_or(AnswerError::Malformed(HEADER_SIGNATURE))?;
        let msg = message(appliance, request_signature, status, time, body);
        UnparsedPublicKey::new(&signature::ED25519, key)
            .verify(msg.as_bytes(), &sig)
            .map_err(|_| AnswerError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn signer(id: &str) -> AnswerSigner {
        AnswerSigner::from_pkcs8(id, &AnswerSigner::generate_pkcs8().unwrap()).unwrap()
    }

    fn headers<'a>(signed: &'a [(&'static str, String); 3]) -> AnswerHeaders<'a> {
        AnswerHeaders {
            key: Some(&signed[0].1),
            time: Some(&signed[1].1),
            signature: Some(&signed[2].1),
        }
    }

    #[test]
    fn an_answer_verifies_for_its_request_only() {
        let (old, new) = (signer("k1"), signer("k2"));
        // A box mid-rotation trusts both.
        let keys = AnswerKeys::parse(&[old.public_entry(), new.public_entry()]).unwrap();
        let body = br#"{"titles":[]}"#;
        let signed = new.sign("box-1", "aa11", 200, NOW, body);
        let check = |id: &str, req: &str, status: u16, body: &[u8], now: u64| {
            keys.verify(id, req, status, headers(&signed), body, now)
        };
        assert_eq!(check("box-1", "aa11", 200, body, NOW + 10), Ok(()));
        assert_eq!(
            check("box-1", "aa11", 200, br#"{"titles":[1]}"#, NOW),
            Err(AnswerError::BadSignature),
            "altered body"
        );
        assert_eq!(
            check("box-1", "bb22", 200, body, NOW),
            Err(AnswerError::BadSignature),
            "replayed to another request"
        );
        assert_eq!(
            check("box-2", "aa11", 200, body, NOW),
            Err(AnswerError::BadSignature),
            "another box's"
        );
        assert_eq!(
            check("box-1", "aa11", 404, body, NOW),
            Err(AnswerError::BadSignature),
            "another status"
        );
        assert_eq!(
            check("box-1", "aa11", 200, body, NOW + MAX_SKEW_SECS + 1),
            Err(AnswerError::Stale {
                time: NOW,
                now: NOW + MAX_SKEW_SECS + 1
            })
        );
    }

    #[test]
    fn unsigned_unknown_and_forged_answers_are_refused() {
        let trusted = signer("k1");
        let keys = AnswerKeys::parse(&[trusted.public_entry()]).unwrap();
        let body = b"{}";
        let none = AnswerHeaders::default();
        assert_eq!(keys.verify("b", "r", 200, none, body, NOW), Err(AnswerError::Unsigned));
        // Another key claiming the trusted key's id, and one with its own.
        let forged = signer("k1").sign("b", "r", 200, NOW, body);
        assert_eq!(
            keys.verify("b", "r", 200, headers(&forged), body, NOW),
            Err(AnswerError::BadSignature)
        );
        let stranger = signer("k9").sign("b", "r", 200, NOW, body);
        assert_eq!(
            keys.verify("b", "r", 200, headers(&stranger), body, NOW),
            Err(AnswerError::UnknownKey("k9".into()))
        );
        let mut bad = trusted.sign("b", "r", 200, NOW, body);
        bad[2].1 = "zz".into();
        assert_eq!(
            keys.verify("b", "r", 200, headers(&bad), body, NOW),
            Err(AnswerError::Malformed(HEADER_SIGNATURE))
        );
    }

    #[test]
    fn key_entries_must_be_an_id_and_32_bytes() {
        for bad in ["k1", "k1 abcd", "k1 zz", &format!("k1 {} extra", "00".repeat(32))] {
            assert!(AnswerKeys::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert_eq!(
            AnswerKeys::parse(&[format!("k1 {}", "00".repeat(32))]).unwrap().len(),
            1
        );
        assert!(AnswerSigner::from_pkcs8("two words", &AnswerSigner::generate_pkcs8().unwrap()).is_err());
    }
}
