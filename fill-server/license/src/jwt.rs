//! JSON Web Tokens (RFC 7519) as entitlements are issued: compact JWS
//! (RFC 7515) signed with HS256 (HMAC-SHA256) or EdDSA (Ed25519,
//! RFC 8037).
//!
//! ```text
//! base64url(header) "." base64url(claims) "." base64url(signature)
//! header: {"alg": "HS256" | "EdDSA", "kid": "<key id>", "typ": "JWT"}
//! ```
//!
//! A verifier holds several keys (rotation); the header's `kid` picks one,
//! or, without a `kid`, every key of the header's algorithm is tried. A
//! key verifies only its own algorithm, so a token cannot pick HS256 to
//! have a public key used as an HMAC secret (the classic confusion), and
//! `none` is never accepted. `exp` is required, `nbf` honoured, both with
//! a small leeway for clocks apart.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::{hmac, signature};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Seconds a clock may be off.
pub const LEEWAY_SECS: u64 = 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JWT (three base64url parts with a JSON header and claims)")]
    Malformed,
    #[error("the token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    #[error("algorithm '{0}' is not accepted (HS256 or EdDSA)")]
    Algorithm(String),
    #[error("no key '{0}' for its algorithm")]
    UnknownKey(String),
    #[error("the signature does not match")]
    BadSignature,
    #[error("expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("not valid before {nbf} (now {now})")]
    NotYet { nbf: u64, now: u64 },
    #[error("claims are malformed: {0}")]
    Claims(String),
}

/// A signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Alg {
    HS256,
    EdDSA,
}

/// One verification key.
pub struct JwtKey {
    pub id: String,
    key: KeyKind,
}

enum KeyKind {
    Hmac(hmac::Key),
    Ed25519(signature::UnparsedPublicKey<Vec<u8>>),
}

impl JwtKey {
    /// An HS256 secret (at least 32 bytes, as RFC 7518 §3.2 asks).
    pub fn hs256(id: &str, secret: &[u8]) -> Result<JwtKey, &'static str> {
        if secret.len() < 32 {
            return Err("an HS256 secret needs at least 32 bytes");
        }
        Ok(JwtKey {
            id: id.to_string(),
            key: KeyKind::Hmac(hmac::Key::new(hmac::HMAC_SHA256, secret)),
        })
    }

    /// An Ed25519 public key (32 bytes).
    pub fn ed25519(id: &str, public: &[u8]) -> Result<JwtKey, &'static str> {
        if public.len() != 32 {
            return Err("an Ed25519 public key is 32 bytes");
        }
        Ok(JwtKey {
            id: id.to_string(),
            key: KeyKind::Ed25519(signature::UnparsedPublicKey::new(&signature::ED25519, public.to_vec())),
        })
    }

    fn alg(&self) -> Alg {
        match self.key {
            KeyKind::Hmac(_) => Alg::HS256,
            KeyKind::Ed25519(_) => Alg::EdDSA,
        }
    }

    fn verifies(&self, signed: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            KeyKind::Hmac(k) => hmac::verify(k, signed, sig).is_ok(),
            KeyKind::Ed25519(k) => k.verify(signed, sig).is_ok(),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Times {
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// Verifies `token` with one of `keys` at `now` (unix seconds) and
/// returns its claims.
pub fn verify<T: DeserializeOwned>(keys: &[JwtKey], token: &str, now: u64) -> Result<T, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let header: Header = decode_json(h)?;
    let alg = match header.alg.as_str() {
        "HS256" => Alg::HS256,
        "EdDSA" => Alg::EdDSA,
        other => return Err(JwtError::Algorithm(other.to_string())),
    };
    let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    let mut candidates = keys
        .iter()
        .filter(|k| k.alg() == alg && header.kid.as_ref().is_none_or(|id| *id == k.id))
        .peekable();
    if candidates.peek().is_none() {
        return Err(JwtError::UnknownKey(header.kid.unwrap_or_default()));
    }
    if !candidates.any(|k| k.verifies(signed, &sig)) {
        return Err(JwtError::BadSignature);
    }
    let times: Times = decode_json(c)?;
    let exp = times.exp.ok_or_else(|| JwtError::Claims("no exp".into()))?;
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(JwtError::Expired { exp, now });
    }
    if let Some(nbf) = times.nbf.filter(|&nbf| nbf > now.saturating_add(LEEWAY_SECS)) {
        return Err(JwtError::NotYet { nbf, now });
    }
    decode_json(c)
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Result<T, JwtError> {
    let bytes = B64.decode(part).map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|e| JwtError::Claims(e.to_string()))
}

