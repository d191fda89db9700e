//! ISO BMFF boxes: walking them in a byte slice, and reading big-endian
//! fields with bounds checks. Every read returns an error instead of
//! panicking, because the input is whatever file an operator hands us.

use super::Mp4Error;

/// One box: its type and its body (after the header).
#[derive(Clone, Copy)]
pub struct BoxRef<'a> {
    pub kind: [u8; 4],
    pub body: &'a [u8],
}

impl<'a> BoxRef<'a> {
    pub fn kind_str(&self) -> String {
        String::from_utf8_lossy(&self.kind).into_owned()
    }

    /// Child boxes of a container box.
    pub fn children(&self) -> Boxes<'a> {
        Boxes { rest: self.body }
    }

    /// The first child of type `kind`.
    pub fn child(&self, kind: &[u8; 4]) -> Option<BoxRef<'a>> {
        self.children().filter_map(Result::ok).find(|b| &b.kind == kind)
    }

    /// The first child of type `kind`, or an error naming what is missing.
    pub fn need(&self, kind: &[u8; 4]) -> Result<BoxRef<'a>, Mp4Error> {
        self.child(kind).ok_or_else(|| Mp4Error::Missing {
            what: String::from_utf8_lossy(kind).into_owned(),
            inside: self.kind_str(),
        })
    }

    /// A full box: (version, flags, body after them).
    pub fn full(&self) -> Result<(u8, u32, Reader<'a>), Mp4Error> {
        let mut r = Reader::new(self.body, self.kind);
        let vf = r.u32()?;
        Ok(((vf >> 24) as u8, vf & 0x00ff_ffff, r))
    }
}

/// Iterator over consecutive boxes in a slice.
pub struct Boxes<'a> {
    rest: &'a [u8],
}

impl<'a> Boxes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Boxes { rest: data }
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<BoxRef<'a>, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = parse_header(self.rest, self.rest.len() as u64);
        match parsed {
            Ok((kind, header, size)) => {
                let size = size as usize;
                let b = BoxRef {
                    kind,
                    body: &self.rest[header..size],
                };
                self.rest = &self.rest[size..];
                Some(Ok(b))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Parses a box header at the start of `data`, where `avail` bytes of the
/// box's space exist (for size 0, "to the end"). Returns (type, header
/// length, total size).
pub fn parse_header(data: &[u8], avail: u64) -> Result<([u8; 4], usize, u64), Mp4Error> {
    if data.len() < 8 {
        return Err(Mp4Error::Truncated("box header".into()));
    }
    let size32 = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let kind = [data[4], data[5], data[6], data[7]];
    let (header, size) = match size32 {
        0 => (8, avail),
        1 => {
            if data.len() < 16 {
                return Err(Mp4Error::Truncated("64-bit box header".into()));
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&data[8..16]);
            (16, u64::from_be_bytes(b))
        }
        n => (8, u64::from(n)),
    };
    if size < header as u64 || size > avail {
        return Err(Mp4Error::BadBox {
            kind: String::from_utf8_lossy(&kind).into_owned(),
            reason: format!("size {size} does not fit in the {avail} bytes left"),
        });
    }
    Ok((kind, header, size))
}

/// A bounds-checked big-endian reader over a box body.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    kind: [u8; 4],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], kind: [u8; 4]) -> Self {
        Reader { data, pos: 0, kind }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(Mp4Error::Truncated(String::from_utf8_lossy(&self.kind).into_owned()));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), Mp4Error> {
        self.bytes(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8, Mp4Error> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Mp4Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, Mp4Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Mp4Error> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos..];
        self.pos = self.data.len();
        s
    }

    /// A table entry count, checked against the bytes left so a forged
    /// count cannot make us allocate gigabytes.
    pub fn count(&mut self, entry_size: usize) -> Result<usize, Mp4Error> {
        let n = self.u32()? as usize;
        if n.saturating_mul(entry_size) > self.data.len() - self.pos {
            return Err(Mp4Error::BadBox {
                kind: String::from_utf8_lossy(&self.kind).into_owned(),
                reason: format!("{n} entries do not fit in the box"),
            });
        }
        Ok(n)
    }
}
