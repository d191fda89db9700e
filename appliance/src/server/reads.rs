//! Reading body bytes that are not in the page cache: one queue of reads
//! per disk with a bounded depth, and the bounded pool of buffers they read
//! into. One per worker, like everything else on the request path.
//!
//! Fairness comes from the connection rule: a connection has at most one
//! read queued or in flight, and queues again only after that read's bytes
//! went out, so a FIFO per disk serves the waiting connections round-robin
//! however large their files are. A disk's depth caps the reads in flight
//! on it (beyond a device's own queue, more only adds latency); the pool
//! caps the memory (`buffers` x `buffer_bytes` per worker, allocated as they
//! are first needed).

use std::collections::VecDeque;

/// A page-aligned buffer that one read fills (aligned so that `O_DIRECT`
/// reads can use it too).
pub struct ReadBuf {
    mem: memmap2::MmapMut,
}

impl ReadBuf {
    fn new(len: usize) -> std::io::Result<ReadBuf> {
        Ok(ReadBuf {
            mem: memmap2::MmapMut::map_anon(len)?,
        })
    }

    /// Where the kernel writes (the buffer is `len()` bytes).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.mem.as_mut_ptr()
    }

    pub fn len(&self) -> usize {
        self.mem.len()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.mem
    }
}

#[derive(Default)]
struct Queue {
    /// Connections waiting for their turn, oldest first.
    waiting: VecDeque<usize>,
    in_flight: usize,
}

pub struct ReadQueues {
    disks: Vec<Queue>,
    depth: usize,
    free: Vec<ReadBuf>,
    made: usize,
    max_buffers: usize,
    buffer_bytes: usize,
    /// Disk to look at first on the next dispatch (round-robin over disks).
    next: usize,
}

impl ReadQueues {
    pub fn new(disks: usize, depth: usize, max_buffers: usize, buffer_bytes: usize) -> Self {
        ReadQueues {
            disks: (0..disks).map(|_| Queue::default()).collect(),
            depth: depth.max(1),
            free: Vec::new(),
            made: 0,
            max_buffers: max_buffers.max(1),
            buffer_bytes,
            next: 0,
        }
    }

    /// The most one read asks for.
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// Connection `conn` wants to read from `disk`.
    pub fn push(&mut self, disk: usize, conn: usize) {
        if let Some(q) = self.disks.get_mut(disk) {
            q.waiting.push_back(conn);
        }
    }

    /// Takes `conn` out of `disk`'s queue (it closed while waiting).
    pub fn cancel(&mut self, disk: usize, conn: usize) {
        if let Some(q) = self.disks.get_mut(disk) {
            q.waiting.retain(|&c| c != conn);
        }
    }

    /// The next read to submit: a waiting connection on a disk below its
    /// depth, and a buffer for it. The disk counts it in flight until
    /// [`ReadQueues::done`].
    pub fn pop(&mut self) -> Option<(usize, usize, ReadBuf)> {
        let n = self.disks.len();
        for k in 0..n {
            let disk = (self.next + k) % n;
            let q = &self.disks[disk];
            if q.waiting.is_empty() || q.in_flight >= self.depth {
                continue;
            }
            let buf = self.take_buffer()?;
            let q = &mut self.disks[disk];
            let Some(conn) = q.waiting.pop_front() else {
                self.free.push(buf);
                continue;
            };
            q.in_flight += 1;
            self.next = (disk + 1) % n;
            return Some((disk, conn, buf));
        }
        None
    }

    /// A read on `disk` completed.
    pub fn done(&mut self, disk: usize) {
        if let Some(q) = self.disks.get_mut(disk) {
            q.in_flight = q.in_flight.saturating_sub(1);
        }
    }

    /// A buffer whose bytes were sent (or dropped).
    pub fn give(&mut self, buf: ReadBuf) {
        self.free.push(buf);
    }

    /// Reads waiting and in flight on `disk`.
    #[cfg(test)]
    pub fn depth_of(&self, disk: usize) -> (usize, usize) {
        self.disks.get(disk).map_or((0, 0), |q| (q.waiting.len(), q.in_flight))
    }

    /// Buffers handed out and not yet given back.
    pub fn buffers_in_use(&self) -> usize {
        self.made - self.free.len()
    }

    /// Whether any read is still in flight (the kernel may still write
    /// into a buffer).
    pub fn busy(&self) -> bool {
        self.disks.iter().any(|q| q.in_flight > 0)
    }

    fn take_buffer(&mut self) -> Option<ReadBuf> {
        if let Some(b) = self.free.pop() {
            return Some(b);
        }
        if self.made >= self.max_buffers {
            return None;
        }
        match ReadBuf::new(self.buffer_bytes) {
            Ok(b) => {
                self.made += 1;
                Some(b)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot allocate a read buffer");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_per_disk_with_a_depth_and_a_buffer_cap() {
        let mut q = ReadQueues::new(2, 2, 3, 4096);
        for conn in [10, 11, 12] {
            q.push(0, conn);
        }
        q.push(1, 20);
        let a = q.pop().unwrap();
        let b = q.pop().unwrap();
        let c = q.pop().unwrap();
        // Disks alternate; disk 0 serves its connections in arrival order.
        assert_eq!((a.0, a.1), (0, 10));
        assert_eq!((b.0, b.1), (1, 20));
        assert_eq!((c.0, c.1), (0, 11));
        assert_eq!(q.depth_of(0), (1, 2));
        // Disk 0 is at its depth and the pool is spent.
        assert!(q.pop().is_none());
        assert_eq!(q.buffers_in_use(), 3);
        q.done(0);
        assert!(q.pop().is_none(), "no buffer free yet");
        q.give(a.2);
        let d = q.pop().unwrap();
        assert_eq!((d.0, d.1), (0, 12));
        assert!(q.busy());
    }

    #[test]
    fn a_cancelled_connection_is_never_dispatched() {
        let mut q = ReadQueues::new(1, 4, 4, 4096);
        q.push(0, 1);
        q.push(0, 2);
        q.cancel(0, 1);
        assert_eq!(q.pop().map(|(_, c, _)| c), Some(2));
        assert!(q.pop().is_none());
    }

    #[test]
    fn buffers_are_page_aligned() {
        let mut q = ReadQueues::new(1, 1, 1, 8192);
        q.push(0, 0);
        let (_, _, mut buf) = q.pop().unwrap();
        assert_eq!(buf.as_mut_ptr() as usize % 4096, 0);
        assert_eq!(buf.len(), 8192);
    }
}
