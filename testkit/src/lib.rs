//! What Nearcast's tests share. Faults are made with the real kernel, not
//! mocked: a disk that fails or crawls is a FUSE filesystem served by the
//! test process itself ([`faultfs`]), and a slow disk is the real disk
//! behind a cgroup v1 blkio throttle ([`cgroup`]). Both need root, as the
//! suite does (it also starts PostgreSQL and QEMU).

pub mod cgroup;
pub mod faultfs;
