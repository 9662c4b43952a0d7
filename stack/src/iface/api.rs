//! The socket-like API a run-to-completion loop calls: listen, accept, connect, read,
//! write_frames, close, readiness; and UDP bind / recv / send.

use std::collections::VecDeque;

use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint};
use umem::BufSlice;

use super::table::{Entry, Listener};
use super::{Control, Stack};
use crate::tcp::{Conn, ConnError, FourTuple, State};

/// A TCP connection. Stale handles (after close) are refused, never confused with a new
/// connection in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnHandle {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// A listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenHandle(pub(crate) u16);

/// A bound UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpHandle(pub(crate) u16);

/// Why a socket call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    /// The handle names no live socket.
    #[error("invalid or closed socket handle")]
    InvalidHandle,
    /// The port is already bound.
    #[error("address in use")]
    AddrInUse,
    /// No local address of the remote's family is configured.
    #[error("no local address for this address family")]
    NoAddress,
    /// Every ephemeral port towards this remote is taken.
    #[error("no free ephemeral port")]
    NoPorts,
    /// The connection table is full (`StackConfig::max_connections`).
    #[error("connection table full")]
    TableFull,
    /// The connection can no longer send (closed by us).
    #[error("socket closed for sending")]
    Closed,
    /// The connection failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
}

/// What a connection is ready for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// In-order bytes are waiting to be read.
    pub readable: usize,
    /// Bytes [`Stack::write_frames`] would take now.
    pub writable: usize,
    /// The handshake completed.
    pub connected: bool,
    /// The peer closed its side and everything has been read (end of stream).
    pub read_closed: bool,
    /// Every byte written has been acknowledged.
    pub all_acked: bool,
    /// The connection is gone (closed cleanly or failed).
    pub closed: bool,
    /// Why it failed, if it did.
    pub error: Option<ConnError>,
}

#[derive(Debug, Default)]
pub(crate) struct UdpSocket {
    pub(crate) rx: VecDeque<(IpEndpoint, BufSlice)>,
}

impl Stack {
    fn entry(&self, h: ConnHandle) -> Result<&Entry, SocketError> {
        let s = self.slots.get(h.idx as usize).ok_or(SocketError::InvalidHandle)?;
        match &s.entry {
            Some(e) if s.gen == h.gen && e.owned && !e.released => Ok(e),
            _ => Err(SocketError::InvalidHandle),
        }
    }

    fn entry_mut(&mut self, h: ConnHandle) -> Result<&mut Entry, SocketError> {
        let s = self.slots.get_mut(h.idx as usize).ok_or(SocketError::InvalidHandle)?;
        match &mut s.entry {
            Some(e) if s.gen == h.gen && e.owned && !e.released => Ok(e),
            _ => Err(SocketError::InvalidHandle),
        }
    }

    /// Listens on `port` (every local address).
    pub fn listen(&mut self, port: u16) -> Result<ListenHandle, SocketError> {
        if self.listeners.contains_key(&port) {
            return Err(SocketError::AddrInUse);
        }
        self.listener_gen = self.listener_gen.wrapping_add(1);
        self.listeners.insert(port, Listener { accept: VecDeque::new(), gen: self.listener_gen });
        Ok(ListenHandle(port))
    }

    /// Stops listening; connections not yet accepted are reset: those in the accept queue
    /// now, half-open ones at their next event (a segment, or the SYN-ACK retransmission
    /// timer, which runs in every half-open connection), so this walks no table.
    pub fn unlisten(&mut self, l: ListenHandle) {
        if let Some(listener) = self.listeners.remove(&l.0) {
            for h in listener.accept {
                let Some(slot) = self.slots.get_mut(h.idx as usize) else { continue };
                if slot.gen != h.gen {
                    continue;
                }
                if let Some(e) = slot.entry.as_mut() {
                    e.conn.abort();
                    self.after_event(h.idx);
                }
            }
        }
    }

    /// The next established connection on `l`, if any.
    pub fn accept(&mut self, l: ListenHandle) -> Option<ConnHandle> {
        loop {
            let h = self.listeners.get_mut(&l.0)?.accept.pop_front()?;
            let slot = &mut self.slots[h.idx as usize];
            if slot.gen != h.gen {
                continue;
            }
            let Some(e) = slot.entry.as_mut() else { continue };
            e.owned = true;
            e.listener = None;
            e.queued = false;
            return Some(h);
        }
    }

    /// Whether `l` has connections waiting in its accept queue.
    pub fn acceptable(&self, l: ListenHandle) -> bool {
        self.listeners.get(&l.0).is_some_and(|x| !x.accept.is_empty())
    }

    /// Opens a connection to `remote`; the SYN goes out on the next dispatch.
    pub fn connect(&mut self, now: Instant, remote: IpEndpoint) -> Result<ConnHandle, SocketError> {
        if self.live >= self.cfg.max_connections {
            return Err(SocketError::TableFull);
        }
        let local_ip: IpAddress = self.our_ip_for(&remote.addr).ok_or(SocketError::NoAddress)?;
        let local = self.ephemeral(local_ip, remote).ok_or(SocketError::NoPorts)?;
        let tuple = FourTuple { local, remote };
        let iss = self.isn(now, &tuple);
        let mss = self.local_mss(&remote.addr);
        let mut conn = Conn::connect(&self.tcp, tuple, iss, mss);
        conn.set_ts_offset(self.ts_offset(&tuple));
        conn.set_rx_frame_size(self.rx_truesize);
        Ok(self.insert_conn(conn, None, false, None))
    }

