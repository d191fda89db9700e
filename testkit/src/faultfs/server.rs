//! The FUSE protocol side of the fault filesystem: reads requests from
//! `/dev/fuse`, does them on the backing directory, injects the faults in
//! force, and writes the replies. Structures and opcodes are those of
//! `<linux/fuse.h>`; we speak protocol 7.31.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FaultKind, FaultOn, Shared};

const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const SETATTR: u32 = 4;
const MKDIR: u32 = 9;
const UNLINK: u32 = 10;
const RMDIR: u32 = 11;
const RENAME: u32 = 12;
const OPEN: u32 = 14;
const READ: u32 = 15;
const WRITE: u32 = 16;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const FSYNC: u32 = 20;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const FSYNCDIR: u32 = 30;
const CREATE: u32 = 35;
const INTERRUPT: u32 = 36;
const BATCH_FORGET: u32 = 42;
const RENAME2: u32 = 45;
const IN_HEADER: usize = 40;
const FUSE_ASYNC_READ: u32 = 1;
const FUSE_GETATTR_FH: u32 = 1;
const FATTR_MODE: u32 = 1;
const FATTR_SIZE: u32 = 8;
const FATTR_FH: u32 = 64;

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_ne_bytes(a)
    })
}

/// The NUL-terminated names at the start of `b`.
fn names(b: &[u8]) -> impl Iterator<Item = &OsStr> {
    b.split(|&c| c == 0).map(OsStr::from_bytes)
}

fn errno(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

type Answer = Result<Vec<u8>, i32>;

/// One reply: the out header and the body, or the header with `-errno`.
fn reply(dev: &File, unique: u64, answer: Answer) {
    let (error, body) = match answer {
        Ok(b) => (0i32, b),
        Err(e) => (-e, Vec::new()),
    };
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&error.to_ne_bytes());
    msg.extend_from_slice(&unique.to_ne_bytes());
    msg.extend_from_slice(&body);
    // An interrupted request's reply is refused (ENOENT); nothing to do.
    let _ = (&*dev).write(&msg);
}

/// `struct fuse_attr` (88 bytes).
fn attr(ino: u64, m: &std::fs::Metadata) -> Vec<u8> {
    let mut a = Vec::with_capacity(88);
    for v in [
        ino,
        m.size(),
        m.blocks(),
        m.atime() as u64,
        m.mtime() as u64,
        m.ctime() as u64,
    ] {
        a.extend_from_slice(&v.to_ne_bytes());
    }
    let (an, mn, cn) = (m.atime_nsec() as u32, m.mtime_nsec() as u32, m.ctime_nsec() as u32);
    for v in [an, mn, cn, m.mode(), m.nlink() as u32, m.uid(), m.gid(), 0, 4096, 0] {
        a.extend_from_slice(&v.to_ne_bytes());
    }
    a
}

/// `struct fuse_attr_out`, valid for 1 s.
fn attr_out(ino: u64, m: &std::fs::Metadata) -> Vec<u8> {
    let mut out = 1u64.to_ne_bytes().to_vec();
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&attr(ino, m));
    out
}

pub(super) struct Server {
    dev: Arc<File>,
    backing: PathBuf,
    state: Arc<Shared>,
    /// Node id → path relative to `backing` (a removed node has none).
    nodes: HashMap<u64, PathBuf>,
    ids: HashMap<PathBuf, u64>,
    next_id: u64,
    /// Open files: the backing file and its path when opened.
    files: HashMap<u64, (Arc<File>, String)>,
    dirs: HashMap<u64, Vec<(u64, Vec<u8>, u32)>>,
    next_fh: u64,
}

impl Server {
    pub(super) fn new(dev: File, backing: PathBuf, state: Arc<Shared>) -> Server {
        Server {
            dev: Arc::new(dev),
            backing,
            state,
            nodes: HashMap::from([(1, PathBuf::new())]),
            ids: HashMap::from([(PathBuf::new(), 1)]),
            next_id: 2,
            files: HashMap::new(),
            dirs: HashMap::new(),
            next_fh: 1,
        }
    }

