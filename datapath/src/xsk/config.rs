//! How a socket is asked for and what it ended up with: bind policy and mode, ring sizes,
//! busy polling, TX checksum offload, the frames it hands out and its counters.

use umem::BufSlice;

/// How to bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BindPolicy {
    /// Zero-copy; copy mode (with a log line) when the driver cannot.
    #[default]
    PreferZeroCopy,
    /// Zero-copy or fail.
    ZeroCopy,
    /// Copy mode.
    Copy,
}

/// How the socket ended up bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// The NIC DMAs straight into the pool.
    ZeroCopy,
    /// The kernel copies between its buffers and the pool (veth, drivers without AF_XDP
    /// zero-copy). No copy happens in this process either way.
    Copy,
}

impl std::fmt::Display for BindMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// Busy-polling settings (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPoll {
    /// Microseconds to busy-poll in a blocking call.
    pub usecs: u32,
    /// Packets per busy-poll round.
    pub budget: u32,
}

/// Socket settings. Ring sizes are powers of two.
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// The rx queue to bind.
    pub queue: u32,
    /// RX ring entries.
    pub rx_size: u32,
    /// TX ring entries.
    pub tx_size: u32,
    /// Fill ring entries.
    pub fill_size: u32,
    /// Completion ring entries.
    pub comp_size: u32,
    /// Zero-copy or copy.
    pub bind: BindPolicy,
    /// Ask for multi-buffer (`XDP_USE_SG`); falls back to single-buffer with a log line.
    pub multi_buffer: bool,
    /// Busy polling, if wanted.
    pub busy_poll: Option<BusyPoll>,
    /// Ask for TX checksum offload: register the UMEM with AF_XDP TX metadata
    /// (`XDP_UMEM_TX_METADATA_LEN`, Linux 6.8+), where the kernel (copy mode) or a device
    /// with `xsk-features: tx-checksum` (zero-copy) finishes L4 checksums. Falls back to
    /// none with a log line; [`XskSocket::tx_checksum`](crate::XskSocket::tx_checksum)
    /// says what is in force. With it, every descriptor must leave
    /// [`XskSocket::tx_metadata_len`](crate::XskSocket::tx_metadata_len) bytes of its chunk
    /// free (see `TxRules`), so it is off by default.
    pub tx_checksum_offload: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            queue: 0,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            bind: BindPolicy::default(),
            multi_buffer: true,
            busy_poll: None,
            tx_checksum_offload: false,
        }
    }
}

/// A received buffer: the packet's bytes (or one fragment of them) in a pool frame.
#[derive(Debug)]
pub struct RxFrame {
    /// The bytes, in their frame. Unique: writable in place with `get_mut`.
    pub data: BufSlice,
    /// More fragments of the same packet follow (multi-buffer).
    pub more: bool,
}

/// Counters of one socket: the socket's own and the kernel's (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Descriptors received.
    pub rx_descs: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Descriptors queued for transmit.
    pub tx_descs: u64,
    /// Bytes queued for transmit.
    pub tx_bytes: u64,
    /// Transmit descriptors the kernel completed.
    pub tx_completed: u64,
    /// Packets refused because the TX ring was full (back-pressure, not loss).
    pub tx_ring_full: u64,
    /// Refills that found no free frame in the pool.
    pub fill_starved: u64,
    /// `sendto` calls that kicked the kernel's transmit.
    pub tx_wakeups: u64,
    /// Kicks that failed with something other than EAGAIN/EBUSY.
    pub tx_wakeup_errors: u64,
    /// Addresses from the kernel that named no leased frame (should stay 0).
    pub bad_addrs: u64,
    /// Kernel: packets dropped for reasons other than a full ring.
    pub rx_dropped: u64,
    /// Kernel: invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Kernel: invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Kernel: packets dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Kernel: times the fill ring was empty when a packet arrived.
    pub rx_fill_ring_empty: u64,
    /// Kernel: times the TX ring was empty when the kernel looked.
    pub tx_ring_empty: u64,
}

/// Who finishes the L4 checksum of a packet queued with a checksum request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxChecksumOffload {
    /// Nobody: the sender sums in software. Says why.
    Off(&'static str),
    /// The kernel (copy mode): it marks the skb `CHECKSUM_PARTIAL` and the device finishes
    /// the sum, or the kernel does where the device cannot. Either way, not this process.
    Kernel,
    /// The NIC (zero-copy, `xsk-features: tx-checksum`).
    Device,
}

impl TxChecksumOffload {
    /// Whether checksum requests are honoured.
    pub fn is_on(self) -> bool {
        !matches!(self, TxChecksumOffload::Off(_))
    }
}

impl std::fmt::Display for TxChecksumOffload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxChecksumOffload::Off(why) => write!(f, "off ({why})"),
            TxChecksumOffload::Kernel => f.write_str("on (copy mode: the kernel marks CHECKSUM_PARTIAL)"),
            TxChecksumOffload::Device => f.write_str("on (the NIC finishes it)"),
        }
    }
}
