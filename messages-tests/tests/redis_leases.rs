//! Read leases of `RedisStore` against real servers (one node and a 3-node cluster): a
//! request's read keeps the messages in reserve until its commit settles the lease, so
//! messages taken by a process that dies before committing come back once the lease is
//! up — at least once, never lost — and settled ones never come back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use messages_core::Storage;
use messages_core::redis_client::AsyncCommands;
use messages_core::{
    CookieStore, Message, MessageStore, MessagesConfig, RedisOptions, RedisStore, SessionKey,
    ViewId,
};
use messages_tests::browser::shown_texts;
use messages_tests::redis_server::{RedisCluster, RedisServer};
use messages_tests::{Browser, CallCounts, CountingStore};

/// The lease of these tests; they wait a little longer than this for it to be up. The
/// checks made while a lease runs must finish within it, so it leaves room for a stalled
/// CI machine.
const LEASE: Duration = Duration::from_millis(1500);
const VIEW: ViewId = ViewId::from_static("app::inbox");

fn options(namespace: &str) -> RedisOptions {
    RedisOptions {
        namespace: namespace.to_owned(),
        read_lease: LEASE,
        ..RedisOptions::default()
    }
}

async fn lease_up() {
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(Message::text).collect()
}

/// An unsettled lease hides its messages until it is up, then the next take (plain or
/// leased) gets them back, older than those added since, within the per-context cap.
async fn unsettled_reads_come_back(store: &RedisStore) {
    let s = SessionKey::generate().unwrap();
    for t in ["one", "two"] {
        store.add(&s, &VIEW, Message::info(t)).await.unwrap();
    }
    let taken = store.take_leased(&s, &VIEW).await.unwrap();
    assert_eq!(texts(&taken.messages), ["one", "two"]);
    assert!(taken.lease.is_some());
    // While the lease runs, nobody else gets them, and the view is not pending.
    let again = store.take_leased(&s, &VIEW).await.unwrap();
    assert!(
        again.messages.is_empty() && again.lease.is_none(),
        "{again:?}"
    );
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
    assert!(store.pending_views(&s).await.unwrap().is_empty());
    store.add(&s, &VIEW, Message::info("three")).await.unwrap();
    assert_eq!(store.count(&s, &VIEW).await.unwrap(), 1);

    lease_up().await;
    assert_eq!(store.pending_views(&s).await.unwrap(), [VIEW]);
    let back = store.take(&s, &VIEW).await.unwrap();
    assert_eq!(texts(&back), ["one", "two", "three"]);
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
    assert!(store.pending_views(&s).await.unwrap().is_empty());
    // Settling a lease that is up and was put back does nothing.
    store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
}

/// A settled lease's messages are gone for good, and nothing of it stays in Redis but the
/// session's sequence, which expires with the session.
async fn settled_reads_are_gone(store: &RedisStore, keys: impl AsyncFn() -> Vec<String>) {
    let s = SessionKey::generate().unwrap();
    store.add(&s, &VIEW, Message::info("once")).await.unwrap();
    let taken = store.take_leased(&s, &VIEW).await.unwrap();
    assert_eq!(texts(&taken.messages), ["once"]);
    let reserved = keys().await;
    assert!(
        reserved.iter().any(|k| k.contains(";taken:"))
            && reserved.iter().any(|k| k.ends_with(";leases")),
        "{reserved:?}"
    );
    store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
    // The settle is held back for the store's next command: send it, then look.
    store.flush().await.unwrap();
    let left: Vec<String> = keys()
        .await
        .into_iter()
        .filter(|k| k.contains(s.as_str()))
        .collect();
    assert!(
        left.len() == 1 && left[0].ends_with(&format!("{{{}}};seq", s.as_str())),
        "only the sequence is left: {left:?}"
    );
    lease_up().await;
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
    assert!(store.pending_views(&s).await.unwrap().is_empty());
}

/// Clearing the session (logout) drops reserves too.
async fn clear_session_drops_reserves(store: &RedisStore, keys: impl AsyncFn() -> Vec<String>) {
    let s = SessionKey::generate().unwrap();
    store.add(&s, &VIEW, Message::info("x")).await.unwrap();
    let taken = store.take_leased(&s, &VIEW).await.unwrap();
    assert!(taken.lease.is_some());
    store.clear_session(&s).await.unwrap();
    let left: Vec<String> = keys()
        .await
        .into_iter()
        .filter(|k| k.contains(s.as_str()))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "the sequence too");
    lease_up().await;
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
}

/// Restoring respects the per-context cap: the newest are kept.
async fn restoring_keeps_the_cap(store: &RedisStore) {
    let s = SessionKey::generate().unwrap();
    for t in ["a", "b", "c"] {
        store.add(&s, &VIEW, Message::info(t)).await.unwrap();
    }
    assert!(store.take_leased(&s, &VIEW).await.unwrap().lease.is_some());
    for t in ["d", "e", "f"] {
        store.add(&s, &VIEW, Message::info(t)).await.unwrap();
    }
    lease_up().await;
    assert_eq!(
        texts(&store.take(&s, &VIEW).await.unwrap()),
        ["d", "e", "f"]
    );
}

