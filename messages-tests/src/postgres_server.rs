//! Real PostgreSQL servers for tests: `initdb` and `pg_ctl` in a temporary directory, on
//! a free loopback port, stopped and removed on drop — and by a watchdog once the test
//! process has exited, however it ended (the server is a daemon, not our child).
//!
//! The server refuses to run as root, so as root it runs as the `postgres` user (Debian's
//! `postgresql` package makes it) through `runuser`. The binaries are looked up in
//! `$MESSAGES_PG_BIN`, then `/usr/lib/postgresql/<newest>/bin` (Debian), then `PATH`.
//! Without them, [`PostgresServer::start`] fails the test when the `CI` environment
//! variable is set, and otherwise prints `SKIPPED: postgresql not installed` and returns
//! `None`:
//!
//! ```no_run
//! # fn main() {
//! let Some(server) = messages_tests::postgres_server::PostgresServer::start() else { return };
//! println!("{}", server.url());
//! # }
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc
)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use messages_core::sqlx::{self, AssertSqlSafe, Connection as _, PgConnection};
use messages_core::{PostgresStore, SqlOptions};

/// Attempts with fresh ports when a port was taken between choosing and binding it.
const PORT_ATTEMPTS: usize = 5;
/// Seconds `pg_ctl` waits for the server to accept connections.
const START_TIMEOUT_SECS: &str = "60";

/// Where `initdb`, `pg_ctl` and `postgres` are, if anywhere.
fn bin_dir() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("MESSAGES_PG_BIN").map(PathBuf::from) {
        return has_initdb(&dir).then_some(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_initdb(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|dir| has_initdb(dir)))
}

/// The binaries, if installed. When they are not: in CI, panics (the test fails);
/// locally, says loudly that the test is skipped.
fn installed() -> Option<PathBuf> {
    let found = bin_dir();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "postgresql is not installed, and CI needs it: `apt-get install -y postgresql`"
        );
        // Written to the process's stderr directly: the test harness captures
        // `eprintln!` of passing tests, and this must be seen.
        let _ = std::io::stderr().write_all(
            b"\n*** SKIPPED: postgresql not installed (apt-get install -y postgresql) ***\n",
        );
    }
    found
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "messages-postgres-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_plain(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(out.status.success(), "{}", describe(program, &out));
}

