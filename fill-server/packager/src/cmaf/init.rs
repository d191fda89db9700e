//! The CMAF header (init segment): `ftyp` + `moov` with one track, empty
//! sample tables and `mvex/trex`. The source's sample entry (with its
//! avcC/av1C/esds/dOps) is copied byte for byte, and its edit list's media
//! time is kept so presentation starts where the source's did. A WebVTT
//! track has handler `text` and a `wvtt` entry. An encrypted track's entry becomes `encv`/`enca` with a
//! `sinf`, and the `moov` carries the key's common-system `pssh`.

use super::writer::BoxWriter;
use crate::cenc::{self, TrackCrypto};
use crate::mp4::{Track, TrackKind};

/// Every output track is track 1 of its own init segment.
pub const TRACK_ID: u32 = 1;

/// What the header says of its one track.
pub struct Header<'a> {
    pub handler: Handler,
    pub timescale: u32,
    /// ISO 639-2/T.
    pub language: &'a str,
    pub width: u16,
    pub height: u16,
    /// The edit list's media time (0: none).
    pub media_time: i64,
    /// The sample entry: type and body.
    pub entry: ([u8; 4], &'a [u8]),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Video,
    Audio,
    /// WebVTT (`wvtt`, ISO/IEC 14496-30): handler `text`, a null media
    /// header.
    Text,
}

impl<'a> Header<'a> {
    pub fn of(t: &'a Track) -> Self {
        Header {
            handler: match t.kind {
                TrackKind::Video => Handler::Video,
                TrackKind::Audio => Handler::Audio,
            },
            timescale: t.timescale,
            language: &t.language,
            width: t.codec.width,
            height: t.codec.height,
            media_time: t.media_time,
            entry: (t.sample_entry.0, &t.sample_entry.1),
        }
    }
}

/// The init segment of track `t`, encrypted by `crypto` if given.
pub fn init_segment(t: &Track, crypto: Option<&TrackCrypto>) -> Vec<u8> {
    header_segment(&Header::of(t), crypto)
}

/// The init segment of the track `h` describes.
pub fn header_segment(h: &Header, crypto: Option<&TrackCrypto>) -> Vec<u8> {
    let mut w = BoxWriter::new();
    w.open(b"ftyp").bytes(b"iso6").u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41", b"dash"] {
        w.bytes(brand);
    }
    w.close();
    w.open(b"moov");
    w.open_full(b"mvhd", 0, 0).u32(0).u32(0).u32(1000).u32(0);
    w.u32(0x0001_0000)
        .u16(0x0100)
        .zeros(10)
        .matrix()
        .zeros(24)
        .u32(TRACK_ID + 1);
    w.close();
    w.open(b"trak");
    let audio = h.handler == Handler::Audio;
    w.open_full(b"tkhd", 0, 3).u32(0).u32(0).u32(TRACK_ID).u32(0).u32(0);
    w.zeros(8)
        .u16(0)
        .u16(if audio { 1 } else { 0 })
        .u16(if audio { 0x0100 } else { 0 })
        .u16(0);
    w.matrix().u32(u32::from(h.width) << 16).u32(u32::from(h.height) << 16);
    w.close();
    if h.media_time > 0 {
        // Duration 0: the edit spans the whole (fragmented) track.
        w.open(b"edts").open_full(b"elst", 1, 0).u32(1);
        w.u64(0).u64(h.media_time as u64).u16(1).u16(0);
        w.close().close();
    }
    mdia(&mut w, h, crypto);
    w.close(); // trak
    w.open(b"mvex")
        .open_full(b"trex", 0, 0)
        .u32(TRACK_ID)
        .u32(1)
        .u32(0)
        .u32(0)
        .u32(0);
    w.close().close();
    if let Some(c) = crypto {
        w.bytes(&cenc::pssh(&c.key.kid));
        for p in &c.extra_pssh {
            w.bytes(p);
        }
    }
    w.close(); // moov
    w.finish()
}

/// `mdia`: the timescale and language, the handler, and the sample
/// description with empty tables (the samples are in the fragments).
fn mdia(w: &mut BoxWriter, h: &Header, crypto: Option<&TrackCrypto>) {
    w.open(b"mdia");
    w.open_full(b"mdhd", 0, 0).u32(0).u32(0).u32(h.timescale).u32(0);
    w.u16(pack_language(h.language)).u16(0).close();
    let (handler, name): (&[u8; 4], &[u8]) = match h.handler {
        Handler::Video => (b"vide", b"Video\0"),
        Handler::Audio => (b"soun", b"Sound\0"),
        Handler::Text => (b"text", b"Text\0"),
    };
    w.open_full(b"hdlr", 0, 0)
        .u32(0)
        .bytes(handler)
        .zeros(12)
        .bytes(name)
        .close();
    w.open(b"minf");
    match h.handler {
        Handler::Video => w.open_full(b"vmhd", 0, 1).zeros(8).close(),
        Handler::Audio => w.open_full(b"smhd", 0, 0).zeros(4).close(),
        Handler::Text => w.open_full(b"nmhd", 0, 0).close(),
    };
    w.open(b"dinf")
        .open_full(b"dref", 0, 0)
        .u32(1)
        .open_full(b"url ", 0, 1)
        .close()
        .close()
        .close();
    w.open(b"stbl");
    w.open_full(b"stsd", 0, 0).u32(1);
    match crypto {
        None => w.open(&h.entry.0).bytes(h.entry.1).close(),
        Some(c) => {
            let kind = if h.handler == Handler::Video { b"encv" } else { b"enca" };
            w.open(kind).bytes(h.entry.1).bytes(&cenc::sinf(h.entry.0, c)).close()
        }
    };
    w.close();
    for empty in [b"stts", b"stsc", b"stco"] {
        w.open_full(empty, 0, 0).u32(0).close();
    }
    w.open_full(b"stsz", 0, 0).u32(0).u32(0).close();
    w.close(); // stbl
    w.close(); // minf
    w.close(); // mdia
}

fn pack_language(lang: &str) -> u16 {
    let b = lang.as_bytes();
    if b.len() != 3 || !b.iter().all(u8::is_ascii_lowercase) {
        return pack_language("und");
    }
    b.iter().fold(0u16, |acc, &c| (acc << 5) | u16::from(c - 0x60))
}
