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
    assert_eq!(left, [seq.as_str()], "take leaves only the sequence");
    let ttl: i64 = con.pttl(&seq).await.unwrap();
    assert!(
        (50_000..=60_000).contains(&ttl),
        "the sequence expires with the session: {ttl} ms"
    );
    store.add(&s, &view, Message::info("again")).await.unwrap();
    let next: u64 = con.get(&seq).await.unwrap();
    assert_eq!(next, 2, "a session written again counts on");
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

// ---------------------------------------------------------------------------------------
// Live delivery through the change feed (sharded pub/sub).

mod live {
    use std::collections::HashMap;
    use std::io::Write as _;
    use std::time::Instant;

    use messages_core::live::{LiveEvent, LiveOptions, LiveStream};
    use messages_tests::redis_server::{RedisCluster, RedisServer};

    use super::*;

    const VIEW: ViewId = ViewId::from_static("app::live");
    /// Only a notification delivers within the deadlines below: a stream's keep-alive
    /// poll comes after a minute.
    const ONLY_PUSHED: LiveOptions = LiveOptions {
        per_session: 8,
        total: 10_000,
        keep_alive: Duration::from_secs(60),
        poll_interval: Duration::from_secs(60),
    };
    /// Generous: a notification takes milliseconds.
    const DEADLINE: Duration = Duration::from_secs(10);
    /// Messages added for two streams at once.
    const MESSAGES: usize = 40;

    /// The servers a test runs on: one, or a cluster's nodes.
    #[derive(Clone, Copy)]
    enum Target<'a> {
        Single(&'a RedisServer),
        Cluster(&'a RedisCluster),
    }

    impl Target<'_> {
        fn name(self) -> &'static str {
            match self {
                Target::Single(_) => "single",
                Target::Cluster(_) => "cluster",
            }
        }

        async fn store(self) -> RedisStore {
            match self {
                Target::Single(s) => s.store(options("live")).await,
                Target::Cluster(c) => c.store(options("live")).await,
            }
        }

        fn servers(&self) -> Vec<&RedisServer> {
            match self {
                Target::Single(s) => vec![s],
                Target::Cluster(c) => c.nodes().iter().collect(),
            }
        }

        /// Runs `cmd` on every node, each answer an integer, and adds them up.
        fn sum(&self, cmd: &redis_client::Cmd, pick: impl Fn(redis_client::Value) -> i64) -> i64 {
            self.servers().iter().map(|n| pick(n.query(cmd))).sum()
        }

        /// Subscribers of a shard channel, on all nodes (`PUBSUB SHARDNUMSUB`).
        fn subscribers(&self, channel: &str) -> i64 {
            let mut cmd = redis_client::cmd("PUBSUB");
            cmd.arg("SHARDNUMSUB").arg(channel);
            self.sum(&cmd, |v| {
                let (_, n): (String, i64) = redis_client::from_redis_value(v).unwrap();
                n
            })
        }

        /// Clients connected to all nodes (this one's own query included).
        fn clients(&self) -> i64 {
            let mut cmd = redis_client::cmd("CLIENT");
            cmd.arg("LIST");
            self.sum(&cmd, |v| {
                let list: String = redis_client::from_redis_value(v).unwrap();
                i64::try_from(list.lines().count()).unwrap()
            })
        }

        /// Change-feed connections (RESP3; the stores' own are RESP2) on all nodes.
        fn feed_connections(&self) -> i64 {
            let mut cmd = redis_client::cmd("CLIENT");
            cmd.arg("LIST");
            self.sum(&cmd, |v| {
                let list: String = redis_client::from_redis_value(v).unwrap();
                i64::try_from(list.lines().filter(|l| l.contains(" resp=3")).count()).unwrap()
            })
        }

