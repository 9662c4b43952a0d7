//! Everything of an endpoint that holds references into its frame pool: the message
//! endpoint itself, received messages between two progress steps, and queued sends
//! with their built chunks. Also the one copy on the send side, user bytes into frames.
#![allow(unsafe_code)]

use std::collections::VecDeque;

use datapath_msg::{AllocError, Endpoint, Msg};

use super::ep::SendOp;
use super::proto::{Hdr, Kind, CHUNK, HDR};

/// The pool-holding part of an endpoint.
#[derive(Debug)]
pub struct Io {
    pub ep: Endpoint,
    pub msgs: Vec<Msg>,
    pub sendq: VecDeque<SendOp>,
}

// SAFETY: `Endpoint`, `Msg` and `MsgBuf` are !Send only because the pool they share counts
// references with `Rc`/`Cell` (no atomics). Every such reference of this endpoint's pool
// lives inside this one `Io` value: the endpoint, the messages in `msgs`, and the chunks
// in `sendq` (`SendOp::built`); none is handed out (received bytes are copied into the
// application's buffers, never lent). Moving the whole `Io` to another thread therefore
// moves every reference together, so no two threads ever touch the counts; and the
// provider only touches an `Io` under its domain's mutex, one thread at a time.
unsafe impl Send for Io {}

impl Io {
    pub fn new(ep: Endpoint) -> Io {
        Io { ep, msgs: Vec::new(), sendq: VecDeque::new() }
    }

    /// Builds `op`'s next chunk in frames of the pool: the header (the operation's on the
    /// first chunk, `CONT` after), then the next `CHUNK` bytes at most, copied from the
    /// application's buffer. `Err` when the pool is short (nothing changes).
    pub fn build_chunk(&mut self, op: &mut SendOp) -> Result<(), AllocError> {
        let n = (op.total - op.copied).min(CHUNK);
        let mut m = self.ep.alloc(HDR + n)?;
        let hdr = if op.started { Hdr { kind: Kind::Cont, flags: 0, tag: 0, data: 0, total: 0 } } else { op.hdr };
        let mut hb = [0u8; HDR];
        hdr.emit(&mut hb);
        let mut off = 0usize;
        for c in m.chunks_mut() {
            let mut pos = 0;
            if off < HDR {
                let k = (HDR - off).min(c.len());
                c[..k].copy_from_slice(&hb[off..off + k]);
                pos = k;
                off += k;
            }
            if pos < c.len() {
                op.iov.read_at(op.copied + (off - HDR), &mut c[pos..]);
                off += c.len() - pos;
            }
        }
        op.copied += n;
        op.started = true;
        op.built = Some(m);
        Ok(())
    }
}
