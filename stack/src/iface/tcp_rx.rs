//! TCP demultiplexing: segments to connections, SYNs to listeners (with a bounded
//! half-open queue and SYN cookies beyond it), RSTs for everything else.

use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpEndpoint};
use umem::BufSlice;

use super::{Control, Stack};
use crate::tcp::syn_cookie::CookieError;
use crate::tcp::{Conn, FourTuple, Reply, TwVerdict};
use crate::wire::{parse_tcp, IpInfo, Route, Seq, TcpFlags, TcpHeader, TcpOptions};

impl Stack {
    pub(crate) fn handle_tcp(&mut self, now: Instant, src_mac: EthernetAddress, ip: IpInfo, frame: BufSlice) {
        let (hdr, prange) = match parse_tcp(frame.as_bytes(), &ip) {
            Ok(x) => x,
            Err(e) => {
                self.counters.wire(e);
                return;
            }
        };
        self.counters.tcp_rx_segments += 1;
        let tuple =
            FourTuple { local: IpEndpoint::new(ip.dst, hdr.dst_port), remote: IpEndpoint::new(ip.src, hdr.src_port) };
        let payload = if prange.is_empty() { None } else { frame.slice(prange.clone()) };
        self.rx_truesize = frame.buf().capacity();
        drop(frame);
        let reply_route = Route { src_mac: self.cfg.mac, dst_mac: src_mac, src_ip: ip.dst, dst_ip: ip.src };

        if let Some(&idx) = self.by_tuple.get(&tuple) {
            // The checksum held and the segment is for one of our connections: where it
            // came from is the peer's MAC.
            if self.on_link(&ip.src) {
                self.learn_neighbor(now, ip.src, src_mac);
            }
            let Some(e) = self.slots[idx as usize].entry.as_mut() else { return };
            if e.conn.state() == crate::tcp::State::SynSent {
                // The first frame this connection sees: its size sets the windows offered.
                e.conn.set_rx_frame_size(self.rx_truesize);
            }
            let reply = e.conn.handle_segment(now, &hdr, payload, &mut self.counters);
            if let Reply::Rst { seq } = reply {
                self.queue_rst(reply_route, &hdr, Some(seq), 0);
            }
            self.note_changed(idx);
            self.note_ooo(idx);
            self.after_event(idx);
            if !prange.is_empty() {
                self.relieve_pressure();
            }
            return;
        }

        let mut iss = None;
        if let Some(t) = self.time_wait.find(&tuple) {
            let Some(tw) = self.time_wait.get(t) else { return };
            match tw.on_segment(&hdr, prange.len(), self.cfg.tcp.timestamps, &mut self.counters) {
                TwVerdict::Ignore => return,
                TwVerdict::Kill => {
                    self.time_wait.remove(t);
                    return;
                }
                TwVerdict::Ack { restart } => {
                    let ack = tw.ack(now);
                    if self.time_wait.may_ack(t, now, &hdr, prange.len()) {
                        self.push_control(Control::Tcp { route: reply_route, hdr: ack });
                    } else {
                        self.counters.tcp_oow_acks_limited += 1;
                    }
                    if restart {
                        self.time_wait.restart(t, now + self.cfg.tcp.time_wait);
                    }
                    return;
                }
                TwVerdict::Reopen => {
                    // A new incarnation: its ISS lies beyond the old one's sequence space.
                    iss = Some(tw.reopen_iss());
                    self.time_wait.remove(t);
                }
                TwVerdict::Reset => {
                    self.time_wait.remove(t);
                    self.queue_rst(reply_route, &hdr, None, prange.len());
                    return;
                }
                TwVerdict::PeerFin => {
                    self.time_wait.peer_fin(t, &hdr, now + self.cfg.tcp.time_wait);
                    self.counters.tcp_time_wait += 1;
                    if let Some(ack) = self.time_wait.get(t).map(|tw| tw.ack(now)) {
                        self.push_control(Control::Tcp { route: reply_route, hdr: ack });
                    }
                    return;
                }
            }
        }

        if hdr.flags.has(TcpFlags::RST) {
            return;
        }
        let plen = prange.len();
        if !self.listeners.contains_key(&hdr.dst_port) {
            self.counters.tcp_no_socket += 1;
            self.queue_rst(reply_route, &hdr, None, plen);
            return;
        }
        if hdr.flags.has(TcpFlags::SYN) && !hdr.flags.has(TcpFlags::ACK) {
            if !self.admit_new() {
                return;
            }
            self.on_syn(now, tuple, reply_route, &hdr, iss);
        } else if hdr.flags.has(TcpFlags::ACK) && !hdr.flags.has(TcpFlags::SYN) {
            self.on_cookie_ack(now, tuple, reply_route, &hdr, payload, plen);
        } else {
            self.counters.tcp_no_socket += 1;
        }
    }

