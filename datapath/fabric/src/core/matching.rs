//! Receive matching: posted receives, unexpected messages, and the reassembly of a
//! message's chunks into the buffer it matched. No I/O: chunks come in as byte runs, and
//! completions go out as values, so all of it is tested without a network.
//!
//! * A first chunk matches the oldest posted receive that accepts it (untagged: any, or
//!   the same source with FI_DIRECTED_RECV; tagged: `(tag ^ want) & !ignore == 0` and the
//!   source). Its bytes, and those of the chunks that follow from the same peer, are
//!   copied straight into the application's buffer.
//! * Unmatched, an RDM message is buffered as *unexpected* (its bytes in a vector, counted
//!   against a bound the endpoint enforces by pausing receive); a receive posted later
//!   takes the oldest unexpected message it accepts. One not yet complete is *claimed*:
//!   it completes into that receive when its last chunk arrives. A DGRAM message with no
//!   receive posted is dropped and counted, as datagram semantics allow.
//! * `FI_PEEK` reports the oldest unexpected message a receive would take and leaves it;
//!   with `FI_CLAIM` it also reserves that message for the peek's context, so no other
//!   receive takes it, until a receive posted with `FI_CLAIM` and the same context does
//!   (`MPI_Improbe` and `MPI_Mrecv`). `FI_DISCARD` drops the message instead, on the peek
//!   or on the claim.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use super::cq::{prov_errno, CompErr, Completion};
use super::proto::{Hdr, Kind};
use crate::ffi::consts::*;
use crate::ffi::iov::UserIov;

/// A posted receive.
#[derive(Debug)]
pub struct PostedRecv {
    pub ctx: usize,
    pub iov: UserIov,
    /// FI_ADDR_UNSPEC: any source.
    pub src: u64,
    pub tagged: bool,
    pub tag: u64,
    pub ignore: u64,
    /// Write a completion on success (errors always complete).
    pub want_comp: bool,
}

impl PostedRecv {
    fn accepts(&self, tagged: bool, tag: u64, src: u64, directed: bool) -> bool {
        self.tagged == tagged
            && (!tagged || (self.tag ^ tag) & !self.ignore == 0)
            && (!directed || self.src == FI_ADDR_UNSPEC || self.src == src)
    }
}

#[derive(Debug)]
struct Unexpected {
    id: u64,
    src: u64,
    hdr: Hdr,
    buf: Vec<u8>,
    complete: bool,
    claimed: Option<PostedRecv>,
    /// Reserved by an `FI_PEEK | FI_CLAIM` with this context.
    peeked_by: Option<usize>,
}

impl Unexpected {
    /// Not yet taken by a receive nor reserved by a peek.
    fn free(&self) -> bool {
        self.claimed.is_none() && self.peeked_by.is_none()
    }
}

/// What a peek does with the message it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeekMode {
    /// `FI_PEEK`: report it, leave it for any receive.
    Look,
    /// `FI_PEEK | FI_CLAIM`: report it and reserve it for the peek's context.
    Claim,
    /// `FI_PEEK | FI_DISCARD`: report it and drop it.
    Discard,
}

#[derive(Debug)]
enum Sink {
    User(PostedRecv),
    Unexp(u64),
}

#[derive(Debug)]
struct Incoming {
    sink: Sink,
    hdr: Hdr,
    src: u64,
    got: usize,
}

/// Counters of the matcher.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MatchStats {
    /// Messages that found a posted receive on arrival.
    pub matched: u64,
    /// Messages buffered as unexpected.
    pub unexpected: u64,
    /// DGRAM messages dropped for want of a posted receive.
    pub no_receive: u64,
    /// Continuation chunks with no message in progress (dropped).
    pub stray: u64,
    /// Messages cut short by a new first chunk from the same peer (dropped).
    pub aborted: u64,
    /// Bytes copied into application buffers.
    pub bytes_out: u64,
    /// Messages reserved by `FI_PEEK | FI_CLAIM`.
    pub claimed: u64,
    /// Messages dropped by `FI_DISCARD`.
    pub discarded: u64,
}

