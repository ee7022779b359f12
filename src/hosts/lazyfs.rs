//! The power-failure filesystem: a FUSE passthrough over a backing directory that keeps
//! every write since the file's last fsync in faultline's memory, so that a fault can drop
//! those writes for real — the node wrote them, the kernel acknowledged them, and after
//! [`Mount::power_fail`] they are gone, as they would be after a power cut. Nothing runs
//! inside the target: it sees an ordinary directory (issue 23, "Power failure").
//!
//! The idea is LazyFS's (Ramos et al., "When Amnesia Strikes", VLDB 2024); this is our own,
//! smaller model of it.
//!
//! # What is kept where
//!
//! - **File contents** written through the mount go into a per-file page cache
//!   ([`Overlay`], 4 KiB pages) held here. Reads through the mount see it; `stat` sizes
//!   reflect it. The backing file is not touched.
//! - **fsync / fdatasync** of a file writes its cached pages to the backing file and then
//!   fsyncs the backing file, so a node's fsync costs at least what it costs on the backing
//!   disk. Only that file's pages move: fsync of one file persists nothing of another.
//! - **O_SYNC / O_DSYNC** files: each write reaches the backing file before it returns.
//! - **close** persists nothing (as on a real disk, closing is not syncing).
//! - **Metadata** — create, mkdir, rmdir, unlink, rename, symlink, chmod, chown, times and
//!   truncate (`ftruncate`, `O_TRUNC`, size-extending `fallocate`) — reaches the backing
//!   directory at once, as a journaling filesystem such as ext4 commits metadata
//!   independently of data. `fsyncdir` therefore has nothing left to do.
//!
//! # What a power failure leaves
//!
//! [`Mount::power_fail`] drops every cached page of every file and reports how much was
//! dropped ([`Lost`]). Afterwards the mount shows exactly the backing directory:
//!
//! - every file has the contents it had at its last fsync (or O_DSYNC write), and the size
//!   it had then, except that truncations since then have happened;
//! - files created and never fsynced exist, empty (or with what an fsync put there);
//! - a file renamed over another keeps the new name and only its fsynced contents — so the
//!   classic "write temp, rename, no fsync" leaves an empty file, as it can on ext4;
//! - directories, unlinks and renames stay as they were done.
//!
//! There is one kind of loss: all or nothing per file since its last fsync (no torn pages,
//! no reordering within a file). `power_fail` is both LazyFS's `clear-cache` and its crash:
//! the mount stays up and serves what survived, so the node can be restarted on it; killing
//! the node first is the caller's business (the later `power-fail` fault).
//!
//! # Limits
//!
//! - Hard links are refused (EPERM): inodes here are paths, and two paths to one page cache
//!   would need more bookkeeping than nodes' data dirs need. mknod and xattrs: ENOSYS.
//! - A file unlinked while open loses its cached pages at the unlink; reads through the
//!   still-open descriptor then see its backing contents.
//! - The kernel's attribute and entry caches are off (TTL 0) so sizes always come from
//!   here; after a power failure the kernel's page cache of every file is invalidated.
//!
//! Stale mounts (a controller SIGKILLed with a mount up leaves it dead, every access
//! failing with ENOTCONN) are found in `/proc/self/mountinfo` by their source name
//! [`FS_NAME`] and detached by [`sweep_stale_mounts`], which the cleanup sweep calls.

use anyhow::{bail, Context, Result};
use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    SessionACL, TimeOrNow, WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{File, FileTimes, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The page size of the cache: the unit in which un-fsynced data is kept and counted.
pub const PAGE: u64 = 4096;

/// The mount's source name in `/proc/self/mountinfo`, by which the sweep recognises ours.
pub const FS_NAME: &str = "faultline-lazyfs";

/// Attributes and entries are not cached by the kernel: sizes change under it (writes
/// cached here, power failures) and must always be asked for.
const TTL: Duration = Duration::ZERO;

/// What a power failure dropped: files that had un-fsynced data, and how many bytes of it
/// (counted in whole pages, clipped to each file's size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    pub files: u64,
    pub bytes: u64,
}

