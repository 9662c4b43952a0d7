//! Small helpers for running commands and children that must not outlive the run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Runs a command with inherited output; fails with its status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout, or `None` if it failed.
pub fn cmd_ok(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command, returns (success, stdout + stderr).
pub fn output(cmd: &mut Command) -> Result<(bool, String)> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// Where `prog` is on PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(prog)).find(|p| p.is_file())
}

/// The workspace root (xtask's parent).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// The workspace's target directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// A child process that is killed (SIGTERM, then SIGKILL) when dropped, and whose stdout
/// lines are collected on a thread so the test can wait for a line.
pub struct Daemon {
    child: Option<Child>,
    name: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    /// Spawns `cmd` with piped stdout (stderr inherited, so its logs show).
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Daemon> {
        let mut child = cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("spawning {name}"))?;
        let stdout: ChildStdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Daemon { child: Some(child), name: name.into(), lines: rx, seen: Vec::new() })
    }

    /// Waits for a stdout line equal to `want`, failing after `timeout` or if it exits.
    pub fn wait_line(&mut self, want: &str, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let hit = line.trim() == want;
                    self.seen.push(line);
                    if hit {
                        return Ok(());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().and_then(|c| c.wait().ok());
                    bail!(
                        "{} exited before printing {want:?} ({status:?}); its output:\n{}",
                        self.name,
                        self.seen.join("\n")
                    );
                }
            }
            if Instant::now() >= end {
                bail!("{} did not print {want:?} within {timeout:?}; its output:\n{}", self.name, self.seen.join("\n"));
            }
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Lines printed so far (after `wait_line`).
    pub fn lines_so_far(&self) -> &[String] {
        &self.seen
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns its stdout since the start
    /// and whether it exited successfully.
    pub fn terminate(&mut self, timeout: Duration) -> Result<(bool, String)> {
        let Some(mut child) = self.child.take() else { bail!("{} already stopped", self.name) };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF; gather what it read.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        Ok((status.success(), self.seen.join("\n")))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
