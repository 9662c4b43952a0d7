//! What the file system says about a file: its identity (for the block cache) and the
//! alignment it demands of `O_DIRECT` reads (`statx` with `STATX_DIOALIGN`, Linux 6.1).
//!
//! Alignment comes from the file system, never from a guess: ext4 on virtio reports
//! 512/512, NVMe often allows 4-byte memory alignment, and XFS may report a smaller read
//! offset alignment (`STATX_DIO_READ_ALIGN`, Linux 6.14), which is used when present. A
//! file system that reports nothing (before 6.1, or one that does not implement it) gets
//! the safe assumption of 4096 for both. A file system that refuses `O_DIRECT` at `open`
//! (`EINVAL`: ramfs, procfs, some FUSE mounts) or says it cannot do direct I/O for the file
//! (alignments of 0) is opened for buffered reads instead; the caller sees the same API.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::Error;

/// `STATX_DIO_READ_ALIGN` (Linux 6.14), not yet in `libc`.
const STATX_DIO_READ_ALIGN: u32 = 0x0002_0000;

/// Alignment, in bytes, that direct reads of a file need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DioAlign {
    /// Alignment of the destination address (`stx_dio_mem_align`).
    pub mem: u32,
    /// Alignment of the file offset and of the length (`stx_dio_offset_align`, or
    /// `stx_dio_read_offset_align` where the kernel reports it).
    pub offset: u32,
    /// Whether the file system reported it (`false`: assumed).
    pub reported: bool,
}

impl DioAlign {
    /// What is assumed when the file system does not say: one 4 KiB page for both.
    pub const ASSUMED: DioAlign = DioAlign { mem: 4096, offset: 4096, reported: false };
    /// Buffered reads: no alignment at all.
    pub const BUFFERED: DioAlign = DioAlign { mem: 1, offset: 1, reported: false };
}

/// What `statx` says about direct I/O on a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DioSupport {
    /// Supported with this alignment.
    Aligned(DioAlign),
    /// The file system says direct I/O is not possible for this file.
    Unsupported,
    /// The file system did not say (`STATX_DIOALIGN` missing from the result).
    Unknown,
}

/// The identity of one version of a file: if any field changes, cached blocks of it are
/// stale. `ctime` is included because it cannot be set from user space, so even a writer
/// that restores `mtime` (`touch -d`, `cp -p`) changes the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Device (`major << 32 | minor`).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
}

/// What one `statx` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// The identity of this version.
    pub key: FileKey,
    /// Whether it is a regular file.
    pub regular: bool,
    /// Direct I/O support and alignment.
    pub dio: DioSupport,
}

impl FileMeta {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.key.size
    }
}

/// `statx` of a path (following symlinks).
pub fn statx_path(path: &Path) -> Result<FileMeta, Error> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Config("path contains a NUL byte"))?;
    statx_at(libc::AT_FDCWD, &c, 0)
}

/// `statx` of an open file.
pub fn statx_fd(fd: BorrowedFd<'_>) -> Result<FileMeta, Error> {
    statx_at(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
}

fn statx_at(dirfd: i32, path: &std::ffi::CStr, flags: i32) -> Result<FileMeta, Error> {
    let mask = libc::STATX_BASIC_STATS | libc::STATX_DIOALIGN | STATX_DIO_READ_ALIGN;
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `path` is NUL-terminated and `stx` is a writable statx-sized buffer; the
    // kernel fills it (zeroed first, so fields it does not fill read as 0).
    let rc = unsafe { libc::statx(dirfd, path.as_ptr(), flags | libc::AT_STATX_SYNC_AS_STAT, mask, stx.as_mut_ptr()) };
    if rc != 0 {
        return Err(Error::last("statx"));
    }
    // SAFETY: statx succeeded and filled the buffer, which was zero-initialised anyway
    // (all-zero bytes are a valid `libc::statx`).
    let stx = unsafe { stx.assume_init() };
    Ok(meta_of(&stx))
}

fn ns(t: &libc::statx_timestamp) -> i128 {
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

fn meta_of(stx: &libc::statx) -> FileMeta {
    let dio = if stx.stx_mask & libc::STATX_DIOALIGN == 0 {
        DioSupport::Unknown
    } else if stx.stx_dio_mem_align == 0 || stx.stx_dio_offset_align == 0 {
        DioSupport::Unsupported
    } else {
        let read = stx.stx_dio_read_offset_align;
        let offset =
            if stx.stx_mask & STATX_DIO_READ_ALIGN != 0 && read != 0 { read } else { stx.stx_dio_offset_align };
        let (mem, offset) = (stx.stx_dio_mem_align, offset);
        if mem.is_power_of_two() && offset.is_power_of_two() {
            DioSupport::Aligned(DioAlign { mem, offset, reported: true })
        } else {
            DioSupport::Unknown
        }
    };
    FileMeta {
        key: FileKey {
            dev: (u64::from(stx.stx_dev_major) << 32) | u64::from(stx.stx_dev_minor),
            ino: stx.stx_ino,
            size: stx.stx_size,
            mtime_ns: ns(&stx.stx_mtime),
            ctime_ns: ns(&stx.stx_ctime),
        },
        regular: u32::from(stx.stx_mode) & libc::S_IFMT == libc::S_IFREG,
        dio,
    }
}

/// Why a file is read through the page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferedWhy {
    /// The caller asked for buffered reads.
    Asked,
    /// `open(O_DIRECT)` failed with `EINVAL`: the file system refuses direct I/O.
    OpenRefused,
    /// `statx` reported alignments of 0: no direct I/O for this file.
    Unsupported,
    /// A direct read failed with `EINVAL`; `O_DIRECT` was cleared on the open file.
    ReadRefused,
}

/// How a file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `O_DIRECT`, with this alignment.
    Direct(DioAlign),
    /// Through the page cache.
    Buffered(BufferedWhy),
}

