//! The served directory. Every path is resolved beneath it by the kernel (`openat2` with
//! `RESOLVE_BENEATH`): `..`, absolute symlinks and symlinks that climb out all fail there,
//! whatever the spelling of the request. No directory listings: a directory is served by
//! its `index.html` or not at all.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::http::{Status, Validators};

/// An opened file to serve and its validators.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub v: Validators,
    /// The path actually served (with `/index.html` appended for a directory).
    pub path: String,
}

/// The root directory, held open.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
}

impl Root {
    /// Opens `path` as the root.
    pub fn open(path: &Path) -> anyhow::Result<Root> {
        let dir = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| anyhow::anyhow!("opening --root {}: {e}", path.display()))?;
        Ok(Root { dir })
    }

    /// Another handle on the same directory (one per worker thread).
    pub fn try_clone(&self) -> anyhow::Result<Root> {
        let dir = self.dir.try_clone().map_err(|e| anyhow::anyhow!("duplicating the --root descriptor: {e}"))?;
        Ok(Root { dir })
    }

    /// Opens the file a request path names. `extra` adds open flags (e.g. `O_DIRECT`).
    pub fn resolve(&self, path: &str, extra: OFlags) -> Result<Opened, Status> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let file = self.open_beneath(rel, extra)?;
        let st = rustix::fs::fstat(&file).map_err(|_| Status::InternalError)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Ok(opened(file, st, path.to_owned())),
            FileType::Directory => {
                let index = format!("{}/index.html", rel.trim_end_matches('/'));
                let file = self.open_beneath(&index, extra)?;
                let st = rustix::fs::fstat(&file).map_err(|_| Status::InternalError)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Err(Status::NotFound);
                }
                Ok(opened(file, st, format!("{}/index.html", path.trim_end_matches('/'))))
            }
            _ => Err(Status::Forbidden),
        }
    }

    fn open_beneath(&self, rel: &str, extra: OFlags) -> Result<File, Status> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | extra;
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.dir, rel, flags, Mode::empty(), how) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::XDEV) => {
                log::info!("refused {rel:?}: resolves outside the root");
                Err(Status::NotFound)
            }
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG) => Err(Status::NotFound),
            Err(Errno::ACCESS | Errno::PERM) => Err(Status::Forbidden),
            Err(Errno::INVAL) if extra.contains(OFlags::DIRECT) => {
                // The file system refuses O_DIRECT: the caller falls back to buffered reads.
                Err(Status::InternalError)
            }
            Err(e) => {
                log::warn!("openat2({rel:?}): {e}");
                Err(Status::InternalError)
            }
        }
    }
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
mod tests {
    use super::*;

    #[test]
    fn nothing_outside_the_root_is_reachable() {
        let base = std::env::temp_dir().join(format!("fs-root-{}", std::process::id()));
        let root = base.join("www");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), b"no").unwrap();
        std::fs::write(root.join("a.txt"), b"yes").unwrap();
        std::fs::write(root.join("sub/index.html"), b"index").unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        let _ = std::os::unix::fs::symlink("/etc", root.join("etc-link"));
        let _ = std::os::unix::fs::symlink("../secret", root.join("up-link"));
        let _ = std::os::unix::fs::symlink("a.txt", root.join("in-link"));
        let r = Root::open(&root).unwrap();

        assert_eq!(r.resolve("/a.txt", OFlags::empty()).unwrap().v.size, 3);
        assert_eq!(r.resolve("/sub/../a.txt", OFlags::empty()).unwrap().v.size, 3, ".. inside the root is fine");
        assert_eq!(r.resolve("/in-link", OFlags::empty()).unwrap().v.size, 3, "symlink inside the root");
        assert_eq!(r.resolve("/sub/", OFlags::empty()).unwrap().path, "/sub/index.html");
        for bad in [
            "/../secret",
            "/sub/../../secret",
            "/etc-link/passwd",
            "/up-link",
            "/../../../../etc/passwd",
            "/empty",
            "/nope",
        ] {
            assert_eq!(r.resolve(bad, OFlags::empty()).unwrap_err(), Status::NotFound, "{bad}");
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}
