//! Frequency-based admission for large files: TinyLFU (Einziger, Friedman and Manes,
//! "TinyLFU: A Highly Efficient Cache Admission Policy", 2017), a count-min sketch of how
//! often each file was requested lately, behind a doorkeeper.
//!
//! ```text
//!   request(file) ─► doorkeeper has it? ── no ──► set its bits: estimate 1 (a one-off so far)
//!                                        └─ yes ─► count-min sketch += 1 (4 rows, 4-bit counters)
//!   estimate(file) = min over the rows + doorkeeper bit            (saturates at 16)
//!   every 10 cache-fulls of requested bytes: halve every counter, clear the doorkeeper
//! ```
//!
//! The block cache asks it two things about a file above the direct-I/O threshold: *was it
//! requested before, lately?* (an estimate of at least 2: then the request may fill the
//! cache), and, once the cache is full, *is it requested more often than the file of the
//! block it would replace?* (only then does the block go in).
//!
//! **Why TinyLFU and not a second-hit rule.** A second-hit rule (admit what a ghost list of
//! recently seen files names) gives the same scan resistance against one-off files, but
//! it would let any large file requested twice push out small files requested thousands
//! of times, and its ghost list is per-file state that a client requesting many distinct
//! files makes us hold. TinyLFU compares the newcomer with the victim, so a hot set stays
//! while colder blocks make room, and its state is a fixed few KiB whatever is requested.
//! The doorkeeper (a Bloom filter in front of the sketch) keeps the first request of every
//! file out of the counters, so the one-offs that make up a scan cost them nothing.
//!
//! **Aging by bytes.** TinyLFU halves its counters every `10 x cache size` accesses of
//! equal-sized items. Files here differ in size by a factor of 65,536, so the window is
//! counted in bytes asked of the cache: ten times its capacity. A storm of 16 KiB requests
//! then does not forget a large file downloaded once a second, and a scan of large files
//! ages the counts as fast as it would churn an unguarded cache.

use crate::dio::FileKey;

/// Counters per row are 4 bits, 16 to a word.
const PER_WORD: usize = 16;
/// Rows of the count-min sketch.
const ROWS: usize = 4;
/// Window of aging, in cache capacities of requested bytes.
const WINDOW_CAPACITIES: u64 = 10;

/// The sketch and its doorkeeper. See the module docs.
#[derive(Debug)]
pub(crate) struct Admission {
    /// `ROWS` rows of `width` 4-bit counters, packed.
    rows: Vec<u64>,
    /// `width` is a power of two; `mask = width - 1`.
    mask: u64,
    /// Bloom filter bits (2 probes), `8 * width` of them.
    doorkeeper: Vec<u64>,
    door_mask: u64,
    /// Bytes asked since the last halving, and how many trigger one.
    weight: u64,
    window: u64,
    /// Halvings so far.
    pub(crate) resets: u64,
}

impl Admission {
    /// A sketch for a cache of `capacity_bytes`, holding about `entries` items.
    pub(crate) fn new(entries: u32, capacity_bytes: u64) -> Admission {
        let width = (u64::from(entries) * 4).clamp(1024, 1 << 20).next_power_of_two();
        let words = (width as usize / PER_WORD) * ROWS;
        let door_bits = width * 8;
        Admission {
            rows: vec![0; words],
            mask: width - 1,
            doorkeeper: vec![0; (door_bits / 64) as usize],
            door_mask: door_bits - 1,
            weight: 0,
            window: capacity_bytes.saturating_mul(WINDOW_CAPACITIES).max(1),
            resets: 0,
        }
    }

    /// Counts one request of `key`; returns its estimate including this request.
    pub(crate) fn record(&mut self, key: u64) -> u8 {
        let (a, b) = self.door_probes(key);
        if !(self.door_get(a) && self.door_get(b)) {
            self.door_set(a);
            self.door_set(b);
            return self.sketch_min(key) + 1;
        }
        // Conservative update: only the rows at the minimum grow (less overestimation).
        let min = self.sketch_min(key);
        if min < 15 {
            for r in 0..ROWS {
                let (w, shift) = self.slot(key, r);
                if (self.rows[w] >> shift) & 0xf == u64::from(min) {
                    self.rows[w] += 1 << shift;
                }
            }
        }
        self.estimate(key)
    }