    /// Queues payload by reference (no copy): takes as much of `slices` as the send buffer
    /// allows, splitting the last slice if needed, and returns the bytes taken. The
    /// caller's own handles may be dropped afterwards; the queue holds its own references
    /// until the peer acknowledges the bytes.
    pub fn write_frames(&mut self, h: ConnHandle, slices: &[BufSlice]) -> Result<usize, SocketError> {
        let e = self.entry_mut(h)?;
        if let Some(err) = e.conn.error() {
            return Err(err.into());
        }
        if !e.conn.may_send() {
            return Err(SocketError::Closed);
        }
        let n = e.conn.send(slices);
        if n > 0 {
            self.after_event(h.idx);
        }
        Ok(n)
    }

    /// Bytes [`Stack::write_frames`] would take now.
    pub fn send_space(&self, h: ConnHandle) -> usize {
        self.entry(h).map_or(0, |e| e.conn.send_space())
    }

    /// The next in-order received bytes (at most `max`), as a slice of the frame they
    /// arrived in. `Ok(None)`: nothing now (see [`Readiness::read_closed`] for the end).
    pub fn read(&mut self, h: ConnHandle, max: usize) -> Result<Option<BufSlice>, SocketError> {
        let e = self.entry_mut(h)?;
        if let Some(s) = e.conn.recv(max) {
            // Reading may open the window enough for a window update.
            self.after_event(h.idx);
            return Ok(Some(s));
        }
        match e.conn.error() {
            Some(err) => Err(err.into()),
            None => Ok(None),
        }
    }

    /// Closes gracefully: queued data then a FIN go out, and the handle is released (the
    /// connection lingers in the table through FIN-WAIT / TIME-WAIT).
    pub fn close(&mut self, h: ConnHandle) -> Result<(), SocketError> {
        let e = self.entry_mut(h)?;
        let dropped = e.conn.close();
        e.released = true;
        self.counters.tcp_close_discarded += dropped as u64;
        self.after_event(h.idx);
        Ok(())
    }

    /// Shuts the sending side ([`Conn::shutdown`]): a FIN follows the queued data; the
    /// handle stays the application's, which still reads and later calls [`Stack::close`].
    pub fn shutdown(&mut self, h: ConnHandle) -> Result<(), SocketError> {
        self.entry_mut(h)?.conn.shutdown();
        self.after_event(h.idx);
        Ok(())
    }

    /// Resets the connection and releases the handle.
    pub fn abort(&mut self, h: ConnHandle) -> Result<(), SocketError> {
        let e = self.entry_mut(h)?;
        e.conn.abort();
        e.released = true;
        self.after_event(h.idx);
        Ok(())
    }

    /// What `h` is ready for.
    pub fn readiness(&self, h: ConnHandle) -> Readiness {
        let Ok(e) = self.entry(h) else {
            return Readiness { closed: true, ..Default::default() };
        };
        let c = &e.conn;
        Readiness {
            readable: c.recv_ready(),
            writable: c.send_space(),
            connected: c.state().synchronized(),
            read_closed: c.recv_finished(),
            all_acked: c.send_queued() == 0,
            closed: c.state() == State::Closed,
            error: c.error(),
        }
    }

    /// The connection behind `h` (state, RTT, window, negotiated options).
    pub fn conn(&self, h: ConnHandle) -> Option<&Conn> {
        self.entry(h).ok().map(|e| &e.conn)
    }

    /// Binds a UDP port.
    pub fn udp_bind(&mut self, port: u16) -> Result<UdpHandle, SocketError> {
        if self.udp.contains_key(&port) {
            return Err(SocketError::AddrInUse);
        }
        self.udp.insert(port, UdpSocket::default());
        Ok(UdpHandle(port))
    }

    /// The next datagram: its sender and payload (a slice of the received frame).
    pub fn udp_recv(&mut self, h: UdpHandle) -> Option<(IpEndpoint, BufSlice)> {
        self.udp.get_mut(&h.0)?.rx.pop_front()
    }

    /// Queues a datagram whose payload is `payload` (by reference); it is built and sent
    /// on the next dispatch. Fails while the next hop is unresolved (a request is sent).
    pub fn udp_send(
        &mut self,
        now: Instant,
        h: UdpHandle,
        to: IpEndpoint,
        payload: &[BufSlice],
    ) -> Result<bool, SocketError> {
        if !self.udp.contains_key(&h.0) {
            return Err(SocketError::InvalidHandle);
        }
        let local = self.our_ip_for(&to.addr).ok_or(SocketError::NoAddress)?;
        let Some(route) = self.route_to(now, local, to.addr) else { return Ok(false) };
        self.push_control(Control::Udp { route, src_port: h.0, dst_port: to.port, payload: payload.to_vec() });
        Ok(true)
    }
}