/// The postmaster `pid` and every process it started (its backends).
fn processes(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`; comm may hold spaces, so parse after the last ')'.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            pids.push(child);
        }
    }
    pids
}

/// Sends `signal` to `pids`. A backend may have exited since it was listed: not an error.
fn send(signal: &str, pids: &[u32]) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(ToString::to_string))
        .stderr(Stdio::null())
        .status()
        .expect("run kill");
}

/// One PostgreSQL server on 127.0.0.1, its data and socket in a temporary directory,
/// without `fsync` (faster; committed data survives a crash of the server, not of the
/// machine).
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PostgresServer {
    /// Starts a server on a free port (about 2 s), or `None` (locally) without
    /// PostgreSQL.
    pub fn start() -> Option<PostgresServer> {
        let bin = installed()?;
        let as_postgres = is_root();
        let dir = temp_dir();
        let mut server = PostgresServer {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            run_plain("chown", &["postgres:", server.dir.to_str().unwrap()]);
        }
        let data = server.data();
        let out = server.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "{}", describe("initdb", &out));
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.pg_ctl_start() {
                Ok(()) => {
                    server.watch();
                    return Some(server);
                }
                Err(e) => last_error = e,
            }
        }
        panic!("postgres did not start after {PORT_ATTEMPTS} attempts: {last_error}");
    }

    fn data(&self) -> String {
        self.dir.join("data").to_str().unwrap().to_owned()
    }

    /// Runs a PostgreSQL program, as the `postgres` user when we are root.
    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let (data, log) = (self.data(), self.dir.join("postgres.log"));
        let settings = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.port,
            self.dir.to_str().unwrap()
        );
        let out = self.pg(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &settings,
                "-w",
                "-t",
                START_TIMEOUT_SECS,
                "start",
            ],
        );
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            Err(format!("{}\n{log}", describe("pg_ctl start", &out)))
        }
    }

    /// The postmaster's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        pidfile.lines().next()?.trim().parse().ok()
    }

    /// Starts a watchdog that, once this process has exited, stops the server
    /// (immediate shutdown, by process id) and removes its directory — unless
    /// [`Drop`] removed it first.
    fn watch(&self) {
        let Some(pid) = self.pid() else {
            return;
        };
        let script = r#"p=$1; pm=$2; d=$3
while kill -0 "$p" 2>/dev/null; do sleep 0.2; done
case "$d" in */messages-postgres-*) ;; *) exit 0 ;; esac
[ -d "$d" ] || exit 0
kill -CONT "$pm" $(ps -o pid= --ppid "$pm" 2>/dev/null) 2>/dev/null
kill -QUIT "$pm" 2>/dev/null
i=0; while kill -0 "$pm" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$pm" 2>/dev/null
rm -rf -- "$d""#;
        let started = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("messages-postgres-reaper")
            .arg(std::process::id().to_string())
            .arg(pid.to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = started {
            let _ = writeln!(
                std::io::stderr(),
                "postgres: no watchdog ({e}); the server outlives the tests"
            );
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of a new, empty database on this server (`CREATE DATABASE`), named
    /// `test_<process>_<n>`: a test of its own tables under their default names.
    pub async fn fresh_database(&self) -> String {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&self.url())
            .await
            .expect("connect to the test server");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create the database {name}: {e}"));
        let _ = admin.close().await;
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A [`PostgresStore`] on this server, its tables migrated.
    pub async fn store(&self, options: SqlOptions) -> PostgresStore {
        let store = PostgresStore::connect(&self.url(), options)
            .await
            .expect("connect to the test server");
        store.migrate().await.expect("migrate the test tables");
        store
    }

    /// Stops the server now (immediate shutdown: connections drop, as in a crash of the
    /// server; what was committed survives).
    pub fn stop(&self) {
        self.signal("CONT");
        let out = self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        assert!(out.status.success(), "{}", describe("pg_ctl stop", &out));
    }

    /// Kills the server with SIGKILL — the postmaster and every process it started, at
    /// once, as a crash would (what was committed survives: the restart replays the
    /// write-ahead log) — and waits until they are gone; [`restart`](PostgresServer::restart)
    /// starts it again. The lock file is removed, since a killed postmaster that nobody
    /// has reaped yet would keep a restart from starting.
    pub fn kill(&self) {
        let pid = self.pid().expect("the server is running");
        let pids = processes(pid);
        send("KILL", &pids);
        // Gone, or a zombie (dead, not reaped yet).
        let dead = |p: &u32| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).map_or(true, |stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            })
        };
        for _ in 0..200 {
            if pids.iter().all(dead) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(pids.iter().all(dead), "postgres survived SIGKILL");
        let _ = std::fs::remove_file(self.dir.join("data/postmaster.pid"));
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`, ...) to the postmaster and every process it
    /// started (its backends): `STOP` freezes the server with its connections open.
    pub fn signal(&self, signal: &str) {
        send(
            signal,
            &processes(self.pid().expect("the server is running")),
        );
    }

    /// Starts the server again on the same port after [`stop`](PostgresServer::stop) or
    /// [`kill`](PostgresServer::kill), with its data.
    pub fn restart(&self) {
        let mut last_error = String::new();
        for _ in 0..50 {
            match self.pg_ctl_start() {
                Ok(()) => {
                    self.watch();
                    return;
                }
                Err(e) => last_error = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "postgres did not restart on port {}: {last_error}",
            self.port
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.pid().is_some() {
            // A frozen server cannot shut down.
            self.signal("CONT");
            let _ = self.pg(
                "pg_ctl",
                &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SHARED: LazyLock<Option<PostgresServer>> = LazyLock::new(PostgresServer::start);

/// The PostgreSQL server shared by every test of one test binary (one process), started
/// by the first test that asks for it; `None` (locally) without PostgreSQL. Tests work in
/// tables, namespaces or sessions of their own. Statics are never dropped: the watchdog
/// stops it once the process has exited.
pub fn shared() -> Option<&'static PostgresServer> {
    let server = SHARED.as_ref();
    if server.is_none() {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test} (postgresql not installed)"
        );
    }
    server
}
