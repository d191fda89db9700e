//! Signed URL tokens.
//!
//! Steering hands players URLs like `/c/{title}/{rendition}/{file}?token=…`;
//! the appliance checks the token without calling anyone. A token is
//!
//! ```text
//! {key id}-{expiry, unix seconds}-{client prefix or empty}-{hex HMAC-SHA256}
//! ```
//!
//! and the MAC covers a version tag, the key id, the expiry, the prefix and
//! the URL path, so none of them can be changed without the key. Several keys
//! can be active at once (the key id picks one), which is how keys rotate.
//! None of the fields can contain `-`, so the token splits unambiguously.
//!
//! A token signed for a title's folder, `/c/{title}/` (see `title_scope`),
//! covers every file of that title: rewritten playlists and DASH templates
//! carry one such token instead of one per segment.

use std::net::IpAddr;

use ring::hmac;

use crate::prefix::IpPrefix;

/// The query parameter that carries the token.
pub const TOKEN_PARAM: &str = "token";

const DOMAIN: &[u8] = b"nearcast-url-token-v1\n";
const MAC_LEN: usize = 32;
/// Secrets shorter than this are refused: HMAC-SHA256 wants ≥ 128 bits.
pub const MIN_SECRET_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 32;

/// Why a token is refused, or a key cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The request has none.
    #[error("no token")]
    Missing,
    /// Not `key-expires-prefix-mac`.
    #[error("token is malformed")]
    Malformed,
    /// Signed with a key the verifier does not hold.
    #[error("token names unknown key '{0}'")]
    UnknownKey(String),
    /// The MAC does not match (forged, or for another path).
    #[error("token signature does not match")]
    BadSignature,
    /// Past its time.
    #[error("token expired at {expired_at} (now {now})")]
    Expired {
        /// When it expired (unix seconds).
        expired_at: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// Granted to clients of another prefix.
    #[error("token is bound to {prefix}, client is {client}")]
    WrongClient {
        /// The prefix it is granted to.
        prefix: IpPrefix,
        /// The client that presented it.
        client: IpAddr,
    },
    /// A key id that breaks the rule.
    #[error("key id '{0}' must be 1-32 characters of A-Z, a-z, 0-9 or _")]
    BadKeyId(String),
    /// A secret shorter than [`MIN_SECRET_LEN`].
    #[error("key secret must be at least {MIN_SECRET_LEN} bytes")]
    ShortSecret,
    /// A secret that is not hex (names the key).
    #[error("key secret is not hex: {0}")]
    SecretNotHex(String),
}

/// What a token grants: a path until `expires`, optionally only to clients
/// inside `client_prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Unix seconds after which it is refused.
    pub expires: u64,
    /// Clients it is good for; `None`: any.
    pub client_prefix: Option<IpPrefix>,
}

/// One HMAC key with its id.
pub struct SigningKey {
    id: String,
    key: hmac::Key,
}

