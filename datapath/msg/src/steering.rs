//! One steering program per interface, shared by every endpoint of the process on it.
//!
//! An interface takes one XDP program, and an AF_XDP socket only receives what the program
//! redirects to its queue's XSKMAP entry. So the endpoints of one process on one interface
//! (one per queue and thread, as HPC layers run one per rank or thread) share the program:
//! the first [`Endpoint::bind`](super::Endpoint::bind) attaches it, each registers its
//! socket under its queue and steers its own address and port, and the last one to go
//! detaches it. The program redirects by `rx_queue_index`, so an endpoint receives the
//! datagrams its queue receives: a NIC's RSS (or an `ethtool -N` rule) decides which, and
//! on veth the queue a packet was sent from. A datagram for another endpoint's port that
//! lands on this queue is counted as `not_ours`; a steered one on a queue with no socket
//! is dropped by the program and counted (`no_socket`).

use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use datapath::{AttachMode, AttachPolicy, Interface, ProgramCounters, Proto, SteerProgram, XskSocket};

use super::MsgError;

struct Shared {
    prog: SteerProgram,
    /// Addresses steered by endpoints of this process.
    flows: Vec<SocketAddrV4>,
}

/// The attached programs of this process, by interface index.
static PROGRAMS: Mutex<Vec<(u32, Weak<Mutex<Shared>>)>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<(u32, Weak<Mutex<Shared>>)>> {
    PROGRAMS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One endpoint's share of its interface's program: its queue registered, its address
/// steered. Dropping it stops steering the address (and detaches the program when it was
/// the last share).
pub(crate) struct Steering {
    shared: Option<Arc<Mutex<Shared>>>,
    local: SocketAddrV4,
    mode: AttachMode,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering").field("local", &self.local).field("mode", &self.mode).finish()
    }
}

impl Steering {
    /// Attaches `iface`'s program (or shares the one this process attached), puts `sock`
    /// into its XSKMAP for `queue` and steers UDP to `local` into it.
    pub fn bind(
        iface: &Interface,
        policy: AttachPolicy,
        queue: u32,
        sock: &XskSocket,
        local: SocketAddrV4,
    ) -> Result<Steering, MsgError> {
        let shared = {
            // Held across the attach, so two threads never both attach.
            let mut reg = registry();
            reg.retain(|(_, w)| w.strong_count() > 0);
            match reg.iter().find(|(i, _)| *i == iface.index).and_then(|(_, w)| w.upgrade()) {
                Some(s) => s,
                None => {
                    let prog = SteerProgram::attach(iface, policy)?;
                    let s = Arc::new(Mutex::new(Shared { prog, flows: Vec::new() }));
                    reg.push((iface.index, Arc::downgrade(&s)));
                    s
                }
            }
        };
        let mode = {
            let mut g = lock(&shared);
            if g.flows.contains(&local) {
                return Err(MsgError::AddrInUse { local, iface: iface.name.clone() });
            }
            g.prog.register(queue, sock)?;
            g.prog.steer(Proto::Udp, (*local.ip()).into(), local.port())?;
            g.flows.push(local);
            g.prog.mode()
        };
        Ok(Steering { shared: Some(shared), local, mode })
    }

    /// The mode the program runs in.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The program's counters (for every endpoint on the interface).
    pub fn counters(&self) -> Result<ProgramCounters, datapath::Error> {
        match &self.shared {
            Some(s) => lock(s).prog.counters(),
            None => Ok(ProgramCounters::default()),
        }
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else { return };
        {
            let mut g = lock(&shared);
            g.flows.retain(|f| *f != self.local);
            if let Err(e) = g.prog.unsteer(Proto::Udp, (*self.local.ip()).into(), self.local.port()) {
                log::debug!("unsteering {}: {e}", self.local);
            }
        }
        // The last share detaches the program under the registry's lock, so a bind racing
        // with it either shares it before or attaches anew after.
        let _reg = registry();
        drop(shared);
    }
}