/// Concurrent leased takes of one context: exactly one gets each message.
async fn leased_takes_are_exclusive(store: &RedisStore) {
    let s = SessionKey::generate().unwrap();
    let all: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    for t in &all {
        store
            .add(&s, &VIEW, Message::info(t.as_str()))
            .await
            .unwrap();
    }
    let store = Arc::new(store.clone());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, s) = (Arc::clone(&store), s.clone());
            tokio::spawn(async move { store.take_leased(&s, &VIEW).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    let mut leases = 0;
    for t in tasks {
        let taken = t.await.unwrap();
        leases += usize::from(taken.lease.is_some());
        got.extend(taken.messages.iter().map(|m| m.text().to_owned()));
    }
    assert_eq!(leases, 1);
    assert_eq!(got, all);
}

/// Through the request API: a request that read and committed settles its lease (nothing
/// comes back); one that read and never committed (its process died) has its messages
/// shown again by the first read after the lease; a failed response puts them back now.
/// Texts are padded with `pad` bytes (to make them spill from a cookie).
async fn requests_settle_or_lose_nothing(config: &MessagesConfig, pad: usize) {
    let text = |t: &str| format!("{t}{}", "x".repeat(pad));
    let (saved, crashed, failed) = (text("saved"), text("crashed"), text("failed"));
    let mut browser = Browser::new();
    browser.add(config, &VIEW, &[&saved]).await;
    assert_eq!(browser.read(config, &VIEW).await, [saved.as_str()]);
    lease_up().await;
    assert!(browser.read(config, &VIEW).await.is_empty());

    browser.add(config, &VIEW, &[&crashed]).await;
    let dying = browser.begin(config);
    assert_eq!(shown_texts(&dying, &VIEW).await, [crashed.as_str()]);
    drop(dying); // never committed, as when the process dies
    assert!(
        browser.read(config, &VIEW).await.is_empty(),
        "still reserved"
    );
    lease_up().await;
    assert_eq!(browser.read(config, &VIEW).await, [crashed.as_str()]);
    lease_up().await;
    assert!(browser.read(config, &VIEW).await.is_empty());

    browser.add(config, &VIEW, &[&failed]).await;
    let failing = browser.begin(config);
    assert_eq!(shown_texts(&failing, &VIEW).await, [failed.as_str()]);
    browser.finish(&failing, false).await;
    assert_eq!(browser.read(config, &VIEW).await, [failed.as_str()]);
    lease_up().await;
    assert!(browser.read(config, &VIEW).await.is_empty());
}

/// A read that finds messages costs one settle more; one that finds none does not.
async fn only_reads_with_messages_settle(store: &RedisStore) {
    let counted = CountingStore::new(store.clone());
    let config = MessagesConfig::new(counted.clone());
    let mut browser = Browser::new();
    browser.add(&config, &VIEW, &["x"]).await;
    counted.reset();
    assert_eq!(browser.read(&config, &VIEW).await, ["x"]);
    let settled = CallCounts {
        take: 1,
        settle: 1,
        ..CallCounts::default()
    };
    assert_eq!(counted.counts(), settled);
    counted.reset();
    assert!(browser.read(&config, &VIEW).await.is_empty());
    let empty = CallCounts {
        take: 1,
        ..CallCounts::default()
    };
    assert_eq!(counted.counts(), empty);
}

async fn all_cases(store: &RedisStore, keys: impl AsyncFn() -> Vec<String> + Copy) {
    unsettled_reads_come_back(store).await;
    settled_reads_are_gone(store, keys).await;
    clear_session_drops_reserves(store, keys).await;
    leased_takes_are_exclusive(store).await;
    only_reads_with_messages_settle(store).await;
    requests_settle_or_lose_nothing(&MessagesConfig::new(store.clone()), 0).await;
    // With fallback storage, what spilled to Redis is leased the same way.
    let cookie = CookieStore::new([b"0123456789abcdef0123456789abcdef-lease".to_vec()])
        .unwrap()
        .budget(256)
        .unwrap()
        .compression(false);
    let fallback = Storage::fallback(cookie, store.clone());
    requests_settle_or_lose_nothing(&MessagesConfig::new(fallback), 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_leases() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), options("lease"))
        .await
        .unwrap();
    let client = server.client();
    let keys = async || -> Vec<String> {
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let mut keys: Vec<String> = con.keys("lease:*").await.unwrap();
        keys.sort();
        keys
    };
    all_cases(&store, keys).await;
    let capped = RedisStore::connect(
        &server.url(),
        RedisOptions {
            per_context: 3,
            ..options("capped")
        },
    )
    .await
    .unwrap();
    restoring_keeps_the_cap(&capped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_leases() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let urls = cluster.urls();
    let store = RedisStore::connect_cluster(urls.iter().map(String::as_str), options("lease"))
        .await
        .unwrap();
    let clients: Vec<_> = cluster.nodes().iter().map(RedisServer::client).collect();
    let keys = async || -> Vec<String> {
        let mut all = Vec::new();
        for client in &clients {
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = con.keys("lease:*").await.unwrap();
            all.extend(keys);
        }
        all.sort();
        all
    };
    all_cases(&store, keys).await;
}
