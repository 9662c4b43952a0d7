//! The addresses a server serves on: `--addr` given once or twice, at most one IPv4 and
//! one IPv6 address (dual stack), each with its prefix length on the interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One IPv4 address, one IPv6 address, or one of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeAddrs {
    /// The IPv4 address and its prefix length.
    pub v4: Option<(Ipv4Addr, u8)>,
    /// The IPv6 address and its prefix length.
    pub v6: Option<(Ipv6Addr, u8)>,
}

impl ServeAddrs {
    /// The addresses of `--addr` (one or two, one per family) with `--prefix` for IPv4 and
    /// `--prefix6` for IPv6.
    pub fn new(addrs: &[IpAddr], prefix4: u8, prefix6: u8) -> Result<ServeAddrs, String> {
        if prefix4 > 32 {
            return Err(format!("--prefix {prefix4}: an IPv4 prefix length is 0 to 32"));
        }
        if prefix6 > 128 {
            return Err(format!("--prefix6 {prefix6}: an IPv6 prefix length is 0 to 128"));
        }
        let mut s = ServeAddrs { v4: None, v6: None };
        for &a in addrs {
            match a {
                IpAddr::V4(a) if s.v4.is_none() => s.v4 = Some((a, prefix4)),
                IpAddr::V6(a) if s.v6.is_none() => s.v6 = Some((a, prefix6)),
                _ => return Err(format!("--addr {a}: give at most one IPv4 and one IPv6 address")),
            }
        }
        if s.v4.is_none() && s.v6.is_none() {
            return Err("give --addr (an IPv4 address, an IPv6 address, or one of each)".into());
        }
        Ok(s)
    }

    /// Every address, IPv4 first.
    pub fn all(&self) -> impl Iterator<Item = IpAddr> {
        self.v4.map(|(a, _)| IpAddr::V4(a)).into_iter().chain(self.v6.map(|(a, _)| IpAddr::V6(a)))
    }

    /// The first address (IPv4 if there is one).
    pub fn first(&self) -> IpAddr {
        self.all().next().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Refuses what a user-space stack cannot serve on: an unspecified address (the stack
    /// answers ARP and builds headers with its own address), a multicast one, or an IPv6
    /// link-local one (every interface has one; serve a global or unique-local address).
    pub fn check_own(&self) -> Result<(), String> {
        for a in self.all() {
            let bad = match a {
                IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
                IpAddr::V6(a) => a.is_unspecified() || a.is_multicast() || a.segments()[0] & 0xffc0 == 0xfe80,
            };
            if bad {
                return Err(format!(
                    "--addr {a}: the AF_XDP backend needs the server's own unicast address (the stack builds \
                     headers with it), e.g. --addr 10.0.0.1 --addr fd00::1"
                ));
            }
        }
        Ok(())
    }

    /// "http://10.0.0.1:80/ and http://[fd00::1]:80/".
    pub fn urls(&self, port: u16) -> String {
        let urls: Vec<String> = self
            .all()
            .map(|a| match a {
                IpAddr::V4(a) => format!("http://{a}:{port}/"),
                IpAddr::V6(a) => format!("http://[{a}]:{port}/"),
            })
            .collect();
        urls.join(" and ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_per_family() {
        let s = ServeAddrs::new(&[ip("fd00::1"), ip("10.0.0.1")], 24, 64).unwrap();
        assert_eq!(s.v4, Some(("10.0.0.1".parse().unwrap(), 24)));
        assert_eq!(s.v6, Some(("fd00::1".parse().unwrap(), 64)));
        assert_eq!(s.all().collect::<Vec<_>>(), [ip("10.0.0.1"), ip("fd00::1")]);
        assert_eq!(s.urls(80), "http://10.0.0.1:80/ and http://[fd00::1]:80/");
        let e = ServeAddrs::new(&[ip("10.0.0.1"), ip("10.0.0.2")], 24, 64).unwrap_err();
        assert!(e.contains("at most one IPv4"), "{e}");
        assert!(ServeAddrs::new(&[ip("fd00::1"), ip("fd00::2")], 24, 64).is_err());
        assert!(ServeAddrs::new(&[], 24, 64).is_err());
        assert!(ServeAddrs::new(&[ip("10.0.0.1")], 33, 64).is_err());
        assert!(ServeAddrs::new(&[ip("fd00::1")], 24, 129).is_err());
        let six = ServeAddrs::new(&[ip("fd00::1")], 24, 64).unwrap();
        assert_eq!((six.v4, six.first()), (None, ip("fd00::1")));
    }

    #[test]
    fn the_stack_needs_its_own_unicast_address() {
        for good in ["10.0.0.1", "fd00::1", "2001:db8::5"] {
            assert_eq!(ServeAddrs::new(&[ip(good)], 24, 64).unwrap().check_own(), Ok(()), "{good}");
        }
        for bad in ["0.0.0.0", "::", "fe80::1", "ff02::1", "224.0.0.1", "255.255.255.255"] {
            assert!(ServeAddrs::new(&[ip(bad)], 24, 64).unwrap().check_own().is_err(), "{bad}");
        }
    }
}
