//! The frame allocator under random use: no slot is ever handed out twice, none is lost,
//! and every count returns to its start value. No root needed (the pool is not locked).

use std::collections::HashSet;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use umem::{Buf, BufSlice, HugePages, Pool, PoolConfig, UmemAddr};

fn pool(frames: u32, blocks: u32) -> Pool {
    Pool::new(&PoolConfig {
        frame_size: 4096,
        frames,
        block_size: 64 << 10,
        blocks,
        hugepages: HugePages::Off,
        lock: false,
    })
    .expect("pool")
}

#[test]
fn random_alloc_free_never_duplicates_or_loses() {
    let p = pool(256, 16);
    let start = p.stats();
    let mut rng = SmallRng::seed_from_u64(42);
    let mut held: Vec<Buf> = Vec::new();
    let mut leased: Vec<UmemAddr> = Vec::new();
    for step in 0..200_000u32 {
        match rng.random_range(0..6) {
            0 | 1 => {
                let b = if rng.random_bool(0.8) { p.alloc_frame() } else { p.alloc_block() };
                if let Some(b) = b {
                    held.push(b);
                }
            }
            2 if !held.is_empty() => {
                let i = rng.random_range(0..held.len());
                held.swap_remove(i);
            }
            3 if !held.is_empty() => {
                // Another reference to a held slot: it must stay allocated.
                let i = rng.random_range(0..held.len());
                held.push(held[i].clone());
            }
            4 => {
                // Lease a unique frame to the "kernel", as the fill ring does.
                if let Some(i) = held.iter().position(|b| b.is_unique() && b.is_frame()) {
                    let b = held.swap_remove(i);
                    leased.push(b.lease_write().expect("unique"));
                }
            }
            5 if !leased.is_empty() => {
                let i = rng.random_range(0..leased.len());
                let addr = leased.swap_remove(i);
                held.push(p.reclaim(addr).expect("leased address reclaims"));
            }
            _ => {}
        }
        if step % 1000 == 0 {
            check_invariants(&p, &held, &leased);
        }
    }
    check_invariants(&p, &held, &leased);
    for addr in leased.drain(..) {
        drop(p.reclaim(addr).unwrap());
    }
    held.clear();
    assert_eq!(p.stats(), start, "every slot came back");
}

/// Distinct slots held + leased + free == total, and no address is free and held at once.
fn check_invariants(p: &Pool, held: &[Buf], leased: &[UmemAddr]) {
    let mut distinct: HashSet<u64> = held.iter().map(Buf::addr).collect();
    for a in leased {
        assert!(distinct.insert(a.get()), "slot {a} is both held and leased");
    }
    let s = p.stats();
    let in_use = distinct.len() as u32;
    assert_eq!(in_use + s.frames_free + s.blocks_free, s.frames + s.blocks, "a slot was lost or duplicated");
    assert_eq!(s.write_leases, leased.len() as u64);
}

#[test]
fn exhausted_pool_returns_none_then_recovers() {
    let p = pool(8, 0);
    let all: Vec<Buf> = (0..8).map(|_| p.alloc_frame().expect("free frame")).collect();
    let addrs: HashSet<u64> = all.iter().map(Buf::addr).collect();
    assert_eq!(addrs.len(), 8, "eight distinct frames");
    assert!(p.alloc_frame().is_none(), "a ninth frame does not exist");
    drop(all);
    assert_eq!(p.stats().frames_free, 8);
}

#[test]
fn shared_slot_is_freed_by_the_last_reference_only() {
    let p = pool(4, 0);
    let mut b = p.alloc_frame().unwrap();
    b.get_mut().unwrap()[..5].copy_from_slice(b"hello");
    let s = BufSlice::new(b.clone(), 0..5).unwrap();
    assert!(b.get_mut().is_none(), "no writing while shared");
    s.buf().lease_read();
    let addr = UmemAddr::new(s.addr());
    drop(b);
    assert_eq!(p.stats().frames_free, 3);
    assert_eq!(s.as_bytes(), b"hello");
    drop(s);
    assert_eq!(p.stats().frames_free, 3, "the TX lease still holds it");
    p.release(UmemAddr::new(addr.get() + 2)).unwrap();
    assert_eq!(p.stats().frames_free, 4);
    assert!(p.release(addr).is_err(), "a second release names no lease");
}

#[test]
fn write_lease_needs_uniqueness() {
    let p = pool(2, 0);
    let b = p.alloc_frame().unwrap();
    let other = b.clone();
    let b = b.lease_write().expect_err("shared frame cannot be leased for writing");
    drop(other);
    let addr = b.lease_write().expect("unique now");
    assert!(p.reclaim(UmemAddr::new(addr.get() + 4096 * 10)).is_err(), "out of range");
    let back = p.reclaim(addr).unwrap();
    assert_eq!(back.addr(), addr.get());
}

#[test]
fn lease_free_frames_fills_and_reclaims() {
    let p = pool(16, 0);
    let mut addrs = [UmemAddr::default(); 32];
    let n = p.lease_free_frames(&mut addrs);
    assert_eq!(n, 16);
    assert_eq!(p.stats().frames_free, 0);
    assert_eq!(p.stats().write_leases, 16);
    let set: HashSet<UmemAddr> = addrs[..n].iter().copied().collect();
    assert_eq!(set.len(), 16);
    for a in &addrs[..n] {
        drop(p.reclaim(*a).unwrap());
    }
    assert_eq!(p.stats().frames_free, 16);
    assert_eq!(p.stats().write_leases, 0);
}

#[test]
fn bad_config_is_an_error_not_a_panic() {
    for cfg in [
        PoolConfig { frame_size: 3000, ..PoolConfig::frames(4) },
        PoolConfig { frames: 0, ..PoolConfig::default() },
        PoolConfig { blocks: 2, block_size: 5000, ..PoolConfig::frames(4) },
    ] {
        let cfg = PoolConfig { lock: false, hugepages: HugePages::Off, ..cfg };
        assert!(Pool::new(&cfg).is_err());
    }
}

#[test]
fn headroom_is_writable_only_in_front_of_an_unshared_range() {
    let p = pool(2, 0);
    let mut s = BufSlice::new(p.alloc_frame().unwrap(), 24..100).unwrap();
    s.headroom_mut(24).expect("24 bytes lie in front of offset 24").copy_from_slice(&[7; 24]);
    assert!(s.headroom_mut(25).is_none(), "the 25th byte would lie before the slot");
    assert_eq!(&s.buf().as_slice()[..24], &[7; 24], "the bytes in front of the range were written");
    assert_eq!(s.headroom_mut(0).map(|h| h.len()), Some(0));
    let other = s.clone();
    assert!(s.headroom_mut(8).is_none(), "no writing while shared");
    drop(other);
    assert!(s.headroom_mut(8).is_some());
}
