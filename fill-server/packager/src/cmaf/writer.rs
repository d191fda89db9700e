//! A tiny box builder: open a box, write fields, close it (the size is
//! patched in on close).

#[derive(Default)]
pub struct BoxWriter {
    pub buf: Vec<u8>,
    open: Vec<usize>,
}

impl BoxWriter {
    pub fn new() -> Self {
        BoxWriter {
            buf: Vec::with_capacity(4096),
            open: Vec::new(),
        }
    }

    pub fn open(&mut self, kind: &[u8; 4]) -> &mut Self {
        self.open.push(self.buf.len());
        self.u32(0).bytes(kind)
    }

    pub fn open_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> &mut Self {
        self.open(kind).u32(u32::from(version) << 24 | (flags & 0x00ff_ffff))
    }

    pub fn close(&mut self) -> &mut Self {
        if let Some(start) = self.open.pop() {
            let size = (self.buf.len() - start) as u32;
            self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
        }
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// The unity transformation matrix of tkhd/mvhd.
    pub fn matrix(&mut self) -> &mut Self {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
        self
    }

    pub fn finish(self) -> Vec<u8> {
        debug_assert!(self.open.is_empty());
        self.buf
    }
}
