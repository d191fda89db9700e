//! The worker's live side: its eventfd (other workers' fetches changed
//! objects its clients wait on), the fetches its clients' misses asked
//! for, and the parked clients of objects that changed.

use io_uring::{opcode, types};

use super::Worker;
use crate::server::op::Op;

impl Worker {
    pub(super) fn arm_wake(&mut self) {
        let fd = types::Fd(self.cx.shared.live.wake_fd(self.cx.me));
        let e = opcode::Read::new(fd, (&mut *self.wake_buf as *mut u64).cast(), 8)
            .build()
            .user_data(Op::Wake.data(0));
        self.push(e);
    }

    /// Another worker's fetch changed objects this worker's clients wait on.
    pub(super) fn on_wake(&mut self) {
        self.arm_wake();
        let mut changed = std::mem::take(&mut self.changed);
        self.cx.shared.live.changed(self.cx.me, &mut changed);
        self.fetches.woken.append(&mut changed);
        self.changed = changed;
    }

    /// Starts the fetches clients asked for, submits the fetches' polls
    /// and cancels, and drives the clients of objects that changed, until
    /// none is left.
    pub(super) fn live_work(&mut self) {
        loop {
            for ask in std::mem::take(&mut self.cx.fetch_asks) {
                self.fetches.start(ask, self.cx.now);
            }
            for p in std::mem::take(&mut self.fetches.polls) {
                let mask = if p.out { libc::POLLOUT } else { libc::POLLIN };
                let e = opcode::PollAdd::new(types::Fd(p.fd), mask as u32)
                    .build()
                    .user_data(Op::Upstream.data(p.id));
                self.push(e);
            }
            for id in std::mem::take(&mut self.fetches.cancels) {
                let e = opcode::AsyncCancel::new(Op::Upstream.data(id))
                    .build()
                    .user_data(Op::Cancel.data(0));
                self.push(e);
            }
            let woken = std::mem::take(&mut self.fetches.woken);
            if woken.is_empty() && self.cx.fetch_asks.is_empty() {
                return;
            }
            for obj in woken {
                for id in self.parked.remove(&obj).unwrap_or_default() {
                    if let Some(slot) = self.slots[id].as_mut() {
                        slot.parked = None;
                    }
                    self.drive(id);
                }
            }
        }
    }
}
