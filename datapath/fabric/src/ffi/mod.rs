//! libfabric's C ABI as this provider sees it: structures, constants, user buffers, and
//! the few system calls the provider makes. Unsafe code lives here and in `crate::entry`.

pub mod consts;
pub mod iov;
pub mod layout;
pub mod sys;
pub mod types;
