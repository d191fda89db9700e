//! Common Media Client Data (CTA-5004): what hls.js, Shaka Player and
//! dash.js tell the CDN with each request, as the `CMCD=` query argument
//! (percent-encoded; `query::param` decodes it into the caller's buffer)
//! or the four headers `CMCD-Request`, `CMCD-Object`, `CMCD-Status` and
//! `CMCD-Session`. Each is a comma-separated list of `key=value` or, for
//! a boolean that is true, a bare `key`:
//!
//! ```text
//! bl=21300,br=3200,bs,cid="faec5fc2",d=4004,mtp=25400,ot=v,rtp=15000,sid="6e2f",su
//! ```
//!
//! Parsing borrows from the text (no allocation) and keeps only the keys
//! steering uses; unknown keys are skipped. Anything malformed (a bad
//! pair, a number that is not one, a `sid` or `cid` over 64 bytes, text over
//! `MAX_LEN`) makes the whole report `Err`: the request is served as if it
//! carried none, and costs no more than the scan.

/// Longest CMCD text read (all headers together are far shorter).
pub const MAX_LEN: usize = 4096;
/// Longest string value (`sid`, `cid`), as CTA-5004 caps them.
pub const MAX_STRING: usize = 64;

/// Why a report is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CmcdError {
    /// Over `MAX_LEN`.
    #[error("CMCD longer than {MAX_LEN} bytes")]
    TooLong,
    /// A key that is not lower-case letters, digits and `-`, at this byte.
    #[error("CMCD key at byte {0} is malformed")]
    BadKey(usize),
    /// The value of the pair at this byte is not what its key takes.
    #[error("CMCD value of the pair at byte {0} is malformed")]
    BadValue(usize),
}

/// The object a request is for (`ot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `m`: a playlist or MPD.
    Manifest,
    /// `a`: audio only.
    Audio,
    /// `v`: video only.
    Video,
    /// `av`: muxed audio and video.
    Muxed,
    /// `i`: an init segment.
    Init,
    /// `c`: captions or subtitles.
    Caption,
    /// `tt`: timed text.
    Text,
    /// `k`: a key or license.
    Key,
    /// `o`: anything else.
    Other,
}

/// What a report says, the keys steering reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cmcd<'a> {
    /// Session id (`sid`).
    pub session: Option<&'a str>,
    /// Content id (`cid`).
    pub content: Option<&'a str>,
    /// Encoded bitrate of the object, kbit/s (`br`).
    pub bitrate_kbps: Option<u32>,
    /// Buffer length, ms (`bl`).
    pub buffer_ms: Option<u32>,
    /// The buffer ran dry since the last report (`bs`).
    pub starved: bool,
    /// The player is starting or seeking (`su`).
    pub startup: bool,
    /// Throughput the player measured, kbit/s (`mtp`).
    pub measured_kbps: Option<u32>,
    /// Throughput it asks for, kbit/s (`rtp`).
    pub requested_kbps: Option<u32>,
    /// Object duration, ms (`d`).
    pub duration_ms: Option<u32>,
    /// What the request is for (`ot`).
    pub object: Option<ObjectType>,
}

impl<'a> Cmcd<'a> {
    /// Parses one CMCD text (a decoded `CMCD=` value or one header's).
    pub fn parse(text: &'a str) -> Result<Cmcd<'a>, CmcdError> {
        let mut c = Cmcd::default();
        c.merge(text)?;
        Ok(c)
    }

    /// Adds the keys of `text` (another header of the same request).
    pub fn merge(&mut self, text: &'a str) -> Result<(), CmcdError> {
        if text.len() > MAX_LEN {
            return Err(CmcdError::TooLong);
        }
        let mut at = 0;
        for pair in split_pairs(text) {
            let start = at;
            at += pair.len() + 1;
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (key, value) = match pair.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (pair, None),
            };
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(CmcdError::BadKey(start));
            }
            self.set(key, value).ok_or(CmcdError::BadValue(start))?;
        }
        Ok(())
    }

    /// Sets one key; None when its value is malformed.
    fn set(&mut self, key: &str, value: Option<&'a str>) -> Option<()> {
        match key {
            "sid" => self.session = Some(short(value?)?),
            "cid" => self.content = Some(short(value?)?),
            "br" => self.bitrate_kbps = Some(int(value?)?),
            "bl" => self.buffer_ms = Some(int(value?)?),
            "mtp" => self.measured_kbps = Some(int(value?)?),
            "rtp" => self.requested_kbps = Some(int(value?)?),
            "d" => self.duration_ms = Some(int(value?)?),
            "bs" => self.starved = boolean(value)?,
            "su" => self.startup = boolean(value)?,
            "ot" => self.object = Some(object(value?)?),
            // Unknown keys (and ones steering does not read) are skipped,
            // but must still be well formed.
            _ => {
                if let Some(v) = value {
                    valid(v)?;
                }
            }
        }
        Some(())
    }
}

