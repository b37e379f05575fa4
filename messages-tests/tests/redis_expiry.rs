//! Expiry of `RedisStore` keys against real servers (one node and a 3-node cluster): the
//! idle TTL is per session — every write refreshes every key of the session, as the
//! memory store does — and a read lease that would outlive the reserve it guards is
//! refused when the store is built.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use messages_core::redis_client::AsyncCommands;
use messages_core::{Error, Message, MessageStore, RedisOptions, RedisStore, SessionKey, ViewId};
use messages_tests::redis_server::{RedisCluster, RedisServer};

const A: ViewId = ViewId::from_static("app::a");
const B: ViewId = ViewId::from_static("app::b");
const C: ViewId = ViewId::from_static("app::c");

/// Slack for the server's millisecond clock against ours.
const CLOCK_SLACK_MS: i64 = 50;

fn options(namespace: &str, idle_ttl: Duration, read_lease: Duration) -> RedisOptions {
    RedisOptions {
        namespace: namespace.to_owned(),
        idle_ttl,
        read_lease,
        ..RedisOptions::default()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap()
}

/// Every key of `namespace` on `nodes`, with its `PTTL`, each asked of the node that
/// holds it.
async fn keys_with_pttl(nodes: &[RedisServer], namespace: &str) -> Vec<(String, i64)> {
    let mut all = Vec::new();
    for node in nodes {
        let mut con = node
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = con.keys(format!("{namespace}:*")).await.unwrap();
        for key in keys {
            let pttl: i64 = con.pttl(&key).await.unwrap();
            all.push((key, pttl));
        }
    }
    all.sort();
    all
}

/// Issue 8a: a read lease at least as long as the idle TTL would let a reserve expire
/// before its lease is up (the messages of a crashed request lost): the store refuses
/// it with `Error::Config`, before it connects anywhere.
#[tokio::test]
async fn read_lease_not_shorter_than_the_idle_ttl_is_refused() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ttl = Duration::from_secs(30);
    for lease in [
        ttl + Duration::from_millis(1),
        ttl,
        Duration::from_secs(3600),
    ] {
        let e = RedisStore::connect(&server.url(), options("bad", ttl, lease))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "lease {lease:?}: {e}");
        assert!(e.to_string().contains("read_lease"), "{e}");
    }
    // The default lease (60 s) against a short idle TTL is refused as well.
    let short = RedisOptions {
        idle_ttl: Duration::from_secs(10),
        ..RedisOptions::default()
    };
    let e = RedisStore::connect(&server.url(), short).await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");

    // Refused before any connection is tried: nothing listens on these.
    let nowhere = "redis://127.0.0.1:1";
    let e = RedisStore::connect(nowhere, options("bad", ttl, ttl))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let e = RedisStore::connect_cluster([nowhere], options("bad", ttl, ttl))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");

    // A lease shorter than the idle TTL, and the defaults, are fine.
    let ok = server
        .store(options("ok", ttl, Duration::from_millis(29_999)))
        .await;
    let (s, v) = (SessionKey::generate().unwrap(), ViewId::from_static("v"));
    ok.add(&s, &v, Message::info("x")).await.unwrap();
    assert_eq!(ok.count(&s, &v).await.unwrap(), 1);
    server.store(RedisOptions::default()).await;
}

