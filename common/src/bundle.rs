//! OS update bundles: a root filesystem image with a signed manifest in
//! front, so a box can check who made it before writing a byte and check
//! the image's hash while it streams it to the inactive slot.
//!
//! ```text
//! "NEARCAST-BUNDLE-1\n"          magic (18 bytes)
//! u32 big-endian                 manifest length (≤ MAX_MANIFEST)
//! manifest                       JSON `Manifest`
//! 64 bytes                       Ed25519 signature over SIGNING_CONTEXT ‖ manifest
//! rootfs                         exactly `rootfs_size` bytes
//! ```
//!
//! The image builder signs (`sign_header`); the agent verifies
//! (`Header::parse`, `Header::verify`, then `RootfsCheck` over the rest).

use ring::signature::{self, Ed25519KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::digest::hex;
use crate::token::decode_hex;

/// A bundle's first bytes.
pub const MAGIC: &[u8; 18] = b"NEARCAST-BUNDLE-1\n";
/// Signed bytes start with this, so a bundle signature can never be
/// mistaken for any other signature made with the same key.
pub const SIGNING_CONTEXT: &[u8] = b"nearcast-bundle-v1\n";
/// The largest manifest a box reads (it is a few hundred bytes).
pub const MAX_MANIFEST: usize = 64 * 1024;
const SIG_LEN: usize = 64;

/// What the bundle holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The OS release (`/etc/nearcast/release` in the rootfs); a plain
    /// name, checked when the manifest is parsed.
    pub version: crate::Name,
    /// Names the public key that verifies the signature.
    pub key_id: String,
    /// Bytes of rootfs after the header.
    pub rootfs_size: u64,
    /// Lowercase hex SHA-256 of the rootfs bytes.
    pub rootfs_sha256: String,
    /// The slot's dm-verity parameters, `BLOCKS:SALT:ROOT`
    /// (`nearcast_verity::Params`): the rootfs is the squashfs padded to
    /// BLOCKS blocks, then its hash tree. Boxes refuse a bundle without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<String>,
    /// Lowercase hex SHA-256 of the rootfs's chunk index
    /// (`crate::chunks`), for delta updates; none: boxes fetch it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_index_sha256: Option<String>,
}

/// Why a bundle is refused (or could not be made).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// It does not start with [`MAGIC`].
    #[error("not a Nearcast update bundle (bad magic)")]
    BadMagic,
    /// The manifest is longer than [`MAX_MANIFEST`].
    #[error("bundle manifest is {0} bytes, more than allowed")]
    ManifestTooLarge(usize),
    /// The manifest is not the JSON a [`Manifest`] is.
    #[error("bundle manifest is malformed: {0}")]
    BadManifest(String),
    /// Signed by a key the box does not trust.
    #[error("bundle is signed with key '{0}', which this box does not trust")]
    UnknownKey(String),
    /// The signature does not verify with the named key.
    #[error("bundle signature does not verify")]
    BadSignature,
    /// Fewer rootfs bytes than the manifest names.
    #[error("bundle ends after {got} of {want} rootfs bytes")]
    Truncated {
        /// Bytes there were.
        got: u64,
        /// Bytes the manifest names.
        want: u64,
    },
    /// More rootfs bytes than the manifest names.
    #[error("bundle has more than the {0} rootfs bytes its manifest names")]
    TooLong(u64),
    /// The rootfs is not the one that was signed.
    #[error("rootfs hash {got} differs from the signed {want}")]
    HashMismatch {
        /// SHA-256 of the bytes received.
        got: String,
        /// SHA-256 the manifest names.
        want: String,
    },
    /// The signing key is unusable; ring's reason (a fixed string: ring
    /// errors carry no further cause).
    #[error("signing key: {0}")]
    Key(String),
}

/// A parsed bundle header; `len` is where the rootfs starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The signed manifest.
    pub manifest: Manifest,
    raw_manifest: Vec<u8>,
    signature: Vec<u8>,
    /// Header bytes: the rootfs starts here.
    pub len: usize,
}

/// A public key a box trusts for updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key id manifests name.
    pub id: crate::Name,
    /// 32 bytes.
    pub public: Vec<u8>,
}

