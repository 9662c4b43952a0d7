//! The steering XDP program: loaded from the object embedded at build time, attached in
//! driver mode (falling back to skb mode with a log line), detached when dropped.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use aya::maps::{HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::Ebpf;
use steer_common::{Counter, FlowAction, FlowKey, COUNTERS};

use crate::caps::{self, Cap};
use crate::{Error, Interface};

/// The eBPF object, built from `ebpf/steer` by `cargo xtask ebpf` with the pinned toolchain
/// and committed, so building this crate needs stable Rust only.
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../ebpf/steer.bpf.o");

/// The transport protocol of a steered flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Proto {
    fn number(self) -> u8 {
        match self {
            Proto::Udp => steer_common::IPPROTO_UDP,
            Proto::Tcp => steer_common::IPPROTO_TCP,
        }
    }
}

/// How the program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP).
    Driver,
    /// In the generic path after the driver (skb mode): works everywhere, slower.
    Skb,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::Driver => "native (driver)",
            AttachMode::Skb => "generic (skb)",
        })
    }
}

/// What to ask for when attaching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttachPolicy {
    /// Driver mode; skb mode if the driver has no native XDP.
    #[default]
    PreferDriver,
    /// Driver mode or fail.
    Driver,
    /// Skb mode.
    Skb,
}

/// Totals of the program's per-CPU counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// Packets the program ran on.
    pub seen: u64,
    /// Packets redirected to AF_XDP.
    pub redirected: u64,
    /// Packets left to the kernel.
    pub passed: u64,
    /// Truncated or inconsistent packets (left to the kernel).
    pub malformed: u64,
    /// Packets of a steered flow that arrived on a queue with no socket: dropped (the
    /// kernel would reset the flow). Bind every queue, or steer the flow to a bound one.
    pub no_socket: u64,
    /// IP fragments of steered flows redirected.
    pub fragments: u64,
    /// ICMP errors (fragmentation needed, packet too big, ...) quoting a steered flow, redirected.
    pub icmp_errors: u64,
    /// Redirected packets that carried VLAN tags.
    pub vlan: u64,
}

/// The loaded, attached program and its maps. Dropping it detaches the program.
pub struct SteerProgram {
    // Field order matters: maps and links go before the object that owns the program.
    xsks: XskMap<MapData>,
    flows: HashMap<MapData, FlowKey, FlowAction>,
    counters: PerCpuArray<MapData, u64>,
    mode: AttachMode,
    iface: Interface,
    _ebpf: Ebpf,
}

impl std::fmt::Debug for SteerProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteerProgram").field("iface", &self.iface.name).field("mode", &self.mode).finish()
    }
}

impl SteerProgram {
    /// Loads the program and attaches it to `iface`.
    pub fn attach(iface: &Interface, policy: AttachPolicy) -> Result<SteerProgram, Error> {
        caps::require(Cap::Bpf, "loading the XDP program")?;
        caps::require(Cap::NetAdmin, "attaching the XDP program")?;
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| Error::program("load object", e))?;
        let prog: &mut Xdp = ebpf
            .program_mut(steer_common::PROGRAM)
            .ok_or_else(|| Error::program("find program", NotFound(steer_common::PROGRAM)))?
            .try_into()
            .map_err(|e| Error::program("program type", e))?;
        prog.load().map_err(|e| Error::program("verify and load", e))?;

        let mode = match policy {
            AttachPolicy::Skb => attach(prog, iface, XdpMode::Skb).map(|()| AttachMode::Skb)?,
            AttachPolicy::Driver => attach(prog, iface, XdpMode::Driver).map(|()| AttachMode::Driver)?,
            AttachPolicy::PreferDriver => match attach(prog, iface, XdpMode::Driver) {
                Ok(()) => AttachMode::Driver,
                Err(Error::XdpBusy { iface }) => return Err(Error::XdpBusy { iface }),
                Err(e) => {
                    log::warn!("{}: native XDP refused ({e}); attaching in generic (skb) mode", iface.name);
                    attach(prog, iface, XdpMode::Skb)?;
                    AttachMode::Skb
                }
            },
        };
        log::info!("{}: XDP program attached, {mode} mode", iface.name);

