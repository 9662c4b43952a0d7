//! Completion queues: completions in the order they happened, successes and errors in one
//! queue, so an error is reported (`-FI_EAVAIL`, then `fi_cq_readerr`) exactly where it
//! occurred. Entries are written out in the format the queue was opened with.

use std::collections::VecDeque;

/// Why an operation failed, as the error entry reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompErr {
    /// Positive `FI_E*` number.
    pub err: i32,
    /// Bytes the message had beyond what was delivered (truncation).
    pub olen: usize,
    /// Our own code (`fi_cq_strerror` explains it).
    pub prov_errno: i32,
}

/// One completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub op_context: usize,
    pub flags: u64,
    pub len: usize,
    pub buf: usize,
    pub data: u64,
    pub tag: u64,
    /// Source address (`fi_cq_readfrom`), FI_ADDR_NOTAVAIL when unknown.
    pub src: u64,
    pub err: Option<CompErr>,
}

/// Provider error codes carried in `prov_errno`.
pub mod prov_errno {
    /// The message was longer than the posted buffer.
    pub const TRUNCATED: i32 = 1;
    /// The operation was cancelled.
    pub const CANCELED: i32 = 2;
    /// The endpoint closed with the operation outstanding.
    pub const CLOSED: i32 = 3;

    /// Text for `fi_cq_strerror`.
    pub fn describe(code: i32) -> &'static str {
        match code {
            TRUNCATED => "afxdp: message longer than the posted receive buffer (truncated; olen says by how much)",
            CANCELED => "afxdp: operation cancelled (fi_cancel)",
            CLOSED => "afxdp: endpoint closed before the operation completed",
            _ => "afxdp: no such provider error",
        }
    }
}

/// A completion queue.
#[derive(Debug, Default)]
pub struct CqCore {
    q: VecDeque<Completion>,
    /// Entries written out so far (for counters and tests).
    pub delivered: u64,
}

impl CqCore {
    pub fn push(&mut self, c: Completion) {
        self.q.push_back(c);
    }

    /// Successful completions at the head, up to `max`, taken out; stops at an error.
    pub fn take_ok(&mut self, max: usize, out: &mut Vec<Completion>) {
        let before = out.len();
        while out.len() < max {
            if self.q.front().is_none_or(|c| c.err.is_some()) {
                break;
            }
            out.extend(self.q.pop_front());
        }
        self.delivered += (out.len() - before) as u64;
    }

    /// Whether an error entry waits at the head.
    pub fn error_at_head(&self) -> bool {
        self.q.front().is_some_and(|c| c.err.is_some())
    }

    /// The error entry at the head, taken out.
    pub fn take_err(&mut self) -> Option<Completion> {
        if self.error_at_head() {
            self.q.pop_front()
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ctx: usize) -> Completion {
        Completion { op_context: ctx, flags: 0, len: 0, buf: 0, data: 0, tag: 0, src: u64::MAX, err: None }
    }

    #[test]
    fn errors_stop_reads_where_they_happened() {
        let mut q = CqCore::default();
        q.push(ok(1));
        q.push(Completion { err: Some(CompErr { err: 265, olen: 3, prov_errno: 1 }), ..ok(2) });
        q.push(ok(3));
        let mut out = Vec::new();
        q.take_ok(8, &mut out);
        assert_eq!(out.iter().map(|c| c.op_context).collect::<Vec<_>>(), vec![1]);
        assert!(q.error_at_head());
        assert_eq!(q.take_err().map(|c| c.op_context), Some(2));
        assert_eq!(q.take_err(), None);
        out.clear();
        q.take_ok(8, &mut out);
        assert_eq!(out[0].op_context, 3);
        assert!(q.is_empty());
    }
}
