//! Steering XDP program (Linux >= 5.18 for `xdp.frags`; AF_XDP redirect needs >= 4.18).
//!
//! ```text
//!  packet ─► parse eth / IPv4 / IPv6 / UDP|TCP ─► FLOWS hit? ─yes─► XSKS[rx_queue] (AF_XDP)
//!                                                     │no
//!                                                     └──────────► XDP_PASS (kernel)
//! ```
//!
//! Anything the program does not understand (ARP, ICMP, IP options it cannot follow,
//! fragments, VLAN tags) goes to the kernel: the program only ever takes what it was told to.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::bindings::xdp_action::XDP_PASS;
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{HashMap, PerCpuArray, XskMap};
use aya_ebpf::programs::XdpContext;
use steer_common::{Counter, FlowAction, FlowKey, COUNTERS, IPPROTO_TCP, IPPROTO_UDP, MAX_FLOWS, MAX_QUEUES};

#[map(name = "XSKS")]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map(name = "FLOWS")]
static FLOWS: HashMap<FlowKey, FlowAction> = HashMap::with_max_entries(MAX_FLOWS, 0);

#[map(name = "COUNTERS")]
static COUNTERS_MAP: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;

/// Why a packet is not ours.
enum Pass {
    /// Well-formed, just not a steered flow.
    NotOurs,
    /// Headers shorter than they claim.
    Malformed,
}

#[xdp(frags)]
pub fn steer(ctx: XdpContext) -> u32 {
    count(Counter::Seen);
    match try_steer(&ctx) {
        Ok(action) => action,
        Err(Pass::NotOurs) => {
            count(Counter::Passed);
            XDP_PASS
        }
        Err(Pass::Malformed) => {
            count(Counter::Malformed);
            XDP_PASS
        }
    }
}

fn try_steer(ctx: &XdpContext) -> Result<u32, Pass> {
    let ethertype = u16::from_be_bytes(read::<[u8; 2]>(ctx, 12)?);
    let mut key = FlowKey::default();
    let l4 = match ethertype {
        ETH_P_IP => {
            let vihl: u8 = read(ctx, ETH_HLEN)?;
            if vihl >> 4 != 4 {
                return Err(Pass::Malformed);
            }
            let ihl = usize::from(vihl & 0x0f) * 4;
            if ihl < 20 {
                return Err(Pass::Malformed);
            }
            let frag = u16::from_be_bytes(read::<[u8; 2]>(ctx, ETH_HLEN + 6)?);
            // More-fragments flag or a fragment offset: reassembly is the kernel's job.
            if frag & 0x3fff != 0 {
                return Err(Pass::NotOurs);
            }
            key.proto = read(ctx, ETH_HLEN + 9)?;
            let dst: [u8; 4] = read(ctx, ETH_HLEN + 16)?;
            key.addr[10] = 0xff;
            key.addr[11] = 0xff;
            key.addr[12..].copy_from_slice(&dst);
            ETH_HLEN + ihl
        }
        ETH_P_IPV6 => {
            // Only a transport header right behind the fixed header is followed; extension
            // headers go to the kernel.
            key.proto = read(ctx, ETH_HLEN + 6)?;
            key.addr = read(ctx, ETH_HLEN + 24)?;
            ETH_HLEN + IPV6_HLEN
        }
        _ => return Err(Pass::NotOurs),
    };
    if key.proto != IPPROTO_UDP && key.proto != IPPROTO_TCP {
        return Err(Pass::NotOurs);
    }
    // Both UDP and TCP carry the destination port at offset 2.
    key.port = read(ctx, l4 + 2)?;
    if FLOWS.get_ptr(key).is_none() && FLOWS.get_ptr(key.any_addr()).is_none() {
        return Err(Pass::NotOurs);
    }
    // SAFETY: ctx.ctx points to the kernel's xdp_md for this invocation.
    let queue = unsafe { (*ctx.ctx).rx_queue_index };
    match XSKS.redirect(queue, u64::from(XDP_PASS)) {
        Ok(action) => {
            count(Counter::Redirected);
            Ok(action)
        }
        Err(action) => {
            count(Counter::NoSocket);
            Ok(action)
        }
    }
}

/// Reads a `T` at `offset` from the start of the packet, or `Malformed` if the packet is
/// shorter. Every access to packet bytes goes through here, so the verifier sees one bound
/// check per read.
#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Result<T, Pass> {
    let start = ctx.data();
    let end = ctx.data_end();
    let len = size_of::<T>();
    if start + offset + len > end {
        return Err(Pass::Malformed);
    }
    // SAFETY: [start + offset, start + offset + len) was checked to lie inside the packet's
    // linear data; T is Copy and read unaligned.
    Ok(unsafe { core::ptr::read_unaligned((start + offset) as *const T) })
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