impl SigningKey {
    /// Key `id` with `secret` (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(id: &str, secret: &[u8]) -> Result<Self, TokenError> {
        let id_ok =
            !id.is_empty() && id.len() <= MAX_KEY_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !id_ok {
            return Err(TokenError::BadKeyId(id.to_string()));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::ShortSecret);
        }
        Ok(SigningKey {
            id: id.to_string(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// A key whose secret is written in hex (as config files hold it).
    pub fn from_hex(id: &str, secret_hex: &str) -> Result<Self, TokenError> {
        let secret = decode_hex(secret_hex.trim()).ok_or_else(|| TokenError::SecretNotHex(id.to_string()))?;
        SigningKey::new(id, &secret)
    }

    /// The key's id (tokens name it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The token granting `path` as `grant` says.
    pub fn sign(&self, path: &str, grant: &Grant) -> String {
        let prefix = grant.client_prefix.map(|p| p.to_string()).unwrap_or_default();
        let exp = grant.expires.to_string();
        let tag = mac(&self.key, &self.id, &exp, &prefix, path.as_bytes());
        let mut out = String::with_capacity(self.id.len() + exp.len() + prefix.len() + 67);
        out.push_str(&self.id);
        out.push('-');
        out.push_str(&exp);
        out.push('-');
        out.push_str(&prefix);
        out.push('-');
        out.push_str(&crate::digest::hex(tag.as_ref()));
        out
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys a verifier accepts.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

impl Keyring {
    /// A ring of `keys` (two during a rotation).
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Keyring { keys }
    }

    /// It holds no key (the appliance then checks no tokens).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key a holder of the ring signs with itself (the first; during
    /// a rotation the new key is listed first once every verifier has it).
    pub fn primary(&self) -> Option<&SigningKey> {
        self.keys.first()
    }

    /// The key named `id`.
    pub fn get(&self, id: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Checks `token` for `path` requested by `client` at unix time `now`.
    /// Allocation-free: it runs on the appliance's hot path.
    pub fn verify(&self, path: &str, token: &str, client: IpAddr, now: u64) -> Result<Grant, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let mut parts = token.splitn(4, '-');
        let (Some(id), Some(exp), Some(prefix), Some(sig)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if exp.is_empty() || exp.len() > 20 || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Malformed);
        }
        let expires: u64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        let client_prefix = if prefix.is_empty() {
            None
        } else {
            Some(prefix.parse::<IpPrefix>().map_err(|_| TokenError::Malformed)?)
        };
        let mut tag = [0u8; MAC_LEN];
        if sig.len() != MAC_LEN * 2 || !decode_hex_into(sig, &mut tag) {
            return Err(TokenError::Malformed);
        }
        let key = self.get(id).ok_or_else(|| TokenError::UnknownKey(id.to_string()))?;
        let matches = |signed: &str| constant_time_eq(mac(&key.key, id, exp, prefix, signed.as_bytes()).as_ref(), &tag);
        if !matches(path) && !title_scope(path).is_some_and(matches) {
            return Err(TokenError::BadSignature);
        }
        if now >= expires {
            return Err(TokenError::Expired {
                expired_at: expires,
                now,
            });
        }
        if let Some(p) = client_prefix {
            if !p.contains(client) {
                return Err(TokenError::WrongClient { prefix: p, client });
            }
        }
        Ok(Grant { expires, client_prefix })
    }
}

/// The title folder `/c/{title}/` of a content path `/c/{title}/…` (or
/// the event folder `/l/{event}/` of a live path), which a title-wide
/// token is signed for.
pub fn title_scope(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/c/").or_else(|| path.strip_prefix("/l/"))?;
    let end = rest.find('/')?;
    (end > 0 && end + 1 < rest.len()).then(|| &path[..3 + end + 1])
}

fn feed(ctx: &mut hmac::Context, id: &str, exp: &str, prefix: &str, path: &[u8]) {
    ctx.update(DOMAIN);
    for field in [id.as_bytes(), exp.as_bytes(), prefix.as_bytes()] {
        ctx.update(field);
        ctx.update(b"\n");
    }
    ctx.update(path);
}

fn mac(key: &hmac::Key, id: &str, exp: &str, prefix: &str, path: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    feed(&mut ctx, id, exp, prefix, path);
    ctx.sign()
}

/// Compares without an early exit, so timing does not reveal how many
/// leading bytes of a forged tag (or secret) were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_hex_into(s: &str, out: &mut [u8]) -> bool {
    let b = s.as_bytes();
    if b.len() != out.len() * 2 {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        match (nibble(b[2 * i]), nibble(b[2 * i + 1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

/// Decodes a hex string (any case); `None` if it is not hex.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let mut out = vec![0u8; s.len() / 2];
    decode_hex_into(s, &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/c/big-buck/720p/seg-00001.m4s";
    const NOW: u64 = 1_800_000_000;

    fn key(id: &str, fill: u8) -> SigningKey {
        SigningKey::new(id, &[fill; 32]).unwrap()
    }

    fn grant(prefix: Option<&str>) -> Grant {
        Grant {
            expires: NOW + 60,
            client_prefix: prefix.map(|p| p.parse().unwrap()),
        }
    }

    fn client(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn round_trip_with_and_without_prefix() {
        let k = key("k1", 7);
        let ring = Keyring::new(vec![key("k1", 7)]);
        let t = k.sign(PATH, &grant(None));
        assert_eq!(ring.verify(PATH, &t, client("192.0.2.1"), NOW), Ok(grant(None)));
        let t = k.sign(PATH, &grant(Some("192.0.2.0/24")));
        assert!(t.starts_with("k1-1800000060-192.0.2.0/24-"));
        assert!(ring.verify(PATH, &t, client("192.0.2.200"), NOW).is_ok());
        let t6 = k.sign(PATH, &grant(Some("2001:db8:5::/48")));
        assert!(ring.verify(PATH, &t6, client("2001:db8:5::99"), NOW).is_ok());
    }

    #[test]
    fn every_field_is_covered_by_the_mac() {
        let k = key("k1", 7);
        let ring = Keyring::new(vec![key("k1", 7)]);
        let t = k.sign(PATH, &grant(Some("192.0.2.0/24")));
        let c = client("192.0.2.9");
        // Another path.
        assert_eq!(
            ring.verify("/c/big-buck/720p/seg-00002.m4s", &t, c, NOW),
            Err(TokenError::BadSignature)
        );
        // A later expiry.
        let later = t.replacen("1800000060", "1900000060", 1);
        assert_eq!(ring.verify(PATH, &later, c, NOW), Err(TokenError::BadSignature));
        // A wider prefix.
        let wider = t.replacen("192.0.2.0/24", "192.0.0.0/16", 1);
        assert_eq!(ring.verify(PATH, &wider, c, NOW), Err(TokenError::BadSignature));
        // Prefix removed.
        let unbound = t.replacen("192.0.2.0/24", "", 1);
        assert_eq!(ring.verify(PATH, &unbound, c, NOW), Err(TokenError::BadSignature));
        // One flipped signature bit.
        let mut forged = t.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(ring.verify(PATH, &forged, c, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn expiry_prefix_and_keys_are_enforced() {
        let ring = Keyring::new(vec![key("old", 1), key("new", 2)]);
        let t = key("new", 2).sign(PATH, &grant(Some("192.0.2.0/24")));
        assert!(ring.verify(PATH, &t, client("192.0.2.1"), NOW + 59).is_ok());
        assert!(matches!(
            ring.verify(PATH, &t, client("192.0.2.1"), NOW + 60),
            Err(TokenError::Expired { .. })
        ));
        assert!(matches!(
            ring.verify(PATH, &t, client("192.0.3.1"), NOW),
            Err(TokenError::WrongClient { .. })
        ));
        // Old key still verifies during rotation; a key the box lacks does not.
        let t_old = key("old", 1).sign(PATH, &grant(None));
        assert!(ring.verify(PATH, &t_old, client("192.0.2.1"), NOW).is_ok());
        let t_gone = key("retired", 3).sign(PATH, &grant(None));
        assert_eq!(
            ring.verify(PATH, &t_gone, client("192.0.2.1"), NOW),
            Err(TokenError::UnknownKey("retired".into()))
        );
        // Same id, different secret: forged.
        let t_wrong = key("new", 9).sign(PATH, &grant(None));
        assert_eq!(
            ring.verify(PATH, &t_wrong, client("192.0.2.1"), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_rejected_cleanly() {
        let ring = Keyring::new(vec![key("k1", 7)]);
        let c = client("192.0.2.1");
        assert_eq!(ring.verify(PATH, "", c, NOW), Err(TokenError::Missing));
        let sig = "ab".repeat(32);
        for bad in [
            "k1".to_string(),
            "k1-123".to_string(),
            format!("k1--{sig}"),
            format!("k1-12x-{sig}"),
            format!("k1-99999999999999999999999-{sig}"),
            format!("k1-123-not-a-prefix-{sig}"),
            format!("k1-123--{}", &sig[..62]),
            format!("k1-123--{}zz", &sig[..62]),
            format!("k1-123-1.2.3.4/40-{sig}"),
        ] {
            assert_eq!(ring.verify(PATH, &bad, c, NOW), Err(TokenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn title_wide_tokens_cover_the_title_only() {
        let k = key("k1", 7);
        let ring = Keyring::new(vec![key("k1", 7)]);
        let c = client("192.0.2.1");
        assert_eq!(title_scope(PATH), Some("/c/big-buck/"));
        assert_eq!(title_scope("/c/t/master.m3u8"), Some("/c/t/"));
        assert_eq!(title_scope("/l/match/video/4.1.m4s"), Some("/l/match/"));
        for p in ["/c/", "/c/t", "/c/t/", "/x/t/f", "/c//f", "/l/ev/", "/l//f"] {
            assert_eq!(title_scope(p), None, "{p}");
        }
        let t = k.sign("/c/big-buck/", &grant(None));
        assert!(ring.verify(PATH, &t, c, NOW).is_ok());
        assert!(ring.verify("/c/big-buck/master.m3u8", &t, c, NOW).is_ok());
        assert_eq!(
            ring.verify("/c/other/720p/seg-00001.m4s", &t, c, NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            ring.verify("/c/big-buckle/x.m4s", &t, c, NOW),
            Err(TokenError::BadSignature)
        );
        // A token for one file does not open the title.
        let one = k.sign(PATH, &grant(None));
        assert_eq!(
            ring.verify("/c/big-buck/720p/seg-00002.m4s", &one, c, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn key_validation() {
        assert!(matches!(SigningKey::new("", &[0; 32]), Err(TokenError::BadKeyId(_))));
        assert!(matches!(SigningKey::new("a-b", &[0; 32]), Err(TokenError::BadKeyId(_))));
        assert_eq!(SigningKey::new("k", &[0; 8]).unwrap_err(), TokenError::ShortSecret);
        assert!(SigningKey::from_hex("k", "00112233445566778899aabbccddeeff").is_ok());
        assert!(matches!(
            SigningKey::from_hex("k", "xyz"),
            Err(TokenError::SecretNotHex(_))
        ));
    }
}
