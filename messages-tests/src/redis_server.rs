//! Real `redis-server` processes for tests and benchmarks: one server, or a 3-node Redis
//! Cluster, on free loopback ports in a temporary directory, killed on drop.
//!
//! Without `redis-server` installed, [`RedisServer::start`] and [`RedisCluster::start`]
//! fail the test when the `CI` environment variable is set, and otherwise print
//! `SKIPPED: redis-server not installed` and return `None`:
//!
//! ```no_run
//! # fn main() {
//! let Some(server) = messages_tests::redis_server::RedisServer::start() else { return };
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
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use messages_core::redis_client;

/// How long a server may take to answer `PING` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new cluster may take to agree on its slots.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts with fresh ports when a port was taken between choosing and binding it.
const PORT_ATTEMPTS: usize = 5;

/// Whether `redis-server` can run here. When it cannot: in CI, panics (the test fails);
/// locally, says loudly that the test is skipped.
fn redis_installed() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is not installed, and CI needs it: `apt-get install -y redis-server`"
        );
        // Written to the process's stderr directly: the test harness captures
        // `eprintln!` of passing tests, and this must be seen.
        let _ = std::io::stderr().write_all(
            b"\n*** SKIPPED: redis-server not installed (apt-get install -y redis-server) ***\n",
        );
    }
    found
}

/// `n` distinct ports that were free a moment ago (all bound at once, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "messages-redis-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// One `redis-server` process on 127.0.0.1, without persistence unless asked for.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port, or `None` (locally) without `redis-server`.
    pub fn start() -> Option<RedisServer> {
        if !redis_installed() {
            return None;
        }
        Some(RedisServer::start_with(|_| Vec::new()))
    }

    /// Starts a server on a free port with extra `redis-server` arguments, kept across
    /// [`revive`](RedisServer::revive) (which reuses the directory, so persisted data
    /// comes back): `["--appendonly", "yes", "--appendfsync", "always"]` makes every
    /// acknowledged write survive SIGKILL. `None` (locally) without `redis-server`.
    pub fn start_with_args(args: &[&str]) -> Option<RedisServer> {
        if !redis_installed() {
            return None;
        }
        let args: Vec<String> = args.iter().map(ToString::to_string).collect();
        Some(RedisServer::start_with(|_| args.clone()))
    }

    /// Starts a server on a free port with extra arguments, made from the ports chosen:
    /// `[port, extra ports...]`. Retries with fresh ports when one was taken meanwhile.
    fn start_with(extra_args: impl Fn(&[u16]) -> Vec<String>) -> RedisServer {
        let dir = temp_dir();
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let ports = free_ports(2);
            let mut server = RedisServer {
                port: ports[0],
                dir: dir.clone(),
                extra: extra_args(&ports),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    // Leave the directory for the next attempt.
                    server.dir = PathBuf::new();
                }
            }
        }
        panic!("redis-server did not start after {PORT_ATTEMPTS} attempts: {last_error}");
    }

    /// Spawns the process on `self.port` and waits until it answers `PING`.
    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let _ = std::fs::remove_file(&log);
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server exited ({status}):\n{log}"));
            }
            if self.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("no PONG within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether our process answers on the port (not another test's server that took
    /// the port first: its process id would differ).
    fn ping(&self) -> bool {
        let (Ok(client), Some(pid)) = (redis_client::Client::open(self.url()), self.pid()) else {
            return false;
        };
        client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut c| {
                redis_client::cmd("INFO")
                    .arg("server")
                    .query::<String>(&mut c)
            })
            .is_ok_and(|info| info.contains(&format!("process_id:{pid}\r\n")))
    }

    /// A section of `INFO` (`replication`, `server`, ...), or `None` if the server does
    /// not answer.
    pub fn info(&self, section: &str) -> Option<String> {
        let client = redis_client::Client::open(self.url()).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        redis_client::cmd("INFO").arg(section).query(&mut con).ok()
    }

    /// Runs a command on this server on a connection of its own; panics if it fails.
    pub fn query<T: redis_client::FromRedisValue>(&self, cmd: &redis_client::Cmd) -> T {
        let mut con = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to the test server");
        cmd.query(&mut con).expect("the command succeeds")
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A client of this server, for raw commands in tests.
    pub fn client(&self) -> redis_client::Client {
        redis_client::Client::open(self.url()).expect("a valid url")
    }

    /// A [`RedisStore`](messages_core::RedisStore) on this server.
    pub async fn store(&self, options: messages_core::RedisOptions) -> messages_core::RedisStore {
        messages_core::RedisStore::connect(&self.url(), options)
            .await
            .expect("connect to the test server")
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (no shutdown, connections drop) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port after [`kill`](RedisServer::kill), with no
    /// data unless it was started with persistence
    /// ([`start_with_args`](RedisServer::start_with_args)). Retries for a while if the port
    /// is busy.
    pub fn revive(&mut self) {
        self.kill();
        let mut last_error = String::new();
        for _ in 0..50 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server did not restart on port {}: {last_error}",
            self.port
        );
    }

    /// SIGKILL, then start again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.revive();
    }

    /// Sends a signal to the server (`"STOP"` freezes it with its connections open,
    /// `"CONT"` resumes it).
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the server is running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A Redis Cluster on loopback: three primaries, and optionally a replica of each.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli --cluster create`,
    /// and waits for `cluster_state:ok` on every node; `None` (locally) without
    /// `redis-server`.
    pub fn start() -> Option<RedisCluster> {
        RedisCluster::start_with(0, Duration::from_secs(5))
    }

    /// Three primaries with `replicas` replicas each, and the given
    /// `cluster-node-timeout` (after which a silent primary is failed over to its
    /// replica). Waits until the cluster is ok and every replica is in sync. `None`
    /// (locally) without `redis-server`.
    pub fn start_with(replicas: usize, node_timeout: Duration) -> Option<RedisCluster> {
        if !redis_installed() {
            return None;
        }
        let timeout_ms = node_timeout.as_millis().to_string();
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(|ports| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        &timeout_ms,
                        "--cluster-port",
                    ]
                    .iter()
                    .map(ToString::to_string)
                    .chain([ports[1].to_string()])
                    .collect()
                })
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster.wait_until_replicas_in_sync();
        Some(cluster)
    }

    /// Waits until every replica's link to its primary is up and the initial sync done.
    fn wait_until_replicas_in_sync(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let synced = self.nodes.iter().all(|n| {
                n.info("replication").is_some_and(|info| {
                    info.contains("role:master")
                        || (info.contains("master_link_status:up")
                            && info.contains("master_sync_in_progress:0"))
                })
            });
            if synced {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas not in sync within {CLUSTER_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let all_ok = self.nodes.iter().all(|n| {
                n.client()
                    .get_connection_with_timeout(Duration::from_millis(500))
                    .and_then(|mut c| {
                        redis_client::cmd("CLUSTER")
                            .arg("INFO")
                            .query::<String>(&mut c)
                    })
                    .is_ok_and(|info| {
                        info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                    })
            });
            if all_ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ok within {CLUSTER_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:<port>` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// A cluster [`RedisStore`](messages_core::RedisStore) on these nodes.
    pub async fn store(&self, options: messages_core::RedisOptions) -> messages_core::RedisStore {
        let urls = self.urls();
        messages_core::RedisStore::connect_cluster(urls.iter().map(String::as_str), options)
            .await
            .expect("connect to the test cluster")
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, to kill or stop one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }
}
