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

    /// Its MAC address, from sysfs (`/sys/class/net/NAME/address`). The one place the
    /// workspace reads an interface's MAC.
    pub fn mac(&self) -> Result<[u8; 6], Error> {
        let path = format!("/sys/class/net/{}/address", self.name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Mac { iface: self.name.clone(), why: format!("reading {path}: {e}") })?;
        parse_mac(text.trim())
            .ok_or_else(|| Error::Mac { iface: self.name.clone(), why: format!("{path} holds {:?}", text.trim()) })
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex, any case); `None` for anything else.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_format_back() {
        let m = parse_mac("6e:1B:3c:4d:5e:0f").expect("a MAC");
        assert_eq!(m, [0x6e, 0x1b, 0x3c, 0x4d, 0x5e, 0x0f]);
        assert_eq!(fmt_mac(&m), "6e:1b:3c:4d:5e:0f");
        for bad in
            ["6e:1b:3c:4d:5e", "6e:1b:3c:4d:5e:0f:00", "6e:1b:3c:4d:5e:", "6e:1b:3c:4d:5e:100", "zz:1b:3c:4d:5e:0f", ""]
        {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn loopback_has_a_mac() {
        // Every Linux system has `lo`, whose address is all zeros; no root needed.
        if let Ok(lo) = Interface::by_name("lo") {
            assert_eq!(lo.mac().expect("lo's MAC"), [0; 6]);
        }
    }
}