    pub(super) fn run(&mut self) {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match (&*self.dev).read(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::ENOENT)) => continue,
                // ENODEV: unmounted.
                Err(_) => return,
            };
            if n < IN_HEADER {
                continue;
            }
            let req = &buf[..n];
            let (opcode, unique, node) = (u32_at(req, 4), u64_at(req, 8), u64_at(req, 16));
            let arg = &req[IN_HEADER..];
            match opcode {
                FORGET | BATCH_FORGET | INTERRUPT => {}
                READ => self.read(unique, arg),
                LOOKUP => self.lookup(unique, node, arg),
                WRITE => self.write(unique, arg),
                FSYNC => self.fsync(unique, arg),
                _ => {
                    let answer = self.answer(opcode, node, arg);
                    reply(&self.dev, unique, answer);
                }
            }
        }
    }

    fn answer(&mut self, opcode: u32, node: u64, arg: &[u8]) -> Answer {
        match opcode {
            INIT => Ok(init_out(u32_at(arg, 8))),
            GETATTR => self.getattr(node, u32_at(arg, 0), u64_at(arg, 8)),
            SETATTR => self.setattr(node, arg),
            MKDIR => {
                let rel = self.path(node)?.join(names(&arg[8..]).next().unwrap_or_default());
                std::fs::create_dir(self.backing.join(&rel)).map_err(errno)?;
                let _ = std::fs::set_permissions(self.backing.join(&rel), PermissionsExt::from_mode(u32_at(arg, 0)));
                self.entry(rel)
            }
            UNLINK | RMDIR => {
                let rel = self.path(node)?.join(names(arg).next().unwrap_or_default());
                let full = self.backing.join(&rel);
                match opcode {
                    UNLINK => std::fs::remove_file(full),
                    _ => std::fs::remove_dir(full),
                }
                .map_err(errno)?;
                self.forget_path(&rel);
                Ok(Vec::new())
            }
            RENAME => self.rename(node, u64_at(arg, 0), &arg[8..]),
            RENAME2 => self.rename(node, u64_at(arg, 0), &arg[16..]),
            OPEN => {
                let rel = self.path(node)?;
                let fh = self.open_file(rel, u32_at(arg, 0), None)?;
                Ok(open_out(fh))
            }
            CREATE => {
                let rel = self.path(node)?.join(names(&arg[16..]).next().unwrap_or_default());
                let fh = self.open_file(rel.clone(), u32_at(arg, 0), Some(u32_at(arg, 4)))?;
                let mut out = self.entry(rel)?;
                out.extend_from_slice(&open_out(fh));
                Ok(out)
            }
            RELEASE => {
                self.files.remove(&u64_at(arg, 0));
                Ok(Vec::new())
            }
            OPENDIR => self.opendir(node),
            READDIR => Ok(self.readdir(u64_at(arg, 0), u64_at(arg, 8), u32_at(arg, 16) as usize)),
            RELEASEDIR => {
                self.dirs.remove(&u64_at(arg, 0));
                Ok(Vec::new())
            }
            FLUSH | FSYNCDIR => Ok(Vec::new()),
            STATFS => Ok(statfs(&self.backing)),
            _ => Err(libc::ENOSYS),
        }
    }

    fn path(&self, node: u64) -> Result<PathBuf, i32> {
        self.nodes.get(&node).cloned().ok_or(libc::ENOENT)
    }

    /// `struct fuse_entry_out` for `rel`, giving it a node id.
    fn entry(&mut self, rel: PathBuf) -> Answer {
        let m = std::fs::symlink_metadata(self.backing.join(&rel)).map_err(errno)?;
        let id = match self.ids.get(&rel) {
            Some(&id) => id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.ids.insert(rel.clone(), id);
                self.nodes.insert(id, rel);
                id
            }
        };
        let mut out = Vec::with_capacity(128);
        // node id, generation, entry_valid and attr_valid (1 s), their nsecs.
        for v in [id, 0, 1, 1] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&attr(id, &m));
        Ok(out)
    }

    /// A path is gone (removed, or replaced by a rename): its node keeps
    /// serving only through files already open.
    fn forget_path(&mut self, rel: &Path) {
        if let Some(id) = self.ids.remove(rel) {
            self.nodes.remove(&id);
        }
    }

    fn getattr(&self, node: u64, flags: u32, fh: u64) -> Answer {
        let m = match self.files.get(&fh).filter(|_| flags & FUSE_GETATTR_FH != 0) {
            Some((f, _)) => f.metadata(),
            None => std::fs::symlink_metadata(self.backing.join(self.path(node)?)),
        };
        Ok(attr_out(node, &m.map_err(errno)?))
    }

    fn setattr(&self, node: u64, arg: &[u8]) -> Answer {
        let valid = u32_at(arg, 0);
        let full = self.backing.join(self.path(node)?);
        if valid & FATTR_SIZE != 0 {
            let size = u64_at(arg, 16);
            match self.files.get(&u64_at(arg, 8)).filter(|_| valid & FATTR_FH != 0) {
                Some((f, _)) => f.set_len(size),
                None => File::options().write(true).open(&full).and_then(|f| f.set_len(size)),
            }
            .map_err(errno)?;
        }
        if valid & FATTR_MODE != 0 {
            std::fs::set_permissions(&full, PermissionsExt::from_mode(u32_at(arg, 68))).map_err(errno)?;
        }
        // Times and owners are left as they are.
        let m = std::fs::symlink_metadata(&full).map_err(errno)?;
        Ok(attr_out(node, &m))
    }

    fn rename(&mut self, from_dir: u64, to_dir: u64, arg: &[u8]) -> Answer {
        let mut n = names(arg);
        let (old, new) = (n.next().unwrap_or_default(), n.next().unwrap_or_default());
        let from = self.path(from_dir)?.join(old);
        let to = self.path(to_dir)?.join(new);
        std::fs::rename(self.backing.join(&from), self.backing.join(&to)).map_err(errno)?;
        self.forget_path(&to);
        let moved: Vec<(PathBuf, u64)> = self
            .ids
            .iter()
            .filter(|(p, _)| p.starts_with(&from))
            .map(|(p, &id)| (p.clone(), id))
            .collect();
        for (p, id) in moved {
            // (`join("")` would add a trailing slash.)
            let renamed = match p.strip_prefix(&from) {
                Ok(rest) if !rest.as_os_str().is_empty() => to.join(rest),
                _ => to.clone(),
            };
            self.ids.remove(&p);
            self.ids.insert(renamed.clone(), id);
            self.nodes.insert(id, renamed);
        }
        Ok(Vec::new())
    }

    fn open_file(&mut self, rel: PathBuf, flags: u32, create: Option<u32>) -> Result<u64, i32> {
        let flags = flags as i32;
        let mut o = File::options();
        match flags & libc::O_ACCMODE {
            libc::O_WRONLY => o.write(true),
            libc::O_RDWR => o.read(true).write(true),
            _ => o.read(true),
        };
        o.append(flags & libc::O_APPEND != 0);
        if let Some(mode) = create {
            o.create(true).mode(mode).truncate(flags & libc::O_TRUNC != 0);
        }
        let f = o.open(self.backing.join(&rel)).map_err(errno)?;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.files.insert(fh, (Arc::new(f), rel.to_string_lossy().into_owned()));
        Ok(fh)
    }

    fn opendir(&mut self, node: u64) -> Answer {
        let full = self.backing.join(self.path(node)?);
        let mut entries = Vec::new();
        for e in std::fs::read_dir(full).map_err(errno)?.flatten() {
            let Ok(m) = e.metadata() else {
                continue;
            };
            entries.push((
                m.ino(),
                e.file_name().as_bytes().to_vec(),
                (m.mode() & libc::S_IFMT) >> 12,
            ));
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.dirs.insert(fh, entries);
        Ok(open_out(fh))
    }

    /// `struct fuse_dirent`s from entry `offset` on, as many as fit.
    fn readdir(&self, fh: u64, offset: u64, size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (ino, name, kind)) in self
            .dirs
            .get(&fh)
            .into_iter()
            .flatten()
            .enumerate()
            .skip(offset as usize)
        {
            let len = (24 + name.len()).div_ceil(8) * 8;
            if out.len() + len > size {
                break;
            }
            for v in [*ino, i as u64 + 1] {
                out.extend_from_slice(&v.to_ne_bytes());
            }
            out.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(name);
            out.resize(out.len().div_ceil(8) * 8, 0);
        }
        out
    }

    /// Answers now, or after the fault's delay from another thread (so
    /// one slow operation does not hold up the others).
    fn answer_with(&self, unique: u64, fault: Option<FaultKind>, op: impl FnOnce() -> Answer + Send + 'static) {
        let dev = self.dev.clone();
        match fault {
            Some(FaultKind::Eio) => reply(&dev, unique, Err(libc::EIO)),
            Some(FaultKind::Delay(d)) => {
                std::thread::spawn(move || {
                    std::thread::sleep(d);
                    reply(&dev, unique, op());
                });
            }
            None => reply(&dev, unique, op()),
        }
    }

    fn lookup(&mut self, unique: u64, node: u64, arg: &[u8]) {
        let name = names(arg).next().unwrap_or_default();
        let answer = self.path(node).map(|p| p.join(name)).and_then(|rel| {
            let fault = self.state.fault(FaultOn::Lookups, &rel.to_string_lossy(), 0, 1);
            self.entry(rel).map(|a| (a, fault))
        });
        match answer {
            Ok((a, fault)) => self.answer_with(unique, fault, move || Ok(a)),
            Err(e) => reply(&self.dev, unique, Err(e)),
        }
    }

    fn read(&mut self, unique: u64, arg: &[u8]) {
        *self.state.reads.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let (fh, offset, size) = (u64_at(arg, 0), u64_at(arg, 8), u32_at(arg, 16));
        let Some((file, rel)) = self.files.get(&fh).cloned() else {
            return reply(&self.dev, unique, Err(libc::EBADF));
        };
        // A short answer would read as the end of the file: a read that
        // reaches a bad offset fails as a whole, as a bad sector does.
        let fault = self.state.fault(FaultOn::Reads, &rel, offset, u64::from(size));
        self.answer_with(unique, fault, move || {
            let mut data = vec![0u8; size as usize];
            let n = file.read_at(&mut data, offset).map_err(errno)?;
            data.truncate(n);
            Ok(data)
        });
    }

    fn write(&mut self, unique: u64, arg: &[u8]) {
        let (fh, offset, size) = (u64_at(arg, 0), u64_at(arg, 8), u32_at(arg, 16) as usize);
        let Some((file, rel)) = self.files.get(&fh).cloned() else {
            return reply(&self.dev, unique, Err(libc::EBADF));
        };
        let data = arg.get(40..40 + size).unwrap_or_default().to_vec();
        let fault = self.state.fault(FaultOn::Writes, &rel, offset, size as u64);
        self.answer_with(unique, fault, move || {
            file.write_all_at(&data, offset).map_err(errno)?;
            let mut out = (data.len() as u32).to_ne_bytes().to_vec();
            out.extend_from_slice(&[0u8; 4]);
            Ok(out)
        });
    }

    fn fsync(&mut self, unique: u64, arg: &[u8]) {
        let Some((file, rel)) = self.files.get(&u64_at(arg, 0)).cloned() else {
            return reply(&self.dev, unique, Err(libc::EBADF));
        };
        let fault = self.state.fault(FaultOn::Writes, &rel, 0, u64::MAX / 2);
        self.answer_with(unique, fault, move || {
            file.sync_all().map(|_| Vec::new()).map_err(errno)
        });
    }
}

