//! The steering XDP program lives in `main.rs`; this empty library lets the loader name the
//! crate as a build-dependency so that cargo rebuilds it when the program changes.
#![no_std]
