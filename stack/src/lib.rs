//! `stack`: the TCP/IP layer, sans-I/O, over frames of the `umem` pool.
#![forbid(unsafe_code)]

pub mod counters;
pub mod iface;
pub mod tcp;
pub mod sim;
pub mod wire;

pub use counters::Counters;
pub use iface::{
    ConnHandle, Full, Link, ListenHandle, Readiness, SocketError, Stack, StackConfig, UdpHandle,
};
pub use smoltcp::time::{Duration, Instant};
