//! Output: control replies first, then each connection on the ready list, built into
//! frames from the [`Link`] (a header frame plus payload slices by reference).

use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;
use umem::{Buf, BufSlice};

use super::{control, Control, Full, Link, Stack, TxOffload};
use crate::tcp::OutSegment;
use crate::wire::{PartialChecksum, Route};

/// How serving one connection ended.
enum Served {
    /// It sent what it could (or had nothing): off the ready list until its next event.
    Done,
    /// Its next hop's MAC is unknown (resolution requested).
    Unrouted(IpAddress),
    /// The link took no more (ring full, no frame): it stays first on the ready list.
    LinkBusy,
}

impl Stack {
    /// Timers, then output: the usual call of a run loop after receiving a batch.
    pub fn poll<L: Link>(&mut self, now: Instant, link: &mut L) -> usize {
        self.handle_timeout(now);
        self.dispatch(now, link)
    }

    /// Builds and transmits everything pending: control replies, then the segments of each
    /// connection on the ready list (and only those). Returns the frames sent. Stops early
    /// when the link is full or out of frames (the rest goes next time; TCP treats a
    /// refused segment as lost).
    pub fn dispatch<L: Link>(&mut self, now: Instant, link: &mut L) -> usize {
        let mut sent = 0;
        let copy = self.cfg.force_copy || !link.multi_buffer();
        let offload = link.tx_offload();
        if !self.flush_control(link, copy, &mut sent) {
            return sent;
        }
        while let Some(idx) = self.ready.pop_front() {
            self.slots[idx as usize].ready = false;
            if self.slots[idx as usize].entry.is_none() {
                continue;
            }
            self.counters.conn_visits += 1;
            match self.serve(now, idx, link, copy, offload, &mut sent) {
                Served::Done => self.settle(idx, false),
                Served::Unrouted(hop) => {
                    if let Some(e) = self.slots[idx as usize].entry.as_mut() {
                        e.conn.on_no_route(now);
                    }
                    self.park_unrouted(now, idx, hop);
                    self.settle(idx, false);
                }
                Served::LinkBusy => {
                    self.settle(idx, false);
                    let slot = &mut self.slots[idx as usize];
                    if slot.entry.is_some() && !slot.ready {
                        slot.ready = true;
                        self.ready.push_front(idx);
                    }
                    return sent;
                }
            }
        }
        // Resolution requests queued by connections waiting for a next hop.
        self.flush_control(link, copy, &mut sent);
        sent
    }

    /// Sends queued control packets; false if the link filled up first.
    fn flush_control<L: Link>(&mut self, link: &mut L, copy: bool, sent: &mut usize) -> bool {
        while let Some(c) = self.control.pop_front() {
            match self.send_control(c, link, copy) {
                Ok(true) => *sent += 1,
                Ok(false) => {}
                Err(c) => {
                    self.control.push_front(c);
                    return false;
                }
            }
        }
        true
    }

    /// Descriptors one segment may need: a header frame, its payload slices (each cut at
    /// the frame size less the link's headroom), or, copied, as many frames as the payload
    /// fills.
    fn segment_room(&self, link: &impl Link, frame_cap: usize, offload: TxOffload) -> usize {
        2 + self.cfg.tcp.max_payload_frags + link.mtu() / frame_cap.saturating_sub(offload.headroom).max(1)
    }

    /// Sends segments of connection `idx` until it has none or the link is full.
    fn serve<L: Link>(
        &mut self,
        now: Instant,
        idx: u32,
        link: &mut L,
        copy: bool,
        offload: TxOffload,
        sent: &mut usize,
    ) -> Served {
        loop {
            let Some(e) = self.slots[idx as usize].entry.as_ref() else { return Served::Done };
            if !e.conn.wants_output() {
                return Served::Done;
            }
            let tuple = e.conn.tuple();
            let route = match e.peer_mac {
                Some(mac) => {
                    Route { src_mac: self.cfg.mac, dst_mac: mac, src_ip: tuple.local.addr, dst_ip: tuple.remote.addr }
                }
                None => match self.route_to(now, tuple.local.addr, tuple.remote.addr) {
                    Some(r) => r,
                    None => return Served::Unrouted(self.next_hop(&tuple.remote.addr).unwrap_or(tuple.remote.addr)),
                },
            };
            // Back-pressure: build no segment the ring could not take. The frame size is
            // known once a frame has been seen; until then the check follows the first
            // allocation.
            if self.frame_cap.is_some_and(|cap| !link.has_tx_room(self.segment_room(link, cap, offload))) {
                return Served::LinkBusy;
            }
            let Some(frame) = link.alloc_frame() else {
                self.counters.tx_no_frame += 1;
                return Served::LinkBusy;
            };
            if self.frame_cap.is_none() {
                let cap = frame.capacity();
                self.frame_cap = Some(cap);
                if !link.has_tx_room(self.segment_room(link, cap, offload)) {
                    return Served::LinkBusy;
                }
            }
            let Some(e) = self.slots[idx as usize].entry.as_mut() else { return Served::Done };
            if !e.conn.poll_segment(now, &mut self.out, &mut self.counters) {
                return Served::Done;
            }
            let csum = match emit_segment(&route, &self.out, frame, copy, link, &mut self.frags, offload) {
                Some((copied, csum)) => {
                    self.counters.payload_bytes_copied += copied as u64;
                    csum
                }
                None => {
                    self.counters.tx_no_frame += 1;
                    self.frags.clear();
                    continue;
                }
            };
            let plen = self.out.payload_len();
            let res = match csum {
                Some(csum) => link.transmit_partial(&mut self.frags, csum),
                None => link.transmit(&self.frags),
            };
            self.frags.clear();
            self.out.payload.clear();
            if res.is_err() {
                self.counters.tx_link_full += 1;
                return Served::LinkBusy;
            }
            *sent += 1;
            self.counters.tx_frames += 1;
            self.counters.tcp_tx_segments += 1;
            self.counters.tx_payload_bytes += plen as u64;
        }
    }