        let xsks = take_map(&mut ebpf, steer_common::MAP_XSKS)?;
        let xsks = XskMap::try_from(xsks).map_err(|e| Error::program("XSKMAP", e))?;
        let flows = take_map(&mut ebpf, steer_common::MAP_FLOWS)?;
        let flows = HashMap::try_from(flows).map_err(|e| Error::program("flow map", e))?;
        let counters = take_map(&mut ebpf, steer_common::MAP_COUNTERS)?;
        let counters = PerCpuArray::try_from(counters).map_err(|e| Error::program("counter map", e))?;
        Ok(SteerProgram { xsks, flows, counters, mode, iface: iface.clone(), _ebpf: ebpf })
    }

    /// The mode the program runs in.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The interface it is attached to.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// Steers packets to `addr:port` (an unspecified `addr` matches every address) into the
    /// AF_XDP socket of their rx queue.
    pub fn steer(&mut self, proto: Proto, addr: IpAddr, port: u16) -> Result<(), Error> {
        let key = flow_key(proto, addr, port);
        self.flows.insert(key, FlowAction::default(), 0).map_err(|e| Error::program("add flow", e))
    }

    /// Stops steering `addr:port`.
    pub fn unsteer(&mut self, proto: Proto, addr: IpAddr, port: u16) -> Result<(), Error> {
        let key = flow_key(proto, addr, port);
        self.flows.remove(&key).map_err(|e| Error::program("remove flow", e))
    }

    /// Puts the socket `fd` (bound to `queue`) into the XSKMAP.
    pub fn register(&mut self, queue: u32, fd: &impl AsRawFd) -> Result<(), Error> {
        if queue >= steer_common::MAX_QUEUES {
            return Err(Error::NoQueue { iface: self.iface.name.clone(), queue, queues: steer_common::MAX_QUEUES });
        }
        self.xsks.set(queue, fd.as_raw_fd(), 0).map_err(|e| Error::program("XSKMAP update", e))
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<ProgramCounters, Error> {
        let mut sums = [0u64; COUNTERS as usize];
        for c in Counter::ALL {
            let per_cpu = self.counters.get(&(c as u32), 0).map_err(|e| Error::program("read counters", e))?;
            sums[c as usize] = per_cpu.iter().sum();
        }
        Ok(ProgramCounters {
            seen: sums[Counter::Seen as usize],
            redirected: sums[Counter::Redirected as usize],
            passed: sums[Counter::Passed as usize],
            malformed: sums[Counter::Malformed as usize],
            no_socket: sums[Counter::NoSocket as usize],
            fragments: sums[Counter::Fragments as usize],
            icmp_errors: sums[Counter::IcmpErrors as usize],
            vlan: sums[Counter::Vlan as usize],
        })
    }
}

fn flow_key(proto: Proto, addr: IpAddr, port: u16) -> FlowKey {
    let key = match addr {
        IpAddr::V4(a) => FlowKey::v4(a.octets(), port, proto.number()),
        IpAddr::V6(a) => FlowKey::v6(a.octets(), port, proto.number()),
    };
    if addr.is_unspecified() {
        key.any_addr()
    } else {
        key
    }
}

fn attach(prog: &mut Xdp, iface: &Interface, mode: XdpMode) -> Result<(), Error> {
    match prog.attach_to_if_index(iface.index, mode) {
        Ok(_) => Ok(()),
        Err(e) if is_busy(&e) => Err(Error::XdpBusy { iface: iface.name.clone() }),
        Err(e) => Err(Error::program("attach", e)),
    }
}

fn is_busy(e: &ProgramError) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = src {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(libc::EBUSY) || io.raw_os_error() == Some(libc::EEXIST) {
                return true;
            }
        }
        if err.to_string().contains("Device or resource busy") {
            return true;
        }
        src = err.source();
    }
    false
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, Error> {
    ebpf.take_map(name).ok_or_else(|| Error::program("find map", NotFound(name)))
}

#[derive(Debug)]
struct NotFound(&'static str);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not in the embedded object (stale build? run `cargo clean -p datapath`)", self.0)
    }
}

impl std::error::Error for NotFound {}
