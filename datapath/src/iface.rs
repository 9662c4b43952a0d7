//! What the datapath needs to know about a network interface, from sysfs.

use std::ffi::CString;

use crate::Error;

/// A network interface, looked up by name.
#[derive(Clone, Debug)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: u32,
    /// Its MTU.
    pub mtu: u32,
    /// Its number of rx queues (1 when sysfs does not say).
    pub rx_queues: u32,
    /// Its driver, e.g. `veth`, `ice` (empty when unknown).
    pub driver: String,
}

impl Interface {
    /// Looks `name` up; fails with [`Error::NoInterface`] if there is none.
    pub fn by_name(name: &str) -> Result<Interface, Error> {
        let c = CString::new(name).map_err(|_| Error::NoInterface(name.into()))?;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index == 0 {
            return Err(Error::NoInterface(name.into()));
        }
        let sys = format!("/sys/class/net/{name}");
        let mtu =
            std::fs::read_to_string(format!("{sys}/mtu")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1500);
        let rx_queues = std::fs::read_dir(format!("{sys}/queues"))
            .map(|d| {
                d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count() as u32
            })
            .unwrap_or(1)
            .max(1);
        let driver = std::fs::read_link(format!("{sys}/device/driver"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .or_else(|| {
                // Virtual devices have no device/driver link; uevent names their kind.
                std::fs::read_to_string(format!("{sys}/uevent"))
                    .ok()
                    .and_then(|u| u.lines().find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_owned)))
            })
            .unwrap_or_default();
        Ok(Interface { name: name.into(), index, mtu, rx_queues, driver })
    }
}
