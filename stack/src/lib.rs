//! `stack`: the TCP/IP layer, sans-I/O, over frames of the `umem` pool. Built in the stack
//! issue; the crate exists now so the workspace has its final shape.
#![forbid(unsafe_code)]