    /// How often `key` was requested lately (0 ..= 16), without counting a request.
    pub(crate) fn estimate(&self, key: u64) -> u8 {
        let (a, b) = self.door_probes(key);
        self.sketch_min(key) + u8::from(self.door_get(a) && self.door_get(b))
    }

    /// `bytes` were asked of the cache; halves the counts when a window has passed.
    pub(crate) fn age(&mut self, bytes: u64) {
        self.weight += bytes;
        if self.weight >= self.window {
            self.weight /= 2;
            self.resets += 1;
            for w in &mut self.rows {
                *w = (*w >> 1) & 0x7777_7777_7777_7777;
            }
            self.doorkeeper.fill(0);
        }
    }

    fn sketch_min(&self, key: u64) -> u8 {
        (0..ROWS)
            .map(|r| {
                let (w, shift) = self.slot(key, r);
                ((self.rows[w] >> shift) & 0xf) as u8
            })
            .min()
            .unwrap_or(0)
    }

    /// The word and bit shift of `key`'s counter in row `r`.
    fn slot(&self, key: u64, r: usize) -> (usize, u32) {
        let i = (mix(key ^ SEEDS[r]) & self.mask) as usize;
        let per_row = (self.mask as usize + 1) / PER_WORD;
        (r * per_row + i / PER_WORD, (i % PER_WORD) as u32 * 4)
    }

    fn door_probes(&self, key: u64) -> (u64, u64) {
        let h = mix(key ^ 0xd00d_4ee9_e7a0_0001);
        (h & self.door_mask, (h >> 32) & self.door_mask)
    }

    fn door_get(&self, bit: u64) -> bool {
        self.doorkeeper[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    fn door_set(&mut self, bit: u64) {
        self.doorkeeper[(bit / 64) as usize] |= 1 << (bit % 64);
    }
}

const SEEDS: [u64; ROWS] = [0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9, 0x27d4_eb2f_1656_67c5];

/// The sketch's key for one version of a file.
pub(crate) fn file_hash(k: &FileKey) -> u64 {
    let words =
        [k.ino, k.size, k.mtime_ns as u64, (k.mtime_ns >> 64) as u64, k.ctime_ns as u64, (k.ctime_ns >> 64) as u64];
    words.iter().fold(mix(k.dev), |h, &w| mix(h ^ w))
}

/// SplitMix64's finaliser: every input bit reaches every output bit.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_only_passes_the_doorkeeper() {
        let mut a = Admission::new(64, 64 << 20);
        assert_eq!(a.estimate(7), 0);
        assert_eq!(a.record(7), 1, "seen once: the doorkeeper only");
        assert_eq!(a.record(7), 2, "seen twice: the sketch counts it");
        assert_eq!(a.record(7), 3);
        assert_eq!(a.estimate(8), 0, "another key is not confused with it");
    }

    #[test]
    fn counts_saturate_and_halve_with_age() {
        let mut a = Admission::new(64, 1000);
        for _ in 0..40 {
            a.record(1);
        }
        assert_eq!(a.estimate(1), 16, "15 in the sketch + the doorkeeper");
        a.record(2);
        a.age(9_999);
        assert_eq!(a.resets, 0);
        a.age(1);
        assert_eq!(a.resets, 1, "ten capacities of bytes make a window");
        assert_eq!(a.estimate(1), 7, "halved, and the doorkeeper cleared");
        assert_eq!(a.estimate(2), 0, "a one-off is forgotten");
        assert_eq!(a.record(2), 1);
    }

    #[test]
    fn a_scan_of_one_offs_leaves_the_counters_alone() {
        let mut a = Admission::new(64, 1 << 40);
        for _ in 0..5 {
            a.record(42);
        }
        let twice = (1000..1200).filter(|&k| a.record(k) > 1).count();
        assert!(twice <= 2, "{twice} of 200 one-offs looked seen before (Bloom false positives)");
        assert_eq!(a.sketch_min(42), 4, "the hot key's count is intact");
    }
}