/// Posted receives and unexpected messages of one endpoint; `K` names a peer.
#[derive(Debug)]
pub struct Matcher<K> {
    posted_msg: VecDeque<PostedRecv>,
    posted_tagged: VecDeque<PostedRecv>,
    unexpected: VecDeque<Unexpected>,
    incoming: HashMap<K, Incoming>,
    /// Honour a receive's source (FI_DIRECTED_RECV).
    directed: bool,
    /// Buffer unmatched messages (RDM) instead of dropping them (DGRAM).
    buffer_unexpected: bool,
    /// Bytes held by unexpected messages.
    unexp_bytes: usize,
    next_id: u64,
    pub stats: MatchStats,
}

/// Completion flags of a received message.
fn recv_flags(hdr: &Hdr) -> u64 {
    let mut f = FI_RECV | if hdr.kind == Kind::Tagged { FI_TAGGED } else { FI_MSG };
    if hdr.has_data() {
        f |= FI_REMOTE_CQ_DATA;
    }
    f
}

/// A successful receive completion for context `ctx` describing message `hdr` from `src`:
/// `len` bytes at `buf` (a peek reports the message's length and no buffer).
fn recv_completion(ctx: usize, hdr: &Hdr, src: u64, len: usize, buf: usize) -> Completion {
    Completion {
        op_context: ctx,
        flags: recv_flags(hdr),
        len,
        buf,
        data: if hdr.has_data() { hdr.data } else { 0 },
        tag: if hdr.kind == Kind::Tagged { hdr.tag } else { 0 },
        src,
        err: None,
    }
}

/// The completion of `r` for a message `hdr` of which `delivered` bytes landed.
fn complete(r: &PostedRecv, hdr: &Hdr, src: u64, delivered: usize, out: &mut Vec<Completion>) {
    let total = hdr.total as usize;
    let err = (total > delivered).then(|| CompErr {
        err: FI_ETRUNC,
        olen: total - delivered,
        prov_errno: prov_errno::TRUNCATED,
    });
    if err.is_none() && !r.want_comp {
        return;
    }
    out.push(Completion { err, ..recv_completion(r.ctx, hdr, src, delivered, r.iov.base()) });
}

impl<K: Hash + Eq + Copy> Matcher<K> {
    /// A matcher; `buffer_unexpected` for RDM, `directed` with FI_DIRECTED_RECV.
    pub fn new(buffer_unexpected: bool, directed: bool) -> Self {
        Matcher {
            posted_msg: VecDeque::new(),
            posted_tagged: VecDeque::new(),
            unexpected: VecDeque::new(),
            incoming: HashMap::new(),
            directed,
            buffer_unexpected,
            unexp_bytes: 0,
            next_id: 0,
            stats: MatchStats::default(),
        }
    }

    /// Receives posted and not yet matched.
    pub fn posted(&self) -> usize {
        self.posted_msg.len() + self.posted_tagged.len()
    }

    /// Bytes held by unexpected messages.
    pub fn unexpected_bytes(&self) -> usize {
        self.unexp_bytes
    }

    /// Unexpected messages held.
    pub fn unexpected_count(&self) -> usize {
        self.unexpected.len()
    }

    /// Posts a receive: it takes the oldest unexpected message it accepts, or waits.
    pub fn post(&mut self, r: PostedRecv, out: &mut Vec<Completion>) {
        let directed = self.directed;
        let found = self
            .unexpected
            .iter()
            .position(|u| u.free() && r.accepts(u.hdr.kind == Kind::Tagged, u.hdr.tag, u.src, directed));
        let Some(i) = found else {
            if r.tagged {
                self.posted_tagged.push_back(r);
            } else {
                self.posted_msg.push_back(r);
            }
            return;
        };
        if self.unexpected[i].complete {
            if let Some(u) = self.unexpected.remove(i) {
                self.deliver_unexpected(u, r, out);
            }
        } else {
            self.unexpected[i].claimed = Some(r);
        }
    }

