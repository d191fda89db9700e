//! Common Encryption (ISO/IEC 23001-7) of CMAF tracks: `cenc` (AES-CTR,
//! an 8-byte IV per sample) and `cbcs` (AES-CBC, 1:9 pattern for video,
//! whole blocks for audio, a 16-byte constant IV).
//!
//! A `TrackCrypto` holds one track's key and IV and knows the codec's
//! sample layout (`subsample.rs`); the CMAF writers ask it for the init
//! segment's `sinf`/`pssh` and, per sample, encrypt in place and get the
//! auxiliary information (IV and subsamples) that `senc` carries
//! (`boxes.rs`). Keys come from the key store (`keys.rs`), which is never
//! the origin store, or from a multi-DRM service's CPIX document
//! (`cpix.rs`), whose other systems' signalling joins ours.

mod boxes;
pub mod cipher;
pub mod cpix;
pub mod keys;
pub mod subsample;

pub use boxes::{pssh, sinf, write_aux, SampleAux};
pub use keys::{ContentKey, KeyStore, TitleKeys};

use crate::mp4::{Track, TrackKind};
use subsample::Layout;

/// The W3C common PSSH system ID (Clear Key and any CENC-aware CDM).
pub const COMMON_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];
/// The DASH-IF Clear Key scheme UUID for MPD `ContentProtection`.
pub const CLEAR_KEY_DASH_UUID: &str = "e2719d58-a985-b3c9-781a-b030af78d30e";

#[derive(Debug, thiserror::Error)]
pub enum CencError {
    #[error("unknown protection scheme '{0}' (cenc or cbcs)")]
    UnknownScheme(String),
    #[error("cannot encrypt {0} video: only H.264 and HEVC have a subsample layout here")]
    Codec(String),
    #[error("the sample entry's {0} is too short to give the NAL length size")]
    Config(&'static str),
    #[error("sample bytes at {at}: {reason}")]
    BadNal { at: usize, reason: &'static str },
    #[error("a sample has {0} subsamples, more than senc can list")]
    TooManySubsamples(usize),
}

/// A protection scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Cenc,
    Cbcs,
}

impl std::str::FromStr for Scheme {
    type Err = CencError;
    fn from_str(s: &str) -> Result<Self, CencError> {
        match s {
            "cenc" => Ok(Scheme::Cenc),
            "cbcs" => Ok(Scheme::Cbcs),
            other => Err(CencError::UnknownScheme(other.to_string())),
        }
    }
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Cenc => "cenc",
            Scheme::Cbcs => "cbcs",
        }
    }
}

/// One track's encryption: scheme, key, IV and sample layout.
pub struct TrackCrypto {
    pub scheme: Scheme,
    pub key: ContentKey,
    /// `cbcs`: the constant IV.
    iv: [u8; 16],
    /// `cenc`: sample n's IV is seed + n (random per track, so no IV
    /// repeats under a key the ladder's rungs share).
    seed: u64,
    layout: Layout,
    /// `cbcs` only: (crypt, skip) blocks; (0, 0) is every block.
    pattern: (u8, u8),
    /// Other systems' `pssh` boxes for the init segment (from CPIX).
    pub extra_pssh: Vec<Vec<u8>>,
}

impl TrackCrypto {
    /// Encryption of `track` under `key` with a fresh random IV.
    pub fn new(scheme: Scheme, key: ContentKey, track: &Track) -> Result<TrackCrypto, CencError> {
        let layout = layout(track)?;
        let video = track.kind == TrackKind::Video;
        Ok(TrackCrypto {
            scheme,
            key,
            iv: keys::random_16(),
            seed: u64::from_be_bytes(keys::random_16()[..8].try_into().unwrap_or_default()),
            layout,
            pattern: if video && scheme == Scheme::Cbcs {
                (1, 9)
            } else {
                (0, 0)
            },
            extra_pssh: Vec::new(),
        })
    }

    /// Encrypts sample number `n` of the track (from 0) in place and
    /// returns what its `senc` entry says.
    pub fn encrypt(&self, n: u64, data: &mut [u8]) -> Result<SampleAux, CencError> {
        let entries = subsample::map(self.layout, data)?;
        if entries.len() > usize::from(u16::MAX) {
            return Err(CencError::TooManySubsamples(entries.len()));
        }
        let ranges = subsample::protected_ranges(&entries, data.len());
        let iv = match self.scheme {
            Scheme::Cenc => {
                let iv = self.seed.wrapping_add(n).to_be_bytes();
                cipher::ctr(&self.key.key, &iv, data, &ranges);
                Some(iv)
            }
            Scheme::Cbcs => {
                cipher::cbcs(&self.key.key, &self.iv, self.pattern, data, &ranges);
                None
            }
        };
        Ok(SampleAux {
            iv,
            subsamples: (self.layout != Layout::Whole).then_some(entries),
        })
    }
}

/// The sample layout of `track`'s codec.
fn layout(track: &Track) -> Result<Layout, CencError> {
    if track.kind == TrackKind::Audio {
        return Ok(Layout::Whole);
    }
    let config = |kind: &[u8; 4]| crate::mp4::codec::video_config(&track.sample_entry.1, kind);
    match &track.codec.fourcc {
        b"avc1" | b"avc3" => {
            let c = config(b"avcC")
                .and_then(|c| c.get(4))
                .ok_or(CencError::Config("avcC"))?;
            Ok(Layout::Nal {
                length_size: usize::from(c & 3) + 1,
                hevc: false,
            })
        }
        b"hvc1" | b"hev1" => {
            let c = config(b"hvcC")
                .and_then(|c| c.get(21))
                .ok_or(CencError::Config("hvcC"))?;
            Ok(Layout::Nal {
                length_size: usize::from(c & 3) + 1,
                hevc: true,
            })
        }
        other => Err(CencError::Codec(String::from_utf8_lossy(other).into_owned())),
    }
}
