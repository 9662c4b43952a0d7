//! Initial sequence numbers per RFC 6528: `M + F(four-tuple, secret)`, a keyed hash plus
//! a 4 µs clock, with the secret drawn from the operating system by default.

mod common;

use common::pair::config;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};
use stack::{Duration, Instant, Stack, StackConfig};

/// The ISN of an active open from `stack` to `remote` at `now` (the SYN is not sent: the
/// connection's `snd_nxt` is its ISS until then), after which the four-tuple is freed.
fn isn(stack: &mut Stack, now: Instant, remote_port: u16) -> u32 {
    let to = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2)), remote_port);
    let h = stack.connect(now, to).expect("connect");
    let iss = stack.conn(h).expect("conn").snd_nxt().0;
    stack.abort(h).expect("abort");
    iss
}

fn stack(secret: u64) -> Stack {
    Stack::new(config(1, |c| {
        c.secret = secret;
        c.ephemeral_ports = 40000..40001;
    }))
}

#[test]
fn isns_are_a_keyed_hash_of_the_four_tuple_plus_a_4us_clock() {
    let t0 = Instant::from_secs(100);
    let mut a = stack(1);
    let first = isn(&mut a, t0, 80);
    // Same secret, same four-tuple, same time: the same ISN (no hidden state).
    assert_eq!(isn(&mut stack(1), t0, 80), first);
    // The clock: 250,000 ticks a second.
    assert_eq!(isn(&mut a, t0 + Duration::from_secs(1), 80), first.wrapping_add(250_000));
    assert_eq!(isn(&mut a, t0 + Duration::from_micros(40), 80), first.wrapping_add(10));
    // Another four-tuple, or another secret: unrelated offsets.
    let other_port = isn(&mut a, t0, 81);
    let other_secret = isn(&mut stack(2), t0, 80);
    for x in [other_port, other_secret] {
        let d = x.wrapping_sub(first);
        assert!(d > 1_000_000 && d < u32::MAX - 1_000_000, "ISN offset {d} looks like the clock alone");
    }
}

#[test]
fn the_default_secret_is_random() {
    let mac = smoltcp::wire::EthernetAddress([2, 0, 0, 0, 0, 1]);
    let (a, b) = (StackConfig::new(mac).secret, StackConfig::new(mac).secret);
    assert_ne!(a, b, "two configurations drew the same secret");
    let r = StackConfig::random_secret().expect("getrandom");
    assert_ne!(r, a);
}