    fn deliver_unexpected(&mut self, u: Unexpected, r: PostedRecv, out: &mut Vec<Completion>) {
        self.unexp_bytes -= u.buf.len();
        let n = r.iov.write_at(0, &u.buf);
        self.stats.bytes_out += n as u64;
        complete(&r, &u.hdr, u.src, n, out);
    }

    /// Whether an unexpected message would match a receive like `r` (FI_PEEK): its
    /// completion (length, tag, data, source; no bytes) goes to `out`, and `mode` says
    /// what becomes of the message.
    pub fn peek(&mut self, r: &PostedRecv, mode: PeekMode, out: &mut Vec<Completion>) -> bool {
        let directed = self.directed;
        let Some(i) = self
            .unexpected
            .iter()
            .position(|u| u.free() && r.accepts(u.hdr.kind == Kind::Tagged, u.hdr.tag, u.src, directed))
        else {
            return false;
        };
        let u = &mut self.unexpected[i];
        out.push(recv_completion(r.ctx, &u.hdr, u.src, u.hdr.total as usize, 0));
        match mode {
            PeekMode::Look => {}
            PeekMode::Claim => {
                u.peeked_by = Some(r.ctx);
                self.stats.claimed += 1;
            }
            PeekMode::Discard => self.discard_at(i),
        }
        true
    }

    /// A receive posted with `FI_CLAIM`: takes the message an earlier `FI_PEEK | FI_CLAIM`
    /// reserved for the same context (into `r`'s buffer, or dropped with `discard`). Its
    /// completion goes to `out`, now or, for a message still arriving, with its last chunk.
    /// Gives `r` back when no message is reserved for its context.
    pub fn claim(&mut self, r: PostedRecv, discard: bool, out: &mut Vec<Completion>) -> Result<(), PostedRecv> {
        let Some(i) = self.unexpected.iter().position(|u| u.peeked_by == Some(r.ctx)) else { return Err(r) };
        if discard {
            let hdr = self.unexpected[i].hdr;
            let src = self.unexpected[i].src;
            self.discard_at(i);
            if r.want_comp {
                out.push(recv_completion(r.ctx, &hdr, src, 0, r.iov.base()));
            }
        } else if self.unexpected[i].complete {
            if let Some(u) = self.unexpected.remove(i) {
                self.deliver_unexpected(u, r, out);
            }
        } else {
            self.unexpected[i].claimed = Some(r);
        }
        Ok(())
    }

    /// Drops unexpected message `i`; chunks of it still arriving find no sink and vanish.
    fn discard_at(&mut self, i: usize) {
        if let Some(u) = self.unexpected.remove(i) {
            self.unexp_bytes -= u.buf.len();
            self.stats.discarded += 1;
        }
    }

    /// Removes the posted receive with context `ctx`; its cancellation completion goes to `out`.
    pub fn cancel(&mut self, ctx: usize, out: &mut Vec<Completion>) -> bool {
        for q in [&mut self.posted_msg, &mut self.posted_tagged] {
            if let Some(i) = q.iter().position(|r| r.ctx == ctx) {
                if let Some(r) = q.remove(i) {
                    out.push(Completion {
                        op_context: r.ctx,
                        flags: FI_RECV | if r.tagged { FI_TAGGED } else { FI_MSG },
                        len: 0,
                        buf: r.iov.base(),
                        data: 0,
                        tag: r.tag,
                        src: FI_ADDR_NOTAVAIL,
                        err: Some(CompErr { err: FI_ECANCELED, olen: 0, prov_errno: prov_errno::CANCELED }),
                    });
                    return true;
                }
            }
        }
        false
    }