/// A source of the persisted bytes under an [`Overlay`] (the backing file).
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Fill `buf` from `offset`; what lies past the backing file's end reads as zeros (a hole
/// the cache extended the file over).
fn read_full<B: ReadAt + ?Sized>(backing: &B, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match backing.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

/// One file's un-fsynced state: its size as the mount shows it and its dirty pages. The
/// file as seen through the mount is the backing file, overlaid by these pages, cut or
/// zero-extended to `size`.
///
/// Invariants: `size` is at least the backing file's size (truncation reaches the backing
/// file at once, writes only grow), and bytes of a page past `size` are zero, so extending
/// the file later shows zeros there.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    size: u64,
    pages: BTreeMap<u64, Box<[u8]>>,
}

impl Overlay {
    /// A clean overlay over a backing file of `size` bytes.
    pub fn new(size: u64) -> Overlay {
        Overlay {
            size,
            pages: BTreeMap::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_dirty(&self) -> bool {
        !self.pages.is_empty()
    }

    /// Bytes held only here: dirty pages, clipped to the file's size.
    pub fn dirty_bytes(&self) -> u64 {
        self.pages
            .keys()
            .map(|&i| PAGE.min(self.size.saturating_sub(i * PAGE)))
            .sum()
    }

    /// Up to `len` bytes from `offset` as the mount shows them.
    pub fn read<B: ReadAt + ?Sized>(
        &self,
        backing: &B,
        offset: u64,
        len: usize,
    ) -> io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let end = self.size.min(offset.saturating_add(len as u64));
        let mut out = vec![0u8; (end - offset) as usize];
        let mut pos = offset;
        while pos < end {
            let idx = pos / PAGE;
            let in_page = pos % PAGE;
            let at = (pos - offset) as usize;
            if let Some(page) = self.pages.get(&idx) {
                let n = (PAGE - in_page).min(end - pos);
                out[at..at + n as usize]
                    .copy_from_slice(&page[in_page as usize..(in_page + n) as usize]);
                pos += n;
            } else {
                // A run of clean pages is one read of the backing file.
                let next_dirty = self
                    .pages
                    .range(idx + 1..)
                    .next()
                    .map_or(u64::MAX, |(&i, _)| i * PAGE);
                let run_end = end.min(next_dirty);
                read_full(backing, &mut out[at..(run_end - offset) as usize], pos)?;
                pos = run_end;
            }
        }
        Ok(out)
    }

    /// Cache a write of `data` at `offset`.
    pub fn write<B: ReadAt + ?Sized>(
        &mut self,
        backing: &B,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let idx = pos / PAGE;
            let in_page = pos % PAGE;
            let n = (PAGE - in_page).min(end - pos);
            if !self.pages.contains_key(&idx) {
                let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
                if n < PAGE {
                    // The rest of the page keeps what the file shows now.
                    let valid = PAGE.min(self.size.saturating_sub(idx * PAGE));
                    read_full(backing, &mut page[..valid as usize], idx * PAGE)?;
                }
                self.pages.insert(idx, page);
            }
            if let Some(page) = self.pages.get_mut(&idx) {
                let from = (pos - offset) as usize;
                page[in_page as usize..(in_page + n) as usize]
                    .copy_from_slice(&data[from..from + n as usize]);
            }
            pos += n;
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// Cut or extend to `size`; the caller truncates the backing file to the same size.
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            self.pages.split_off(&size.div_ceil(PAGE));
            if !size.is_multiple_of(PAGE) {
                if let Some(page) = self.pages.get_mut(&(size / PAGE)) {
                    page[(size % PAGE) as usize..].fill(0);
                }
            }
        }
        self.size = size;
    }

