//! A read-only memory map of a file, for the kernel-socket `mmap` method of the file
//! server (the "mmap + write" rung of the copy ladder). It lives here because `umem` is
//! where the project keeps its unsafe memory code.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use crate::Error;

/// `len` bytes of a file mapped read-only and shared. Unmapped on drop.
///
/// As with every file mapping: if another process truncates the file while it is
/// mapped, touching the vanished pages raises SIGBUS. Serve files that are replaced by
/// rename, not rewritten in place.
#[derive(Debug)]
pub struct FileMap {
    ptr: Option<NonNull<u8>>,
    len: usize,
}

impl FileMap {
    /// Maps the first `len` bytes of `file` (a zero `len` maps nothing).
    pub fn new(file: &File, len: usize) -> Result<FileMap, Error> {
        if len == 0 {
            return Ok(FileMap { ptr: None, len: 0 });
        }
        // SAFETY: a new shared read-only mapping of an open file at an address of the
        // kernel's choosing; it aliases no Rust object and is checked before use.
        let p =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(Error::last("mmap(file)"));
        }
        Ok(FileMap { ptr: NonNull::new(p.cast()), len })
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self.ptr {
            // SAFETY: the mapping is `len` bytes, readable, alive as long as `self`, and
            // never written through this process (PROT_READ).
            Some(p) => unsafe { std::slice::from_raw_parts(p.as_ptr(), self.len) },
            None => &[],
        }
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        if let Some(p) = self.ptr {
            // SAFETY: exactly the mapping made in `new`; no borrow of it outlives `self`.
            unsafe { libc::munmap(p.as_ptr().cast(), self.len) };
        }
    }
}
