//! The served directory. Every path is resolved beneath it by the kernel (`openat2` with
//! `RESOLVE_BENEATH`): `..`, absolute symlinks and symlinks that climb out all fail there,
//! whatever the spelling of the request. No directory listings: a directory is served by
//! its `index.html` or not at all.
//!
//! Nothing is opened for reading before its type is known. A path is first resolved to an
//! `O_PATH` descriptor (which opens nothing: a FIFO does not wait for a writer, a device's
//! driver is not called), its type read with `fstat`, and only a regular file is then
//! opened for reading, through that descriptor's `/proc/self/fd` entry (the same inode,
//! never a path looked up again) and with `O_NONBLOCK` as a belt. FIFOs, sockets and
//! device nodes are 403; names starting with a dot are 404 unless `--dotfiles allow`.
//!
//! ```text
//!   request path ─► dotfile policy ─► openat2(O_PATH, RESOLVE_BENEATH) ─► fstat
//!        regular ─► open(/proc/self/fd/N, O_RDONLY | O_NONBLOCK) ─► fstat: same inode ─► Opened
//!        directory ─► the same for index.html      anything else ─► 403, counted
//! ```

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::http::{Status, Validators};
use crate::metrics::worth_logging;

/// Whether names starting with a dot (`.git`, `.env`, `.htpasswd`) are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Dotfiles {
    /// Any path component starting with a dot is 404 (`.` and `..` are not names).
    #[default]
    Deny,
    /// Served like any other file.
    Allow,
}

/// An opened file to serve and its validators.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub v: Validators,
    /// The path actually served (with `/index.html` appended for a directory).
    pub path: String,
}

/// Requests the root refused or could not open, by reason.
#[derive(Debug, Default)]
pub struct RootCounters {
    /// FIFOs, sockets and device nodes (403).
    pub special: AtomicU64,
    /// Names starting with a dot, under `--dotfiles deny` (404).
    pub dotfiles: AtomicU64,
    /// Opens that failed for want of a file descriptor, `EMFILE`/`ENFILE` (503).
    pub fd_exhausted: AtomicU64,
}

impl RootCounters {
    /// The counters as `name value` lines for the metrics.
    pub fn lines(&self) -> [(String, u64); 3] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("refused_special_files_total".into(), get(&self.special)),
            ("refused_dotfiles_total".into(), get(&self.dotfiles)),
            ("open_fd_exhausted_total".into(), get(&self.fd_exhausted)),
        ]
    }
}

/// The root directory, held open.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    dotfiles: Dotfiles,
    counters: RootCounters,
}

impl Root {
    /// Opens `path` as the root, with dotfiles denied.
    pub fn open(path: &Path) -> anyhow::Result<Root> {
        Root::with_policy(path, Dotfiles::Deny)
    }