impl TrustedKey {
    /// Parses `"{id} {hex}"`, the one line of a `.pub` key file.
    pub fn parse(line: &str) -> Option<TrustedKey> {
        let (id, key) = line.trim().split_once(' ')?;
        let public = decode_hex(key.trim())?;
        let id = crate::Name::new(id).ok()?;
        (public.len() == 32).then_some(TrustedKey { id, public })
    }
}

impl Header {
    /// Parses a header from the start of `buf`: `Ok(None)` means more
    /// bytes are needed.
    pub fn parse(buf: &[u8]) -> Result<Option<Header>, BundleError> {
        let n = buf.len().min(MAGIC.len());
        if buf[..n] != MAGIC[..n] {
            return Err(BundleError::BadMagic);
        }
        let Some(len_bytes) = buf.get(MAGIC.len()..MAGIC.len() + 4) else {
            return Ok(None);
        };
        let mlen = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if mlen > MAX_MANIFEST {
            return Err(BundleError::ManifestTooLarge(mlen));
        }
        let start = MAGIC.len() + 4;
        let end = start + mlen + SIG_LEN;
        if buf.len() < end {
            return Ok(None);
        }
        let raw_manifest = buf[start..start + mlen].to_vec();
        let manifest: Manifest =
            serde_json::from_slice(&raw_manifest).map_err(|e| BundleError::BadManifest(e.to_string()))?;
        if manifest.rootfs_sha256.len() != 64 || decode_hex(&manifest.rootfs_sha256).is_none() {
            return Err(BundleError::BadManifest("rootfs_sha256 is not 64 hex digits".into()));
        }
        Ok(Some(Header {
            manifest,
            raw_manifest,
            signature: buf[start + mlen..end].to_vec(),
            len: end,
        }))
    }

    /// Checks the signature with the trusted key the manifest names.
    pub fn verify(&self, trusted: &[TrustedKey]) -> Result<(), BundleError> {
        let key = trusted
            .iter()
            .find(|k| k.id == self.manifest.key_id)
            .ok_or_else(|| BundleError::UnknownKey(self.manifest.key_id.clone()))?;
        UnparsedPublicKey::new(&signature::ED25519, &key.public)
            .verify(&signed_bytes(&self.raw_manifest), &self.signature)
            .map_err(|_| BundleError::BadSignature)
    }
}

fn signed_bytes(raw_manifest: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, raw_manifest].concat()
}

/// The header of a bundle for `manifest`, signed with `pkcs8` (an Ed25519
/// key); the rootfs bytes follow it.
pub fn sign_header(manifest: &Manifest, pkcs8: &[u8]) -> Result<Vec<u8>, BundleError> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| BundleError::Key(e.to_string()))?;
    let raw = serde_json::to_vec(manifest).map_err(|e| BundleError::BadManifest(e.to_string()))?;
    let sig = pair.sign(&signed_bytes(&raw));
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + raw.len() + SIG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
    out.extend_from_slice(&raw);
    out.extend_from_slice(sig.as_ref());
    Ok(out)
}

/// The answer header naming the release of a bundle download, so a box
/// resuming one can tell the bytes are still of the release it started.
pub const RELEASE_HEADER: &str = "x-nearcast-release";

/// `"{id} {hex}"` for the public half of `pkcs8`: the line a box's
/// trusted key file holds.
pub fn public_line(id: &str, pkcs8: &[u8]) -> Result<String, BundleError> {
    use ring::signature::KeyPair;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| BundleError::Key(e.to_string()))?;
    Ok(format!("{id} {}", hex(pair.public_key().as_ref())))
}

/// Hashes the rootfs as it streams by and holds it to the manifest.
pub struct RootfsCheck {
    want_size: u64,
    want_sha: String,
    got: u64,
    ctx: ring::digest::Context,
}

