//! SIGINT and SIGTERM as a flag the run loop polls, so that the loop ends, the sockets
//! close and the XDP program detaches on the normal drop path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::Error;

/// Set once SIGINT or SIGTERM arrives.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// Installs handlers for SIGINT and SIGTERM.
    pub fn install() -> Result<Shutdown, Error> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, flag.clone())
                .map_err(|source| Error::Syscall { call: "sigaction", source })?;
        }
        Ok(Shutdown(flag))
    }

    /// Whether a signal asked the process to stop.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Asks the loop to stop, as a signal would.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