    /// Hand the dirty pages to `write` (offset, bytes), contiguous pages as one slice and
    /// the last clipped to the size; the overlay is clean once every write succeeded.
    /// Returns the bytes written.
    pub fn flush<W: FnMut(u64, &[u8]) -> io::Result<()>>(
        &mut self,
        mut write: W,
    ) -> io::Result<u64> {
        let mut written = 0;
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0;
        let mut next_idx = None;
        for (&idx, page) in &self.pages {
            if next_idx != Some(idx) && !run.is_empty() {
                write(run_start, &run)?;
                written += run.len() as u64;
                run.clear();
            }
            if run.is_empty() {
                run_start = idx * PAGE;
            }
            let valid = PAGE.min(self.size.saturating_sub(idx * PAGE)) as usize;
            run.extend_from_slice(&page[..valid]);
            next_idx = Some(idx + 1);
        }
        if !run.is_empty() {
            write(run_start, &run)?;
            written += run.len() as u64;
        }
        self.pages.clear();
        Ok(written)
    }
}

/// The filesystem's state, shared by the FUSE session thread and the [`Mount`] handle.
#[derive(Debug)]
struct State {
    /// The backing directory, absolute.
    root: PathBuf,
    /// Inode numbers are paths relative to `root` ("" is the root).
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Files with un-fsynced data (only those: a clean file has no entry).
    cache: HashMap<u64, Overlay>,
    /// Open handles: the backing file each open of the mount holds.
    handles: HashMap<u64, Arc<File>>,
    next_fh: u64,
}

impl State {
    fn new(root: PathBuf) -> State {
        let mut s = State {
            root,
            paths: HashMap::new(),
            inos: HashMap::new(),
            next_ino: 2,
            cache: HashMap::new(),
            handles: HashMap::new(),
            next_fh: 1,
        };
        s.paths.insert(INodeNo::ROOT.0, PathBuf::new());
        s.inos.insert(PathBuf::new(), INodeNo::ROOT.0);
        s
    }

    fn rel(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn abs(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        Ok(self.root.join(self.rel(ino)?))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<(PathBuf, PathBuf), Errno> {
        let rel = self.rel(parent)?.join(name);
        let abs = self.root.join(&rel);
        Ok((rel, abs))
    }

    fn ino_for(&mut self, rel: &Path) -> u64 {
        if let Some(&ino) = self.inos.get(rel) {
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.paths.insert(ino, rel.to_path_buf());
        self.inos.insert(rel.to_path_buf(), ino);
        ino
    }

    /// The path is gone (unlinked, or renamed over): so are its inode and cached pages.
    fn forget_path(&mut self, rel: &Path) {
        if let Some(ino) = self.inos.remove(rel) {
            self.paths.remove(&ino);
            self.cache.remove(&ino);
        }
    }

    /// `from` (and everything under it) is now called `to`.
    fn move_paths(&mut self, from: &Path, to: &Path) {
        let moved: Vec<(PathBuf, u64)> = self
            .inos
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        for (old, ino) in moved {
            self.inos.remove(&old);
            let new = match old.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => continue,
            };
            self.inos.insert(new.clone(), ino);
            self.paths.insert(ino, new);
        }
    }

    fn attr(&self, ino: u64, meta: &Metadata) -> FileAttr {
        let size = self
            .cache
            .get(&ino)
            .map_or(meta.len(), |o| o.size().max(meta.len()));
        let kind = FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile);
        let time = |secs: i64, nsecs: i64| {
            if secs >= 0 {
                UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
            } else {
                UNIX_EPOCH
            }
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512).max(meta.blocks()),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: time(meta.ctime(), meta.ctime_nsec()),
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: PAGE as u32,
            flags: 0,
        }
    }

    /// Look `rel` up in the backing directory and give it an inode.
    fn entry(&mut self, rel: &Path) -> Result<FileAttr, Errno> {
        let meta = self
            .root
            .join(rel)
            .symlink_metadata()
            .map_err(Errno::from)?;
        let ino = self.ino_for(rel);
        Ok(self.attr(ino, &meta))
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.handles.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn add_handle(&mut self, file: File) -> FileHandle {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Arc::new(file));
        FileHandle(fh)
    }