    /// Takes one chunk from `peer` (source address `src`): `runs` are its payload bytes
    /// after the header, in order.
    pub fn chunk(&mut self, peer: K, src: u64, hdr: Hdr, runs: &[&[u8]], out: &mut Vec<Completion>) {
        let len: usize = runs.iter().map(|r| r.len()).sum();
        if hdr.kind == Kind::Cont {
            let Some(mut inc) = self.incoming.remove(&peer) else {
                self.stats.stray += 1;
                return;
            };
            self.append(&mut inc, runs);
            inc.got += len;
            if inc.got >= inc.hdr.total as usize {
                self.finish(inc, out);
            } else {
                self.incoming.insert(peer, inc);
            }
            return;
        }
        if let Some(old) = self.incoming.remove(&peer) {
            self.stats.aborted += 1;
            self.abort(old, out);
        }
        let tagged = hdr.kind == Kind::Tagged;
        let directed = self.directed;
        let q = if tagged { &mut self.posted_tagged } else { &mut self.posted_msg };
        let sink = match q.iter().position(|r| r.accepts(tagged, hdr.tag, src, directed)).and_then(|i| q.remove(i)) {
            Some(r) => {
                self.stats.matched += 1;
                Sink::User(r)
            }
            None if self.buffer_unexpected => {
                self.stats.unexpected += 1;
                let id = self.next_id;
                self.next_id += 1;
                let cap = (hdr.total as usize).min(super::proto::CHUNK).max(len);
                self.unexpected.push_back(Unexpected {
                    id,
                    src,
                    hdr,
                    buf: Vec::with_capacity(cap),
                    complete: false,
                    claimed: None,
                    peeked_by: None,
                });
                Sink::Unexp(id)
            }
            None => {
                self.stats.no_receive += 1;
                return;
            }
        };
        let mut inc = Incoming { sink, hdr, src, got: 0 };
        self.append(&mut inc, runs);
        inc.got = len;
        if inc.got >= hdr.total as usize {
            self.finish(inc, out);
        } else {
            self.incoming.insert(peer, inc);
        }
    }

    fn unexp_mut(&mut self, id: u64) -> Option<&mut Unexpected> {
        self.unexpected.iter_mut().find(|u| u.id == id)
    }

    fn append(&mut self, inc: &mut Incoming, runs: &[&[u8]]) {
        match &inc.sink {
            Sink::User(r) => {
                let mut off = inc.got;
                for run in runs {
                    let n = r.iov.write_at(off, run);
                    self.stats.bytes_out += n as u64;
                    off += run.len();
                }
            }
            Sink::Unexp(id) => {
                let id = *id;
                let mut grown = 0;
                if let Some(u) = self.unexp_mut(id) {
                    for run in runs {
                        u.buf.extend_from_slice(run);
                        grown += run.len();
                    }
                }
                self.unexp_bytes += grown;
            }
        }
    }

    fn finish(&mut self, inc: Incoming, out: &mut Vec<Completion>) {
        match inc.sink {
            Sink::User(r) => complete(&r, &inc.hdr, inc.src, inc.got.min(r.iov.len()), out),
            Sink::Unexp(id) => {
                let Some(i) = self.unexpected.iter().position(|u| u.id == id) else { return };
                if self.unexpected[i].claimed.is_some() {
                    if let Some(mut u) = self.unexpected.remove(i) {
                        if let Some(r) = u.claimed.take() {
                            self.deliver_unexpected(u, r, out);
                        }
                    }
                } else {
                    self.unexpected[i].complete = true;
                }
            }
        }
    }

    /// A message cut short: its receive completes with an error, its buffer is freed.
    fn abort(&mut self, inc: Incoming, out: &mut Vec<Completion>) {
        let r = match inc.sink {
            Sink::User(r) => Some(r),
            Sink::Unexp(id) => {
                let i = self.unexpected.iter().position(|u| u.id == id);
                let u = i.and_then(|i| self.unexpected.remove(i));
                u.and_then(|mut u| {
                    self.unexp_bytes -= u.buf.len();
                    u.claimed.take()
                })
            }
        };
        if let Some(r) = r {
            out.push(Completion {
                op_context: r.ctx,
                flags: recv_flags(&inc.hdr),
                len: 0,
                buf: r.iov.base(),
                data: 0,
                tag: inc.hdr.tag,
                src: inc.src,
                err: Some(CompErr { err: FI_EIO, olen: 0, prov_errno: 0 }),
            });
        }
    }

