//! `RedisStore` on a real Redis Cluster with a replica for each of its three primaries
//! (six `redis-server` processes): messages stored before a failover are delivered after
//! it, once each, and the store follows the slots to the promoted replica by itself —
//! after a manual `CLUSTER FAILOVER`, and after a primary is SIGKILLed and its replica
//! elected. Figures are printed on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use messages_core::redis_client;
use messages_core::{Message, MessageStore, RedisOptions, RedisStore, SessionKey, ViewId};
use messages_tests::redis_server::{RedisCluster, RedisServer};

const VIEW: ViewId = ViewId::from_static("app::inbox");
/// Sessions, spread over the slots of all three primaries.
const SESSIONS: usize = 48;
/// `cluster-node-timeout`: a silent primary is failed over after about this long. Two
/// seconds, so that a node merely starved of CPU on a busy machine is not failed over.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the store to reach every session again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

fn say(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn is_primary(node: &RedisServer) -> bool {
    node.info("replication")
        .is_some_and(|i| i.contains("role:master"))
}

async fn store(cluster: &RedisCluster) -> RedisStore {
    let urls = cluster.urls();
    RedisStore::connect_cluster(urls.iter().map(String::as_str), RedisOptions::default())
        .await
        .unwrap()
}

/// One message per new session; waits until every replica has acknowledged them.
async fn fill(store: &RedisStore, cluster: &RedisCluster) -> Vec<(SessionKey, String)> {
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let session = SessionKey::generate().unwrap();
        let text = format!("before {i}");
        store
            .add(&session, &VIEW, Message::info(text.as_str()))
            .await
            .unwrap();
        sessions.push((session, text));
    }
    for node in cluster.nodes().iter().filter(|n| is_primary(n)) {
        let acked: i64 = node.query(redis_client::cmd("WAIT").arg(1).arg(15_000));
        assert_eq!(acked, 1, "the replica of {} acknowledged", node.port());
    }
    sessions
}

/// Takes every session's messages, again and again, until each session has answered;
/// returns how long that took and how many takes failed meanwhile. Each message must
/// come back exactly once, in its own session.
async fn take_all(store: &RedisStore, sessions: &[(SessionKey, String)]) -> (Duration, usize) {
    let started = Instant::now();
    let mut pending: Vec<&(SessionKey, String)> = sessions.iter().collect();
    let mut failures = 0;
    while !pending.is_empty() {
        assert!(
            started.elapsed() < RECOVERY_LIMIT,
            "{} sessions unreachable after {RECOVERY_LIMIT:?}",
            pending.len()
        );
        let mut next = Vec::new();
        for entry in pending {
            let (session, text) = entry;
            match store.take(session, &VIEW).await {
                Ok(list) => {
                    let texts: Vec<&str> = list.iter().map(Message::text).collect();
                    assert_eq!(texts, [text.as_str()], "{session:?}");
                }
                Err(e) => {
                    assert!(
                        matches!(e, messages_core::Error::Unavailable { .. }),
                        "{e:?}"
                    );
                    failures += 1;
                    next.push(entry);
                }
            }
        }
        pending = next;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (session, _) in sessions {
        assert!(store.take(session, &VIEW).await.unwrap().is_empty());
    }
    (started.elapsed(), failures)
}

/// Adds and takes one message in each of `n` new sessions: the cluster takes writes on
/// every slot again.
async fn round_trips(store: &RedisStore, n: usize) {
    for _ in 0..n {
        let session = SessionKey::generate().unwrap();
        store
            .add(&session, &VIEW, Message::info("after"))
            .await
            .unwrap();
        let texts: Vec<String> = store
            .take(&session, &VIEW)
            .await
            .unwrap()
            .iter()
            .map(|m| m.text().to_owned())
            .collect();
        assert_eq!(texts, ["after"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failover_loses_nothing() {
    let Some(cluster) = RedisCluster::start_with(1, NODE_TIMEOUT) else {
        return;
    };
    let store = store(&cluster).await;
    let sessions = fill(&store, &cluster).await;

    let replica = cluster
        .nodes()
        .iter()
        .find(|n| !is_primary(n))
        .expect("a replica");
    let ok: String = replica.query(redis_client::cmd("CLUSTER").arg("FAILOVER"));
    assert_eq!(ok, "OK");
    let started = Instant::now();
    while !is_primary(replica) {
        assert!(started.elapsed() < RECOVERY_LIMIT, "no promotion");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let promoted = started.elapsed();

    let (recovered, failures) = take_all(&store, &sessions).await;
    round_trips(&store, SESSIONS).await;
    say(&format!(
        "\nmanual failover: replica promoted in {} ms; {SESSIONS} sessions delivered once each in {} ms, {failures} failed takes meanwhile\n",
        promoted.as_millis(),
        recovered.as_millis(),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_primary_is_replaced_and_nothing_acknowledged_is_lost() {
    let Some(mut cluster) = RedisCluster::start_with(1, NODE_TIMEOUT) else {
        return;
    };
    let store = store(&cluster).await;
    let sessions = fill(&store, &cluster).await;

    let victim = cluster
        .nodes()
        .iter()
        .position(is_primary)
        .expect("a primary");
    let killed_at = Instant::now();
    cluster.nodes_mut()[victim].kill();

    // Sessions on the two live primaries answer at once; those on the dead one fail
    // with a typed error until its replica is elected, then are delivered.
    let (_, failures) = take_all(&store, &sessions).await;
    let recovered = killed_at.elapsed();
    assert!(failures > 0, "no session lived on the killed primary");
    let promoted = cluster
        .nodes()
        .iter()
        .enumerate()
        .filter(|(i, n)| *i != victim && is_primary(n))
        .count();
    assert_eq!(promoted, 3, "a replica took the dead primary's place");
    round_trips(&store, SESSIONS).await;
    say(&format!(
        "\nprimary SIGKILLed (cluster-node-timeout {} ms): {SESSIONS} sessions delivered once each within {} ms of the kill, {failures} failed takes meanwhile\n",
        NODE_TIMEOUT.as_millis(),
        recovered.as_millis(),
    ));
}
