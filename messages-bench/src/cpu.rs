//! CPU time per thread group, read from Linux's `/proc/<pid>/task/<tid>/schedstat`
//! (nanoseconds on a CPU, per thread).
//!
//! Server and clients run in one process. The clients and the axum servers run on two
//! tokio runtimes whose worker threads are named [`CLIENT_THREADS`] and
//! [`SERVER_THREADS`]. An actix-web server runs its `actix_rt::System` on a thread named
//! [`SERVER_THREADS`] too, and its workers and acceptor on threads actix names itself
//! (`actix-rt|system:N|arbiter:M`, `actix-server acceptor`; Linux keeps 15 bytes of a
//! name), which begin with [`ACTIX_THREADS`]. Summing the threads by name splits the
//! process's CPU time between server and clients. A row's database ([`Database`]) is
//! counted apart: the `redis-server` process over all its threads, PostgreSQL's
//! postmaster with every backend it started (those that exited included), or the threads
//! of this process on which sqlx runs SQLite ([`SQLITE_THREADS`]). Elsewhere than on Linux
//! there are no figures (`None`).

use std::fs;
use std::path::Path;

/// Name of the server runtime's threads.
pub const SERVER_THREADS: &str = "bench-server";
/// Name of the client runtime's threads.
pub const CLIENT_THREADS: &str = "bench-client";
/// How the names of actix-web's own server threads begin (its workers' arbiters and its
/// acceptor): counted as server threads.
pub const ACTIX_THREADS: &str = "actix-";

/// How the names of sqlx's SQLite worker threads begin (`sqlx-sqlite-worker-N`, cut to
/// 15 bytes by Linux): sqlx runs each SQLite connection on a thread of its own, where
/// SQLite does its work. Counted as the database's, not the server's.
pub const SQLITE_THREADS: &str = "sqlx-sqlite-wor";

/// Linux's `USER_HZ`: the clock ticks per second of the times in `/proc/<pid>/stat`, 100
/// on every architecture Linux exports them for.
const TICKS_PER_S: u64 = 100;

/// Where a row's database spends its CPU time, to be counted beside the server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Database {
    /// No database of its own (in-process memory, cookies, nothing).
    #[default]
    None,
    /// Every thread of one process: `redis-server`.
    Process(u32),
    /// A PostgreSQL server, by its postmaster's pid: the postmaster's threads, those of
    /// every process whose parent it is (backends, WAL writer, checkpointer, autovacuum),
    /// and the time of those it started and reaped (`cutime` + `cstime` of its
    /// `/proc/<pid>/stat`, in ticks of 10 ms), so a backend that exits within a measured
    /// window is not lost.
    ProcessTree(u32),
    /// The threads of this process whose names begin with [`SQLITE_THREADS`].
    SqliteThreads,
}

/// Whether a thread of this name does the server's work.
pub fn is_server_thread(name: &str) -> bool {
    name == SERVER_THREADS || name.starts_with(ACTIX_THREADS)
}

/// CPU nanoseconds used so far by the server and the client threads of this process, and
/// by a row's database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Threads named [`SERVER_THREADS`] or actix-web's ([`is_server_thread`]).
    pub server_ns: u64,
    /// Threads named [`CLIENT_THREADS`].
    pub client_ns: u64,
    /// The database's ([`Database`]), if one was asked for.
    pub db_ns: Option<u64>,
}

impl CpuTimes {
    /// The times now; `None` where `/proc` does not tell.
    pub fn now(database: Database) -> Option<CpuTimes> {
        let mut times = CpuTimes::default();
        let mut sqlite_ns = 0;
        for (name, ns) in threads(Path::new("/proc/self/task"))? {
            if is_server_thread(&name) {
                times.server_ns += ns;
            } else if name == CLIENT_THREADS {
                times.client_ns += ns;
            } else if name.starts_with(SQLITE_THREADS) {
                sqlite_ns += ns;
            }
        }
        times.db_ns = match database {
            Database::None => None,
            Database::Process(pid) => Some(process_ns(pid)?),
            Database::ProcessTree(pid) => Some(tree_ns(pid)?),
            Database::SqliteThreads => Some(sqlite_ns),
        };
        Some(times)
    }

