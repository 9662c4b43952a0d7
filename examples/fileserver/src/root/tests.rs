//! Root confinement and what may be opened beneath it (no root privileges needed).

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

use super::*;

/// A directory under the temp dir, removed on drop.
struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tree(tag: &str) -> (Tree, PathBuf) {
    let base = std::env::temp_dir().join(format!("fs-root-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    (Tree(base), root)
}

fn fifo(path: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, path, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
}

/// Resolves on another thread, so a resolve that blocks fails the test instead of hanging it.
fn resolve_within(root: &Arc<Root>, path: &str) -> Result<u64, Status> {
    let (tx, rx) = mpsc::channel();
    let (r, p) = (root.clone(), path.to_owned());
    std::thread::spawn(move || {
        let _ = tx.send(r.resolve(&p, OFlags::empty()).map(|o| o.v.size));
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("resolving {path} blocked"))
}

#[test]
fn nothing_outside_the_root_is_reachable() {
    let (base, root) = tree("out");
    std::fs::write(base.0.join("secret"), b"no").unwrap();
    std::fs::write(root.join("a.txt"), b"yes").unwrap();
    std::fs::write(root.join("sub/index.html"), b"index").unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let _ = std::os::unix::fs::symlink("/etc", root.join("etc-link"));
    let _ = std::os::unix::fs::symlink("../secret", root.join("up-link"));
    let _ = std::os::unix::fs::symlink("a.txt", root.join("in-link"));
    let r = Root::open(&root).unwrap();

    assert_eq!(r.resolve("/a.txt", OFlags::empty()).unwrap().v.size, 3);
    assert_eq!(r.resolve("/sub/../a.txt", OFlags::empty()).unwrap().v.size, 3, ".. inside the root is fine");
    assert_eq!(r.resolve("/in-link", OFlags::empty()).unwrap().v.size, 3, "symlink inside the root");
    assert_eq!(r.resolve("/sub/", OFlags::empty()).unwrap().path, "/sub/index.html");
    for bad in [
        "/../secret",
        "/sub/../../secret",
        "/etc-link/passwd",
        "/up-link",
        "/../../../../etc/passwd",
        "/empty",
        "/nope",
    ] {
        assert_eq!(r.resolve(bad, OFlags::empty()).unwrap_err(), Status::NotFound, "{bad}");
    }
}

#[test]
fn a_fifo_a_socket_or_a_special_index_is_refused_without_blocking() {
    let (_base, root) = tree("fifo");
    fifo(&root.join("fifo"));
    fifo(&root.join("sub/index.html"));
    let _ = std::os::unix::fs::symlink("fifo", root.join("fifo-link"));
    let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    std::fs::write(root.join("ok"), b"fine").unwrap();
    let r = Arc::new(Root::open(&root).unwrap());

    // Opening a FIFO for reading waits for a writer: before its type is checked, this hung.
    for special in ["/fifo", "/fifo-link", "/sock", "/sub/"] {
        assert_eq!(resolve_within(&r, special), Err(Status::Forbidden), "{special}");
    }
    assert_eq!(r.counters().special.load(Ordering::Relaxed), 4, "each refusal counted");
    assert_eq!(resolve_within(&r, "/ok"), Ok(4), "regular files are still served");
}

#[test]
fn an_opened_file_is_the_inode_that_was_checked_and_never_blocks() {
    let (_base, root) = tree("reopen");
    std::fs::write(root.join("f"), b"12345").unwrap();
    let r = Root::open(&root).unwrap();
    let o = r.resolve("/f", OFlags::empty()).unwrap();
    let flags = rustix::fs::fcntl_getfl(&o.file).unwrap();
    assert!(flags.contains(OFlags::NONBLOCK), "{flags:?}");
    assert_eq!(flags & OFlags::RWMODE, OFlags::RDONLY);
    let st = rustix::fs::fstat(&o.file).unwrap();
    assert_eq!(st.st_ino, o.v.ino);
}

#[test]
fn dotfiles_are_hidden_unless_allowed() {
    let (_base, root) = tree("dot");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), b"[core]").unwrap();
    std::fs::write(root.join(".env"), b"KEY=1").unwrap();
    std::fs::write(root.join("sub/.htpasswd"), b"x:y").unwrap();
    std::fs::write(root.join("a.b"), b"ab").unwrap();
    let deny = Root::open(&root).unwrap();
    for p in ["/.env", "/.git/config", "/sub/.htpasswd", "/sub/../.env"] {
        assert_eq!(deny.resolve(p, OFlags::empty()).unwrap_err(), Status::NotFound, "{p}");
    }
    assert_eq!(deny.counters().dotfiles.load(Ordering::Relaxed), 4);
    assert_eq!(deny.resolve("/a.b", OFlags::empty()).unwrap().v.size, 2, "a dot inside a name is fine");
    assert_eq!(deny.resolve("/sub/../a.b", OFlags::empty()).unwrap().v.size, 2, "so are . and ..");

    let allow = Root::with_policy(&root, Dotfiles::Allow).unwrap();
    assert_eq!(allow.resolve("/.env", OFlags::empty()).unwrap().v.size, 5);
    assert_eq!(allow.resolve("/.git/config", OFlags::empty()).unwrap().v.size, 6);
}