/// Signs `claims` with an HS256 secret (our own play-session tokens, and
/// tests standing in for an account system).
pub fn sign_hs256(kid: &str, secret: &[u8], claims: &impl serde::Serialize) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signing = signing_input("HS256", kid, claims);
    let tag = hmac::sign(&key, signing.as_bytes());
    format!("{signing}.{}", B64.encode(tag.as_ref()))
}

/// Signs `claims` with an Ed25519 key pair.
pub fn sign_eddsa(kid: &str, pair: &signature::Ed25519KeyPair, claims: &impl serde::Serialize) -> String {
    let signing = signing_input("EdDSA", kid, claims);
    let sig = pair.sign(signing.as_bytes());
    format!("{signing}.{}", B64.encode(sig.as_ref()))
}

fn signing_input(alg: &str, kid: &str, claims: &impl serde::Serialize) -> String {
    let header = serde_json::json!({ "alg": alg, "kid": kid, "typ": "JWT" });
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[derive(Deserialize, Debug, PartialEq)]
    struct Claims {
        sub: String,
    }

    fn claims(exp: u64) -> serde_json::Value {
        serde_json::json!({ "sub": "alice", "exp": exp })
    }

    #[test]
    fn hs256_and_eddsa_verify_with_their_own_keys_only() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let keys = vec![
            JwtKey::hs256("h1", SECRET).unwrap(),
            JwtKey::ed25519("e1", pair.public_key().as_ref()).unwrap(),
        ];
        let alice = Claims { sub: "alice".into() };
        let hs = sign_hs256("h1", SECRET, &claims(1000));
        assert_eq!(verify::<Claims>(&keys, &hs, 900), Ok(alice));
        let ed = sign_eddsa("e1", &pair, &claims(1000));
        assert!(verify::<Claims>(&keys, &ed, 900).is_ok());
        // The Ed25519 key named by an HS256 header is not used as a secret.
        let confused = sign_hs256("e1", pair.public_key().as_ref(), &claims(1000));
        assert_eq!(
            verify::<Claims>(&keys, &confused, 900),
            Err(JwtError::UnknownKey("e1".into()))
        );
        let other = sign_hs256("h1", b"another secret, 32 bytes long!!!", &claims(1000));
        assert_eq!(verify::<Claims>(&keys, &other, 900), Err(JwtError::BadSignature));
    }

    #[test]
    fn expiry_tampering_and_junk_are_refused() {
        let keys = vec![JwtKey::hs256("h1", SECRET).unwrap()];
        let t = sign_hs256("h1", SECRET, &claims(1000));
        assert!(verify::<Claims>(&keys, &t, 1000 + LEEWAY_SECS).is_ok());
        assert_eq!(
            verify::<Claims>(&keys, &t, 1031),
            Err(JwtError::Expired { exp: 1000, now: 1031 })
        );
        // Claims swapped for others: the signature no longer matches.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(br#"{"sub":"mallory","exp":9999}"#),
            parts[2]
        );
        assert_eq!(verify::<Claims>(&keys, &forged, 900), Err(JwtError::BadSignature));
        let none = format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(
            verify::<Claims>(&keys, &none, 900),
            Err(JwtError::Algorithm("none".into()))
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(verify::<Claims>(&keys, junk, 900).is_err(), "{junk}");
        }
        assert_eq!(verify::<Claims>(&keys, &"a".repeat(9000), 900), Err(JwtError::TooLong));
        let no_exp = sign_hs256("h1", SECRET, &serde_json::json!({ "sub": "x" }));
        assert!(matches!(
            verify::<Claims>(&keys, &no_exp, 900),
            Err(JwtError::Claims(_))
        ));
        let later = sign_hs256(
            "h1",
            SECRET,
            &serde_json::json!({ "sub": "x", "exp": 5000, "nbf": 2000 }),
        );
        assert_eq!(
            verify::<Claims>(&keys, &later, 900),
            Err(JwtError::NotYet { nbf: 2000, now: 900 })
        );
        assert!(JwtKey::hs256("short", b"too short").is_err());
    }
}
