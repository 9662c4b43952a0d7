//! A domain: the endpoints, completion queues, address vectors and memory registrations
//! opened on it, all behind one mutex. Every libfabric call on any of them takes the lock
//! once, so the provider is FI_THREAD_SAFE at no cost to the single-threaded callers it
//! is built for (an MPI rank, `fi_pingpong`). Objects name each other by id.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak};
use std::time::Duration;

use super::av::AvTable;
use super::config::Config;
use super::cq::CqCore;
use super::ep::EpCore;

/// A map keyed by the domain's own object ids (a counter, never anything from the network
/// or the application), hashed by one multiplication instead of SipHash: every progress
/// call looks its queues up, and SipHash was 2-4% of a ping-pong's samples.
pub type IdMap<T> = HashMap<u64, T, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`].
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: an odd multiplier spreads consecutive ids over every bit.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A registered memory region (bookkeeping: the provider copies through frames either
/// way, see the crate docs).
#[derive(Debug, Clone, Copy)]
pub struct MrInfo {
    pub addr: usize,
    pub len: usize,
    pub key: u64,
}

/// Everything opened on one domain.
#[derive(Debug, Default)]
pub struct DomainState {
    pub eps: IdMap<EpCore>,
    pub cqs: IdMap<CqCore>,
    pub avs: IdMap<AvTable>,
    pub mrs: IdMap<MrInfo>,
    next: u64,
}

impl DomainState {
    /// A fresh object id.
    pub fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Drives every endpoint that reports to completion queue `cq`.
    pub fn progress_cq(&mut self, cq: u64) {
        let DomainState { eps, cqs, avs, .. } = self;
        for ep in eps.values_mut().filter(|e| e.enabled && (e.tx_cq == Some(cq) || e.rx_cq == Some(cq))) {
            ep.progress(cqs, avs);
        }
    }

    /// What a blocking read on `cq` waits on: the endpoints' descriptors, and how long it
    /// may sleep before timers need a progress call.
    pub fn wait_set(&self, cq: u64) -> (Vec<std::os::fd::RawFd>, Option<Duration>) {
        let mut fds = Vec::new();
        let mut slice = None;
        for ep in self.eps.values().filter(|e| e.tx_cq == Some(cq) || e.rx_cq == Some(cq)) {
            fds.push(ep.wait_fd());
            if ep.needs_timer() {
                slice = Some(ep.timer_slice());
            }
        }
        (fds, slice)
    }

    /// Whether anything still refers to this domain's objects.
    pub fn is_empty(&self) -> bool {
        self.eps.is_empty() && self.cqs.is_empty() && self.avs.is_empty() && self.mrs.is_empty()
    }
}

/// A domain as the C objects share it.
#[derive(Debug)]
pub struct DomainShared {
    pub cfg: Config,
    state: Mutex<DomainState>,
    timers: Once,
}

/// How long an endpoint with timers due may go undriven before the timer thread drives it.
const TIMER_IDLE: Duration = Duration::from_millis(1);

const fn assert_send<T: Send>() {}
const _: () = assert_send::<DomainState>();

impl DomainShared {
    pub fn new(cfg: Config) -> DomainShared {
        DomainShared { cfg, state: Mutex::new(DomainState::default()), timers: Once::new() }
    }

    /// Starts the domain's timer thread (once). Reliability needs retransmissions even
    /// while the application blocks elsewhere without reading a completion queue:
    /// `fi_pingpong` injects a reply and then waits on its TCP control socket; if that
    /// reply's datagram was lost, only a retransmission ends the wait, and under manual
    /// progress nobody would send it. The thread drives an endpoint only when timers are
    /// due and the application has not driven it for `TIMER_IDLE`, so the application's
    /// own reads keep the fast path; it takes the domain lock like any entry point, and
    /// ends when the domain is closed.
    pub fn start_timers(self: &Arc<Self>) {
        let weak: Weak<DomainShared> = Arc::downgrade(self);
        self.timers.call_once(|| {
            let r = std::thread::Builder::new().name("afxdp-timers".into()).spawn(move || loop {
                let Some(d) = weak.upgrade() else { return };
                let busy = {
                    let mut st = d.lock();
                    let DomainState { eps, cqs, avs, .. } = &mut *st;
                    let mut busy = false;
                    for ep in eps.values_mut() {
                        if ep.stalled(TIMER_IDLE) {
                            ep.progress(cqs, avs);
                        }
                        busy |= ep.needs_timer();
                    }
                    busy
                };
                drop(d);
                std::thread::sleep(if busy { TIMER_IDLE } else { Duration::from_millis(20) });
            });
            if let Err(e) = r {
                log::warn!("no timer thread ({e}): retransmissions run only while the application reads its queues");
            }
        });
    }

    /// The state, locked. A panic caught at an entry point leaves the lock poisoned; the
    /// state is still consistent enough to close objects, so the poison is ignored.
    pub fn lock(&self) -> MutexGuard<'_, DomainState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