    /// Every posted receive, taken out (the endpoint is closing).
    pub fn drain_posted(&mut self) -> Vec<PostedRecv> {
        let mut v: Vec<PostedRecv> = self.posted_msg.drain(..).chain(self.posted_tagged.drain(..)).collect();
        for u in self.unexpected.iter_mut() {
            v.extend(u.claimed.take());
        }
        for (_, inc) in self.incoming.drain() {
            if let Sink::User(r) = inc.sink {
                v.push(r);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::FLAG_DATA;
    use super::*;

    #[allow(unsafe_code)]
    fn recv(buf: &mut [u8], ctx: usize, tagged: bool, tag: u64, ignore: u64, src: u64) -> PostedRecv {
        // SAFETY: every test keeps `buf` alive and untouched until the matcher is done.
        let iov = unsafe { UserIov::single(buf.as_mut_ptr().cast(), buf.len()) };
        PostedRecv { ctx, iov, src, tagged, tag, ignore, want_comp: true }
    }

    fn first(kind: Kind, tag: u64, total: usize) -> Hdr {
        Hdr { kind, flags: 0, tag, data: 0, total: total as u64 }
    }

    const CONT: Hdr = Hdr { kind: Kind::Cont, flags: 0, tag: 0, data: 0, total: 0 };

    #[test]
    fn posted_then_chunks_land_in_place() {
        let mut m: Matcher<u32> = Matcher::new(true, false);
        let mut b = [0u8; 8];
        let mut out = Vec::new();
        m.post(recv(&mut b, 1, false, 0, 0, FI_ADDR_UNSPEC), &mut out);
        m.chunk(7, 3, first(Kind::Msg, 0, 6), &[b"ab", b"c"], &mut out);
        assert!(out.is_empty(), "incomplete message completed");
        m.chunk(7, 3, CONT, &[b"def"], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].op_context, out[0].len, out[0].src, out[0].err), (1, 6, 3, None));
        assert_eq!(out[0].flags, FI_RECV | FI_MSG);
        assert_eq!(&b[..6], b"abcdef");
        assert_eq!(m.stats.matched, 1);
    }

    #[test]
    fn tags_and_ignore_bits_and_sources() {
        let mut m: Matcher<u32> = Matcher::new(true, true);
        let (mut b1, mut b2) = ([0u8; 4], [0u8; 4]);
        let mut out = Vec::new();
        m.post(recv(&mut b1, 1, true, 0x10, 0x0f, 5), &mut out);
        m.post(recv(&mut b2, 2, true, 0x20, 0, FI_ADDR_UNSPEC), &mut out);
        // Tag 0x13 matches recv 1 only from source 5; from source 6 it is unexpected.
        m.chunk(1, 6, first(Kind::Tagged, 0x13, 1), &[b"x"], &mut out);
        assert!(out.is_empty());
        assert_eq!(m.unexpected_count(), 1);
        m.chunk(2, 5, Hdr { flags: FLAG_DATA, data: 99, ..first(Kind::Tagged, 0x13, 1) }, &[b"y"], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].op_context, out[0].tag, out[0].data), (1, 0x13, 99));
        assert_eq!(out[0].flags, FI_RECV | FI_TAGGED | FI_REMOTE_CQ_DATA);
        // An untagged message never matches a tagged receive.
        m.chunk(3, 5, first(Kind::Msg, 0x20, 1), &[b"z"], &mut out);
        assert_eq!(out.len(), 1);
        m.chunk(3, 9, first(Kind::Tagged, 0x20, 1), &[b"w"], &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[1].op_context, b2[0]), (2, b'w'));
    }

    #[test]
    fn unexpected_complete_and_claimed_partial() {
        let mut m: Matcher<u32> = Matcher::new(true, false);
        let mut out = Vec::new();
        m.chunk(1, 4, first(Kind::Tagged, 7, 3), &[b"abc"], &mut out);
        m.chunk(2, 5, first(Kind::Tagged, 7, 5), &[b"12"], &mut out);
        assert!(m.unexpected_bytes() >= 5);
        let (mut b1, mut b2) = ([0u8; 8], [0u8; 8]);
        m.post(recv(&mut b1, 10, true, 7, 0, FI_ADDR_UNSPEC), &mut out);
        assert_eq!((out.len(), out[0].op_context, out[0].len, out[0].src), (1, 10, 3, 4));
        m.post(recv(&mut b2, 11, true, 7, 0, FI_ADDR_UNSPEC), &mut out);
        assert_eq!(out.len(), 1, "a partial unexpected message completes only when whole");
        m.chunk(2, 5, CONT, &[b"345"], &mut out);
        assert_eq!((out.len(), out[1].op_context, out[1].len), (2, 11, 5));
        assert_eq!(&b1[..3], b"abc");
        assert_eq!(&b2[..5], b"12345");
        assert_eq!(m.unexpected_bytes(), 0);
        assert_eq!(m.unexpected_count(), 0);
    }

    #[test]
    fn truncation_is_an_error_completion() {
        let mut m: Matcher<u32> = Matcher::new(false, false);
        let mut b = [0u8; 2];
        let mut out = Vec::new();
        m.post(recv(&mut b, 1, false, 0, 0, FI_ADDR_UNSPEC), &mut out);
        m.chunk(1, 0, first(Kind::Msg, 0, 5), &[b"hello"], &mut out);
        let e = out[0].err.expect("truncation error");
        assert_eq!((e.err, e.olen, out[0].len), (FI_ETRUNC, 3, 2));
        assert_eq!(&b, b"he");
    }

    #[test]
    fn dgram_drops_without_receive_and_cancel_reports() {
        let mut m: Matcher<u32> = Matcher::new(false, false);
        let mut out = Vec::new();
        m.chunk(1, 0, first(Kind::Msg, 0, 1), &[b"x"], &mut out);
        assert_eq!((m.stats.no_receive, out.len()), (1, 0));
        let mut b = [0u8; 2];
        m.post(recv(&mut b, 42, false, 0, 0, FI_ADDR_UNSPEC), &mut out);
        assert!(m.cancel(42, &mut out));
        assert!(!m.cancel(42, &mut out));
        assert_eq!(out[0].err.map(|e| e.err), Some(FI_ECANCELED));
        assert_eq!(m.posted(), 0);
    }

    #[test]
    fn peek_leaves_the_message() {
        let mut m: Matcher<u32> = Matcher::new(true, false);
        let mut out = Vec::new();
        m.chunk(1, 2, first(Kind::Tagged, 5, 2), &[b"hi"], &mut out);
        let mut b = [0u8; 4];
        assert!(!m.peek(&recv(&mut b, 1, true, 6, 0, FI_ADDR_UNSPEC), PeekMode::Look, &mut out));
        assert!(m.peek(&recv(&mut b, 1, true, 5, 0, FI_ADDR_UNSPEC), PeekMode::Look, &mut out));
        assert_eq!((out.len(), out[0].len, out[0].tag, m.unexpected_count()), (1, 2, 5, 1));
        m.post(recv(&mut b, 2, true, 5, 0, FI_ADDR_UNSPEC), &mut out);
        assert_eq!((out.len(), out[1].op_context, m.unexpected_count()), (2, 2, 0));
        assert_eq!(&b[..2], b"hi");
    }

    #[test]
    fn a_claimed_message_goes_only_to_the_claiming_context() {
        let mut m: Matcher<u32> = Matcher::new(true, false);
        let mut out = Vec::new();
        m.chunk(1, 2, first(Kind::Tagged, 5, 2), &[b"hi"], &mut out);
        m.chunk(3, 4, first(Kind::Tagged, 5, 3), &[b"you"], &mut out);
        let (mut b, mut c, mut d) = ([0u8; 4], [0u8; 4], [0u8; 4]);
        // Peek-and-claim the first; a plain receive of the same tag now takes the second.
        assert!(m.peek(&recv(&mut b, 70, true, 5, 0, FI_ADDR_UNSPEC), PeekMode::Claim, &mut out));
        assert_eq!((out.len(), out[0].op_context, out[0].len, out[0].src), (1, 70, 2, 2));
        m.post(recv(&mut c, 71, true, 5, 0, FI_ADDR_UNSPEC), &mut out);
        assert_eq!((out.len(), out[1].op_context, out[1].len), (2, 71, 3));
        assert_eq!(&c[..3], b"you");
        // Another peek finds nothing free; a claim with a different context is refused.
        assert!(!m.peek(&recv(&mut d, 72, true, 5, 0, FI_ADDR_UNSPEC), PeekMode::Look, &mut out));
        assert!(m.claim(recv(&mut d, 99, true, 0, 0, FI_ADDR_UNSPEC), false, &mut out).is_err());
        // The claim with the peek's context receives it (tag and ignore do not matter).
        assert!(m.claim(recv(&mut b, 70, true, 0, 0, FI_ADDR_UNSPEC), false, &mut out).is_ok());
        assert_eq!((out.len(), out[2].op_context, out[2].len, out[2].tag), (3, 70, 2, 5));
        assert_eq!(&b[..2], b"hi");
        assert_eq!((m.unexpected_count(), m.unexpected_bytes(), m.stats.claimed), (0, 0, 1));
        // Claimed once: a second claim finds nothing.
        assert!(m.claim(recv(&mut b, 70, true, 0, 0, FI_ADDR_UNSPEC), false, &mut out).is_err());
    }

    #[test]
    fn a_message_claimed_while_arriving_completes_with_its_last_chunk() {
        let mut m: Matcher<u32> = Matcher::new(true, false);
        let mut out = Vec::new();
        m.chunk(1, 2, first(Kind::Tagged, 9, 6), &[b"abc"], &mut out);
        let mut b = [0u8; 8];
        assert!(m.peek(&recv(&mut b, 5, true, 9, 0, FI_ADDR_UNSPEC), PeekMode::Claim, &mut out));
        assert_eq!(out[0].len, 6, "the peek reports the whole length");
        assert!(m.claim(recv(&mut b, 5, true, 9, 0, FI_ADDR_UNSPEC), false, &mut out).is_ok());
        assert_eq!(out.len(), 1, "completed before its last chunk");
        m.chunk(1, 2, CONT, &[b"def"], &mut out);
        assert_eq!((out.len(), out[1].op_context, out[1].len), (2, 5, 6));
        assert_eq!(&b[..6], b"abcdef");
    }

    #[test]
    fn discard_drops_on_the_peek_or_on_the_claim() {
        let mut m: Matcher<u32> = Matcher::new(true, false);
        let mut out = Vec::new();
        m.chunk(1, 2, first(Kind::Tagged, 1, 4), &[b"ab"], &mut out);
        m.chunk(3, 4, first(Kind::Tagged, 2, 2), &[b"xy"], &mut out);
        let mut b = [0u8; 4];
        // Peek + discard of a message still arriving: reported, gone, its rest swallowed.
        assert!(m.peek(&recv(&mut b, 1, true, 1, 0, FI_ADDR_UNSPEC), PeekMode::Discard, &mut out));
        assert_eq!((out.len(), out[0].len), (1, 4));
        m.chunk(1, 2, CONT, &[b"cd"], &mut out);
        assert_eq!((out.len(), m.unexpected_count(), m.stats.discarded), (1, 1, 1));
        // Claim + discard.
        assert!(m.peek(&recv(&mut b, 2, true, 2, 0, FI_ADDR_UNSPEC), PeekMode::Claim, &mut out));
        assert!(m.claim(recv(&mut b, 2, true, 2, 0, FI_ADDR_UNSPEC), true, &mut out).is_ok());
        assert_eq!((out.len(), out[2].op_context, out[2].len), (3, 2, 0));
        assert_eq!((m.unexpected_count(), m.unexpected_bytes(), m.stats.discarded), (0, 0, 2));
        assert_eq!(b, [0u8; 4], "a discarded message wrote no bytes");
        // The next message from the first peer is matched as usual.
        m.post(recv(&mut b, 3, true, 1, 0, FI_ADDR_UNSPEC), &mut out);
        m.chunk(1, 2, first(Kind::Tagged, 1, 1), &[b"z"], &mut out);
        assert_eq!((out.len(), out[3].op_context, b[0]), (4, 3, b'z'));
    }
}
