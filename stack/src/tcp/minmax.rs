//! A running minimum or maximum over a window (Kathleen Nichols' algorithm, as Linux's
//! `lib/minmax.c`): the best three samples of the window's thirds, so it takes constant
//! space and a stale extreme ages out instead of holding forever. The window is in
//! whatever the caller counts time in: microseconds for the RTT's minimum, round trips
//! for BBR's bandwidth maximum.

/// The filter: samples `(t, v)`, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinMax<V> {
    t: [i64; 3],
    v: [V; 3],
}

impl<V: Copy + Ord> MinMax<V> {
    /// A filter holding `v` at time `t` (a sentinel worse than any sample, or a first one).
    pub const fn new(t: i64, v: V) -> Self {
        MinMax { t: [t; 3], v: [v; 3] }
    }

    /// The best sample in the window.
    pub fn get(&self) -> V {
        self.v[0]
    }

    /// Forgets everything but `v` at `t`.
    pub fn reset(&mut self, t: i64, v: V) -> V {
        *self = MinMax::new(t, v);
        v
    }

    /// Adds a sample at `t` to a running minimum over `win`; returns the minimum.
    pub fn running_min(&mut self, win: i64, t: i64, v: V) -> V {
        self.update(win, t, v, |a, b| a <= b)
    }

    /// Adds a sample at `t` to a running maximum over `win`; returns the maximum.
    pub fn running_max(&mut self, win: i64, t: i64, v: V) -> V {
        self.update(win, t, v, |a, b| a >= b)
    }

    fn update(&mut self, win: i64, t: i64, v: V, better: fn(V, V) -> bool) -> V {
        if better(v, self.v[0]) || t - self.t[2] > win {
            // A new best, or nothing left in the window.
            return self.reset(t, v);
        }
        if better(v, self.v[1]) {
            (self.t[1], self.v[1]) = (t, v);
            (self.t[2], self.v[2]) = (t, v);
        } else if better(v, self.v[2]) {
            (self.t[2], self.v[2]) = (t, v);
        }
        let dt = t - self.t[0];
        if dt > win {
            // The best sample left the window: promote the others.
            self.shift(t, v);
            if t - self.t[0] > win {
                self.shift(t, v);
            }
        } else if self.t[1] == self.t[0] && dt > win / 4 {
            // A quarter of the window passed with no better sample: take a second choice.
            (self.t[1], self.v[1]) = (t, v);
            (self.t[2], self.v[2]) = (t, v);
        } else if self.t[2] == self.t[1] && dt > win / 2 {
            (self.t[2], self.v[2]) = (t, v);
        }
        self.v[0]
    }

    fn shift(&mut self, t: i64, v: V) {
        self.t = [self.t[1], self.t[2], t];
        self.v = [self.v[1], self.v[2], v];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_max_over_rounds_ages_out() {
        let mut m = MinMax::new(0, 0u64);
        assert_eq!(m.running_max(10, 1, 100), 100);
        assert_eq!(m.running_max(10, 2, 50), 100);
        assert_eq!(m.running_max(10, 5, 80), 100);
        assert_eq!(m.running_max(10, 11, 60), 100, "round 1 is still within 10 rounds");
        // Round 12: the 100 of round 1 has left; the best kept since is 80 (round 5).
        assert_eq!(m.running_max(10, 12, 60), 80);
        assert_eq!(m.running_max(10, 13, 120), 120);
    }

    #[test]
    fn running_min_is_the_mirror() {
        let mut m = MinMax::new(0, u32::MAX);
        assert_eq!(m.running_min(1000, 0, 10), 10);
        assert_eq!(m.running_min(1000, 100, 20), 10);
        assert_eq!(m.running_min(1000, 600, 30), 10);
        assert_eq!(m.running_min(1000, 1100, 40), 30);
    }
}