    /// Write `ino`'s cached pages to `file` and fsync it: the one way data persists.
    fn persist(&mut self, ino: INodeNo, file: &File, data_only: bool) -> io::Result<()> {
        if let Some(mut overlay) = self.cache.remove(&ino.0) {
            if let Err(e) = overlay.flush(|off, bytes| file.write_all_at(bytes, off)) {
                // Keep what could not be written cached (and lost on power failure).
                self.cache.insert(ino.0, overlay);
                return Err(e);
            }
        }
        if data_only {
            file.sync_data()
        } else {
            file.sync_all()
        }
    }

    /// Set the size at once in the backing file (metadata) and in the cache.
    fn truncate(&mut self, ino: INodeNo, file: &File, size: u64) -> io::Result<()> {
        file.set_len(size)?;
        if let Some(overlay) = self.cache.get_mut(&ino.0) {
            overlay.truncate(size);
            if !overlay.is_dirty() {
                self.cache.remove(&ino.0);
            }
        }
        Ok(())
    }
}

/// The FUSE side: every request takes the state lock (one session thread serves them).
struct LazyFs {
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in one request must not turn every later request into a panic.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_backing(path: &Path) -> io::Result<File> {
    // Always read-write when allowed: cached pages are filled from the backing file and
    // fsync writes them through whichever handle the node fsyncs, even a read-only one.
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .or_else(|_| {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
        })
}

fn to_time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl LazyFs {
    /// Removes `name` from `parent` in the backing dir with `rm` (a file or an empty
    /// directory) and forgets its cached pages: unlink and rmdir alike reach the disk at
    /// once.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEmpty,
        rm: impl FnOnce(&Path) -> std::io::Result<()>,
    ) {
        let mut s = self.state();
        let res = s.child(parent, name).and_then(|(rel, abs)| {
            rm(&abs).map_err(Errno::from)?;
            s.forget_path(&rel);
            Ok(())
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl fuser::Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.state();
        let res = s.child(parent, name).and_then(|(rel, _)| s.entry(&rel));
        match res {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = self.state();
        // Through the handle when there is one: an unlinked file has no path.
        let meta = match fh.and_then(|fh| s.handle(fh).ok()) {
            Some(file) => file.metadata().map_err(Errno::from),
            None => s
                .abs(ino)
                .and_then(|p| p.symlink_metadata().map_err(Errno::from)),
        };
        match meta {
            Ok(meta) => reply.attr(&TTL, &s.attr(ino.0, &meta)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let res = (|| -> Result<FileAttr, Errno> {
            let path = s.abs(ino)?;
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(Errno::from)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid).map_err(Errno::from)?;
            }
            if let Some(size) = size {
                let file = match fh.and_then(|fh| s.handle(fh).ok()) {
                    Some(f) => f,
                    None => Arc::new(open_backing(&path).map_err(Errno::from)?),
                };
                s.truncate(ino, &file, size).map_err(Errno::from)?;
            }
            if atime.is_some() || mtime.is_some() {
                let mut times = FileTimes::new();
                if let Some(t) = atime {
                    times = times.set_accessed(to_time(t));
                }
                if let Some(t) = mtime {
                    times = times.set_modified(to_time(t));
                }
                File::open(&path)
                    .and_then(|f| f.set_times(times))
                    .map_err(Errno::from)?;
            }
            let meta = path.symlink_metadata().map_err(Errno::from)?;
            Ok(s.attr(ino.0, &meta))
        })();
        match res {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let res = self
            .state()
            .abs(ino)
            .and_then(|p| std::fs::read_link(p).map_err(Errno::from));
        match res {
            Ok(target) => reply.data(target.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let res = s.child(parent, name).and_then(|(rel, abs)| {
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(&abs)
                .map_err(Errno::from)?;
            s.entry(&rel)
        });
        match res {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |p| std::fs::remove_file(p));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |p| std::fs::remove_dir(p));
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let res = s.child(parent, link_name).and_then(|(rel, abs)| {
            std::os::unix::fs::symlink(target, &abs).map_err(Errno::from)?;
            s.entry(&rel)
        });
        match res {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            // RENAME_NOREPLACE / RENAME_EXCHANGE: callers fall back to plain rename.
            reply.error(Errno::EINVAL);
            return;
        }
        let mut s = self.state();
        let res = (|| -> Result<(), Errno> {
            let (from_rel, from_abs) = s.child(parent, name)?;
            let (to_rel, to_abs) = s.child(newparent, newname)?;
            std::fs::rename(&from_abs, &to_abs).map_err(Errno::from)?;
            if from_rel != to_rel {
                // What was at the destination is gone, cached pages and all.
                s.forget_path(&to_rel);
                s.move_paths(&from_rel, &to_rel);
            }
            Ok(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.state();
        let res = s.abs(ino).and_then(|path| {
            let file = open_backing(&path).map_err(Errno::from)?;
            let fh = s.add_handle(file);
            if flags.0 & libc::O_TRUNC != 0 {
                let file = s.handle(fh)?;
                s.truncate(ino, &file, 0).map_err(Errno::from)?;
            }
            Ok(fh)
        });
        match res {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.state();
        let res = s.child(parent, name).and_then(|(rel, abs)| {
            let mut opts = OpenOptions::new();
            opts.read(true)
                .write(true)
                .mode(mode & !umask & 0o7777)
                .custom_flags(libc::O_NOFOLLOW);
            if flags & libc::O_EXCL != 0 {
                opts.create_new(true);
            } else {
                opts.create(true);
            }
            let file = opts.open(&abs).map_err(Errno::from)?;
            let attr = s.entry(&rel)?;
            let fh = s.add_handle(file);
            if flags & libc::O_TRUNC != 0 {
                let file = s.handle(fh)?;
                s.truncate(attr.ino, &file, 0).map_err(Errno::from)?;
            }
            let attr = s.entry(&rel)?;
            Ok((attr, fh))
        });
        match res {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.state();
        let res = s.handle(fh).and_then(|file| {
            match s.cache.get(&ino.0) {
                Some(o) => o.read(&*file, offset, size as usize),
                None => {
                    let len = file.metadata()?.len();
                    Overlay::new(len).read(&*file, offset, size as usize)
                }
            }
            .map_err(Errno::from)
        });
        match res {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        let res = (|| -> Result<(), Errno> {
            let file = s.handle(fh)?;
            let overlay = match s.cache.entry(ino.0) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let len = file.metadata().map_err(Errno::from)?.len();
                    e.insert(Overlay::new(len))
                }
            };
            overlay.write(&*file, offset, data).map_err(Errno::from)?;
            // O_SYNC includes the O_DSYNC bit on Linux.
            if flags.0 & libc::O_DSYNC != 0 {
                s.persist(ino, &file, true).map_err(Errno::from)?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) persists nothing.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let res = s
            .handle(fh)
            .and_then(|file| s.persist(ino, &file, datasync).map_err(Errno::from));
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.state();
        let res = (|| -> Result<Vec<(u64, FileType, std::ffi::OsString)>, Errno> {
            let rel = s.rel(ino)?;
            let parent = rel.parent().map_or(INodeNo::ROOT.0, |p| s.ino_for(p));
            let mut out = vec![
                (ino.0, FileType::Directory, ".".into()),
                (parent, FileType::Directory, "..".into()),
            ];
            let mut names: Vec<_> = std::fs::read_dir(s.root.join(&rel))
                .map_err(Errno::from)?
                .filter_map(|e| e.ok())
                .map(|e| {
                    let kind = e
                        .file_type()
                        .ok()
                        .and_then(FileType::from_std)
                        .unwrap_or(FileType::RegularFile);
                    (e.file_name(), kind)
                })
                .collect();
            // A stable order, so offsets stay meaningful between calls.
            names.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, kind) in names {
                let child = s.ino_for(&rel.join(&name));
                out.push((child, kind, name));
            }
            Ok(out)
        })();
        match res {
            Ok(entries) => {
                for (i, (child, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Metadata reached the backing directory when it was done.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.state().root.clone();
        match nix::sys::statvfs::statvfs(&root) {
            Ok(v) => reply.statfs(
                v.blocks(),
                v.blocks_free(),
                v.blocks_available(),
                v.files(),
                v.files_free(),
                v.block_size() as u32,
                v.name_max() as u32,
                v.fragment_size() as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // The kernel checks permissions (default_permissions).
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let res = (|| -> Result<(), Errno> {
            if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
                return Err(Errno::from_i32(libc::EOPNOTSUPP));
            }
            if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
                // Only reserves space: nothing the mount shows changes.
                return Ok(());
            }
            let file = s.handle(fh)?;
            let size = s
                .cache
                .get(&ino.0)
                .map(Overlay::size)
                .unwrap_or(file.metadata().map_err(Errno::from)?.len());
            let end = offset.saturating_add(length);
            if end > size {
                // A size change: metadata, so at once, like truncate.
                s.truncate(ino, &file, end).map_err(Errno::from)?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

/// A mounted power-failure filesystem. Dropping it unmounts.
pub struct Mount {
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

/// Mount the power-failure filesystem over `mountpoint`, passing through to `backing`
/// (both existing directories). Served by a background thread until unmounted. Needs root
/// (mount(2)) and /dev/fuse.
pub fn mount(backing: &Path, mountpoint: &Path) -> Result<Mount> {
    let root = backing
        .canonicalize()
        .with_context(|| format!("backing directory {}", backing.display()))?;
    if !root.is_dir() {
        bail!("backing {} is not a directory", root.display());
    }
    let state = Arc::new(Mutex::new(State::new(root)));
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(FS_NAME.to_string()),
        MountOption::Subtype("faultline".to_string()),
        MountOption::DefaultPermissions,
        MountOption::RW,
    ];
    // Nodes may run as another user than the controller.
    config.acl = SessionACL::All;
    let fs = LazyFs {
        state: state.clone(),
    };
    let session = fuser::spawn_mount(fs, mountpoint, &config).with_context(|| {
        format!(
            "cannot mount the power-failure filesystem on {} (needs root and /dev/fuse)",
            mountpoint.display()
        )
    })?;
    Ok(Mount {
        state,
        session: Some(session),
        mountpoint: mountpoint.to_path_buf(),
    })
}

impl Mount {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Un-fsynced data currently held: what a power failure now would lose.
    pub fn pending(&self) -> Lost {
        let s = lock(&self.state);
        Lost {
            files: s.cache.len() as u64,
            bytes: s.cache.values().map(Overlay::dirty_bytes).sum(),
        }
    }

    /// Drop every write not yet fsynced, in every file; the mount then shows the backing
    /// directory as it is. The node should be dead first: a live one would go on from a
    /// state its files no longer hold.
    pub fn power_fail(&self) -> Lost {
        let (lost, inos) = {
            let mut s = lock(&self.state);
            let lost = Lost {
                files: s.cache.len() as u64,
                bytes: s.cache.values().map(Overlay::dirty_bytes).sum(),
            };
            s.cache.clear();
            (lost, s.paths.keys().copied().collect::<Vec<_>>())
        };
        // The kernel may still hold pages read or written before: forget them, so reads
        // come here. Inodes the kernel already forgot answer ENOENT, which is fine.
        if let Some(session) = &self.session {
            let notifier = session.notifier();
            for ino in inos {
                let _ = notifier.inval_inode(INodeNo(ino), 0, -1);
            }
        }
        lost
    }

    /// Unmount and stop the session thread. If the mount is busy (a process still has a
    /// file open there) it is detached lazily and the error says so.
    pub fn unmount(mut self) -> Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if let Err(e) = session.umount_and_join() {
            // Busy: detach it, so nothing new enters; the session ends with the last file.
            let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
            bail!(
                "unmounting {}: {e}; detached it lazily",
                self.mountpoint.display()
            );
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!("{e:#}");
        }
    }
}

/// Mount points in /proc/self/mountinfo escape space, tab, newline and backslash as octal.
fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
    ))
}

/// Our mounts (by source name) listed in `mountinfo` text.
fn our_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let source = right.next()?;
            if !fstype.starts_with("fuse") || source != FS_NAME {
                return None;
            }
            left.split(' ').nth(4).map(unescape_mountinfo)
        })
        .collect()
}

/// Detach each of `mountpoints` that is still a mount of ours (a run's recorded mounts, at
/// teardown or in a later sweep): lazily, so a process that still has a file open there
/// does not keep it attached. A mount point that is not mounted is fine. Returns the
/// problems.
pub fn detach(mountpoints: &[PathBuf]) -> Vec<String> {
    if mountpoints.is_empty() {
        return Vec::new();
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return vec![
            "cannot read /proc/self/mountinfo to detach the power-failure filesystems".into(),
        ];
    };
    let mounted = our_mounts(&info);
    let mut problems = Vec::new();
    for mp in mountpoints {
        // Stacked mounts (one per attempt) are detached one by one.
        for _ in mounted.iter().filter(|m| *m == mp) {
            if let Err(e) = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH) {
                problems.push(format!(
                    "cannot detach the power-failure filesystem at {}: {e}",
                    mp.display()
                ));
                break;
            }
        }
    }
    problems
}

/// Detach power-failure mounts whose server is gone (a controller killed with the mount
/// up): every access there fails with ENOTCONN. A mount still served by a live faultline
/// answers and is left alone. Returns one line per mount detached or not.
pub fn sweep_stale_mounts() -> Vec<String> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut report = Vec::new();
    for mp in our_mounts(&info) {
        let dead = matches!(
            std::fs::metadata(&mp),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN)
        );
        if !dead {
            continue;
        }
        match nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => report.push(format!(
                "detached a stale power-failure filesystem at {}",
                mp.display()
            )),
            Err(e) => report.push(format!(
                "cannot detach the stale power-failure filesystem at {}: {e}",
                mp.display()
            )),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file as the mount shows it, read in one go.
    fn view(o: &Overlay, backing: &[u8]) -> Vec<u8> {
        o.read(backing, 0, usize::MAX / 2).unwrap()
    }

    /// What the backing file holds after an fsync.
    fn persisted(o: &mut Overlay, backing: &[u8]) -> Vec<u8> {
        let mut disk = backing.to_vec();
        o.flush(|off, bytes| {
            let end = off as usize + bytes.len();
            if disk.len() < end {
                disk.resize(end, 0);
            }
            disk[off as usize..end].copy_from_slice(bytes);
            Ok(())
        })
        .unwrap();
        assert!(!o.is_dirty());
        disk
    }

    #[test]
    fn a_clean_overlay_reads_the_backing_file() {
        let backing: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let o = Overlay::new(backing.len() as u64);
        assert_eq!(view(&o, &backing), backing);
        assert_eq!(
            o.read(&backing[..], 4090, 10).unwrap(),
            &backing[4090..4100]
        );
        assert!(o.read(&backing[..], 10_000, 10).unwrap().is_empty());
        assert_eq!(o.dirty_bytes(), 0);
    }

    #[test]
    fn writes_overlay_the_backing_file_without_touching_it() {
        let backing = vec![b'a'; 6000];
        let mut o = Overlay::new(6000);
        o.write(&backing[..], 4000, b"XYZ").unwrap();
        let mut want = backing.clone();
        want[4000..4003].copy_from_slice(b"XYZ");
        assert_eq!(view(&o, &backing), want);
        // Only the page the write touched is dirty.
        assert_eq!(o.dirty_bytes(), PAGE);
        // An overwrite of cached bytes, reading across a dirty and a clean page.
        o.write(&backing[..], 4001, b"y").unwrap();
        want[4001] = b'y';
        assert_eq!(o.read(&backing[..], 3990, 20).unwrap(), &want[3990..4010]);
        assert_eq!(persisted(&mut o, &backing), want);
    }

    #[test]
    fn writes_past_the_end_leave_holes_that_read_as_zeros() {
        let backing = b"head".to_vec();
        let mut o = Overlay::new(4);
        o.write(&backing[..], 3 * PAGE + 10, b"tail").unwrap();
        assert_eq!(o.size(), 3 * PAGE + 14);
        let v = view(&o, &backing);
        assert_eq!(&v[..4], b"head");
        assert!(v[4..(3 * PAGE + 10) as usize].iter().all(|&b| b == 0));
        assert_eq!(&v[(3 * PAGE + 10) as usize..], b"tail");
        // Only the page written is dirty; the hole pages between are not cached.
        assert_eq!(o.dirty_bytes(), 14);
        assert_eq!(persisted(&mut o, &backing), v);
    }

    #[test]
    fn truncate_then_extend_shows_zeros_not_old_bytes() {
        let mut backing = vec![b'a'; 100];
        let mut o = Overlay::new(100);
        o.write(&backing[..], 0, &[b'b'; 5000]).unwrap();
        // Truncation reaches the backing file at once (the caller's part).
        o.truncate(50);
        backing.truncate(50);
        assert_eq!(view(&o, &backing), vec![b'b'; 50]);
        o.write(&backing[..], 200, b"c").unwrap();
        let v = view(&o, &backing);
        assert_eq!(v.len(), 201);
        assert_eq!(&v[..50], &[b'b'; 50][..]);
        assert!(v[50..200].iter().all(|&b| b == 0), "old bytes came back");
        assert_eq!(v[200], b'c');
        // Truncation to a page boundary drops whole pages.
        o.write(&backing[..], 2 * PAGE, b"d").unwrap();
        o.truncate(PAGE);
        backing.truncate(PAGE as usize);
        // Whole pages, clipped to the size.
        assert_eq!(o.dirty_bytes(), PAGE);
        let mut want = vec![0u8; PAGE as usize];
        want[..50].fill(b'b');
        want[200] = b'c';
        assert_eq!(persisted(&mut o, &backing), want);
    }

    #[test]
    fn flush_writes_contiguous_pages_as_one_run() {
        let backing = [0u8; 0];
        let mut o = Overlay::new(0);
        o.write(&backing[..], 0, &[1; 8192]).unwrap();
        o.write(&backing[..], 5 * PAGE, &[2; 10]).unwrap();
        let mut runs = Vec::new();
        let n = o
            .flush(|off, bytes| {
                runs.push((off, bytes.len()));
                Ok(())
            })
            .unwrap();
        assert_eq!(runs, vec![(0, 8192), (5 * PAGE, 10)]);
        assert_eq!(n, 8202);
    }

    #[test]
    fn a_failed_flush_keeps_the_pages() {
        let mut o = Overlay::new(0);
        o.write(&[][..], 0, b"x").unwrap();
        let err = o.flush(|_, _| Err(io::Error::other("disk gone")));
        assert!(err.is_err());
        assert!(o.is_dirty());
    }

    #[test]
    fn mountinfo_lists_only_our_mounts() {
        let info = "\
36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
99 30 0:50 / /tmp/a\\040b rw,nosuid,nodev,relatime - fuse.faultline faultline-lazyfs rw,user_id=0,group_id=0,allow_other
100 30 0:51 / /tmp/other rw - fuse.sshfs faultline-lazyfs-not rw
";
        assert_eq!(our_mounts(info), vec![PathBuf::from("/tmp/a b")]);
    }
}