/// Issue 8b, by `PTTL`: a write to view B refreshes every key of the session — context
/// A, reserve and lease set of view C, the view index, and whatever other key the store
/// keeps for the session — to the full idle TTL. Without the refresh, context A's
/// `PTTL` would be at least `PAUSE` below the TTL.
async fn a_write_refreshes_every_key_of_the_session(
    store: &RedisStore,
    nodes: &[RedisServer],
    namespace: &str,
    ttl: Duration,
) {
    const PAUSE: Duration = Duration::from_millis(2500);
    let s = SessionKey::generate().unwrap();
    store.add(&s, &C, Message::info("c")).await.unwrap();
    let taken = store.take_leased(&s, &C).await.unwrap();
    assert!(taken.lease.is_some(), "a reserve for view C");
    store.add(&s, &A, Message::info("a")).await.unwrap();
    tokio::time::sleep(PAUSE).await;

    let before_write = Instant::now();
    store.add(&s, &B, Message::info("b")).await.unwrap();
    let keys = keys_with_pttl(nodes, namespace).await;
    let since_write = before_write.elapsed();

    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    let context_c = store.context_key(&s, &C);
    for expected in [
        store.context_key(&s, &A),
        store.context_key(&s, &B),
        store.views_key(&s),
        format!("{context_c};leases"),
    ] {
        assert!(
            names.contains(&expected.as_str()),
            "{expected} in {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .any(|k| k.starts_with(&format!("{context_c};taken:"))),
        "the reserve of view C in {names:?}"
    );
    // Set by the write (at or after `before_write`), read before `since_write` is up.
    let floor = ms(ttl) - ms(since_write) - CLOCK_SLACK_MS;
    for (key, pttl) in &keys {
        assert!(
            (floor..=ms(ttl)).contains(pttl),
            "{key}: PTTL {pttl} ms, want the full idle TTL from the last write ({floor}..={} ms); \
             every key: {keys:?}",
            ms(ttl)
        );
    }
    store.clear_session(&s).await.unwrap();
    assert_eq!(keys_with_pttl(nodes, namespace).await, Vec::new());
}

/// Issue 8b, by the clock: with an idle TTL of `ttl` (a few seconds), view A written,
/// then view B written `ttl / 2` later: A is still there after A's own TTL would have
/// lapsed, and both are gone `ttl` after the last write. Retries (up to 3 times) when a
/// stalled machine overslept so far that the timing proves nothing.
async fn the_session_lives_ttl_after_its_last_write(
    store: &RedisStore,
    nodes: &[RedisServer],
    namespace: &str,
    ttl: Duration,
) {
    for _ in 0..3 {
        let s = SessionKey::generate().unwrap();
        let started = Instant::now();
        store.add(&s, &A, Message::info("a")).await.unwrap();
        let a_written = Instant::now();
        tokio::time::sleep(ttl / 2).await;
        let b_started = Instant::now();
        store.add(&s, &B, Message::info("b")).await.unwrap();
        let b_written = Instant::now();
        if b_started + Duration::from_millis(100) >= started + ttl {
            continue; // A may have expired before the second write reached the server
        }
        // A's own TTL lapsed (it was set before `a_written`), the refreshed one not yet
        // (set after `b_started`).
        tokio::time::sleep((a_written + ttl + ttl / 8).saturating_duration_since(Instant::now()))
            .await;
        let read_started = Instant::now();
        let (a, b) = (
            store.count(&s, &A).await.unwrap(),
            store.count(&s, &B).await.unwrap(),
        );
        let views = store.pending_views(&s).await.unwrap();
        let read_done = Instant::now();
        if read_started < a_written + ttl || read_done >= b_started + ttl {
            continue;
        }
        assert_eq!((a, b), (1, 1), "the write to B kept A alive");
        assert_eq!(views, [A, B]);
        tokio::time::sleep((b_written + ttl + ttl / 8).saturating_duration_since(Instant::now()))
            .await;
        assert_eq!(store.count(&s, &A).await.unwrap(), 0, "A expired");
        assert_eq!(store.count(&s, &B).await.unwrap(), 0, "B expired");
        assert!(store.pending_views(&s).await.unwrap().is_empty());
        assert_eq!(
            keys_with_pttl(nodes, namespace).await,
            Vec::new(),
            "no key of the session left"
        );
        return;
    }
    panic!("session expiry could not be checked: every attempt overslept");
}

async fn all_cases(nodes: &[RedisServer], connect: impl AsyncFn(RedisOptions) -> RedisStore) {
    let (ttl, lease) = (Duration::from_secs(30), Duration::from_secs(2));
    let store = connect(options("pttl", ttl, lease)).await;
    a_write_refreshes_every_key_of_the_session(&store, nodes, "pttl", ttl).await;
    let (ttl, lease) = (Duration::from_secs(4), Duration::from_secs(1));
    let store = connect(options("idle", ttl, lease)).await;
    the_session_lives_ttl_after_its_last_write(&store, nodes, "idle", ttl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_writes_refresh_the_whole_session() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let nodes = [server];
    all_cases(&nodes, async |o| nodes[0].store(o).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_writes_refresh_the_whole_session() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    all_cases(cluster.nodes(), async |o| cluster.store(o).await).await;
}
