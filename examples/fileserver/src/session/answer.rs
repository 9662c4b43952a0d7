//! The answer to a request for a file, the same for every backend: resolved beneath the
//! root, validators and ranges decided by [`crate::http`], the body opened by the backend.

use std::time::SystemTime;

use rustix::fs::OFlags;

use crate::http::{self, ByteRange, Head, Request, Status};
use crate::root::{Opened, Root};

/// Answers `req` from the files beneath `root`. `open` turns the opened file and the range
/// to send into the backend's body; its `Err` (logged by it) becomes a 500 that closes.
pub fn file_answer<B>(
    root: &Root,
    req: &Request,
    wall: SystemTime,
    open: impl FnOnce(Opened, ByteRange) -> Result<B, ()>,
) -> (Head, Option<B>) {
    let o = match root.resolve(&req.path, OFlags::empty()) {
        Ok(o) => o,
        Err(status) => return (http::answer_error(status, req.http11, !req.keep_alive, req.head_only, wall), None),
    };
    let head = http::answer_file(req, &o.path, &o.v, wall);
    let Some(range) = head.body else { return (head, None) };
    match open(o, range) {
        Ok(body) => (head, Some(body)),
        Err(()) => (http::answer_error(Status::InternalError, req.http11, true, req.head_only, wall), None),
    }
}
