//! dm-verity for the box's root slots. A slot is its squashfs padded to
//! a 4 KiB block, then the hash tree of those blocks (`tree`); the root
//! hash is signed in the bundle manifest and handed to the kernel on the
//! boot entry, and the initramfs opens the slot through device-mapper
//! (`dm`), so a slot whose bytes changed after install fails on read.
//! No veritysetup or dmsetup: the initramfs has only busybox and this
//! crate's small static binary.

pub mod dm;
pub mod tree;

pub use tree::{Params, ParamsError, BLOCK};