/// The pairs of `text`, split at commas outside quoted strings.
fn split_pairs(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, b) in s.bytes().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(s)
    })
}

/// A non-negative integer that fits in 32 bits (a decimal's integer part
/// is refused: the keys read here are integers).
fn int(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// A quoted string without its quotes (an escaped quote inside is kept
/// as written). Other keys' strings may be long (`nor` is a whole URL).
fn string(v: &str) -> Option<&str> {
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.bytes().any(|b| b.is_ascii_control())).then_some(inner)
}

/// A string of at most `MAX_STRING` bytes, as CTA-5004 caps `sid` and
/// `cid`.
fn short(v: &str) -> Option<&str> {
    string(v).filter(|s| s.len() <= MAX_STRING)
}

/// A bare key is true; `true`/`false` written out are taken too.
fn boolean(v: Option<&str>) -> Option<bool> {
    match v {
        None | Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => None,
    }
}

fn object(v: &str) -> Option<ObjectType> {
    Some(match v {
        "m" => ObjectType::Manifest,
        "a" => ObjectType::Audio,
        "v" => ObjectType::Video,
        "av" => ObjectType::Muxed,
        "i" => ObjectType::Init,
        "c" => ObjectType::Caption,
        "tt" => ObjectType::Text,
        "k" => ObjectType::Key,
        "o" => ObjectType::Other,
        _ => return None,
    })
}

/// Whether an unknown key's value is a number, a string or a token.
fn valid(v: &str) -> Option<()> {
    let number = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    let token = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./:".contains(&b));
    (number || token || string(v).is_some()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_players_reports_parse() {
        // As hls.js sends it (decoded from the CMCD= argument).
        let c = Cmcd::parse(r#"bl=21300,br=3200,bs,cid="faec5fc2-ac30-11ea-bb37-0242ac130002",d=4004,mtp=25400,ot=v,rtp=15000,sf=h,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,su,tb=6000"#).unwrap();
        assert_eq!(c.session, Some("6e2fb550-c457-11e9-bb97-0800200c9a66"));
        assert_eq!(c.content, Some("faec5fc2-ac30-11ea-bb37-0242ac130002"));
        assert_eq!(
            (c.bitrate_kbps, c.buffer_ms, c.measured_kbps, c.requested_kbps),
            (Some(3200), Some(21300), Some(25400), Some(15000))
        );
        assert!(c.starved && c.startup);
        assert_eq!((c.duration_ms, c.object), (Some(4004), Some(ObjectType::Video)));
        // The four headers of one request, merged.
        let mut c = Cmcd::parse("br=800,d=2000,ot=a").unwrap();
        c.merge("bl=500,mtp=1200").unwrap();
        c.merge(r#"sid="abc",v=1"#).unwrap();
        c.merge("").unwrap();
        assert_eq!(
            (c.bitrate_kbps, c.buffer_ms, c.session, c.starved),
            (Some(800), Some(500), Some("abc"), false)
        );
        // A comma inside a string is not a separator.
        assert_eq!(Cmcd::parse(r#"cid="a,b",br=1"#).unwrap().content, Some("a,b"));
        assert!(!Cmcd::parse("bs=false").unwrap().starved);
        assert_eq!(
            Cmcd::parse("x-vendor=\"ok\",nor=\"..%2F2.m4s\",pr=1.25").unwrap(),
            Cmcd::default()
        );
        // Shaka Player's `nor` carries the next segment's whole URL, token
        // and all: other keys' strings are not capped at 64 bytes.
        let nor = format!(
            r#"br=800,nor="seg-00002.m4s%3Ftoken%3D{}",ot=v,sid="s""#,
            "A".repeat(200)
        );
        assert_eq!(Cmcd::parse(&nor).unwrap().bitrate_kbps, Some(800));
    }

    #[test]
    fn malformed_reports_are_refused_whole() {
        let long = format!("sid=\"{}\"", "a".repeat(65));
        let huge = format!("cid=\"x\",{}", "br=1,".repeat(1000));
        for bad in [
            "br=abc",
            "br=-5",
            "br=99999999999",
            "bl=1.5",
            "sid=unquoted",
            long.as_str(),
            "BR=1",
            "=1",
            "ot=zz",
            "bs=maybe",
            "x=\"unterminated",
            "x=a b",
            huge.as_str(),
        ] {
            assert!(Cmcd::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Cmcd::parse(&"a".repeat(MAX_LEN + 1)), Err(CmcdError::TooLong));
        // A bad pair after good ones loses the good ones too.
        let mut c = Cmcd::parse("br=100").unwrap();
        assert!(c.merge("bl=x").is_err());
    }
}
