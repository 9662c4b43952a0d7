//! What a device does for AF_XDP transmit metadata, asked of the kernel's `netdev` generic
//! netlink family (`ip`'s cousin `ynl --family netdev --do dev-get` shows the same):
//! `xsk-features` says whether the driver finishes a checksum request (`tx-checksum`) or
//! timestamps (`tx-timestamp`) on a zero-copy socket. In copy mode the kernel itself honours
//! a checksum request (it marks the skb `CHECKSUM_PARTIAL` and the device or the kernel
//! finishes it), so this matters for zero-copy binds only.
//!
//! Messages are built and parsed by safe code (tested below on byte fixtures); the socket
//! calls are the only unsafe part.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_GENERIC: libc::c_int = 16;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_FAMILY_VERSION: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XSK_FEATURES: u16 = 6;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;

/// `xsk-features` of a device (`enum netdev_xsk_flags`).
#[doc(alias = "xsk-features")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskFeatures(pub u64);

impl XskFeatures {
    /// `tx-timestamp`: the driver timestamps transmitted packets.
    pub const TX_TIMESTAMP: u64 = 1;
    /// `tx-checksum`: the driver finishes L4 checksum requests (zero-copy).
    pub const TX_CHECKSUM: u64 = 2;
    /// `tx-launch-time-fifo`: the driver sends at a requested time.
    pub const TX_LAUNCH_TIME_FIFO: u64 = 4;

    /// Whether the driver finishes checksum requests on a zero-copy socket.
    pub fn tx_checksum(self) -> bool {
        self.0 & Self::TX_CHECKSUM != 0
    }
}

impl std::fmt::Display for XskFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (Self::TX_TIMESTAMP, "tx-timestamp"),
            (Self::TX_CHECKSUM, "tx-checksum"),
            (Self::TX_LAUNCH_TIME_FIFO, "tx-launch-time-fifo"),
        ];
        let mut any = false;
        for (bit, name) in names {
            if self.0 & bit != 0 {
                write!(f, "{}{name}", if any { " " } else { "" })?;
                any = true;
            }
        }
        if !any {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// The `xsk-features` of interface `ifindex`; `Ok(None)` when the kernel has no `netdev`
/// family or does not report them (Linux < 6.8).
pub fn xsk_features(ifindex: u32) -> io::Result<Option<XskFeatures>> {
    let sock = GenlSocket::open()?;
    let mut buf = vec![0u8; 8192];
    let req = request(1, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, &[(CTRL_ATTR_FAMILY_NAME, b"netdev\0")]);
    let family = match sock.call(&req, &mut buf).map(|n| parse_reply(&buf[..n], 1)) {
        Ok(Ok(attrs)) => attrs.iter().find(|a| a.0 == CTRL_ATTR_FAMILY_ID).and_then(|a| u16_of(a.1)),
        Ok(Err(libc::ENOENT)) => return Ok(None),
        Ok(Err(errno)) => return Err(io::Error::from_raw_os_error(errno)),
        Err(e) => return Err(e),
    };
    let Some(family) = family else { return Ok(None) };
    let req = request(
        2,
        family,
        NETDEV_CMD_DEV_GET,
        NETDEV_FAMILY_VERSION,
        &[(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes())],
    );
    let n = sock.call(&req, &mut buf)?;
    let attrs = parse_reply(&buf[..n], 2).map_err(io::Error::from_raw_os_error)?;
    Ok(attrs.iter().find(|a| a.0 == NETDEV_A_DEV_XSK_FEATURES).and_then(|a| u64_of(a.1)).map(XskFeatures))
}

/// A generic netlink request: header, `cmd`/`version`, then `attrs`.
fn request(seq: u32, family: u16, cmd: u8, version: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; NLMSG_HDRLEN];
    m.extend_from_slice(&[cmd, version, 0, 0]);
    for (ty, val) in attrs {
        m.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(val);
        m.resize(m.len().next_multiple_of(4), 0);
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&family.to_ne_bytes());
    m[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

/// The attributes of the reply to request `seq` in `buf`, or the errno it failed with.
/// Malformed replies are `EPROTO`.
fn parse_reply(buf: &[u8], seq: u32) -> Result<Vec<(u16, &[u8])>, i32> {
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32_of(&rest[0..4]).ok_or(libc::EPROTO)? as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(libc::EPROTO);
        }
        let ty = u16_of(&rest[4..6]).ok_or(libc::EPROTO)?;
        let msg_seq = u32_of(&rest[8..12]).ok_or(libc::EPROTO)?;
        let body = &rest[NLMSG_HDRLEN..len];
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        if msg_seq != seq {
            continue;
        }
        match ty {
            NLMSG_ERROR => {
                let code = body.get(0..4).and_then(i32_of).ok_or(libc::EPROTO)?;
                return Err(if code == 0 { libc::ENODATA } else { code.saturating_neg() });
            }
            NLMSG_DONE => return Err(libc::ENODATA),
            _ => return attributes(body.get(GENL_HDRLEN..).ok_or(libc::EPROTO)?),
        }
    }
    Err(libc::ENODATA)
}

