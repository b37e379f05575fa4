//! Shared helpers of the integration tests: a simulated browser, a counting store, the
//! reference model of the semantics, an HTTP client with a cookie jar ([`http`]), and the
//! suites written once and run per backend: the store contract ([`conformance`],
//! [`store_conformance_tests!`]) and the request semantics ([`semantics`],
//! [`request_semantics_tests!`]).

pub mod browser;
pub mod browser_driver;
pub mod conformance;
pub mod counting;
pub mod http;
pub mod live_feed;
pub mod model;
pub mod postgres_server;
pub mod redis_server;
pub mod reusable;
pub mod security;
pub mod semantics;
pub mod store_harness;

pub use browser::{Browser, shown_texts};
pub use counting::{CallCounts, CountingStore};

/// What the exported macros name, whatever the calling crate depends on.
#[doc(hidden)]
pub mod __private {
    pub use messages_core;
}

/// Redis servers shared by every test of one test binary (one process): a `redis-server`
/// and a 3-node Redis Cluster, each started by the first test that asks for it. Each
/// test connects its own store (on its own runtime) and works in sessions of its own
/// (random keys, or a namespace of its own for key scans), so tests do not see each
/// other's data.
///
/// Statics are never dropped, so the processes are not killed by [`Drop`]: a watchdog
/// `sh` started beside them kills them (SIGKILL, by process id) and removes their
/// directories once this process has exited, however it ended.
///
/// Without `redis-server`, as [`RedisServer::start`](redis_server::RedisServer::start):
/// in CI (`CI` set) the first test fails and every later one too; locally each says
/// SKIPPED and gets `None`.
pub mod shared {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    use std::sync::LazyLock;
    use std::time::Duration;

    use messages_core::redis_client;

    use crate::redis_server::{RedisCluster, RedisServer};

    static SERVER: LazyLock<Option<RedisServer>> = LazyLock::new(|| {
        let server = RedisServer::start()?;
        reap_at_exit(std::slice::from_ref(&server));
        Some(server)
    });

    static CLUSTER: LazyLock<Option<RedisCluster>> = LazyLock::new(|| {
        let cluster = RedisCluster::start()?;
        reap_at_exit(cluster.nodes());
        Some(cluster)
    });

    /// The binary's shared `redis-server`, started on first use; `None` (locally) when
    /// `redis-server` is not installed.
    pub fn redis() -> Option<&'static RedisServer> {
        let server = SERVER.as_ref();
        if server.is_none() {
            skipped();
        }
        server
    }

    /// The binary's shared 3-node Redis Cluster, started on first use (it takes a few
    /// seconds); `None` (locally) when `redis-server` is not installed.
    pub fn redis_cluster() -> Option<&'static RedisCluster> {
        let cluster = CLUSTER.as_ref();
        if cluster.is_none() {
            skipped();
        }
        cluster
    }

    /// Says which test is skipped (the first start already said why, loudly).
    fn skipped() {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test} (redis-server not installed)"
        );
    }

    /// Starts a watchdog that, once this process has exited, kills `nodes` (SIGKILL, by
    /// process id) and removes their directories.
    fn reap_at_exit(nodes: &[RedisServer]) {
        let pids = nodes
            .iter()
            .filter_map(RedisServer::pid)
            .map(|p| p.to_string());
        // Only the servers' own temporary directories (`messages-redis-<pid>-<n>`).
        let dirs = nodes
            .iter()
            .filter_map(directory)
            .filter(|d| d.starts_with('/') && d.contains("/messages-redis-"));
        let script = r#"p=$1; shift
while kill -0 "$p" 2>/dev/null; do sleep 0.2; done
for x in "$@"; do case "$x" in /*) rm -rf -- "$x" ;; *) kill -9 "$x" 2>/dev/null ;; esac; done"#;
        let started = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("messages-redis-reaper")
            .arg(std::process::id().to_string())
            .args(pids)
            .args(dirs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = started {
            let _ = writeln!(
                std::io::stderr(),
                "shared redis: no watchdog ({e}); the servers outlive the tests"
            );
        }
    }

    /// A server's working directory (`CONFIG GET dir`).
    fn directory(node: &RedisServer) -> Option<String> {
        let mut con = node
            .client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        let reply: Vec<String> = redis_client::cmd("CONFIG")
            .arg("GET")
            .arg("dir")
            .query(&mut con)
            .ok()?;
        reply.into_iter().nth(1)
    }
}
