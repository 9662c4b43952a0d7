//! `--pid-file PATH`: the server's pid, written once setup is done (just before `ready`)
//! and removed at exit, for service managers and scripts that find the process by file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A written pid file; dropping it removes the file.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid and a newline to `path` (replacing what was there).
    pub fn create(path: &Path) -> Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id())).with_context(|| {
            format!("writing the pid file {} (--pid-file; the directory must exist and be writable)", path.display())
        })?;
        Ok(PidFile { path: path.to_owned() })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            // After --user the directory may not be writable any more (/run is root's).
            log::warn!("could not remove the pid file {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_our_pid_and_goes_at_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs.pid");
        let p = PidFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        assert_eq!(p.path(), path);
        drop(p);
        assert!(!path.exists());
        let e = PidFile::create(&dir.path().join("missing/fs.pid")).unwrap_err();
        assert!(format!("{e:#}").contains("missing/fs.pid"), "{e:#}");
    }
}
