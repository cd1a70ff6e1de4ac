//! Process facts from `/proc` and the file-descriptor limit.

use std::time::{Duration, Instant};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User and system CPU seconds of a process (`utime` and `stime` of `/proc/<pid>/stat`), `None`
/// when the process is gone. `pid` `None` is this process.
pub fn cpu_times(pid: Option<u32>) -> Option<(f64, f64)> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let tck = clk_tck();
    Some((utime / tck, stime / tck))
}

/// User + system CPU seconds of a process (`utime + stime` of `/proc/<pid>/stat`), `None` when
/// the process is gone. `pid` `None` is this process.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    cpu_times(pid).map(|(u, s)| u + s)
}

/// CPU seconds of a process and of its children, living or gone (`utime + stime + cutime +
/// cstime` of it and of every process whose parent it is), `None` when it is gone. Meant for
/// PostgreSQL's postmaster: its backends are its children, and the CPU of those that exit
/// moves into its `cutime`/`cstime` when it reaps them, so a difference of two readings counts
/// every backend.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    // (parent, user + system + children's user + system) in clock ticks
    let read = |path: &std::path::Path| -> Option<(u32, f64)> {
        let stat = std::fs::read_to_string(path).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
        let ppid = fields.get(1)?.parse().ok()?;
        let mut ticks = 0.0;
        for i in 11..=14 {
            ticks += fields.get(i)?.parse::<f64>().ok()?;
        }
        Some((ppid, ticks))
    };
    let (_, mut ticks) = read(std::path::Path::new(&format!("/proc/{pid}/stat")))?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        if let Some((ppid, t)) = read(&entry.path().join("stat")) {
            if ppid == pid {
                ticks += t;
            }
        }
    }
    Some(ticks / clk_tck())
}

/// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Sockets a process holds open (entries of `/proc/<pid>/fd` that link to `socket:[…]`),
/// `None` when the directory cannot be read.
pub fn socket_fds(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.as_os_str().as_encoded_bytes().starts_with(b"socket:"))
            .count() as u64,
    )
}

/// Raises RLIMIT_NOFILE as far as allowed (the hard limit too when privileged, up to
/// `/proc/sys/fs/nr_open`); returns the soft limit now in force.
pub fn raise_nofile() -> u64 {
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let want = nr_open.min(1 << 20) as libc::rlim_t;
        let high = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &high) == 0 {
            return want as u64;
        }
        let soft = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return lim.rlim_max;
        }
        lim.rlim_cur
    }
}

/// CPU used by a process and by this load generator over a span of wall time.
pub struct CpuMeter {
    server: Option<u32>,
    start: Instant,
    /// The server's (user, system) seconds at the start.
    server0: Option<(f64, f64)>,
    self0: f64,
}

/// What a [`CpuMeter`] measured.
#[derive(Clone, Copy, Debug)]
pub struct CpuSpan {
    /// Wall time.
    pub wall: Duration,
    /// Server CPU seconds, user + system (None without a server pid).
    pub server: Option<f64>,
    /// Server user-space CPU seconds (`utime`; None without a server pid).
    pub server_user: Option<f64>,
    /// Server kernel CPU seconds (`stime`; None without a server pid).
    pub server_sys: Option<f64>,
    /// This process's CPU seconds.
    pub loadgen: f64,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start(server: Option<u32>) -> Self {
        CpuMeter {
            server,
            start: Instant::now(),
            server0: server.and_then(|p| cpu_times(Some(p))),
            self0: cpu_seconds(None).unwrap_or(0.0),
        }
    }

    /// The span so far.
    pub fn stop(&self) -> CpuSpan {
        let (user, sys) = match (self.server0, self.server.and_then(|p| cpu_times(Some(p)))) {
            (Some((u0, s0)), Some((u1, s1))) => (Some(u1 - u0), Some(s1 - s0)),
            _ => (None, None),
        };
        CpuSpan {
            wall: self.start.elapsed(),
            server: user.zip(sys).map(|(u, s)| u + s),
            server_user: user,
            server_sys: sys,
            loadgen: cpu_seconds(None).unwrap_or(0.0) - self.self0,
        }
    }
}

/// Machine facts for the report: nproc, memory, kernel, CPU model.
pub fn machine() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    serde_json::json!({
        // SAFETY: sysconf has no preconditions. (Not available_parallelism: we may be pinned.)
        "nproc": unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) },
        "mem_total_kib": mem_kib,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "cpu_model": cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_add_up_to_the_total() {
        let (user, sys) = cpu_times(None).expect("own /proc/self/stat");
        assert!(user >= 0.0 && sys >= 0.0);
        let total = cpu_seconds(None).unwrap();
        // the total is read a moment later: it may only have grown
        assert!(total + 1e-9 >= user + sys, "{total} < {user} + {sys}");
        let span = CpuMeter::start(Some(std::process::id())).stop();
        let (u, s) = (span.server_user.unwrap(), span.server_sys.unwrap());
        assert!((span.server.unwrap() - (u + s)).abs() < 1e-9);
        assert!(CpuMeter::start(None).stop().server_user.is_none());
    }

    #[test]
    fn a_process_tree_counts_at_least_the_process() {
        let own = cpu_seconds(None).unwrap();
        let tree = tree_cpu_seconds(std::process::id()).expect("own stat");
        assert!(tree + 1e-9 >= own, "{tree} < {own}");
        assert!(tree_cpu_seconds(u32::MAX).is_none());
    }
}