/// An open file with what `statx` said about it once open.
#[derive(Debug)]
pub struct OpenedFile {
    /// The file, read-only.
    pub file: File,
    /// `statx` of the open file (race-free: the same inode that will be read).
    pub meta: FileMeta,
    /// How it will be read.
    pub access: Access,
}

/// Opens `path` read-only, with `O_DIRECT` when `direct` and the file system allows it.
pub fn open_for_blocks(path: &Path, direct: bool) -> Result<OpenedFile, Error> {
    let before = statx_path(path)?;
    if !before.regular {
        return Err(Error::NotRegular { path: path.to_owned() });
    }
    let mut why = match (direct, before.dio) {
        (false, _) => Some(BufferedWhy::Asked),
        (true, DioSupport::Unsupported) => Some(BufferedWhy::Unsupported),
        (true, _) => None,
    };
    let file = match why {
        Some(_) => open(path, 0)?,
        None => match open(path, libc::O_DIRECT) {
            Ok(f) => f,
            Err(Error::Open { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
                why = Some(BufferedWhy::OpenRefused);
                open(path, 0)?
            }
            Err(e) => return Err(e),
        },
    };
    let meta = statx_fd(std::os::fd::AsFd::as_fd(&file))?;
    if !meta.regular {
        return Err(Error::NotRegular { path: path.to_owned() });
    }
    let access = match (why, meta.dio) {
        (Some(why), _) => Access::Buffered(why),
        (None, DioSupport::Aligned(a)) => Access::Direct(a),
        (None, _) => Access::Direct(DioAlign::ASSUMED),
    };
    Ok(OpenedFile { file, meta, access })
}

fn open(path: &Path, extra: i32) -> Result<File, Error> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Config("path contains a NUL byte"))?;
    // SAFETY: `c` is NUL-terminated; the result is checked before use.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | extra) };
    if fd < 0 {
        return Err(Error::Open { path: path.to_owned(), source: io::Error::last_os_error() });
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Clears `O_DIRECT` on an open file (`fcntl(F_SETFL)`), so later reads are buffered.
pub fn clear_direct(file: &File) -> Result<(), Error> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL on an fd this `File` owns reads its status flags; no memory involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(Error::last("fcntl(F_GETFL)"));
    }
    // SAFETY: as above; F_SETFL only changes the file's status flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(Error::last("fcntl(F_SETFL, ~O_DIRECT)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_when_the_file_does() {
        let dir = std::env::temp_dir().join(format!("umem-dio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"one").unwrap();
        let a = statx_path(&p).unwrap();
        std::fs::write(&p, b"two").unwrap();
        let b = statx_path(&p).unwrap();
        assert!(a.regular);
        assert_eq!(a.key.ino, b.key.ino);
        assert_ne!(a.key, b.key, "same size, new content: ctime/mtime must differ");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn directories_are_refused() {
        let err = open_for_blocks(&std::env::temp_dir(), true).unwrap_err();
        assert!(matches!(err, Error::NotRegular { .. }), "{err}");
    }
}
