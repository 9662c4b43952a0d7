//! The rungs of the copy ladder the kernel backend can stand on.

/// How file bytes reach the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// pread into a user buffer, then write (2 CPU copies).
    ReadWrite,
    /// mmap the file, write from the mapping (1 CPU copy).
    Mmap,
    /// sendfile(2) from the page cache (no CPU copy in user space).
    Sendfile,
    /// splice(2) file -> pipe -> socket (no CPU copy in user space).
    Splice,
    /// send from a file mapping with MSG_ZEROCOPY (pages pinned, not copied; the kernel
    /// reports when it copied after all).
    MsgZerocopy,
    /// io_uring O_DIRECT reads into a registered, pinned pool (no page cache), then write
    /// from the pool (1 CPU copy into the socket).
    DirectUring,
}

impl Method {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::ReadWrite => "read-write",
            Method::Mmap => "mmap",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
            Method::MsgZerocopy => "msg-zerocopy",
            Method::DirectUring => "direct-uring",
        }
    }

    /// One line for the startup block: what moves the bytes and who copies them.
    pub fn describe(self) -> &'static str {
        match self {
            Method::ReadWrite => "pread into a 64 KiB buffer, write it (2 CPU copies per byte)",
            Method::Mmap => "write from a read-only file mapping (1 CPU copy per byte)",
            Method::Sendfile => "sendfile(2) from the page cache (no CPU copy)",
            Method::Splice => "splice(2) file -> pipe -> socket (no CPU copy)",
            Method::MsgZerocopy => "send(MSG_ZEROCOPY) from a file mapping, completions from the error queue",
            Method::DirectUring => "io_uring O_DIRECT READ_FIXED into a pinned pool, write from it (1 CPU copy)",
        }
    }

    /// Whether the body is sent from a memory mapping of the file.
    pub(super) fn maps(self) -> bool {
        matches!(self, Method::Mmap | Method::MsgZerocopy)
    }
}
