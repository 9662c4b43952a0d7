//! Messages as frames of the pool: [`MsgBuf`] is one being written for sending, [`Msg`] one
//! received. Neither owns a byte outside the pool; both are lists of [`BufSlice`]s.
//!
//! A message is cut into datagrams. The first segment of each datagram starts with
//! [`HDR_LEN`] bytes of room for the Ethernet, IPv4, UDP and message headers, so sending
//! writes headers in front of the payload in the same frame; a datagram larger than a frame
//! (multi-buffer, MTU 9000) continues in further frames with no header room.
//!
//! ```text
//!  frame 0: [ eth | ip | udp | msg hdr | payload 0 ........ ]   datagram 0
//!  frame 1: [ eth | ip | udp | msg hdr | payload 1 ........ ]   datagram 1
//!  frame 2: [ eth | ip | udp | msg hdr | payload 2 ... ]         datagram 2 (last)
//! ```

use umem::{BufSlice, Pool};

use super::wire::{MsgHdr, HDR_LEN};
use super::PeerId;

/// Segments of a message, each datagram's first one starting with header room.
#[derive(Debug, Default)]
pub(crate) struct Segs {
    pub segs: Vec<BufSlice>,
    /// `first[i]`: segment `i` starts a datagram (and its first `HDR_LEN` bytes are headers).
    pub first: Vec<bool>,
}

impl Segs {
    fn payload(&self, i: usize) -> &[u8] {
        let skip = if self.first[i] { HDR_LEN } else { 0 };
        self.segs[i].as_bytes().get(skip..).unwrap_or_default()
    }

    /// Index ranges of the datagrams' segments.
    pub fn datagrams(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let n = self.segs.len();
        let mut i = 0;
        std::iter::from_fn(move || {
            if i >= n {
                return None;
            }
            let start = i;
            i += 1;
            while i < n && !self.first[i] {
                i += 1;
            }
            Some(start..i)
        })
    }

    fn push(&mut self, s: BufSlice, first: bool) {
        self.segs.push(s);
        self.first.push(first);
    }
}

/// A message being written for sending: frames of the pool with header room reserved.
/// Fill it in place ([`MsgBuf::chunks_mut`]), then hand it to `Endpoint::send`.
#[derive(Debug)]
pub struct MsgBuf {
    pub(crate) s: Segs,
    pub(crate) len: usize,
}

impl MsgBuf {
    /// Frames for a `len`-byte message cut into datagrams of at most `dg_payload` bytes;
    /// `None` (and nothing held) when the pool has too few free frames.
    pub(crate) fn alloc(pool: &Pool, len: usize, dg_payload: usize) -> Option<MsgBuf> {
        let fs = pool.frame_size() as usize;
        let mut s = Segs::default();
        let mut left = len;
        loop {
            let mut dg = left.min(dg_payload);
            left -= dg;
            let take = dg.min(fs - HDR_LEN);
            s.push(BufSlice::new(pool.alloc_frame()?, 0..HDR_LEN + take)?, true);
            dg -= take;
            while dg > 0 {
                let take = dg.min(fs);
                s.push(BufSlice::new(pool.alloc_frame()?, 0..take)?, false);
                dg -= take;
            }
            if left == 0 {
                break;
            }
        }
        Some(MsgBuf { s, len })
    }

    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Datagrams the message will be sent as.
    pub fn datagrams(&self) -> usize {
        self.s.first.iter().filter(|&&f| f).count()
    }

    /// The payload areas, in order, for writing in place. Their lengths sum to `len()`.
    pub fn chunks_mut(&mut self) -> impl Iterator<Item = &mut [u8]> + '_ {
        self.s.segs.iter_mut().zip(&self.s.first).map(|(seg, &first)| {
            let skip = if first { HDR_LEN } else { 0 };
            // A MsgBuf's frames have no other reference (alloc and `Msg::into_buf` check),
            // so `get_mut` succeeds; an empty chunk would only hide a broken invariant.
            seg.get_mut().map(|b| &mut b[skip..]).unwrap_or_default()
        })
    }

    /// The payload areas, in order, for reading.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.s.segs.len()).map(|i| self.s.payload(i))
    }

    /// Writes `bytes` at `offset` of the message (across chunk boundaries); `false` if it
    /// does not fit. A convenience for callers whose bytes are elsewhere: this is the one
    /// copy such a caller makes, into the frame that goes on the wire.
    pub fn write_at(&mut self, mut offset: usize, mut bytes: &[u8]) -> bool {
        if offset.saturating_add(bytes.len()) > self.len {
            return false;
        }
        for chunk in self.chunks_mut() {
            if bytes.is_empty() {
                break;
            }
            if offset >= chunk.len() {
                offset -= chunk.len();
                continue;
            }
            let n = (chunk.len() - offset).min(bytes.len());
            chunk[offset..offset + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            offset = 0;
        }
        true
    }
}

/// A received message: its payload stays in the frames it arrived in. Drop it (or turn it
/// into a reply with `Endpoint::reply_buf`) to give the frames back.
#[derive(Debug)]
pub struct Msg {
    pub(crate) peer: PeerId,
    pub(crate) id: u32,
    pub(crate) len: usize,
    pub(crate) s: Segs,
}

impl Msg {
    /// Who sent it.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The sender's message id (increasing per sender).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload, in order, as byte runs in their frames.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.s.segs.len()).map(|i| self.s.payload(i)).filter(|c| !c.is_empty())
    }

    /// The payload as frame slices (each holding a reference to its frame), e.g. to keep
    /// part of a message after dropping the rest, or to send it on.
    pub fn slices(&self) -> impl Iterator<Item = BufSlice> + '_ {
        self.s.segs.iter().zip(&self.s.first).filter_map(|(seg, &first)| {
            let skip = if first { HDR_LEN } else { 0 };
            seg.slice(skip..seg.len()).filter(|s| !s.is_empty())
        })
    }

    /// Turns the message into a buffer for sending, in the same frames (a reply written in
    /// place): `Err` gives it back if a frame is shared or a datagram is larger than
    /// `dg_payload` (a peer with a larger MTU).
    pub(crate) fn into_buf(self, dg_payload: usize) -> Result<MsgBuf, Msg> {
        let ok = self.s.segs.iter().all(|s| s.buf().is_unique())
            && self.s.datagrams().all(|r| {
                let payload: usize = r.clone().map(|i| self.s.payload(i).len()).sum();
                payload <= dg_payload
            });
        if !ok {
            return Err(self);
        }
        Ok(MsgBuf { len: self.len, s: self.s })
    }
}

/// One received datagram of a message, headers checked.
#[derive(Debug)]
pub(crate) struct Dgram {
    pub hdr: MsgHdr,
    pub s: Segs,
    pub payload: usize,
}
