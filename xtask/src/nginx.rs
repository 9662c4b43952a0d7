//! nginx as the kernel's reference file server in benchmarks: started inside a server
//! namespace with a generated configuration in a temporary directory, one worker pinned to
//! a CPU, no access log; stopped and cleaned up on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::Netns;
use crate::util::{cmd_ok, which, Daemon};

/// How nginx moves file bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NginxMode {
    /// `sendfile on`: page cache -> socket with no CPU copy.
    Sendfile,
    /// `sendfile on; aio threads; directio 4m;`: files of 4 MiB and more are read with
    /// `O_DIRECT` by a thread pool into 1 MiB output buffers (no page cache); smaller
    /// ones still go by sendfile.
    DirectAio,
}

impl NginxMode {
    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            NginxMode::Sendfile => "nginx sendfile",
            NginxMode::DirectAio => "nginx aio+directio",
        }
    }

    /// `tcp_nopush` stays off (nginx's default): with it, wrk over 16 KiB files on a veth
    /// pair here ran 2.7x slower (9,800 vs 26,500 requests/s), and our servers do not
    /// cork either.
    fn directives(self) -> &'static str {
        match self {
            NginxMode::Sendfile => "sendfile on;\n",
            NginxMode::DirectAio => "sendfile on;\n    aio threads;\n    directio 4m;\n    output_buffers 2 1m;\n",
        }
    }
}

/// A running nginx; stopped (SIGTERM to the master) and its directory removed on drop.
pub struct Nginx {
    daemon: Option<Daemon>,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx in `ns`'s server namespace serving `root` on `port` (all addresses),
    /// one worker, pinned to `cpu` when given (the master too, with `taskset`).
    pub fn start(ns: &Netns, root: &Path, port: u16, mode: NginxMode, cpu: Option<usize>) -> Result<Nginx> {
        Self::start_for(ns, root, port, mode, cpu, DEFAULT_CONNECTIONS)
    }

    /// Like [`Nginx::start`], for `connections` clients at once: above 1024, nginx's
    /// `worker_connections`, its descriptor limit and its listen backlog are raised to
    /// fit (and the server namespace's `net.core.somaxconn` with them).
    pub fn start_for(
        ns: &Netns,
        root: &Path,
        port: u16,
        mode: NginxMode,
        cpu: Option<usize>,
        connections: u32,
    ) -> Result<Nginx> {
        let bin = which("nginx").context("nginx is not installed: run `cargo xtask setup` (Debian package nginx)")?;
        let dir = PathBuf::from(format!("/var/tmp/zc-nginx-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // From here on, drop removes the directory whatever fails.
        let mut me = Nginx { daemon: None, dir };
        let conf = me.dir.join("nginx.conf");
        std::fs::write(&conf, config(&me.dir, root, port, mode, cpu, connections)).context("writing nginx.conf")?;
        if connections > DEFAULT_CONNECTIONS {
            let key = format!("net.core.somaxconn={}", backlog(connections));
            crate::util::run(ns.in_server("sysctl").args(["-qw", &key])).context("raising somaxconn")?;
        }
        let mut cmd = match cpu {
            Some(c) => {
                let mut cmd = ns.in_server("taskset");
                cmd.args(["-c", &c.to_string()]).arg(&bin);
                cmd
            }
            None => ns.in_server(&bin),
        };
        cmd.arg("-c").arg(&conf).arg("-e").arg(me.dir.join("error.log")).args(["-g", "daemon off;"]);
        me.daemon = Some(Daemon::spawn("nginx", &mut cmd)?);
        me.wait_listening(ns, port, Duration::from_secs(10))?;
        Ok(me)
    }

    /// The nginx version line (`nginx -v`), for reports.
    pub fn version() -> Option<String> {
        let out = Command::new("nginx").arg("-v").output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Some(text.strip_prefix("nginx version: ").unwrap_or(&text).to_owned())
    }

    fn wait_listening(&self, ns: &Netns, port: u16, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        let filter = format!("sport = :{port}");
        while Instant::now() < end {
            let out = cmd_ok(ns.in_server("ss").args(["-Hltn", &filter])).unwrap_or_default();
            if !out.trim().is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        bail!("nginx did not listen on port {port} within {timeout:?}; its error log:\n{log}")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Daemon's drop sends SIGTERM (nginx's fast shutdown) and waits, bounded.
        drop(self.daemon.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `worker_connections` of every benchmark that does not ask for more.
const DEFAULT_CONNECTIONS: u32 = 1024;

/// The listen backlog for `connections` clients connecting at once.
fn backlog(connections: u32) -> u32 {
    connections.clamp(511, 65535)
}

fn config(dir: &Path, root: &Path, port: u16, mode: NginxMode, cpu: Option<usize>, connections: u32) -> String {
    // Each client connection is a descriptor, plus the listener, logs and files.
    let (worker_connections, rlimit, listen) = if connections > DEFAULT_CONNECTIONS {
        let n = connections + 256;
        (n, format!("worker_rlimit_nofile {};\n", n + 1024), format!("{port} backlog={}", backlog(connections)))
    } else {
        (DEFAULT_CONNECTIONS, String::new(), port.to_string())
    };
    let affinity = match cpu {
        // One worker: a bit mask with bit `c` set, written as binary.
        Some(c) => format!("worker_cpu_affinity {:b};\n", 1u64 << c),
        None => String::new(),
    };
    let d = dir.display();
    format!(
        "# generated by cargo xtask for a benchmark run; removed when the run ends
worker_processes 1;
{affinity}{rlimit}user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections {worker_connections};
}}
http {{
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    {directives}
    server {{
        listen {listen};
        root {root};
        location / {{ }}
    }}
}}
",
        directives = mode.directives(),
        root = root.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_pins_one_worker_and_names_the_mode() {
        let c = config(Path::new("/tmp/x"), Path::new("/srv/www"), 8080, NginxMode::DirectAio, Some(1), 1024);
        assert!(c.contains("worker_processes 1;"));
        assert!(c.contains("worker_cpu_affinity 10;"));
        assert!(c.contains("aio threads;") && c.contains("directio 4m;"));
        assert!(c.contains("access_log off;"));
        assert!(c.contains("listen 8080;"));
        let c = config(Path::new("/tmp/x"), Path::new("/srv/www"), 80, NginxMode::Sendfile, None, 100);
        assert!(c.contains("sendfile on;") && !c.contains("aio") && !c.contains("worker_cpu_affinity"));
        assert!(c.contains("worker_connections 1024;") && !c.contains("rlimit") && c.contains("listen 80;"));
    }

    #[test]
    fn many_connections_raise_the_worker_limit_descriptors_and_backlog() {
        let c = config(Path::new("/tmp/x"), Path::new("/srv/www"), 80, NginxMode::Sendfile, None, 10_000);
        assert!(c.contains("worker_connections 10256;"), "{c}");
        assert!(c.contains("worker_rlimit_nofile 11280;"), "{c}");
        assert!(c.contains("listen 80 backlog=10000;"), "{c}");
    }
}
