//! What the provider is bound to, from the environment in libfabric's style
//! (`FI_<PROVIDER>_<NAME>`). Read at `fi_getinfo`, so every process may set its own.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `FI_AFXDP_IFACE` | interface whose queue the endpoints bind | the domain name the application asks for; else required |
//! | `FI_AFXDP_QUEUE` | its rx queue | 0 |
//! | `FI_AFXDP_ADDR` | our IPv4 address | the interface's first IPv4 address |
//! | `FI_AFXDP_PORT` | our UDP port | a free port the kernel picks (held by a kernel socket) |
//! | `FI_AFXDP_FRAMES` | 4 KiB frames in each endpoint's pool | 8192 |
//! | `FI_AFXDP_MAX_MSG` | largest RDM message (`ep_attr->max_msg_size`) | 1 GiB |
//! | `FI_AFXDP_UNEXPECTED_MAX` | bytes of unexpected RDM messages buffered before receive pauses | 64 MiB |
//! | `FI_AFXDP_LINGER_MS` | how long closing an endpoint waits for its sends to be acknowledged | 5000 |
//! | `FI_AFXDP_LAYERING` | `1`: let libfabric's utility providers (`ofi_rxd`) layer over our DGRAM | `0`: only our own RDM is offered |
//! | `FI_AFXDP_LOG` | `error`, `warn`, `info`, `debug` or `trace` | `warn` |

use std::fmt;
use std::net::Ipv4Addr;

/// The provider's name: `lib<name>-fi.so`, `FI_PROVIDER=<name>`, `FI_<NAME>_*`.
pub const PROVIDER: &str = "afxdp";

/// One environment variable's value, or why it is unusable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The binding of this process's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Interface name (also the domain name).
    pub iface: String,
    /// Rx queue.
    pub queue: u32,
    /// Our address.
    pub addr: Ipv4Addr,
    /// Prefix length of the interface's subnet (the fabric name is that subnet).
    pub prefix: u8,
    /// Fixed port, when set.
    pub port: Option<u16>,
    /// Frames per endpoint pool.
    pub frames: u32,
    /// Largest RDM message.
    pub max_msg: usize,
    /// Unexpected-message buffer bound.
    pub unexpected_max: usize,
    /// Interface MTU.
    pub mtu: u32,
    /// How long `fi_close` of an endpoint drives it until its sends are acknowledged.
    pub linger: std::time::Duration,
    /// Offer our DGRAM endpoints to utility providers that ask to layer over them.
    pub layering: bool,
}

/// Why the provider cannot offer an endpoint; each names what to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// No interface named.
    NoIface,
    /// A variable does not parse.
    Bad { var: &'static str, value: String, want: &'static str },
    /// The interface does not exist.
    NoSuchIface(String),
    /// The interface has no IPv4 address and none was given.
    NoAddr(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoIface => write!(
                f,
                "no interface to bind: set FI_AFXDP_IFACE=<interface> (and FI_AFXDP_QUEUE=<rx queue>, default 0), or ask for the interface as the domain name"
            ),
            ConfigError::Bad { var, value, want } => write!(f, "{var}={value:?} is not {want}; fix or unset {var}"),
            ConfigError::NoSuchIface(i) => {
                write!(f, "no network interface {i:?} (FI_AFXDP_IFACE); `ip link` lists the interfaces")
            }
            ConfigError::NoAddr(i) => {
                write!(f, "interface {i} has no IPv4 address: add one (`ip addr add`) or set FI_AFXDP_ADDR")
            }
        }
    }
}

fn parse_bool(name: &'static str) -> Result<Option<bool>, ConfigError> {
    match var(name).as_deref() {
        None => Ok(None),
        Some("1" | "yes" | "true" | "on") => Ok(Some(true)),
        Some("0" | "no" | "false" | "off") => Ok(Some(false)),
        Some(v) => Err(ConfigError::Bad { var: name, value: v.to_string(), want: "0 or 1" }),
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, want: &'static str) -> Result<Option<T>, ConfigError> {
    match var(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ConfigError::Bad { var: name, value: v, want }),
    }
}

