//! The memory behind a pool: one anonymous mapping, hugepage-backed when it can be, and
//! locked so that its pages stay resident (and pinned) for the kernel's DMA.

use std::ptr::NonNull;

use crate::error::{memlock_limit, Error};

/// 2 MiB: the hugepage size the pool asks for.
pub const HUGEPAGE_SIZE: usize = 2 << 20;

/// Whether the pool is backed by 2 MiB hugepages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HugePages {
    /// Use `MAP_HUGETLB`; fall back to 4 KiB pages with `MADV_HUGEPAGE` and a warning.
    #[default]
    Prefer,
    /// Use `MAP_HUGETLB` or fail with an error that says how to reserve them.
    Require,
    /// 4 KiB pages with `MADV_HUGEPAGE` (transparent hugepages where the kernel can).
    Off,
}

/// The page size a region ended up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Explicit 2 MiB hugepages (`MAP_HUGETLB`).
    Huge2M,
    /// 4 KiB pages, with transparent hugepages requested.
    Small4K,
}

impl Backing {
    /// The page size: the span of memory the kernel maps, and pins, in one piece. Bytes
    /// inside one page are physically contiguous; two pages are in general not (a 4 KiB
    /// page's neighbour, or the next 2 MiB hugepage, may sit anywhere in RAM).
    pub fn page_size(self) -> usize {
        match self {
            Backing::Huge2M => HUGEPAGE_SIZE,
            Backing::Small4K => base_page_size(),
        }
    }
}

/// The system's base page size (4 KiB on x86_64).
fn base_page_size() -> usize {
    // SAFETY: sysconf reads a constant of the running system; no memory is involved.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

impl std::fmt::Display for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backing::Huge2M => "2 MiB hugepages",
            Backing::Small4K => "4 KiB pages (transparent hugepages requested)",
        })
    }
}

/// One anonymous, private, prefaulted mapping. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
    locked: bool,
}

impl Region {
    /// Maps `len` bytes (rounded up to 2 MiB), optionally locks them.
    pub(crate) fn map(len: usize, huge: HugePages, lock: bool) -> Result<Region, Error> {
        let len = len.checked_next_multiple_of(HUGEPAGE_SIZE).ok_or(Error::Config("pool size overflows"))?;
        let mut region = match huge {
            HugePages::Off => Self::map_small(len)?,
            HugePages::Prefer | HugePages::Require => match Self::map_huge(len) {
                Ok(r) => r,
                Err(err) if huge == HugePages::Require => return Err(err),
                Err(err) => {
                    log::warn!("{err}; falling back to 4 KiB pages with MADV_HUGEPAGE");
                    Self::map_small(len)?
                }
            },
        };
        if lock {
            region.lock()?;
        }
        Ok(region)
    }

    fn map_huge(len: usize) -> Result<Region, Error> {
        let flags =
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | libc::MAP_HUGE_2MB | libc::MAP_POPULATE;
        // SAFETY: an anonymous mapping at an address of the kernel's choosing touches no
        // existing memory; the result is checked before use.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if ptr == libc::MAP_FAILED {
            let source = std::io::Error::last_os_error();
            if source.raw_os_error() == Some(libc::ENOMEM) {
                let (total, free) = hugepage_counts();
                let needed = len / HUGEPAGE_SIZE;
                return Err(Error::NoHugepages { needed, free, total, suggest: total + needed });
            }
            return Err(Error::Syscall { call: "mmap(MAP_HUGETLB)", source });
        }
        let ptr = NonNull::new(ptr.cast()).ok_or(Error::Config("mmap returned null"))?;
        Ok(Region { ptr, len, backing: Backing::Huge2M, locked: false })
    }

    fn map_small(len: usize) -> Result<Region, Error> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        // SAFETY: as in `map_huge`.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(Error::last("mmap"));
        }
        let ptr = NonNull::new(ptr.cast()).ok_or(Error::Config("mmap returned null"))?;
        let region = Region { ptr, len, backing: Backing::Small4K, locked: false };
        // SAFETY: the range is exactly the mapping made above. Advice failing is not fatal:
        // transparent hugepages may be disabled, and the pool works without them.
        unsafe {
            if libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_HUGEPAGE) != 0 {
                log::debug!("madvise(MADV_HUGEPAGE): {}", std::io::Error::last_os_error());
            }
            // Fault every page in now rather than on the data path.
            if libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_POPULATE_WRITE) != 0 {
                log::debug!("madvise(MADV_POPULATE_WRITE): {}", std::io::Error::last_os_error());
            }
        }
        Ok(region)
    }

    fn lock(&mut self) -> Result<(), Error> {
        // SAFETY: the range is exactly this region's mapping.
        if unsafe { libc::mlock(self.ptr.as_ptr().cast(), self.len) } != 0 {
            return Err(Error::Mlock {
                bytes: self.len,
                limit: memlock_limit(),
                source: std::io::Error::last_os_error(),
            });
        }
        self.locked = true;
        Ok(())
    }

    pub(crate) fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn backing(&self) -> Backing {
        self.backing
    }

    pub(crate) fn locked(&self) -> bool {
        self.locked
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region owns this mapping; nothing borrows it past the region's life
        // (every handle into the pool keeps the pool, and so the region, alive).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `HugePages_Total` and `HugePages_Free` from `/proc/meminfo` (0, 0 when unreadable).
pub fn hugepage_counts() -> (usize, usize) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else { return (0, 0) };
    let field =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (field("HugePages_Total:"), field("HugePages_Free:"))
}