    /// A SYN for a listener; `iss` is given when it reopens a four-tuple in TIME-WAIT.
    fn on_syn(&mut self, now: Instant, tuple: FourTuple, route: Route, syn: &TcpHeader, iss: Option<Seq>) {
        self.counters.tcp_syn_received += 1;
        let port = tuple.local.port;
        if self.live >= self.cfg.max_connections {
            self.counters.tcp_conn_table_full += 1;
            return;
        }
        if self.listeners.get(&port).is_some_and(|l| l.accept.len() >= self.cfg.backlog) {
            self.counters.tcp_accept_queue_full += 1;
            return;
        }
        let local_mss = self.local_mss(&tuple.remote.addr);
        if self.half_open >= self.cfg.max_half_open {
            let peer_mss = syn.options.mss.unwrap_or(536).min(local_mss);
            let (isn, _) = self.cookies.make(now, &tuple, syn.seq, peer_mss);
            let hdr = TcpHeader {
                src_port: tuple.local.port,
                dst_port: tuple.remote.port,
                seq: isn,
                ack: syn.seq.add(1),
                flags: TcpFlags::SYN | TcpFlags::ACK,
                window: self.initial_window(&tuple.remote.addr).min(65535) as u16,
                options: TcpOptions { mss: Some(local_mss), ..Default::default() },
            };
            self.counters.tcp_syn_cookies_sent += 1;
            self.push_control(Control::Tcp { route, hdr });
            return;
        }
        let iss = iss.unwrap_or_else(|| self.isn(now, &tuple));
        let mut conn = Conn::accept_syn(&self.tcp, tuple, iss, local_mss, syn);
        conn.set_ts_offset(self.ts_offset(&tuple));
        conn.set_rx_frame_size(self.rx_truesize);
        self.insert_conn(conn, Some(port), true, Some(route.dst_mac));
    }

    fn on_cookie_ack(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        route: Route,
        hdr: &TcpHeader,
        payload: Option<BufSlice>,
        plen: usize,
    ) {
        let peer_mss = match self.cookies.check(now, &tuple, hdr.seq.sub(1), hdr.ack.sub(1)) {
            Ok(mss) => mss,
            Err(CookieError::NotRecent) => {
                // No cookie is in use: an ACK for no connection (RFC 9293 3.10.7.1).
                self.counters.tcp_syn_cookies_not_recent += 1;
                self.counters.tcp_no_socket += 1;
                self.queue_rst(route, hdr, None, plen);
                return;
            }
            Err(CookieError::Invalid) => {
                self.counters.tcp_syn_cookies_invalid += 1;
                self.queue_rst(route, hdr, None, plen);
                return;
            }
        };
        if self.live >= self.cfg.max_connections {
            self.counters.tcp_conn_table_full += 1;
            return;
        }
        if !self.admit_new() {
            return;
        }
        let port = tuple.local.port;
        if self.listeners.get(&port).is_some_and(|l| l.accept.len() >= self.cfg.backlog) {
            // The peer believes it is connected. Linux's answer: drop the ACK and let the
            // peer's retransmission (of its data, which carries the same ACK) find room
            // later, or with `tcp_abort_on_overflow` reset it.
            self.counters.tcp_accept_queue_full += 1;
            self.counters.tcp_syn_cookies_overflow += 1;
            if self.cfg.abort_on_overflow {
                self.queue_rst(route, hdr, None, plen);
            }
            return;
        }
        self.counters.tcp_syn_cookies_accepted += 1;
        self.counters.tcp_established += 1;
        let local_mss = self.local_mss(&tuple.remote.addr);
        let mut conn = Conn::from_cookie(&self.tcp, tuple, hdr.ack.sub(1), local_mss, peer_mss, hdr);
        conn.set_rx_frame_size(self.rx_truesize);
        let h = self.insert_conn(conn, Some(port), false, Some(route.dst_mac));
        if let Some(e) = self.slots[h.idx as usize].entry.as_mut() {
            e.conn.handle_segment(now, hdr, payload, &mut self.counters);
        }
        self.after_event(h.idx);
    }

    /// Queues a RST answering `hdr` (RFC 9293 3.10.7.1): `<SEQ=SEG.ACK><CTL=RST>` if it
    /// carried an ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
    pub(crate) fn queue_rst(&mut self, route: Route, hdr: &TcpHeader, seq: Option<Seq>, plen: usize) {
        let mut rst = TcpHeader { src_port: hdr.dst_port, dst_port: hdr.src_port, ..Default::default() };
        if let Some(seq) = seq.or(hdr.flags.has(TcpFlags::ACK).then_some(hdr.ack)) {
            rst.seq = seq;
            rst.flags = TcpFlags::RST;
        } else {
            rst.seq = Seq(0);
            rst.ack = hdr.seq.add_len(hdr.seq_len(plen));
            rst.flags = TcpFlags::RST | TcpFlags::ACK;
        }
        self.push_control(Control::Tcp { route, hdr: rst });
    }
}
