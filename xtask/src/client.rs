//! Programs the tests and benchmarks run inside a namespace (`ip netns exec NS xtask
//! internal ...`): kernel-socket clients and the kernel echo server the AF_XDP echo is
//! measured against.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A seeded xorshift64* stream: the same bytes for the same seed, on both ends.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    /// A stream from `seed` (0 is mapped to a non-zero state).
    pub fn new(seed: u64) -> Self {
        Prng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Writes `size` bytes of the stream to a new file at `path`.
    pub fn write_file(&mut self, path: &std::path::Path, size: u64) -> Result<()> {
        use std::io::Write;
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut f = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            self.fill(&mut buf[..n]);
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.flush()?;
        Ok(())
    }

    /// Fills `buf`.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Sends `count` datagrams of sizes cycling 1..=max_size, one at a time, and checks that
/// each comes back byte-exact. Fails on the first loss or mismatch.
pub fn udp_check(server: SocketAddr, count: u32, max_size: usize, seed: u64) -> Result<()> {
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut rng = Prng::new(seed);
    let mut out = vec![0u8; max_size];
    let mut back = vec![0u8; max_size + 64];
    let start = Instant::now();
    for i in 0..count {
        let size = 1 + (i as usize % max_size);
        rng.fill(&mut out[..size]);
        sock.send(&out[..size]).with_context(|| format!("send #{i} ({size} B)"))?;
        let n = match sock.recv(&mut back) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                bail!("datagram #{i} ({size} B) got no reply within 2 s ({i} came back before it)")
            }
            Err(e) => return Err(e).context(format!("recv #{i}")),
        };
        if back[..n] != out[..size] {
            bail!("datagram #{i}: sent {size} B, got {n} B back that differ");
        }
    }
    println!("udp-check: {count} datagrams of 1..={max_size} B echoed byte-exact in {:.2?}", start.elapsed());
    Ok(())
}

/// Keeps `window` datagrams of `size` bytes in flight for `secs` seconds and prints the
/// reply rate as `RESULT pps=<rate> lost=<n>`.
pub fn udp_flood(server: SocketAddr, size: usize, secs: f64, window: u32) -> Result<()> {
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    let buf = vec![0x5au8; size];
    let mut back = vec![0u8; size + 64];
    let mut inflight = 0u32;
    let mut got = 0u64;
    let mut lost = 0u64;
    // Warm up: one round trip so ARP and caches are settled.
    sock.send(&buf)?;
    let _ = sock.recv(&mut back);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        while inflight < window {
            sock.send(&buf)?;
            inflight += 1;
        }
        match sock.recv(&mut back) {
            Ok(_) => {
                got += 1;
                inflight -= 1;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Whatever is outstanding after 20 ms of silence is lost; refill the window.
                lost += u64::from(inflight);
                inflight = 0;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let el = start.elapsed().as_secs_f64();
    println!("RESULT pps={:.0} lost={lost}", got as f64 / el);
    Ok(())
}

/// A plain kernel UDP echo server: the baseline of `bench echo`.
pub fn udp_kernel_echo(port: u16, secs: u64) -> Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", port))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    println!("ready");
    let end = Instant::now() + Duration::from_secs(secs);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = sock.send_to(&buf[..n], from);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Connects to a port nobody listens on and expects the kernel's RST (ECONNREFUSED).
pub fn tcp_refused(server: SocketAddr) -> Result<()> {
    match TcpStream::connect_timeout(&server, Duration::from_secs(3)) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            println!("tcp-refused: {server} answered the SYN with RST");
            Ok(())
        }
        Err(e) => bail!("connect to {server}: expected a RST (connection refused), got {e}"),
        Ok(_) => bail!("connect to {server} succeeded; expected a RST"),
    }
}

#[cfg(test)]
mod tests {
    use super::Prng;

    #[test]
    fn prng_is_deterministic_and_not_constant() {
        let (mut a, mut b) = (Prng::new(7), Prng::new(7));
        let (mut x, mut y) = ([0u8; 37], [0u8; 37]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert!(x.iter().any(|&v| v != x[0]));
        assert_ne!(Prng::new(8).next_u64(), Prng::new(7).next_u64());
    }
}
