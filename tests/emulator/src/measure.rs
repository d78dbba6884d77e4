//! Runs a child process to completion and reports what it cost: wall time, CPU time (user +
//! system, from `wait4`'s rusage) and peak resident set size.
//!
//! The peak RSS is the child's own high-water mark (`VmHWM` in `/proc/<pid>/status`, read
//! while it runs; it only grows, so the last reading is the peak up to then), not
//! `ru_maxrss`: when a process is spawned the way Rust spawns it (`posix_spawn`, a vfork),
//! the kernel records the *parent's* high-water mark into the child's `ru_maxrss` at `exec`,
//! so a big parent (this harness, holding a first sync's JSON report) would be charged to
//! every child it starts. `ru_maxrss` is used only for a child too short-lived to be read.
//!
//! Linux only. The benchmark harness uses it to measure the sync
//! process; it has nothing to do with the emulators themselves.

use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often the child is polled for exit (`wait4` with `WNOHANG`).
const POLL: Duration = Duration::from_millis(2);

/// A finished child and what it cost.
#[derive(Debug)]
pub struct Measured {
    /// How it ended (killed by SIGKILL after a timeout).
    pub status: ExitStatus,
    /// True when it ran past the timeout and was killed.
    pub timed_out: bool,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
    /// From spawn to exit.
    pub wall: Duration,
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub system: Duration,
    /// Peak resident set size in bytes (`ru_maxrss`).
    pub max_rss_bytes: u64,
}

impl Measured {
    /// User + system CPU time.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

/// Spawns `command` with stdout and stderr captured, waits for it to exit (killing it after
/// `timeout`), reaps it and returns its resource usage. Blocks the calling thread.
pub fn run(command: &mut Command, timeout: Duration) -> io::Result<Measured> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn()?;
    let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let mut timed_out = false;
    let mut peak_kib = 0u64;
    let (raw_status, usage) = loop {
        // Read before reaping: afterwards the pid may belong to someone else.
        if let Some(hwm) = vm_hwm_kib(pid) {
            peak_kib = peak_kib.max(hwm);
        }
        if let Some(done) = wait4_nohang(pid)? {
            break done;
        }
        if !timed_out && started.elapsed() > timeout {
            timed_out = true;
            // Not reaped yet, so the pid is still this child's.
            let _ = child.kill();
        }
        thread::sleep(POLL);
    };
    let wall = started.elapsed();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Measured {
        status: ExitStatus::from_raw(raw_status),
        timed_out,
        stdout,
        stderr,
        wall,
        user: usage.user,
        system: usage.system,
        max_rss_bytes: if peak_kib > 0 {
            peak_kib
        } else {
            usage.max_rss_kib
        }
        .saturating_mul(1024),
    })
}

/// `VmHWM` of a running process, in KiB (`None` once it has exited or when unreadable).
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The parts of `struct rusage` we report.
struct Usage {
    user: Duration,
    system: Duration,
    max_rss_kib: u64,
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

/// `wait4(pid, WNOHANG)`: `None` while the child runs; its wait status and usage once it exited
/// (and is reaped).
#[allow(unsafe_code)]
fn wait4_nohang(pid: libc::pid_t) -> io::Result<Option<(i32, Usage)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain integers and timevals, for which all-zero bytes are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers point to live, writable locals of the right types for the call.
    let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
    match reaped {
        0 => Ok(None),
        -1 => {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(err)
            }
        }
        _ => Ok(Some((
            status,
            Usage {
                user: timeval(usage.ru_utime),
                system: timeval(usage.ru_stime),
                max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
            },
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child() {
        // A shell that burns a little CPU, writes to both streams and exits 3.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo out; echo err >&2; exit 3",
        ]);
        let m = run(&mut cmd, Duration::from_secs(30)).expect("runs");
        assert_eq!(m.status.code(), Some(3));
        assert!(!m.timed_out);
        assert_eq!(
            (m.stdout.as_slice(), m.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert!(m.cpu() > Duration::ZERO, "{m:?}");
        assert!(m.max_rss_bytes > 100 * 1024, "{m:?}");
        assert!(m.wall >= m.cpu() / 2, "{m:?}");
    }

    #[test]
    fn a_big_parent_is_not_charged_to_its_child() {
        // Make this process's own high-water mark large, then measure a tiny child.
        let ballast: Vec<u8> = vec![1; 200 << 20];
        std::hint::black_box(&ballast);
        let mut cmd = Command::new("sleep");
        cmd.arg("0.3");
        let m = run(&mut cmd, Duration::from_secs(30)).expect("runs");
        drop(ballast);
        assert!(m.max_rss_bytes < 50 << 20, "{} bytes", m.max_rss_bytes);
    }

    #[test]
    fn kills_after_the_timeout() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let m = run(&mut cmd, Duration::from_millis(100)).expect("runs");
        assert!(m.timed_out);
        assert_eq!(m.status.signal(), Some(9));
        assert!(m.wall < Duration::from_secs(10));
    }
}
