//! `RedisStore` against real servers: one node and a 3-node Redis Cluster, each started
//! once for the whole binary (`messages_tests::shared`; every test connects its own store
//! and uses sessions of its own). The store contract (`conformance`, one test per case),
//! the reference model of the request semantics (`model`), and what is particular to
//! Redis: key layout, hash slots, namespaces, undecodable members.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use messages_core::Storage;
use messages_core::redis_client::{self, AsyncCommands};
use messages_core::{
    CookieStore, Message, MessageStore, MessagesConfig, RedisOptions, RedisStore, SessionKey,
    ViewId,
};
use messages_tests::{CountingStore, conformance, model, shared};
use proptest::test_runner::TestRunner;

const MODEL_CASES: u32 = 200;
const BROWSERS: usize = 3;

fn options(namespace: &str) -> RedisOptions {
    RedisOptions {
        namespace: namespace.to_owned(),
        ..RedisOptions::default()
    }
}

/// Runs the model's random request sequences against `config`, on the current runtime.
fn follows_the_model(config: &MessagesConfig, cap: usize) {
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(model::config(MODEL_CASES));
    let result = tokio::task::block_in_place(|| {
        runner.run(&model::ops(BROWSERS, 30), |ops| {
            handle.block_on(model::check(config, &ops, BROWSERS, cap))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The options of a store the contract runs on: the default, or with `Some(ttl)` an
/// idle TTL of `ttl` (and a read lease shorter than it) in a namespace of its own.
fn contract_options(idle_ttl: Option<Duration>) -> RedisOptions {
    match idle_ttl {
        None => RedisOptions::default(),
        Some(ttl) => RedisOptions {
            idle_ttl: ttl,
            read_lease: ttl / 2,
            ..options("short")
        },
    }
}

/// A store on the binary's shared server.
async fn single_node(idle_ttl: Option<Duration>) -> Option<RedisStore> {
    let server = shared::redis()?;
    Some(server.store(contract_options(idle_ttl)).await)
}

/// A store on the binary's shared cluster.
async fn cluster(idle_ttl: Option<Duration>) -> Option<RedisStore> {
    let cluster = shared::redis_cluster()?;
    Some(cluster.store(contract_options(idle_ttl)).await)
}

// The store contract, one test per case: `redis_single::<case>`, `redis_cluster::<case>`.
messages_tests::store_conformance_tests!(
    redis_single,
    single_node,
    RedisOptions::default().per_context
);
messages_tests::store_conformance_tests!(
    redis_cluster,
    cluster,
    RedisOptions::default().per_context
);

#[tokio::test]
async fn cluster_keeps_each_session_in_one_slot() {
    let Some(cluster) = shared::redis_cluster() else {
        return;
    };
    let store = cluster.store(RedisOptions::default()).await;
    // Every key of a session hashes to one slot; sessions spread over the nodes.
    let mut con = redis_client::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let mut slots = Vec::new();
    for _ in 0..32 {
        let s = SessionKey::generate().unwrap();
        let keys = [
            store.context_key(&s, &ViewId::from_static("app::dashboard")),
            store.context_key(&s, &ViewId::from_static("views")),
            store.views_key(&s),
        ];
        let mut session_slots = Vec::new();
        for key in &keys {
            let slot: u16 = redis_client::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap();
            session_slots.push(slot);
        }
        assert!(
            session_slots.iter().all(|&x| x == session_slots[0]),
            "{keys:?} {session_slots:?}"
        );
        slots.push(session_slots[0]);
        // Adds, takes and scripts work whichever node serves the slot.
        store
            .add(&s, &ViewId::from_static("views"), Message::info("x"))
            .await
            .unwrap();
        assert_eq!(
            store.pending_views(&s).await.unwrap(),
            [ViewId::from_static("views")]
        );
        store.clear_session(&s).await.unwrap();
    }
    slots.sort_unstable();
    slots.dedup();
    assert!(slots.len() > 1, "sessions land in different slots");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_follows_the_model() {
    let Some(server) = shared::redis() else {
        return;
    };
    let store = server.store(RedisOptions::default()).await;
    follows_the_model(&MessagesConfig::new(store), usize::MAX);
    let capped = RedisOptions {
        per_context: 4,
        ..options("capped")
    };
    follows_the_model(&MessagesConfig::new(server.store(capped).await), 4);
}

/// `Storage::fallback` spilling to Redis: with a tiny cookie budget most requests spill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_store_spills_to_redis_and_follows_the_model() {
    let Some(server) = shared::redis() else {
        return;
    };
    let cookie =
        CookieStore::new(vec![b"0123456789abcdef0123456789abcdef-redis".to_vec()]).unwrap();
    let redis = CountingStore::new(server.store(options("fallback")).await);
    let config = MessagesConfig::new(Storage::fallback(
        cookie.budget(256).unwrap(),
        redis.clone(),
    ));
    follows_the_model(&config, usize::MAX);
    assert!(redis.calls() > 0, "messages went through redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_follows_the_model() {
    let Some(cluster) = shared::redis_cluster() else {
        return;
    };
    let store = cluster.store(RedisOptions::default()).await;
    follows_the_model(&MessagesConfig::new(store), usize::MAX);
}

#[tokio::test]
async fn keys_are_laid_out_as_documented() {
    let Some(server) = shared::redis() else {
        return;
    };
    let store = server
        .store(RedisOptions {
            idle_ttl: Duration::from_secs(60),
            read_lease: Duration::from_secs(30),
            ..options("app1")
        })
        .await;
    let s = SessionKey::generate().unwrap();
    let view = ViewId::from_static("app::dashboard");
    assert_eq!(
        store.context_key(&s, &view),
        format!("app1:{{{}}}:app::dashboard", s.as_str())
    );
    assert_eq!(
        store.views_key(&s),
        format!("app1:{{{}}};views", s.as_str())
    );
    let m = Message::info("hello").with_created_at(1_234);
    store.add(&s, &view, m.clone()).await.unwrap();

    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let members: Vec<(String, f64)> = con
        .zrange_withscores(store.context_key(&s, &view), 0, -1)
        .await
        .unwrap();
    let json = serde_json::to_string(&m).unwrap();
    assert!(
        json.starts_with(&format!("{{\"id\":\"{}\"", m.id())),
        "{json}"
    );
    assert_eq!(
        members,
        [(json, 1.0)],
        "a JSON member scored by its place in the session's arrival sequence, not created_at"
    );
    let seq = format!("app1:{{{}}};seq", s.as_str());
    let next: u64 = con.get(&seq).await.unwrap();
    assert_eq!(next, 1, "{seq} counts the session's messages");
    let index: Vec<String> = con.smembers(store.views_key(&s)).await.unwrap();
    assert_eq!(index, ["app::dashboard"]);
    for key in [
        store.context_key(&s, &view),
        store.views_key(&s),
        seq.clone(),
    ] {
        let ttl: i64 = con.pttl(&key).await.unwrap();
        assert!(
            (50_000..=60_000).contains(&ttl),
            "{key}: idle TTL set, {ttl} ms"
        );
    }
    store.take(&s, &view).await.unwrap();
    let left: Vec<String> = con.keys("app1:*").await.unwrap();
    assert!(left.is_empty(), "take leaves no keys: {left:?}");
}

#[tokio::test]
async fn namespaces_are_separate() {
    let Some(server) = shared::redis() else {
        return;
    };
    let one = server.store(options("one")).await;
    let two = server.store(options("two")).await;
    let longer = server.store(options("one:x")).await;
    let (s, v) = (SessionKey::generate().unwrap(), ViewId::from_static("v"));
    one.add(&s, &v, Message::info("for one")).await.unwrap();
    for other in [&two, &longer] {
        assert_eq!(other.count(&s, &v).await.unwrap(), 0);
        assert!(other.pending_views(&s).await.unwrap().is_empty());
        other.clear_session(&s).await.unwrap();
        assert!(other.take(&s, &v).await.unwrap().is_empty());
    }
    assert_eq!(one.take(&s, &v).await.unwrap()[0].text(), "for one");

    for bad in ["", "has space", "br{ace", "x}", &"n".repeat(65)] {
        let e = RedisStore::connect(&server.url(), options(bad))
            .await
            .unwrap_err();
        assert!(matches!(e, messages_core::Error::Config(_)), "{bad:?}: {e}");
    }
}

#[tokio::test]
async fn undecodable_members_are_skipped() {
    let Some(server) = shared::redis() else {
        return;
    };
    let store = server.store(RedisOptions::default()).await;
    let (s, v) = (SessionKey::generate().unwrap(), ViewId::from_static("v"));
    let key = store.context_key(&s, &v);
    let first = Message::info("first").with_created_at(10);
    let last = Message::info("last").with_created_at(30);
    store.add_all(&s, &v, vec![first, last]).await.unwrap();
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let too_long = serde_json::json!({
        "id": messages_core::MessageId::new().to_string(),
        "level": "info",
        "text": "x".repeat(messages_core::MAX_TEXT_BYTES + 1),
        "created_at": 20,
    })
    .to_string();
    for (score, junk) in [
        (15, "not json".to_owned()),
        (20, too_long),
        (25, "{\"id\":1}".to_owned()),
    ] {
        let _: usize = con.zadd(&key, junk, score).await.unwrap();
    }
    assert_eq!(
        store.count(&s, &v).await.unwrap(),
        5,
        "count is the raw member count"
    );
    let peeked = conformance::texts(&store.peek(&s, &v).await.unwrap());
    assert_eq!(peeked, ["first", "last"]);
    let taken = conformance::texts(&store.take(&s, &v).await.unwrap());
    assert_eq!(taken, ["first", "last"]);
    assert_eq!(
        store.count(&s, &v).await.unwrap(),
        0,
        "the junk is gone with the take"
    );

    // A key of another type is a store error, not a panic.
    let _: () = con.set(&key, "a string").await.unwrap();
    let e = store.peek(&s, &v).await.unwrap_err();
    assert!(
        matches!(e, messages_core::Error::Unavailable { store: "redis", .. }),
        "{e}"
    );
    let config = MessagesConfig::new(store.clone());
    let cookie = format!("messages_session={s}");
    let req = config.begin([cookie.as_str()]);
    assert!(
        req.context(&v).messages().await.is_empty(),
        "a page still renders"
    );
    req.commit(true).await;
}
