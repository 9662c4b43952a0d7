//! An application's buffers as the provider holds them between posting an operation and
//! completing it. libfabric's contract is that a posted buffer stays valid, and untouched
//! by the application, until its completion is reported (or the endpoint closes); this
//! type is built once from the caller's `iovec`s under that contract ([`UserIov::new`]) and
//! is then safe to read or write by offset.

use super::types::iovec;

/// Buffers of one operation: (address, length) pairs, in order.
#[derive(Debug, Clone, Default)]
pub struct UserIov {
    segs: Vec<(usize, usize)>,
    len: usize,
}

impl UserIov {
    /// # Safety
    ///
    /// Every `iov_base .. iov_base + iov_len` must be valid for reads (a send) or for writes
    /// (a receive) until the operation completes or is cancelled, and nothing else may
    /// access it meanwhile (the libfabric contract for posted buffers).
    pub unsafe fn new(iov: &[iovec]) -> UserIov {
        let segs: Vec<(usize, usize)> = iov
            .iter()
            .filter(|v| v.iov_len > 0 && !v.iov_base.is_null())
            .map(|v| (v.iov_base as usize, v.iov_len))
            .collect();
        let len = segs.iter().map(|s| s.1).sum();
        UserIov { segs, len }
    }

    /// A single buffer.
    ///
    /// # Safety
    ///
    /// As for [`UserIov::new`].
    pub unsafe fn single(base: *const std::ffi::c_void, len: usize) -> UserIov {
        let v = iovec { iov_base: base as *mut _, iov_len: len };
        // SAFETY: the caller's contract is the one `new` asks for.
        unsafe { UserIov::new(std::slice::from_ref(&v)) }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first buffer's address (what a completion's `buf` reports), or 0.
    pub fn base(&self) -> usize {
        self.segs.first().map_or(0, |s| s.0)
    }

    /// Copies bytes from offset `off` of the buffers into `out`; returns how many.
    pub fn read_at(&self, mut off: usize, out: &mut [u8]) -> usize {
        let mut done = 0;
        for &(base, len) in &self.segs {
            if done == out.len() {
                break;
            }
            if off >= len {
                off -= len;
                continue;
            }
            let n = (len - off).min(out.len() - done);
            // SAFETY: `base + off .. + n` lies inside a buffer that `new`'s contract keeps
            // valid for reads; `out` is our own slice, so the ranges do not overlap.
            unsafe { std::ptr::copy_nonoverlapping((base + off) as *const u8, out[done..].as_mut_ptr(), n) };
            done += n;
            off = 0;
        }
        done
    }

    /// Copies `data` into the buffers at offset `off`; returns how many bytes fit.
    pub fn write_at(&self, mut off: usize, data: &[u8]) -> usize {
        let mut done = 0;
        for &(base, len) in &self.segs {
            if done == data.len() {
                break;
            }
            if off >= len {
                off -= len;
                continue;
            }
            let n = (len - off).min(data.len() - done);
            // SAFETY: `base + off .. + n` lies inside a buffer that `new`'s contract keeps
            // valid for writes and unaliased; `data` is ours, so the ranges do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(data[done..].as_ptr(), (base + off) as *mut u8, n) };
            done += n;
            off = 0;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_and_write_across_segments() {
        let mut a = [0u8; 3];
        let mut b = [0u8; 5];
        let v = [
            iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
            iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
            iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
        ];
        // SAFETY: a and b outlive `u` and are not touched while it is used.
        let u = unsafe { UserIov::new(&v) };
        assert_eq!(u.len(), 8);
        assert_eq!(u.write_at(2, &[1, 2, 3, 4]), 4);
        assert_eq!(u.write_at(7, &[9, 9]), 1);
        let mut out = [0u8; 8];
        assert_eq!(u.read_at(0, &mut out), 8);
        assert_eq!(out, [0, 0, 1, 2, 3, 4, 0, 9]);
        let mut tail = [0u8; 4];
        assert_eq!(u.read_at(6, &mut tail), 2);
        assert_eq!(&tail[..2], &[0, 9]);
        drop(u);
        assert_eq!(a, [0, 0, 1]);
        assert_eq!(b, [2, 3, 4, 0, 9]);
    }
}
