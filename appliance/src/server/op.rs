//! What an io_uring operation of a worker is for: a tag in the low bits
//! of its user data, the slot (connection or listener) it concerns above.

/// What an io_uring completion is for; with the slot index it makes the
/// operation's user data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Accept = 1,
    Recv,
    Poll,
    Tick,
    Cancel,
    Pace,
    Read,
    Open,
    /// The worker's eventfd: live objects changed for its clients.
    Wake,
    /// A poll of an upstream fetch's socket (the slot is the fetch's).
    Upstream,
}

impl Op {
    const BITS: u32 = 4;
    const ALL: [Op; 10] = [
        Op::Accept,
        Op::Recv,
        Op::Poll,
        Op::Tick,
        Op::Cancel,
        Op::Pace,
        Op::Read,
        Op::Open,
        Op::Wake,
        Op::Upstream,
    ];

    pub fn data(self, idx: usize) -> u64 {
        (idx as u64) << Op::BITS | self as u64
    }

    pub fn of(data: u64) -> (Option<Op>, usize) {
        let tag = data & ((1 << Op::BITS) - 1);
        let op = Op::ALL.into_iter().find(|op| *op as u64 == tag);
        (op, (data >> Op::BITS) as usize)
    }
}
