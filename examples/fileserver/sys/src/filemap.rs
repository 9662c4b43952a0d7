//! A read-only memory map of a file, for the kernel-socket `mmap` and `msg-zerocopy`
//! methods of the file server (the "mmap + write" rung of the copy ladder).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

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
    pub fn new(file: &File, len: usize) -> io::Result<FileMap> {
        if len == 0 {
            return Ok(FileMap { ptr: None, len: 0 });
        }
        // SAFETY: a new shared read-only mapping of an open file at an address of the
        // kernel's choosing; it aliases no Rust object and is checked before use.
        let p =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_mapping_reads_the_file_and_an_empty_one_maps_nothing() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"mapped bytes").unwrap();
        assert_eq!(FileMap::new(&f, 6).unwrap().as_slice(), b"mapped");
        assert_eq!(FileMap::new(&f, 0).unwrap().as_slice(), b"");
    }
}
