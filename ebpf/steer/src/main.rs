//! Steering XDP program (Linux >= 5.18 for `xdp.frags`; AF_XDP redirect needs >= 4.18).
//!
//! ```text
//!  packet ─► steer_common::parse::classify ─► FLOWS hit? ─yes─► XSKS[rx_queue] (AF_XDP)
//!                 │                              │no             └─ no socket there: DROP
//!                 │                              └──────────► XDP_PASS (kernel)
//!                 └─ later fragment ─► FRAGS hit (its first fragment was steered)? ─► XSKS
//! ```
//!
//! The parsing is `steer_common::parse` (shared with the fuzz target, which checks it
//! against smoltcp): Ethernet, up to two VLAN tags, IPv4 or IPv6 with extension headers,
//! TCP/UDP, fragments, and ICMP errors that quote a steered flow's packet. Anything else
//! (ARP, ICMP echo, other ports and protocols) goes to the kernel: the program only ever
//! takes what it was told to. A packet of a steered flow on a queue with no socket is
//! dropped and counted, never passed: the kernel has no socket for it and would reset it.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{HashMap, LruHashMap, PerCpuArray, XskMap};
use aya_ebpf::programs::XdpContext;
use steer_common::parse::{classify_into, Bytes, Classified, Kind};
use steer_common::{Counter, FlowAction, FlowKey, FragKey, COUNTERS, MAX_FLOWS, MAX_FRAGS, MAX_QUEUES};

#[map(name = "XSKS")]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map(name = "FLOWS")]
static FLOWS: HashMap<FlowKey, FlowAction> = HashMap::with_max_entries(MAX_FLOWS, 0);

#[map(name = "FRAGS")]
static FRAGS: LruHashMap<FragKey, u8> = LruHashMap::with_max_entries(MAX_FRAGS, 0);

#[map(name = "COUNTERS")]
static COUNTERS_MAP: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS, 0);

#[xdp(frags)]
pub fn steer(ctx: XdpContext) -> u32 {
    count(Counter::Seen);
    let mut c = Classified::default();
    classify_into(&Packet(&ctx), &mut c);
    let steered = match c.kind {
        Kind::Pass => false,
        Kind::Malformed => {
            count(Counter::Malformed);
            return XDP_PASS;
        }
        Kind::Transport => is_steered(&mut c.flow),
        Kind::IcmpError => {
            let hit = is_steered(&mut c.flow);
            if hit {
                count(Counter::IcmpErrors);
            }
            hit
        }
        Kind::FirstFragment => {
            let hit = is_steered(&mut c.flow);
            if hit {
                // Best effort: a full map evicts its least recently used entry.
                let _ = FRAGS.insert(c.frag, 1, 0);
                count(Counter::Fragments);
            }
            hit
        }
        Kind::Fragment => {
            let hit = FRAGS.get_ptr(c.frag).is_some();
            if hit {
                count(Counter::Fragments);
            }
            hit
        }
    };
    if !steered {
        count(Counter::Passed);
        return XDP_PASS;
    }
    if c.vlan_tags > 0 {
        count(Counter::Vlan);
    }
    // SAFETY: ctx.ctx points to the kernel's xdp_md for this invocation.
    let queue = unsafe { (*ctx.ctx).rx_queue_index };
    match XSKS.redirect(queue, u64::from(XDP_DROP)) {
        Ok(action) => {
            count(Counter::Redirected);
            action
        }
        Err(_) => {
            count(Counter::NoSocket);
            XDP_DROP
        }
    }
}

/// Whether `key` or its address wildcard is in the steering table (the wildcard is tried
/// in place, to keep one key on the stack).
#[inline(always)]
fn is_steered(key: &mut FlowKey) -> bool {
    if FLOWS.get_ptr(*key).is_some() {
        return true;
    }
    key.addr = [0; 16];
    FLOWS.get_ptr(*key).is_some()
}

/// The packet's linear data as [`Bytes`]: one bound check against `data_end` per read.
///
/// `data` and `data_end` are read afresh (volatile) for every load. Otherwise LLVM, seeing
/// one `data_end`, drops a check that an earlier one implies through a variable offset
/// (say, the IPv4 header length), and the verifier, which tracks packet ranges per pointer,
/// rejects the read whose check was dropped.
struct Packet<'a>(&'a XdpContext);

impl Bytes for Packet<'_> {
    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let md = self.0.ctx;
        // SAFETY: `md` is the kernel's xdp_md for this invocation, valid for the whole run.
        let (start, end) = unsafe {
            (
                core::ptr::read_volatile(core::ptr::addr_of!((*md).data)) as usize,
                core::ptr::read_volatile(core::ptr::addr_of!((*md).data_end)) as usize,
            )
        };
        if start + offset + N > end {
            return None;
        }
        // SAFETY: [start + offset, start + offset + N) was checked to lie inside the
        // packet's linear data; the array is read unaligned.
        Some(unsafe { core::ptr::read_unaligned((start + offset) as *const [u8; N]) })
    }
}

#[inline(always)]
fn count(c: Counter) {
    if let Some(p) = COUNTERS_MAP.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU slot of this CPU: no other writer while the program runs on it.
        unsafe { *p += 1 };
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