    /// Builds and sends one control packet; `Err` gives it back when the link is full.
    fn send_control<L: Link>(&mut self, c: Control, link: &mut L, copy: bool) -> Result<bool, Control> {
        if let Control::Frame(f) = c {
            return match link.transmit(std::slice::from_ref(&f)) {
                Ok(()) => {
                    self.counters.tx_frames += 1;
                    Ok(true)
                }
                Err(Full) => Err(Control::Frame(f)),
            };
        }
        let Some(mut frame) = link.alloc_frame() else {
            self.counters.tx_no_frame += 1;
            return Err(c);
        };
        let built = match &c {
            Control::Tcp { route, hdr } => {
                let Some(buf) = frame.get_mut() else { return Ok(false) };
                let n = route.emit_tcp(buf, hdr, core::iter::empty());
                self.counters.tcp_tx_segments += 1;
                Some(n)
            }
            Control::Udp { route, src_port, dst_port, payload } => {
                control::build_udp(route, *src_port, *dst_port, payload, &mut frame, copy, &mut self.frags).map(
                    |(n, copied)| {
                        self.counters.payload_bytes_copied += copied as u64;
                        n
                    },
                )
            }
            Control::ArpRequest(ip) => self.build_arp_request(*ip, &mut frame),
            Control::NeighborSolicit(ip) => self.build_neighbor_solicit(*ip, &mut frame),
            Control::Frame(_) => None,
        };
        let Some(n) = built else {
            self.frags.clear();
            return Ok(false);
        };
        let Some(head) = BufSlice::new(frame, 0..n) else { return Ok(false) };
        self.frags.insert(0, head);
        let res = link.transmit(&self.frags);
        self.frags.clear();
        match res {
            Ok(()) => {
                self.counters.tx_frames += 1;
                Ok(true)
            }
            Err(Full) => {
                self.counters.tx_link_full += 1;
                Ok(false)
            }
        }
    }
}

/// Writes the headers of `seg` into `frame` and fills `frags` with what to transmit: the
/// header frame, then the payload slices, each cut at the frame size (an AF_XDP descriptor
/// may not be longer than a UMEM chunk, so a 9000-byte segment is a header frame and three
/// payload descriptors). In copy mode (forced, no multi-buffer, or more pieces than the
/// link takes) the payload is copied behind the header, continuing into further frames
/// from the link when it does not fit one (multi-buffer only).
///
/// Where the link asks for headroom, every frame filled here starts that far in and every
/// fragment is that much shorter than a frame; where it finishes checksums, the header
/// gets the pseudo-header sum only and the payload is not read. Returns the bytes copied
/// and where the link is to finish the checksum (`None`: it is complete), or `None` if the
/// frames are too small or none are left.
fn emit_segment<L: Link>(
    route: &Route,
    seg: &OutSegment,
    mut frame: Buf,
    copy: bool,
    link: &mut L,
    frags: &mut Vec<BufSlice>,
    offload: TxOffload,
) -> Option<(usize, Option<PartialChecksum>)> {
    let head = offload.headroom;
    let cap = frame.capacity().checked_sub(head)?.max(1);
    let multi = link.multi_buffer();
    let pieces: usize = seg.payload.iter().map(|p| p.len().div_ceil(cap)).sum();
    let copy = copy || !multi || 1 + pieces > link.max_frags();
    let buf = frame.get_mut()?.get_mut(head..)?;
    let (hl, csum) = if offload.checksum {
        let (hl, csum) = route.emit_tcp_partial(buf, &seg.hdr, seg.payload_len());
        (hl, Some(csum))
    } else {
        (route.emit_tcp(buf, &seg.hdr, seg.payload.iter().map(BufSlice::as_bytes)), None)
    };
    if !copy {
        frags.push(BufSlice::new(frame, head..head + hl)?);
        for p in &seg.payload {
            let mut off = 0;
            while off < p.len() {
                let n = (p.len() - off).min(cap);
                frags.push(p.slice(off..off + n)?);
                off += n;
            }
        }
        return Some((0, csum));
    }
    let mut len = head + hl;
    let mut copied = 0;
    for p in &seg.payload {
        let mut src = p.as_bytes();
        while !src.is_empty() {
            if len == frame.capacity() {
                if !multi {
                    return None;
                }
                let next = link.alloc_frame()?;
                frags.push(BufSlice::new(std::mem::replace(&mut frame, next), head..len)?);
                len = head;
            }
            let buf = frame.get_mut()?;
            let n = src.len().min(buf.len() - len);
            buf[len..len + n].copy_from_slice(&src[..n]);
            len += n;
            copied += n;
            src = &src[n..];
        }
    }
    frags.push(BufSlice::new(frame, head..len)?);
    Some((copied, csum))
}
