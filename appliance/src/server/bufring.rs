//! A ring of provided buffers (`IORING_REGISTER_PBUF_RING`).
//!
//! Receives pick a buffer from this ring only when data arrives, so an idle
//! connection holds no receive memory: that is what keeps ten thousand idle
//! clients cheap. The worker copies the bytes out and gives the buffer back
//! at once.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

pub struct BufRing {
    entries: *mut BufRingEntry,
    ring_bytes: usize,
    data: Box<[u8]>,
    count: u16,
    buf_size: usize,
    tail: u16,
    group: u16,
}

impl BufRing {
    /// Registers `count` (a power of two) buffers of `buf_size` bytes as
    /// buffer group `group` of `ring`.
    pub fn new(ring: &IoUring, count: u16, buf_size: usize, group: u16) -> io::Result<Self> {
        assert!(count.is_power_of_two());
        let ring_bytes = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping, checked for failure below.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut me = BufRing {
            entries: mem.cast(),
            ring_bytes,
            data: vec![0u8; usize::from(count) * buf_size].into_boxed_slice(),
            count,
            buf_size,
            tail: 0,
            group,
        };
        // SAFETY: the mapping is page aligned, `count` entries long, and lives
        // as long as `me`, which the worker drops after the ring.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(mem as u64, count, group, 0)?
        };
        for bid in 0..count {
            me.push(bid);
        }
        me.publish();
        Ok(me)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// The first `len` bytes the kernel wrote into buffer `bid`.
    pub fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_size;
        &self.data[start..start + len.min(self.buf_size)]
    }

    /// Hands buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & (self.count - 1));
        // SAFETY: idx < count, inside the mapping; the kernel reads only
        // entries before the published tail.
        let entry = unsafe { &mut *self.entries.add(idx) };
        let addr = self.data.as_ptr() as u64 + (usize::from(bid) * self.buf_size) as u64;
        entry.set_addr(addr);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field sits inside the first entry of the mapping;
        // the kernel reads it with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped; the ring is gone by now.
        unsafe { libc::munmap(self.entries.cast(), self.ring_bytes) };
    }
}