/// The (type, value) pairs of a run of attributes.
fn attributes(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, i32> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16_of(&b[0..2]).ok_or(libc::EPROTO)?);
        let ty = u16_of(&b[2..4]).ok_or(libc::EPROTO)? & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return Err(libc::EPROTO);
        }
        out.push((ty, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    Ok(out)
}

fn u16_of(b: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(b.try_into().ok()?))
}

fn u32_of(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.try_into().ok()?))
}

fn i32_of(b: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(b.try_into().ok()?))
}

fn u64_of(b: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

/// A `NETLINK_GENERIC` socket with a receive timeout.
struct GenlSocket(OwnedFd);

impl GenlSocket {
    fn open() -> io::Result<GenlSocket> {
        // SAFETY: a plain socket call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_GENERIC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let sock = GenlSocket(unsafe { OwnedFd::from_raw_fd(fd) });
        let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
        // SAFETY: `tv` is a valid timeval of the size passed, read by the call only.
        let rc = unsafe {
            libc::setsockopt(
                sock.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    /// Sends `req` and receives one reply into `buf`; returns its length.
    fn call(&self, req: &[u8], buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `req` is valid for reads of its length for the call.
        let rc = unsafe { libc::send(self.0.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `buf` is valid for writes of its length for the call.
        let rc = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as the kernel writes it: header, genl header, attributes.
    fn reply(seq: u32, ty: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = request(seq, ty, NETDEV_CMD_DEV_GET, 1, attrs);
        m[6..8].copy_from_slice(&0u16.to_ne_bytes());
        m
    }

    #[test]
    fn requests_are_padded_and_carry_their_length() {
        let r = request(7, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, &[(CTRL_ATTR_FAMILY_NAME, b"netdev\0")]);
        // 16 header + 4 genl + 4 attr header + 7 name, padded to 32.
        assert_eq!(r.len(), 32);
        assert_eq!(u32_of(&r[0..4]), Some(32));
        assert_eq!(u16_of(&r[4..6]), Some(GENL_ID_CTRL));
        assert_eq!(u32_of(&r[8..12]), Some(7));
        assert_eq!(&r[16..18], &[CTRL_CMD_GETFAMILY, 1]);
        assert_eq!(u16_of(&r[20..22]), Some(11), "the attribute's length excludes its padding");
        assert_eq!(&r[24..31], b"netdev\0");
    }

    #[test]
    fn the_xsk_features_attribute_is_found_past_padding_and_others() {
        let feats = (XskFeatures::TX_CHECKSUM | XskFeatures::TX_TIMESTAMP).to_ne_bytes();
        let m =
            reply(2, 30, &[(NETDEV_A_DEV_IFINDEX, &5u32.to_ne_bytes()), (2, &[]), (NETDEV_A_DEV_XSK_FEATURES, &feats)]);
        let attrs = parse_reply(&m, 2).expect("attributes");
        let f = attrs.iter().find(|a| a.0 == NETDEV_A_DEV_XSK_FEATURES).and_then(|a| u64_of(a.1)).map(XskFeatures);
        assert_eq!(f, Some(XskFeatures(3)));
        assert!(f.unwrap().tx_checksum());
        assert_eq!(f.unwrap().to_string(), "tx-timestamp tx-checksum");
        assert_eq!(XskFeatures(0).to_string(), "none");
        assert_eq!(parse_reply(&m, 3), Err(libc::ENODATA), "another request's reply is not this one's");
    }

    #[test]
    fn errors_and_malformed_replies_are_errnos() {
        let mut m = reply(1, NLMSG_ERROR, &[]);
        m.truncate(NLMSG_HDRLEN);
        m.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(parse_reply(&m, 1), Err(libc::ENOENT));
        let mut bad = reply(1, 30, &[(1, &[1, 2, 3, 4])]);
        bad[20..22].copy_from_slice(&200u16.to_ne_bytes()); // an attribute longer than the message
        assert_eq!(parse_reply(&bad, 1), Err(libc::EPROTO));
        let mut short = reply(1, 30, &[]);
        short[0..4].copy_from_slice(&4096u32.to_ne_bytes());
        assert_eq!(parse_reply(&short, 1), Err(libc::EPROTO));
        assert_eq!(parse_reply(&[0; 3], 1), Err(libc::ENODATA));
    }

    #[test]
    fn loopback_reports_no_xsk_features() {
        // No root needed: `dev-get` is unprivileged.
        match xsk_features(1).expect("asking the netdev family about lo") {
            Some(f) => assert!(!f.tx_checksum(), "lo finishes no AF_XDP checksum requests: {f}"),
            None => eprintln!("skipped: this kernel reports no xsk-features (Linux < 6.8)"),
        }
    }
}
