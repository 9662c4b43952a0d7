//! What a shared pool would cost per reference count change, against the `Cell` count of
//! the per-worker pool (`umem::Pool` is `Rc`/`Cell`): a frame's count goes up and down at
//! least once per transmitted segment (lease to the TX ring, release on completion).
//!
//! `cargo run --release -p fileserver --example refcount_cost` prints nanoseconds per
//! increment+decrement pair for a `Cell<u32>`, an uncontended `AtomicU32` (what one
//! worker pays with a shared pool), and an `AtomicU32` two threads change at once (a hot
//! cached block sent by two workers: the cache line moves between their cores).
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const N: u32 = 50_000_000;

fn per_pair(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / f64::from(N)
}

fn main() {
    let c = Cell::new(1u32);
    let cell = per_pair(|| {
        for _ in 0..N {
            // black_box between the two: the increment must reach memory before the
            // decrement reads it, as when a lease and its release are apart.
            let r = black_box(&c);
            r.set(r.get() + 1);
            let r = black_box(r);
            r.set(r.get() - 1);
        }
    });
    let a = AtomicU32::new(1);
    let atomic = per_pair(|| {
        for _ in 0..N {
            let r = black_box(&a);
            r.fetch_add(1, Ordering::Relaxed);
            let r = black_box(r);
            r.fetch_sub(1, Ordering::AcqRel);
        }
    });
    let shared = AtomicU32::new(1);
    let contended = per_pair(|| {
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..N / 2 {
                        let r = black_box(&shared);
                        r.fetch_add(1, Ordering::Relaxed);
                        let r = black_box(r);
                        r.fetch_sub(1, Ordering::AcqRel);
                    }
                });
            }
        })
    });
    println!("ns per increment+decrement pair ({N} pairs):");
    println!("  Cell<u32> (per-worker pool)            {cell:6.2}");
    println!("  AtomicU32, one thread (shared pool)    {atomic:6.2}");
    println!("  AtomicU32, two threads on one count    {:6.2}  (per pair, in each thread)", contended * 2.0);
}