    /// What was used between `earlier` and `self`.
    #[must_use]
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            server_ns: self.server_ns.saturating_sub(earlier.server_ns),
            client_ns: self.client_ns.saturating_sub(earlier.client_ns),
            db_ns: self
                .db_ns
                .zip(earlier.db_ns)
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

/// CPU ns of every thread of process `pid`.
fn process_ns(pid: u32) -> Option<u64> {
    let task = Path::new("/proc").join(pid.to_string()).join("task");
    Some(threads(&task)?.iter().map(|(_, ns)| ns).sum())
}

/// `(parent pid, cutime + cstime in ticks)` from the text of a `/proc/<pid>/stat`.
fn parent_and_reaped(stat: &str) -> Option<(u32, u64)> {
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so the fields
    // are counted after the last ')'; from there ppid is the 2nd, cutime the 14th and
    // cstime the 15th (fields 4, 16 and 17 of proc(5)).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let children_user: u64 = fields.get(13)?.parse().ok()?;
    let children_system: u64 = fields.get(14)?.parse().ok()?;
    Some((parent, children_user + children_system))
}

/// CPU ns of process `root`, of every live process whose parent it is, and of those it
/// reaped ([`Database::ProcessTree`]).
fn tree_ns(root: u32) -> Option<u64> {
    let stat = fs::read_to_string(Path::new("/proc").join(root.to_string()).join("stat")).ok()?;
    let (_, reaped_ticks) = parent_and_reaped(&stat)?;
    let mut ns = process_ns(root)? + reaped_ticks * (1_000_000_000 / TICKS_PER_S);
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // A process that exits while it is read is skipped (its parent reaps its time).
        let is_child = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| parent_and_reaped(&stat))
            .is_some_and(|(parent, _)| parent == root);
        if is_child {
            ns += process_ns(pid).unwrap_or(0);
        }
    }
    Some(ns)
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

    /// Runs a thread named `name` that spins until its CPU time shows in `pick` of the
    /// times read with `database` (a loaded machine may run it late; the figures must be
    /// read while it lives, as an exited thread leaves the task list). Returns what was
    /// used meanwhile, and the last reading.
    fn spin_until_seen(
        name: &str,
        database: Database,
        pick: fn(&CpuTimes) -> u64,
    ) -> (CpuTimes, CpuTimes) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};

        let before = CpuTimes::now(database).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                })
                .unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let (used, during) = loop {
            std::thread::sleep(Duration::from_millis(10));
            let during = CpuTimes::now(database).unwrap();
            let used = during.since(before);
            if pick(&used) > 0 || Instant::now() > deadline {
                break (used, during);
            }
        };
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
        (used, during)
    }

    #[test]
    fn named_threads_are_counted_apart() {
        if !Path::new("/proc/self/task").exists() {
            return; // not Linux: no figures, nothing to check
        }
        let me = Database::Process(std::process::id());
        let (used, during) = spin_until_seen(SERVER_THREADS, me, |t| t.server_ns);
        assert!(used.server_ns > 0, "{used:?}");
        assert_eq!(used.client_ns, 0);
        assert!(during.db_ns.unwrap() >= used.server_ns);
        // An actix worker's thread counts as the server's too.
        let (with_actix, _) = spin_until_seen("actix-rt|system:0|arbiter:1", Database::None, |t| {
            t.server_ns
        });
        assert!(with_actix.server_ns > 0, "{with_actix:?}");
        assert_eq!(with_actix.client_ns, 0);
        assert_eq!(with_actix.db_ns, None);
        // A SQLite worker's thread counts as the database's, and only when asked for.
        let (with_sqlite, _) =
            spin_until_seen("sqlx-sqlite-worker-0", Database::SqliteThreads, |t| {
                t.db_ns.unwrap_or(0)
            });
        assert!(with_sqlite.db_ns.unwrap() > 0, "{with_sqlite:?}");
        assert_eq!((with_sqlite.server_ns, with_sqlite.client_ns), (0, 0));
    }

    #[test]
    fn stat_lines_give_parent_and_reaped_ticks() {
        // proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime ...
        let stat = "42 (postgres: a) b) S 7 42 42 0 -1 4194560 10 20 0 0 3 4 150 25 20 0 1 0";
        assert_eq!(parent_and_reaped(stat), Some((7, 175)));
        assert_eq!(parent_and_reaped("42 (x) S"), None);
    }

    #[test]
    fn a_process_tree_counts_its_children() {
        if !Path::new("/proc/self/task").exists() {
            return;
        }
        // This process is the root; a child that spins a little, then waits (as the same
        // process), is counted once it has run.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 30",
            ])
            .spawn()
            .unwrap();
        let me = std::process::id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (tree, alone) = loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let child_ns = process_ns(child.id()).unwrap_or(0);
            // This process alone first: its time only grows, so the tree read after it
            // exceeds it by at least the child's.
            let alone = process_ns(me).unwrap();
            let tree = tree_ns(me).unwrap();
            if child_ns > 0 || std::time::Instant::now() > deadline {
                break (tree, alone);
            }
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(tree > alone, "{tree} > {alone}");
    }
}
