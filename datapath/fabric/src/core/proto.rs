//! The provider's header, in front of every endpoint message it sends.
//!
//! A libfabric message travels as one or more endpoint messages ("chunks") of at most
//! [`CHUNK`] payload bytes. The first chunk carries the operation (untagged or tagged),
//! the tag, the remote CQ data and the total length; later chunks are `CONT` and carry only
//! their bytes. RDM endpoints are reliable and deliver in order per peer, so a message's
//! chunks arrive one after another and the receiver appends them; DGRAM messages are
//! always one chunk.
//!
//! ```text
//!  0      1      2      3      4            8             16            24            32
//!  | ver  | kind | flags| 0    | 0 (u32)    | tag (u64)   | data (u64)  | total (u64) | payload...
//! ```
//! All fields little-endian.

/// Header length in bytes.
pub const HDR: usize = 32;
/// Largest payload of one chunk (an endpoint message is `HDR + CHUNK` at most).
pub const CHUNK: usize = 64 * 1024;
/// Header version.
pub const VERSION: u8 = 1;

/// What a chunk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// First chunk of an untagged (FI_MSG) message.
    Msg,
    /// First chunk of a tagged (FI_TAGGED) message.
    Tagged,
    /// A later chunk.
    Cont,
}

/// Flag: `data` is remote CQ data.
pub const FLAG_DATA: u8 = 1;

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hdr {
    pub kind: Kind,
    pub flags: u8,
    pub tag: u64,
    pub data: u64,
    pub total: u64,
}

impl Hdr {
    /// Writes the header into `b[..HDR]`.
    pub fn emit(&self, b: &mut [u8; HDR]) {
        b.fill(0);
        b[0] = VERSION;
        b[1] = match self.kind {
            Kind::Msg => 1,
            Kind::Tagged => 2,
            Kind::Cont => 3,
        };
        b[2] = self.flags;
        b[8..16].copy_from_slice(&self.tag.to_le_bytes());
        b[16..24].copy_from_slice(&self.data.to_le_bytes());
        b[24..32].copy_from_slice(&self.total.to_le_bytes());
    }

    /// Parses a header; `None` for another version or kind (counted by the caller).
    pub fn parse(b: &[u8; HDR]) -> Option<Hdr> {
        if b[0] != VERSION {
            return None;
        }
        let kind = match b[1] {
            1 => Kind::Msg,
            2 => Kind::Tagged,
            3 => Kind::Cont,
            _ => return None,
        };
        let u = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().unwrap_or([0; 8]));
        Some(Hdr { kind, flags: b[2], tag: u(8..16), data: u(16..24), total: u(24..32) })
    }

    /// Whether `data` carries remote CQ data.
    pub fn has_data(&self) -> bool {
        self.flags & FLAG_DATA != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let h = Hdr { kind: Kind::Tagged, flags: FLAG_DATA, tag: 0xdead_beef_0123_4567, data: 7, total: 1 << 33 };
        let mut b = [0u8; HDR];
        h.emit(&mut b);
        assert_eq!(Hdr::parse(&b), Some(h));
        assert!(Hdr::parse(&b).unwrap().has_data());
        let mut bad = b;
        bad[0] = 2;
        assert_eq!(Hdr::parse(&bad), None);
        let mut bad = b;
        bad[1] = 9;
        assert_eq!(Hdr::parse(&bad), None);
    }
}