/// `struct fuse_init_out`: protocol 7.31, async reads, 128 KiB writes.
fn init_out(max_readahead: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for v in [7u32, 31, max_readahead.min(128 * 1024), FUSE_ASYNC_READ] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out.extend_from_slice(&16u16.to_ne_bytes()); // max_background
    out.extend_from_slice(&12u16.to_ne_bytes()); // congestion_threshold
    out.extend_from_slice(&(128u32 * 1024).to_ne_bytes()); // max_write
    out.extend_from_slice(&1u32.to_ne_bytes()); // time_gran
    out.resize(64, 0);
    out
}

/// `struct fuse_open_out` (kernel page cache kept as it is).
fn open_out(fh: u64) -> Vec<u8> {
    let mut out = fh.to_ne_bytes().to_vec();
    out.extend_from_slice(&[0u8; 8]);
    out
}

/// `struct fuse_kstatfs` of the backing filesystem.
fn statfs(backing: &Path) -> Vec<u8> {
    let mut out = vec![0u8; 80];
    let Ok(path) = std::ffi::CString::new(backing.as_os_str().as_bytes()) else {
        return out;
    };
    // SAFETY: a NUL-terminated path and a zeroed out-struct.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut s) } != 0 {
        return out;
    }
    out.clear();
    for v in [s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    for v in [s.f_bsize as u32, s.f_namemax as u32, s.f_frsize as u32] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out.resize(80, 0);
    out
}
