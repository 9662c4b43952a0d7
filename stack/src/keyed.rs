//! Keyed hashing with SipHash (Aumasson and Bernstein, 2012) for everything a peer must
//! neither predict nor steer: initial sequence numbers (RFC 6528), timestamp offsets,
//! SYN cookies, and the hash maps indexed by what peers send (four-tuples, addresses), so
//! that a flood of chosen four-tuples cannot pile into one bucket (hash flooding).
//!
//! One secret ([`crate::StackConfig::secret`]) keys them all, through sub-keys derived
//! per purpose ([`SipKey::derive`]), so that what one use reveals says nothing of another.
//! SipHash-2-4 serves where its output leaves the host (ISNs, cookies); maps use
//! SipHash-1-3, as the standard library's `HashMap` does.

use std::hash::{BuildHasher, Hash, Hasher};

/// A 128-bit SipHash key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipKey {
    k0: u64,
    k1: u64,
}

impl core::fmt::Debug for SipKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A key is a secret: never printed.
        f.write_str("SipKey(..)")
    }
}

/// What a derived key is for (each a distinct sub-key of the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Initial sequence numbers (RFC 6528).
    Isn = 1,
    /// Timestamp offsets per four-tuple (RFC 7323 section 7.1).
    TsOffset = 2,
    /// SYN cookies.
    Cookie = 3,
    /// Hash maps keyed by what peers send.
    Maps = 4,
    /// Pseudo-random choices (e.g. the jitter of a rate limit).
    Random = 5,
}

impl SipKey {
    /// The key `(k0, k1)`.
    pub const fn new(k0: u64, k1: u64) -> Self {
        SipKey { k0, k1 }
    }

    /// The sub-key of a 64-bit `secret` for `purpose`: two SipHash-2-4 outputs of the
    /// purpose under a key made of the secret, so sub-keys are independent of each other.
    pub fn derive(secret: u64, purpose: Purpose) -> SipKey {
        let master = SipKey::new(secret, secret.rotate_left(32) ^ 0x736f_6d65_7073_6575);
        let p = purpose as u64;
        SipKey::new(master.hash(&[p, 0]), master.hash(&[p, 1]))
    }

    /// SipHash-2-4 of `words` (each as 8 little-endian bytes).
    pub fn hash(&self, words: &[u64]) -> u64 {
        let mut h = SipHasher::new(*self, 2, 4);
        for w in words {
            h.write(&w.to_le_bytes());
        }
        h.finish()
    }

    /// SipHash-2-4 of `value`'s `Hash` encoding.
    pub fn hash_one<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        let mut h = SipHasher::new(*self, 2, 4);
        value.hash(&mut h);
        h.finish()
    }
}

/// A streaming SipHash-c-d hasher.
#[derive(Clone, Debug)]
pub struct SipHasher {
    v: [u64; 4],
    /// Bytes not yet compressed (little-endian, `ntail` of them).
    tail: u64,
    ntail: usize,
    len: u64,
    c: u8,
    d: u8,
}

impl SipHasher {
    /// SipHash-`c`-`d` keyed with `key`.
    pub fn new(key: SipKey, c: u8, d: u8) -> Self {
        SipHasher {
            v: [
                key.k0 ^ 0x736f_6d65_7073_6575,
                key.k1 ^ 0x646f_7261_6e64_6f6d,
                key.k0 ^ 0x6c79_6765_6e65_7261,
                key.k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            len: 0,
            c,
            d,
        }
    }

    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        for _ in 0..self.c {
            Self::round(&mut self.v);
        }
        self.v[0] ^= m;
    }
}

impl Hasher for SipHasher {
    fn write(&mut self, mut bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        if self.ntail > 0 {
            while self.ntail < 8 {
                let Some((&b, rest)) = bytes.split_first() else { return };
                self.tail |= u64::from(b) << (8 * self.ntail);
                self.ntail += 1;
                bytes = rest;
            }
            let m = self.tail;
            self.compress(m);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.compress(u64::from_le_bytes(b));
        }
        for (i, &b) in words.remainder().iter().enumerate() {
            self.tail |= u64::from(b) << (8 * i);
        }
        self.ntail = words.remainder().len();
    }

    fn finish(&self) -> u64 {
        let mut s = self.clone();
        let b = ((self.len & 0xff) << 56) | self.tail;
        s.compress(b);
        s.v[2] ^= 0xff;
        for _ in 0..s.d {
            Self::round(&mut s.v);
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }
}

/// A `BuildHasher` keyed with a secret: SipHash-1-3, as `std`'s `RandomState`, but with a
/// key the stack controls (random in production, fixed in reproducible tests).
#[derive(Clone, Copy, Debug)]
pub struct Keyed(SipKey);

impl Keyed {
    /// Hashers keyed with the maps' sub-key of `secret`.
    pub fn new(secret: u64) -> Self {
        Keyed(SipKey::derive(secret, Purpose::Maps))
    }
}

impl Default for Keyed {
    /// A key from the process's random hash seed (`std`'s `RandomState`), for maps built
    /// before a stack's secret is known.
    fn default() -> Self {
        let s = std::hash::RandomState::new();
        Keyed(SipKey::new(s.hash_one(1u8), s.hash_one(2u8)))
    }
}

impl BuildHasher for Keyed {
    type Hasher = SipHasher;

    fn build_hasher(&self) -> SipHasher {
        SipHasher::new(self.0, 1, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ref_key() -> SipKey {
        SipKey::new(u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]), u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]))
    }

    fn sip24(bytes: &[u8]) -> u64 {
        let mut h = SipHasher::new(ref_key(), 2, 4);
        h.write(bytes);
        h.finish()
    }

    #[test]
    fn siphash_2_4_matches_the_reference_vectors() {
        // From the SipHash paper (appendix A) and its reference implementation's vectors.
        let msg: Vec<u8> = (0..64u8).collect();
        assert_eq!(sip24(&msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(sip24(&msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(sip24(&msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(sip24(&msg[..15]), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn streaming_in_any_pieces_gives_the_same_hash() {
        let msg: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = sip24(&msg);
        #[allow(deprecated)]
        let std_sip = {
            let mut h = std::hash::SipHasher::new_with_keys(ref_key().k0, ref_key().k1);
            h.write(&msg);
            h.finish()
        };
        assert_eq!(whole, std_sip, "std's SipHasher is SipHash-2-4");
        for step in [1, 2, 3, 5, 7, 8, 9, 13, 64] {
            let mut h = SipHasher::new(ref_key(), 2, 4);
            for c in msg.chunks(step) {
                h.write(c);
            }
            assert_eq!(h.finish(), whole, "pieces of {step}");
        }
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_secret() {
        let a = SipKey::derive(1, Purpose::Isn);
        assert_eq!(a, SipKey::derive(1, Purpose::Isn));
        assert_ne!(a, SipKey::derive(1, Purpose::Cookie));
        assert_ne!(a, SipKey::derive(2, Purpose::Isn));
        assert_ne!(a.hash(&[5]), SipKey::derive(2, Purpose::Isn).hash(&[5]));
        // The map hasher is keyed: the same value hashes differently under two secrets.
        let (x, y) = (Keyed::new(1), Keyed::new(2));
        assert_ne!(x.hash_one(12345u32), y.hash_one(12345u32));
        assert_eq!(x.hash_one(12345u32), Keyed::new(1).hash_one(12345u32));
    }
}
