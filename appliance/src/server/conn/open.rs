//! A request whose file the handler could not open without waiting on the
//! disk: the connection keeps the handler's ask, the worker opens the file
//! through io_uring (`Want::Open`), and the request, still in `inbuf`, is
//! decided again once the open completed.

use std::ffi::c_char;

use io_uring::types::OpenHow;

use super::{Conn, Cx};
use crate::handler::OpenAsk;
use crate::store::lookup::OPEN_FLAGS;
use crate::store::{absent_result, disk_bit};

/// Opens for one request beyond one per disk before it is answered 503
/// (each open settles one disk: a file on the last of `n` disks takes `n`
/// when none of its lookups were cached; more means lookups leave the
/// kernel's caches as soon as they entered them).
pub(super) const SPARE_OPEN_ROUNDS: usize = 2;

pub(super) struct Opening {
    ask: OpenAsk,
    /// Read by the kernel at submission; kept until completion.
    how: Box<OpenHow>,
}

impl Opening {
    pub(super) fn new(ask: OpenAsk) -> Self {
        Opening {
            ask,
            how: Box::new(OpenHow::new().flags(OPEN_FLAGS as u64)),
        }
    }
}

impl Conn {
    /// The path and `open_how` of the `Want::Open` to submit.
    pub fn open_args(&self) -> Option<(*const c_char, *const OpenHow)> {
        let o = self.opening.as_ref()?;
        Some((o.ask.path.as_ptr(), &*o.how))
    }

    /// The open completed with `res` (a descriptor or `-errno`): the
    /// handler's cache takes it (or closes it), whatever became of this
    /// connection meanwhile.
    pub fn on_open(&mut self, res: i32, cx: &mut Cx) {
        if let Some(o) = self.opening.take() {
            cx.metrics.opened_async();
            if absent_result(res) {
                self.absent_on |= disk_bit(o.ask.disk);
            }
            cx.handler.opened(&o.ask, res, cx.now);
        } else if res >= 0 {
            // SAFETY: the kernel gave us this descriptor; nobody else has it.
            drop(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(res) });
        }
    }
}