        /// Kills the pub/sub connections on every node.
        fn kill_subscribers(&self) -> i64 {
            let mut cmd = redis_client::cmd("CLIENT");
            cmd.arg("KILL").arg("TYPE").arg("pubsub");
            self.sum(&cmd, |v| redis_client::from_redis_value(v).unwrap())
        }
    }

    fn say(text: &str) {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }

    /// Waits until `done`, up to [`DEADLINE`], blocking the thread (the tests run on a
    /// multi-thread runtime, whose other worker runs the store's tasks).
    fn eventually(what: &str, done: impl Fn() -> bool) {
        tokio::task::block_in_place(|| {
            let deadline = Instant::now() + DEADLINE;
            while !done() {
                assert!(Instant::now() < deadline, "{what} within {DEADLINE:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    }

    fn live_config(store: RedisStore, options: LiveOptions) -> MessagesConfig {
        MessagesConfig::new(store).live_options(options).unwrap()
    }

    /// A stream of `session` (a new one when `None`) on [`VIEW`].
    fn open(config: &MessagesConfig, session: Option<&SessionKey>) -> LiveStream {
        let cookie = session.map(|s| format!("messages_session={}", s.as_str()));
        let stream = config.begin(cookie.as_deref()).live(VIEW, None).unwrap();
        if let Some(s) = session {
            assert_eq!(stream.session(), s);
        }
        assert!(stream.is_notified(), "a redis store has a change feed");
        stream
    }

    /// The next message of the stream, which must come before [`DEADLINE`] (keep-alives
    /// skipped: a woken stream writes one before it takes).
    async fn next_message(stream: &mut LiveStream) -> Message {
        let next = async {
            loop {
                match stream.next().await {
                    Some(LiveEvent::Message(m)) => return m,
                    Some(_) => {}
                    None => panic!("the stream ended"),
                }
            }
        };
        match tokio::time::timeout(DEADLINE, next).await {
            Ok(m) => m,
            Err(elapsed) => panic!("no message within {DEADLINE:?}: {elapsed}"),
        }
    }

    /// (1) A stream is pushed what another store instance (another process) adds, long
    /// before any poll. Prints the add-to-event latency.
    async fn pushes_an_add_from_another_instance(target: Target<'_>) {
        let config = live_config(target.store().await, ONLY_PUSHED);
        let other = target.store().await;
        let mut stream = open(&config, None);
        let session = stream.session().clone();
        // Added at once: before the stream's session is subscribed, probably. The
        // subscription wakes the stream, which takes it.
        other
            .add(&session, &VIEW, Message::info("right away"))
            .await
            .unwrap();
        assert_eq!(next_message(&mut stream).await.text(), "right away");
        let channel = other.live_channel(&session);
        eventually("subscribed", || target.subscribers(&channel) == 1);
        let mut latencies = Vec::new();
        for i in 0..20 {
            let text = format!("pushed {i}");
            let added = Instant::now();
            other
                .add(&session, &VIEW, Message::info(text.as_str()))
                .await
                .unwrap();
            assert_eq!(next_message(&mut stream).await.text(), text);
            latencies.push(added.elapsed());
        }
        latencies.sort_unstable();
        say(&format!(
            "live {}: add to event (add's round trip included): min {:?}, median {:?}, max {:?}\n",
            target.name(),
            latencies[0],
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1]
        ));
        assert_eq!(other.count(&session, &VIEW).await.unwrap(), 0);
    }

    /// (2) Two streams of one context, each on its own store instance: every message is
    /// delivered once in all.
    async fn two_instances_deliver_each_message_once(target: Target<'_>) {
        let one = live_config(target.store().await, ONLY_PUSHED);
        let two = live_config(target.store().await, ONLY_PUSHED);
        let adder = target.store().await;
        let a = open(&one, None);
        let session = a.session().clone();
        let b = open(&two, Some(&session));
        let channel = adder.live_channel(&session);
        eventually("both subscribed", || target.subscribers(&channel) == 2);

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let readers: Vec<_> = [a, b]
            .into_iter()
            .map(|mut stream| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some(event) = stream.next().await {
                        if let LiveEvent::Message(m) = event {
                            let _ = tx.send(m.text().to_owned());
                        }
                    }
                })
            })
            .collect();
        for i in 0..MESSAGES {
            adder
                .add(&session, &VIEW, Message::info(format!("m{i}")))
                .await
                .unwrap();
            if i % 4 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        while seen.len() < MESSAGES {
            let text = tokio::time::timeout(DEADLINE, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {MESSAGES} delivered", seen.len()))
                .unwrap();
            *seen.entry(text).or_default() += 1;
        }
        // Anything delivered twice would have come by now, right after its first copy.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(text) = rx.try_recv() {
            *seen.entry(text).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "delivered twice: {twice:?}");
        assert_eq!(adder.count(&session, &VIEW).await.unwrap(), 0);
        for reader in readers {
            reader.abort();
        }
    }

    /// (4) A session's channel is subscribed while it has streams, and unsubscribed once
    /// they are gone; streams of one store share its connection.
    async fn unwatched_sessions_are_unsubscribed(target: Target<'_>) {
        let one = live_config(target.store().await, ONLY_PUSHED);
        let two = live_config(target.store().await, ONLY_PUSHED);
        let a = open(&one, None);
        let session = a.session().clone();
        let also_a = open(&one, Some(&session));
        let b = open(&two, Some(&session));
        let channel = target.store().await.live_channel(&session);
        eventually("one subscription per store", || {
            target.subscribers(&channel) == 2
        });
        drop(a);
        drop(b);
        eventually("the second store unsubscribed", || {
            target.subscribers(&channel) == 1
        });
        drop(also_a);
        eventually("every store unsubscribed", || {
            target.subscribers(&channel) == 0
        });
        // Watched again: subscribed again.
        let _again = open(&two, Some(&session));
        eventually("subscribed again", || target.subscribers(&channel) == 1);
    }

    /// A stream of a new session on a store of `target`, once its session is subscribed,
    /// and a second store (another process) to add with.
    struct Subscribed {
        config: MessagesConfig,
        other: RedisStore,
        stream: LiveStream,
        session: SessionKey,
        channel: String,
    }

    async fn subscribed(target: Target<'_>) -> Subscribed {
        let config = live_config(target.store().await, ONLY_PUSHED);
        let other = target.store().await;
        let stream = open(&config, None);
        let session = stream.session().clone();
        let channel = other.live_channel(&session);
        eventually("subscribed", || target.subscribers(&channel) == 1);
        Subscribed {
            config,
            other,
            stream,
            session,
            channel,
        }
    }

    /// (3) One change-feed connection per store, whatever the streams; after it is
    /// killed, messages are pushed again (subscribed anew); it closes when the store is
    /// dropped. On servers of its own, since it kills connections.
    async fn one_connection_and_resubscribed_after_a_kill(target: Target<'_>) {
        let Subscribed {
            config,
            other,
            mut stream,
            session,
            channel,
        } = subscribed(target).await;
        let nodes = i64::try_from(target.servers().len()).unwrap();
        let before = target.clients();
        let feed = target.feed_connections();
        assert!(
            (1..=nodes).contains(&feed),
            "one change-feed connection (per node on Cluster): {feed}"
        );
        say(&format!(
            "live {}: {feed} change-feed connection(s), {before} clients in all\n",
            target.name()
        ));
        let more: Vec<LiveStream> = (0..10)
            .map(|_| open(&config, None))
            .chain((0..3).map(|_| open(&config, Some(&session))))
            .collect();
        for s in &more {
            let ch = other.live_channel(s.session());
            eventually("subscribed", || target.subscribers(&ch) == 1);
        }
        assert_eq!(
            target.feed_connections(),
            feed,
            "streams share the connection"
        );
        eventually("no more connections for more streams", || {
            target.clients() <= before
        });
        drop(more);

        let killed = target.kill_subscribers();
        assert!(killed >= 1, "the change feed's connection was killed");
        other
            .add(&session, &VIEW, Message::info("after the kill"))
            .await
            .unwrap();
        assert_eq!(next_message(&mut stream).await.text(), "after the kill");
        eventually("subscribed again", || target.subscribers(&channel) == 1);
        other
            .add(&session, &VIEW, Message::info("pushed again"))
            .await
            .unwrap();
        assert_eq!(next_message(&mut stream).await.text(), "pushed again");

        // The feed's task ends with the store: its connection closes.
        drop((stream, config));
        eventually("the feed's connection closed with the store", || {
            target.feed_connections() == 0
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_has_one_connection_and_resubscribes_after_a_kill() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        one_connection_and_resubscribed_after_a_kill(Target::Single(&server)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_has_one_connection_per_node_and_resubscribes_after_a_kill() {
        let Some(cluster) = RedisCluster::start() else {
            return;
        };
        one_connection_and_resubscribed_after_a_kill(Target::Cluster(&cluster)).await;
    }

    /// A session's channel follows its slot to another node (a resharding): the server
    /// drops the subscription (`sunsubscribe`), the feed subscribes again where the slot
    /// now is, and messages are still pushed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_subscription_follows_a_moved_slot() {
        let Some(cluster) = RedisCluster::start() else {
            return;
        };
        let target = Target::Cluster(&cluster);
        let Subscribed {
            other,
            mut stream,
            session,
            channel,
            ..
        } = subscribed(target).await;

        let nodes = cluster.nodes();
        let slot: i64 = nodes[0].query(redis_client::cmd("CLUSTER").arg("KEYSLOT").arg(&channel));
        let ids: Vec<String> = nodes
            .iter()
            .map(|n| n.query(redis_client::cmd("CLUSTER").arg("MYID")))
            .collect();
        let source = nodes
            .iter()
            .position(|n| {
                let mut cmd = redis_client::cmd("PUBSUB");
                cmd.arg("SHARDNUMSUB").arg(&channel);
                let (_, n): (String, i64) = n.query(&cmd);
                n == 1
            })
            .unwrap();
        let dest = (source + 1) % nodes.len();
        let keys: i64 = nodes[source].query(
            redis_client::cmd("CLUSTER")
                .arg("COUNTKEYSINSLOT")
                .arg(slot),
        );
        assert_eq!(keys, 0, "the stream took everything: no key to migrate");
        let setslot = |node: usize, state: &str, id: &str| {
            let () = nodes[node].query(
                redis_client::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg(state)
                    .arg(id),
            );
        };
        setslot(dest, "IMPORTING", &ids[source]);
        setslot(source, "MIGRATING", &ids[dest]);
        for node in [dest, source, (dest + 1) % nodes.len()] {
            setslot(node, "NODE", &ids[dest]);
        }
        eventually("subscribed where the slot now is", || {
            let mut cmd = redis_client::cmd("PUBSUB");
            cmd.arg("SHARDNUMSUB").arg(&channel);
            let (_, n): (String, i64) = nodes[dest].query(&cmd);
            n == 1
        });
        other
            .add(&session, &VIEW, Message::info("after the move"))
            .await
            .unwrap();
        assert_eq!(next_message(&mut stream).await.text(), "after the move");
    }

    /// Adds until the store answers again (its connection is made again by the first
    /// call after a restart).
    async fn add_when_back(store: &RedisStore, session: &SessionKey, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        while let Err(e) = store.add(session, &VIEW, Message::info(text)).await {
            assert!(Instant::now() < deadline, "redis not back: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A configuration whose streams poll every second (when they have no change feed,
    /// or after a store error), and a second store: both on `server`, in `namespace`.
    async fn config_and_adder(
        server: &RedisServer,
        namespace: &str,
    ) -> (MessagesConfig, RedisStore) {
        let live = LiveOptions {
            poll_interval: Duration::from_secs(1),
            ..ONLY_PUSHED
        };
        let config = live_config(server.store(options(namespace)).await, live);
        (config, server.store(options(namespace)).await)
    }

    /// (3) After the server restarts (everything lost), messages are pushed again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_resubscribes_after_a_restart() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        // A take failing while the server is away is tried again after the poll interval.
        let (config, other) = config_and_adder(&server, "live").await;
        let mut stream = open(&config, None);
        let session = stream.session().clone();
        let channel = other.live_channel(&session);
        eventually("subscribed", || {
            Target::Single(&server).subscribers(&channel) == 1
        });
        tokio::task::block_in_place(|| server.restart());
        add_when_back(&other, &session, "after the restart").await;
        assert_eq!(next_message(&mut stream).await.text(), "after the restart");
        eventually("subscribed again", || {
            Target::Single(&server).subscribers(&channel) == 1
        });
        add_when_back(&other, &session, "pushed again").await;
        assert_eq!(next_message(&mut stream).await.text(), "pushed again");
    }

    /// A server without sharded pub/sub (as before Redis 7: the commands renamed away):
    /// adds work, streams watching already are woken every second, new ones poll.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_sharded_pubsub_streams_poll() {
        let Some(server) = RedisServer::start_with_args(&[
            "--rename-command",
            "SSUBSCRIBE",
            "",
            "--rename-command",
            "SPUBLISH",
            "",
        ]) else {
            return;
        };
        let (config, other) = config_and_adder(&server, "old").await;
        let mut early = config.begin([]).live(VIEW, None).unwrap();
        assert!(early.is_notified(), "not known yet");
        eventually("new streams poll", || {
            !config.begin([]).live(VIEW, None).unwrap().is_notified()
        });
        let mut late = config.begin([]).live(VIEW, None).unwrap();
        for (stream, text) in [
            (&mut early, "to the early one"),
            (&mut late, "to the late one"),
        ] {
            other
                .add(stream.session(), &VIEW, Message::info(text))
                .await
                .unwrap();
            assert_eq!(next_message(stream).await.text(), text);
        }
    }

    /// Each check as `<check>::single` on the shared server and `<check>::cluster` on
    /// the shared cluster.
    macro_rules! on_single_and_cluster {
        ($($check:ident),* $(,)?) => {$(
            mod $check {
                use super::{Target, shared};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn single() {
                    let Some(server) = shared::redis() else { return };
                    super::$check(Target::Single(server)).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cluster() {
                    let Some(cluster) = shared::redis_cluster() else { return };
                    super::$check(Target::Cluster(cluster)).await;
                }
            }
        )*};
    }

    on_single_and_cluster!(
        pushes_an_add_from_another_instance,
        two_instances_deliver_each_message_once,
        unwatched_sessions_are_unsubscribed,
    );
}

/// Round trips of flash pairs — a request that adds (a form's POST) and one that reads
/// and shows (the GET it redirects to) — through the request core, several browsers at
/// once, counted by [`RedisStore::round_trips`].
mod round_trips {
    use super::*;
    use messages_tests::Browser;
    use messages_tests::redis_server::RedisServer;

    const VIEW: ViewId = ViewId::from_static("app::settings");
    const BROWSERS: usize = 6;
    const PAIRS: usize = 5;

    /// The options of these tests: a settle delay so long that only the commands of the
    /// requests (and the final flush) carry the settles — the count does not depend on
    /// the machine's speed.
    fn options(namespace: &str) -> RedisOptions {
        RedisOptions {
            settle_delay: Duration::from_secs(20),
            ..super::options(namespace)
        }
    }

    /// The keys of `namespace` that hold a read's reserve, on `clients`.
    async fn reserves(clients: &[redis_client::Client], namespace: &str) -> Vec<String> {
        let mut all = Vec::new();
        for client in clients {
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = con.keys(format!("{namespace}:*;taken:*")).await.unwrap();
            all.extend(keys);
        }
        all
    }

    /// `BROWSERS` browsers at once, each `PAIRS` flash pairs in a row (the next pair's
    /// POST follows the GET's commit, as a person's next form does): every GET shows its
    /// message, the store sends at most one round trip per request, and once flushed no
    /// reserve is left.
    async fn one_round_trip_per_request(store: &RedisStore, clients: &[redis_client::Client]) {
        let config = MessagesConfig::new(store.clone());
        let before = store.round_trips();
        let mut browsers = tokio::task::JoinSet::new();
        for b in 0..BROWSERS {
            let config = config.clone();
            browsers.spawn(async move {
                let mut browser = Browser::new();
                for p in 0..PAIRS {
                    let text = format!("saved {b}.{p}");
                    browser.add(&config, &VIEW, &[&text]).await;
                    assert_eq!(browser.read(&config, &VIEW).await, [text]);
                }
            });
        }
        while let Some(done) = browsers.join_next().await {
            done.unwrap();
        }
        let sent = store.round_trips() - before;
        let requests = (2 * BROWSERS * PAIRS) as u64;
        eprintln!("{sent} round trips for {requests} requests");
        assert!(
            sent <= requests,
            "{sent} round trips for {requests} requests: at most one each"
        );
        // The last GET of each browser left its settle held: one pipeline (on Cluster one
        // per session) sends them all.
        config.flush().await.unwrap();
        let flushed = store.round_trips() - before - sent;
        assert!(flushed <= BROWSERS as u64, "{flushed} round trips to flush");
        assert!(reserves(clients, "pairs").await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_node_flash_pairs() {
        let Some(server) = shared::redis() else {
            return;
        };
        let store = server.store(options("pairs")).await;
        one_round_trip_per_request(&store, &[server.client()]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_flash_pairs() {
        let Some(cluster) = shared::redis_cluster() else {
            return;
        };
        let store = cluster.store(options("pairs")).await;
        let clients: Vec<_> = cluster.nodes().iter().map(RedisServer::client).collect();
        one_round_trip_per_request(&store, &clients).await;
    }
}

/// Settles of read leases held back (`RedisOptions::settle_delay`): carried by the store's
/// next command, sent by the flusher when none comes, by `flush`, tried again after a
/// failure — and left to their leases by a process that dies holding them: shown again,
/// never lost.
mod held_settles {
    use super::*;
    use messages_core::Error;
    use messages_tests::redis_server::RedisServer;

    const VIEW: ViewId = ViewId::from_static("app::settings");
    /// A delay no test waits out: only commands and `flush` send the held settles.
    const FOREVER: Duration = Duration::from_secs(20);
    /// A delay the tests that wait for the flusher wait out many times over.
    const SHORT: Duration = Duration::from_millis(50);
    /// The lease of the tests that wait for it to be up (a little longer).
    const LEASE: Duration = Duration::from_millis(1500);
    /// The lease of the tests that hold settles `FOREVER`.
    const LONG_LEASE: Duration = Duration::from_secs(60);

    fn options(namespace: &str, settle_delay: Duration, read_lease: Duration) -> RedisOptions {
        RedisOptions {
            settle_delay,
            read_lease,
            ..super::options(namespace)
        }
    }

    /// A test's store on the binary's shared server or cluster, in a namespace of its own.
    struct Target {
        store: RedisStore,
        namespace: &'static str,
        clients: Vec<redis_client::Client>,
        urls: Vec<String>,
        cluster: bool,
    }

    impl Target {
        async fn new(
            cluster: bool,
            namespace: &'static str,
            (delay, lease): (Duration, Duration),
        ) -> Option<Target> {
            let options = options(namespace, delay, lease);
            let (store, nodes) = if cluster {
                let c = shared::redis_cluster()?;
                (c.store(options).await, c.nodes())
            } else {
                let server = shared::redis()?;
                (server.store(options).await, std::slice::from_ref(server))
            };
            Some(Target {
                store,
                namespace,
                clients: nodes.iter().map(RedisServer::client).collect(),
                urls: nodes.iter().map(RedisServer::url).collect(),
                cluster,
            })
        }

        /// How many keys of the namespace hold a read's reserve.
        async fn reserves(&self) -> usize {
            reserves(&self.clients, self.namespace).await
        }
    }

    /// How many keys of `namespace` hold a read's reserve, on `clients`.
    async fn reserves(clients: &[redis_client::Client], namespace: &str) -> usize {
        let mut n = 0;
        for client in clients {
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = con.keys(format!("{namespace}:*;taken:*")).await.unwrap();
            n += keys.len();
        }
        n
    }

    /// Adds `texts` to a new session's view and reads them under a lease, then settles
    /// it; returns the session.
    async fn read_and_settle(store: &RedisStore, texts: &[&str]) -> SessionKey {
        let s = SessionKey::generate().unwrap();
        for t in texts {
            store.add(&s, &VIEW, Message::info(*t)).await.unwrap();
        }
        let taken = store.take_leased(&s, &VIEW).await.unwrap();
        assert_eq!(taken.messages.len(), texts.len());
        store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
        s
    }

    /// A settle sends nothing; the next command carries it in its own round trip: any
    /// command on one server, only one of the same session on Redis Cluster (a pipeline
    /// stays in one slot).
    async fn next_command_carries_them(t: &Target) {
        let store = &t.store;
        let before = store.round_trips();
        let s = read_and_settle(store, &["a"]).await;
        assert_eq!(
            store.round_trips() - before,
            2,
            "add and take; the settle is held"
        );
        assert_eq!(t.reserves().await, 1);

        let other = SessionKey::generate().unwrap();
        store.add(&other, &VIEW, Message::info("b")).await.unwrap();
        assert_eq!(store.round_trips() - before, 3);
        assert_eq!(t.reserves().await, usize::from(t.cluster));
        // On Cluster the session's own next command carries it.
        assert!(store.peek(&s, &VIEW).await.unwrap().is_empty());
        assert_eq!(store.round_trips() - before, 4);
        assert_eq!(t.reserves().await, 0);
        store.clear_session(&other).await.unwrap();
    }

    /// With no command to carry it, the flusher sends a held settle after the delay (one
    /// round trip): its messages do not come back after the lease.
    async fn idle_store_flushes_after_the_delay(t: &Target) {
        let s = read_and_settle(&t.store, &["a", "b"]).await;
        let before = t.store.round_trips();
        tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
        assert_eq!(t.store.round_trips() - before, 1, "the flusher's pipeline");
        assert_eq!(t.reserves().await, 0);
        assert!(t.store.take(&s, &VIEW).await.unwrap().is_empty());
    }

    /// `flush` sends every held settle at once: one pipeline on one server, one per
    /// session on Redis Cluster.
    async fn flush_sends_what_is_held(t: &Target) {
        let store = &t.store;
        // Read all first, then settle: no command follows the settles.
        let sessions: Vec<SessionKey> = (0..3).map(|_| SessionKey::generate().unwrap()).collect();
        for s in &sessions {
            store.add(s, &VIEW, Message::info("a")).await.unwrap();
        }
        let mut leases = Vec::new();
        for s in &sessions {
            leases.push(store.take_leased(s, &VIEW).await.unwrap().lease.unwrap());
        }
        for (s, lease) in sessions.iter().zip(leases) {
            store.settle(s, &VIEW, lease).await.unwrap();
        }
        assert_eq!(t.reserves().await, 3);
        let before = store.round_trips();
        let pipelines = if t.cluster { 3 } else { 1 };
        store.flush().await.unwrap();
        assert_eq!(store.round_trips() - before, pipelines);
        assert_eq!(t.reserves().await, 0);
        // Nothing left to send.
        store.flush().await.unwrap();
        assert_eq!(store.round_trips() - before, pipelines);
    }

    /// A process that dies holding settles (its runtime gone, the flusher with it) loses
    /// no message: they are shown again after the lease, in order.
    async fn dead_process_loses_nothing(t: &Target) {
        let (urls, cluster, namespace) = (t.urls.clone(), t.cluster, t.namespace);
        let dead = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let s = runtime.block_on(async {
                let options = options(namespace, SHORT, LEASE);
                let store = if cluster {
                    RedisStore::connect_cluster(urls.iter().map(String::as_str), options).await
                } else {
                    RedisStore::connect(&urls[0], options).await
                };
                read_and_settle(&store.unwrap(), &["one", "two"]).await
            });
            drop(runtime); // as the process dies: the held settle is never sent
            s
        });
        let s = tokio::task::spawn_blocking(move || dead.join().unwrap())
            .await
            .unwrap();
        assert!(t.store.take(&s, &VIEW).await.unwrap().is_empty(), "leased");
        tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
        let back = t.store.take(&s, &VIEW).await.unwrap();
        assert_eq!(
            back.iter().map(Message::text).collect::<Vec<_>>(),
            ["one", "two"]
        );
    }

    /// `<case>::{single, cluster}` for each case, with the settle delay and read lease
    /// given.
    macro_rules! on_both {
        ($($case:ident: $timing:expr),* $(,)?) => {$(
            mod $case {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn single() {
                    if let Some(t) = Target::new(false, stringify!($case), $timing).await {
                        super::$case(&t).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cluster() {
                    if let Some(t) = Target::new(true, stringify!($case), $timing).await {
                        super::$case(&t).await;
                    }
                }
            }
        )*};
    }

    on_both!(
        next_command_carries_them: (FOREVER, LONG_LEASE),
        idle_store_flushes_after_the_delay: (SHORT, LEASE),
        flush_sends_what_is_held: (FOREVER, LONG_LEASE),
        dead_process_loses_nothing: (SHORT, LEASE),
    );

    /// A held settle that fails (the server killed) is tried again until it is sent (the
    /// server back, with its data): the messages do not come back after the lease.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_settle_is_tried_again() {
        let Some(mut server) =
            RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"])
        else {
            return;
        };
        let lease = Duration::from_secs(4);
        let options = RedisOptions {
            connect_timeout: Duration::from_millis(200),
            response_timeout: Duration::from_millis(200),
            ..options("retry", Duration::from_millis(20), lease)
        };
        let store = RedisStore::connect(&server.url(), options).await.unwrap();
        let s = SessionKey::generate().unwrap();
        store.add(&s, &VIEW, Message::info("once")).await.unwrap();
        let taken = store.take_leased(&s, &VIEW).await.unwrap();
        server.kill();
        // Held: it cannot fail, whatever happens to it later.
        store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::task::block_in_place(|| server.revive());
        assert_eq!(
            reserves(&[server.client()], "retry").await,
            1,
            "kept by the server"
        );
        tokio::time::sleep(lease + Duration::from_millis(300)).await;
        assert_eq!(reserves(&[server.client()], "retry").await, 0);
        assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
    }

    /// A settle delay of half the read lease or more is refused before connecting.
    #[tokio::test]
    async fn a_settle_delay_not_under_half_the_lease_is_refused() {
        let options = options("refused", Duration::from_secs(30), Duration::from_secs(60));
        let refused = RedisStore::connect("redis://127.0.0.1:1", options).await;
        assert!(matches!(refused, Err(Error::Config(_))), "{refused:?}");
    }
}