    /// Opens `path` as the root, with the given dotfile policy.
    pub fn with_policy(path: &Path, dotfiles: Dotfiles) -> anyhow::Result<Root> {
        let dir = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| anyhow::anyhow!("opening --root {}: {e}", path.display()))?;
        Ok(Root { dir, dotfiles, counters: RootCounters::default() })
    }

    /// The device (major, minor) the root directory is on.
    pub fn device(&self) -> Option<(u32, u32)> {
        let st = rustix::fs::fstat(&self.dir).ok()?;
        Some((rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)))
    }

    /// Another handle on the same directory, with the same policy and counters of its
    /// own (one per worker thread).
    pub fn try_clone(&self) -> anyhow::Result<Root> {
        let dir = self.dir.try_clone().map_err(|e| anyhow::anyhow!("duplicating the --root descriptor: {e}"))?;
        Ok(Root { dir, dotfiles: self.dotfiles, counters: RootCounters::default() })
    }

    /// What was refused so far.
    pub fn counters(&self) -> &RootCounters {
        &self.counters
    }

    /// Opens the file a request path names. `extra` adds open flags (e.g. `O_DIRECT`) to
    /// the open for reading.
    pub fn resolve(&self, path: &str, extra: OFlags) -> Result<Opened, Status> {
        if self.dotfiles == Dotfiles::Deny && has_dotfile(path) {
            self.counters.dotfiles.fetch_add(1, Ordering::Relaxed);
            return Err(Status::NotFound);
        }
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let target = self.open_beneath(rel)?;
        let st = rustix::fs::fstat(&target).map_err(|_| Status::InternalError)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Ok(opened(self.reopen(&target, &st, extra)?, st, path.to_owned())),
            FileType::Directory => {
                let index = format!("{}/index.html", rel.trim_end_matches('/'));
                let target = self.open_beneath(&index)?;
                let st = rustix::fs::fstat(&target).map_err(|_| Status::InternalError)?;
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::RegularFile => {}
                    FileType::Directory => return Err(Status::NotFound),
                    _ => return Err(self.special(&index)),
                }
                let file = self.reopen(&target, &st, extra)?;
                Ok(opened(file, st, format!("{}/index.html", path.trim_end_matches('/'))))
            }
            _ => Err(self.special(rel)),
        }
    }

    fn special(&self, rel: &str) -> Status {
        let n = self.counters.special.fetch_add(1, Ordering::Relaxed) + 1;
        if worth_logging(n) {
            log::info!("refused {rel:?}: not a regular file or directory ({n} so far)");
        }
        Status::Forbidden
    }

    /// Resolves `rel` beneath the root to an `O_PATH` descriptor: nothing is opened.
    fn open_beneath(&self, rel: &str) -> Result<OwnedFd, Status> {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.dir, rel, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), how) {
            Ok(fd) => Ok(fd),
            Err(Errno::XDEV) => {
                log::info!("refused {rel:?}: resolves outside the root");
                Err(Status::NotFound)
            }
            Err(e) => Err(self.open_error(rel, e)),
        }
    }

    /// Opens the regular file `target` names for reading: the same inode, through its
    /// `/proc/self/fd` entry, never blocking.
    fn reopen(&self, target: &OwnedFd, st: &rustix::fs::Stat, extra: OFlags) -> Result<File, Status> {
        let proc = format!("/proc/self/fd/{}", target.as_raw_fd());
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK | extra;
        let fd = rustix::fs::open(proc.as_str(), flags, Mode::empty()).map_err(|e| self.open_error(&proc, e))?;
        let now = rustix::fs::fstat(&fd).map_err(|_| Status::InternalError)?;
        if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile
            || (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)
        {
            return Err(Status::NotFound);
        }
        Ok(File::from(fd))
    }

    fn open_error(&self, what: &str, e: Errno) -> Status {
        match e {
            Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG => Status::NotFound,
            Errno::ACCESS | Errno::PERM => Status::Forbidden,
            Errno::MFILE | Errno::NFILE => {
                let n = self.counters.fd_exhausted.fetch_add(1, Ordering::Relaxed) + 1;
                if worth_logging(n) {
                    log::warn!("open {what:?}: {e}: out of file descriptors, answering 503 ({n} so far)");
                }
                Status::ServiceUnavailable
            }
            Errno::INVAL => {
                // The file system refuses the extra flags (O_DIRECT): the caller falls back.
                Status::InternalError
            }
            e => {
                log::warn!("open {what:?}: {e}");
                Status::InternalError
            }
        }
    }
}

/// Whether a request path has a component starting with a dot (`.` and `..` are not
/// names: the kernel resolves them beneath the root).
fn has_dotfile(path: &str) -> bool {
    path.split('/').any(|c| c.starts_with('.') && c != "." && c != "..")
}

fn opened(file: File, st: rustix::fs::Stat, path: String) -> Opened {
    let secs = st.st_mtime.max(0) as u64;
    let nsec = st.st_mtime_nsec;
    let mtime = SystemTime::UNIX_EPOCH + Duration::new(secs, nsec as u32);
    Opened {
        file,
        v: Validators {
            size: st.st_size.max(0) as u64,
            mtime,
            ino: st.st_ino,
            mtime_nsec: secs * 1_000_000_000 + nsec,
        },
        path,
    }
}

#[cfg(test)]
mod tests;