/// A size with an optional K/M/G suffix (powers of two).
fn parse_size(name: &'static str) -> Result<Option<usize>, ConfigError> {
    let Some(v) = var(name) else { return Ok(None) };
    let (num, mul) = match v.chars().last() {
        Some('k' | 'K') => (&v[..v.len() - 1], 1usize << 10),
        Some('m' | 'M') => (&v[..v.len() - 1], 1 << 20),
        Some('g' | 'G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v.as_str(), 1),
    };
    num.trim().parse::<usize>().ok().and_then(|n| n.checked_mul(mul)).map(Some).ok_or(ConfigError::Bad {
        var: name,
        value: v.clone(),
        want: "a size (bytes, or with K/M/G)",
    })
}

impl Config {
    /// Reads the environment; `domain` is the domain name the application asked for.
    pub fn from_env(domain: Option<&str>) -> Result<Config, ConfigError> {
        let iface = var("FI_AFXDP_IFACE").or_else(|| domain.map(str::to_owned)).ok_or(ConfigError::NoIface)?;
        let info = datapath::Interface::by_name(&iface).map_err(|_| ConfigError::NoSuchIface(iface.clone()))?;
        let queue = parse::<u32>("FI_AFXDP_QUEUE", "a queue number")?.unwrap_or(0);
        let found = crate::ffi::sys::ipv4_of(&iface);
        let (addr, prefix) = match parse::<Ipv4Addr>("FI_AFXDP_ADDR", "an IPv4 address")? {
            Some(a) => (a, found.map_or(32, |f| f.1)),
            None => found.ok_or_else(|| ConfigError::NoAddr(iface.clone()))?,
        };
        let port = parse::<u16>("FI_AFXDP_PORT", "a UDP port")?.filter(|&p| p != 0);
        let frames = parse::<u32>("FI_AFXDP_FRAMES", "a frame count")?.unwrap_or(8192);
        let max_msg = parse_size("FI_AFXDP_MAX_MSG")?.unwrap_or(1 << 30).max(1);
        let unexpected_max = parse_size("FI_AFXDP_UNEXPECTED_MAX")?.unwrap_or(64 << 20);
        let linger = parse::<u64>("FI_AFXDP_LINGER_MS", "milliseconds")?.unwrap_or(5000);
        let layering = parse_bool("FI_AFXDP_LAYERING")?.unwrap_or(false);
        Ok(Config {
            iface,
            queue,
            addr,
            prefix,
            port,
            frames,
            max_msg,
            unexpected_max,
            mtu: info.mtu,
            linger: std::time::Duration::from_millis(linger),
            layering,
        })
    }

    /// The fabric name: the interface's IPv4 subnet, e.g. `10.77.0.0/24`.
    pub fn fabric_name(&self) -> String {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix.min(32))) };
        format!("{}/{}", Ipv4Addr::from(u32::from(self.addr) & mask), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fabric_name_is_the_subnet() {
        let c = Config {
            iface: "x".into(),
            queue: 0,
            addr: "10.77.0.2".parse().unwrap(),
            prefix: 24,
            port: None,
            frames: 1,
            max_msg: 1,
            unexpected_max: 1,
            mtu: 1500,
            linger: std::time::Duration::ZERO,
            layering: false,
        };
        assert_eq!(c.fabric_name(), "10.77.0.0/24");
        assert_eq!(Config { prefix: 32, ..c.clone() }.fabric_name(), "10.77.0.2/32");
        assert_eq!(Config { prefix: 0, ..c }.fabric_name(), "0.0.0.0/0");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = ConfigError::NoIface.to_string();
        assert!(e.contains("FI_AFXDP_IFACE") && e.contains("FI_AFXDP_QUEUE"), "{e}");
        let e = ConfigError::Bad { var: "FI_AFXDP_QUEUE", value: "x".into(), want: "a queue number" }.to_string();
        assert!(e.contains("FI_AFXDP_QUEUE=\"x\""), "{e}");
    }
}
