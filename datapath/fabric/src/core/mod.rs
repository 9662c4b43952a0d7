//! The provider's logic in safe Rust: configuration, the wire header, address vectors,
//! completion queues, receive matching and the endpoint engine. `crate::entry` turns
//! libfabric's C calls into calls on these.
#![deny(unsafe_code)]

pub mod av;
pub mod config;
pub mod cq;
pub mod domain;
pub mod ep;
pub mod info;
pub mod matching;
pub mod proto;
mod send;
