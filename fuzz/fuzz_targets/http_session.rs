//! The file server's HTTP session end to end: request bytes from the fuzzer go to the
//! AF_XDP backend's core over the simulated wire (`fileserver::sim`: our stack as the
//! client, real io_uring reads of real files), on one connection that the client then
//! closes. Invariants:
//!
//! - every response is well-formed, with a `Content-Length` its body matches (a HEAD or
//!   304 has none), and responses arrive in request order;
//! - a 200 carries the whole file the request named, a 206 exactly the bytes its
//!   `Content-Range` names;
//! - nothing from outside the root is ever served (a file beside the root holds a marker
//!   that no response may contain);
//! - once the connection is over and the timers have run, the server holds no connection
//!   and every pool frame is free again.
#![no_main]

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use fileserver::sim::{responses, SimConfig, SimNet};
use libfuzzer_sys::fuzz_target;
use stack::Duration;

const MARKER: &[u8] = b"SECRET-OUTSIDE-THE-ROOT-7f3a";

struct World {
    _dir: PathBuf,
    root: PathBuf,
    net: SimNet,
    frames_free: u32,
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    vec![
        ("index.html", b"<html>index</html>\n".to_vec()),
        ("a.txt", b"hello, world\n".to_vec()),
        ("empty", Vec::new()),
        ("dir/index.html", b"<p>dir</p>\n".to_vec()),
        ("dir/b.bin", (0..5000u32).map(|i| i as u8).collect()),
        (".hidden", b"dotfile\n".to_vec()),
        ("big.bin", big),
    ]
}

fn world() -> World {
    let dir = std::env::temp_dir().join(format!("fuzz-http-{}", std::process::id()));
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("dir")).expect("temp root");
    for (name, bytes) in files() {
        std::fs::write(root.join(name), bytes).expect("writing a file");
    }
    std::fs::write(dir.join("secret"), MARKER).expect("writing the outside file");
    let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("link-out"));
    let net = SimNet::new(&root, &SimConfig::default()).expect("the simulated server");
    let frames_free = net.link.pool.stats().frames_free;
    World { _dir: dir, root, net, frames_free }
}

/// The methods of the requests in `data`, in order, as the server will see them, as far as
/// httparse reads them: `true` for HEAD. Bodies are skipped by their Content-Length.
fn heads(mut data: &[u8]) -> Vec<bool> {
    let mut out = Vec::new();
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Request::new(&mut hs);
        let Ok(httparse::Status::Complete(n)) = r.parse(data) else { break };
        out.push(r.method == Some("HEAD"));
        let len: usize = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
            .unwrap_or(0);
        match data.get(n + len..) {
            Some(rest) => data = rest,
            None => break,
        }
    }
    out
}

fn check_body(root: &Path, status: u16, path: Option<&str>, r: &fileserver::sim::Response) {
    assert!(!r.body.windows(MARKER.len()).any(|w| w == MARKER), "a response served a file from outside the root");
    let Some(path) = path else { return };
    let rel = path.split('?').next().unwrap_or("").trim_start_matches('/');
    let Ok(file) = std::fs::read(root.join(if rel.is_empty() { "index.html" } else { rel })) else { return };
    match status {
        200 if !r.body.is_empty() => assert_eq!(r.body, file, "200 for {path} is not the file"),
        206 => {
            let cr = r.header("content-range").expect("206 without Content-Range");
            let spec = cr.strip_prefix("bytes ").expect("Content-Range unit");
            let (span, total) = spec.split_once('/').expect("Content-Range total");
            assert_eq!(total.parse::<usize>().ok(), Some(file.len()), "Content-Range total for {path}");
            let (a, b) = span.split_once('-').expect("Content-Range span");
            let (a, b): (usize, usize) = (a.parse().expect("start"), b.parse().expect("end"));
            assert!(a <= b && b < file.len(), "Content-Range {cr} out of the file");
            assert_eq!(r.body, file[a..=b], "206 body for {path} {cr}");
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 64 * 1024 {
        return;
    }
    WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let world = w.get_or_insert_with(world);
        let net = &mut world.net;
        let c = net.connect();
        let sent = net.send(c, data);
        net.close(c);
        let done = net.run_until(Duration::from_secs(120), |n| n.conns[c].ended);
        let got = std::mem::take(&mut net.conns[c].got);
        assert!(done || !sent, "the connection did not end: {}", net.describe());
        let head = heads(data);
        // Requests httparse reads are the ones the server answers in order; after the
        // first it cannot read, the server answers 400 (or nothing) and closes.
        let rs = responses(&got, &head).unwrap_or_else(|e| panic!("malformed responses: {e}\n{got:02x?}"));
        let mut paths = Vec::new();
        {
            let mut rest = data;
            loop {
                let mut hs = [httparse::EMPTY_HEADER; 64];
                let mut r = httparse::Request::new(&mut hs);
                let Ok(httparse::Status::Complete(n)) = r.parse(rest) else { break };
                paths.push(r.path.map(String::from));
                let len: usize = r
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                match rest.get(n + len..) {
                    Some(r) => rest = r,
                    None => break,
                }
            }
        }
        for (i, r) in rs.iter().enumerate() {
            let path = paths.get(i).cloned().flatten();
            // Only plain paths are compared with the file (percent-encoding is the
            // server's to decode).
            let plain = path.as_deref().filter(|p| p.starts_with('/') && !p.contains(['%', '\\']));
            check_body(&world.root, r.status, plain, r);
        }
        // Let TIME-WAIT and every timer run out; then nothing may be held.
        net.run_for(Duration::from_secs(5));
        net.conns.clear();
        assert_eq!(net.core.open_connections(), 0, "a connection outlived its client: {}", net.describe());
        assert_eq!(net.link.pool.stats().frames_free, world.frames_free, "pool frames leaked: {}", net.describe());
    });
});
