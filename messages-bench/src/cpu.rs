//! CPU time per thread group, read from Linux's `/proc/<pid>/task/<tid>/schedstat`
//! (nanoseconds on a CPU, per thread).
//!
//! Server and clients run in one process. The clients and the axum servers run on two
//! tokio runtimes whose worker threads are named [`CLIENT_THREADS`] and
//! [`SERVER_THREADS`]. An actix-web server runs its `actix_rt::System` on a thread named
//! [`SERVER_THREADS`] too, and its workers and acceptor on threads actix names itself
//! (`actix-rt|system:N|arbiter:M`, `actix-server acceptor`; Linux keeps 15 bytes of a
//! name), which begin with [`ACTIX_THREADS`]. Summing the threads by name splits the
//! process's CPU time between server and clients. Another process (the `redis-server` of
//! the Redis rows) is summed over all its threads. Elsewhere than on Linux there are no
//! figures (`None`).

use std::fs;
use std::path::Path;

/// Name of the server runtime's threads.
pub const SERVER_THREADS: &str = "bench-server";
/// Name of the client runtime's threads.
pub const CLIENT_THREADS: &str = "bench-client";
/// How the names of actix-web's own server threads begin (its workers' arbiters and its
/// acceptor): counted as server threads.
pub const ACTIX_THREADS: &str = "actix-";

/// Whether a thread of this name does the server's work.
pub fn is_server_thread(name: &str) -> bool {
    name == SERVER_THREADS || name.starts_with(ACTIX_THREADS)
}

/// CPU nanoseconds used so far by the server and the client threads of this process, and
/// by one other process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Threads named [`SERVER_THREADS`] or actix-web's ([`is_server_thread`]).
    pub server_ns: u64,
    /// Threads named [`CLIENT_THREADS`].
    pub client_ns: u64,
    /// All threads of the other process, if one was asked for.
    pub other_ns: Option<u64>,
}

impl CpuTimes {
    /// The times now; `None` where `/proc` does not tell.
    pub fn now(other_pid: Option<u32>) -> Option<CpuTimes> {
        let mut times = CpuTimes::default();
        for (name, ns) in threads(Path::new("/proc/self/task"))? {
            if is_server_thread(&name) {
                times.server_ns += ns;
            } else if name == CLIENT_THREADS {
                times.client_ns += ns;
            }
        }
        if let Some(pid) = other_pid {
            let task = Path::new("/proc").join(pid.to_string()).join("task");
            times.other_ns = Some(threads(&task)?.iter().map(|(_, ns)| ns).sum());
        }
        Some(times)
    }

    /// What was used between `earlier` and `self`.
    #[must_use]
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            server_ns: self.server_ns.saturating_sub(earlier.server_ns),
            client_ns: self.client_ns.saturating_sub(earlier.client_ns),
            other_ns: self
                .other_ns
                .zip(earlier.other_ns)
                .map(|(now, then)| now.saturating_sub(then)),
        }
    }
}

/// `(thread name, CPU ns)` of every thread listed under a `task` directory. Threads that
/// exit while it is read are skipped.
fn threads(task_dir: &Path) -> Option<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(task_dir).ok()?.flatten() {
        let dir = entry.path();
        let (Ok(name), Ok(stat)) = (
            fs::read_to_string(dir.join("comm")),
            fs::read_to_string(dir.join("schedstat")),
        ) else {
            continue;
        };
        // schedstat: "<ns on cpu> <ns waiting> <timeslices>"
        let Some(ns) = stat.split_whitespace().next().and_then(|n| n.parse().ok()) else {
            continue;
        };
        out.push((name.trim_end().to_owned(), ns));
    }
    Some(out)
}

/// A two-thread tokio runtime whose threads are named `name` ([`SERVER_THREADS`] or
/// [`CLIENT_THREADS`]), so their CPU time is counted on the right side.
///
/// # Errors
/// The runtime's I/O driver could not be set up.
pub fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn named_threads_are_counted_apart() {
        if !Path::new("/proc/self/task").exists() {
            return; // not Linux: no figures, nothing to check
        }
        let spin = |name: &str| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(|| {
                    let started = std::time::Instant::now();
                    let mut x = 0u64;
                    while started.elapsed() < std::time::Duration::from_millis(30) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                })
                .unwrap()
        };
        let before = CpuTimes::now(None).unwrap();
        let worker = spin(SERVER_THREADS);
        // Read while the thread is alive: an exited thread leaves the task list.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let during = CpuTimes::now(Some(std::process::id())).unwrap();
        worker.join().unwrap();
        let used = during.since(before);
        assert!(used.server_ns > 0, "{used:?}");
        // An actix worker's thread counts as the server's too.
        let before = CpuTimes::now(None).unwrap();
        let actix = spin("actix-rt|system:0|arbiter:1");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let with_actix = CpuTimes::now(None).unwrap().since(before);
        actix.join().unwrap();
        assert!(with_actix.server_ns > 0, "{with_actix:?}");
        assert_eq!(with_actix.client_ns, 0);
        assert_eq!(used.client_ns, 0);
        assert_eq!(used.other_ns, None);
        assert!(during.other_ns.unwrap() >= used.server_ns);
    }
}