impl RootfsCheck {
    /// A check for the rootfs `m` names.
    pub fn new(m: &Manifest) -> RootfsCheck {
        RootfsCheck {
            want_size: m.rootfs_size,
            want_sha: m.rootfs_sha256.clone(),
            got: 0,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    /// Takes the next bytes; more than the manifest's size is an error
    /// before they are written anywhere.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        self.got += chunk.len() as u64;
        if self.got > self.want_size {
            return Err(BundleError::TooLong(self.want_size));
        }
        self.ctx.update(chunk);
        Ok(())
    }

    /// After the last byte: size and hash must both match.
    pub fn finish(self) -> Result<(), BundleError> {
        if self.got != self.want_size {
            return Err(BundleError::Truncated {
                got: self.got,
                want: self.want_size,
            });
        }
        let got = hex(self.ctx.finish().as_ref());
        if got != self.want_sha {
            return Err(BundleError::HashMismatch {
                got,
                want: self.want_sha,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_auth::ApplianceKey;

    fn bundle(rootfs: &[u8], key: &[u8]) -> Vec<u8> {
        let m = Manifest {
            version: crate::Name::new("2").unwrap(),
            key_id: "dev".into(),
            rootfs_size: rootfs.len() as u64,
            rootfs_sha256: crate::sha256_hex(rootfs),
            verity: None,
            chunk_index_sha256: None,
        };
        [sign_header(&m, key).unwrap(), rootfs.to_vec()].concat()
    }

    fn check(b: &[u8], trusted: &[TrustedKey]) -> Result<(), BundleError> {
        let h = Header::parse(b)?.ok_or(BundleError::Truncated { got: 0, want: 1 })?;
        h.verify(trusted)?;
        let mut c = RootfsCheck::new(&h.manifest);
        for chunk in b[h.len..].chunks(7) {
            c.update(chunk)?;
        }
        c.finish()
    }

    #[test]
    fn good_bundles_verify_and_every_tamper_is_caught() {
        let key = ApplianceKey::generate_pkcs8().unwrap();
        let trusted = [TrustedKey::parse(&public_line("dev", &key).unwrap()).unwrap()];
        let b = bundle(b"squashfs bytes here", &key);
        assert_eq!(check(&b, &trusted), Ok(()));
        // Every prefix short of the header asks for more, never errs.
        let h = Header::parse(&b).unwrap().unwrap();
        for n in 0..h.len {
            assert_eq!(Header::parse(&b[..n]), Ok(None), "prefix {n}");
        }
        // A flipped rootfs byte: the hash.
        let mut t = b.clone();
        *t.last_mut().unwrap() ^= 1;
        assert!(matches!(check(&t, &trusted), Err(BundleError::HashMismatch { .. })));
        // A changed manifest (another version, same signature): the signature.
        let mut t = b.clone();
        let at = t.windows(13).position(|w| w == b"\"version\":\"2\"").unwrap();
        t[at + 11] = b'3';
        assert_eq!(check(&t, &trusted), Err(BundleError::BadSignature));
        // Cut short or padded.
        assert!(matches!(
            check(&b[..b.len() - 1], &trusted),
            Err(BundleError::Truncated { .. })
        ));
        let long = [b.clone(), b"x".to_vec()].concat();
        assert!(matches!(check(&long, &trusted), Err(BundleError::TooLong(_))));
        // Signed by a key the box does not hold under that name.
        let other = ApplianceKey::generate_pkcs8().unwrap();
        assert_eq!(check(&bundle(b"r", &other), &trusted), Err(BundleError::BadSignature));
        assert_eq!(check(&b, &[]), Err(BundleError::UnknownKey("dev".into())));
        // Not a bundle at all.
        assert_eq!(check(b"hsqs....", &trusted), Err(BundleError::BadMagic));
    }

    #[test]
    fn manifest_limits() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&(MAX_MANIFEST as u32 + 1).to_be_bytes());
        assert_eq!(Header::parse(&b), Err(BundleError::ManifestTooLarge(MAX_MANIFEST + 1)));
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(b"{}");
        b.extend_from_slice(&[0; 64]);
        assert!(matches!(Header::parse(&b), Err(BundleError::BadManifest(_))));
        assert_eq!(TrustedKey::parse("dev zz"), None);
        assert_eq!(TrustedKey::parse("../x 00"), None);
    }
}
