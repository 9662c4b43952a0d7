//! `stack`: the TCP/IP layer, sans-I/O, over frames of the `umem` pool.
#![forbid(unsafe_code)]

pub mod wire;
