//! Order of `RedisStore` messages against real servers (one node and a 3-node cluster):
//! a context keeps the order in which messages arrived in Redis, by a per-session
//! sequence the server assigns, whatever the clocks of the application servers say;
//! `put_back` puts taken messages before everything that arrived since; restored
//! reserves come back in place; the cap trims the first arrived.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use messages_core::redis_client::AsyncCommands;
use messages_core::redis_client::aio::ConnectionLike;
use messages_core::{Message, MessageStore, RedisOptions, RedisStore, SessionKey, ViewId};
use messages_tests::conformance::texts;
use messages_tests::redis_server::{RedisCluster, RedisServer};

const VIEW: ViewId = ViewId::from_static("app::inbox");
const OTHER: ViewId = ViewId::from_static("app::other");
/// The read lease of these stores; tests wait a little longer for it to be up.
const LEASE: Duration = Duration::from_millis(1500);
/// How far the two "application servers" clocks disagree.
const SKEW_MS: u64 = 60_000;

fn options(namespace: &str) -> RedisOptions {
    RedisOptions {
        namespace: namespace.to_owned(),
        read_lease: LEASE,
        ..RedisOptions::default()
    }
}

async fn lease_up() {
    tokio::time::sleep(LEASE + Duration::from_millis(500)).await;
}

/// The application's clock now, as `Message` reads it.
fn now_ms() -> u64 {
    Message::info("clock").created_at()
}

fn ahead(text: &str) -> Message {
    Message::info(text).with_created_at(now_ms() + SKEW_MS)
}

fn behind(text: &str) -> Message {
    Message::info(text).with_created_at(now_ms() - SKEW_MS)
}

/// Two stores (two application servers) whose clocks disagree by two minutes: the
/// second add comes back second, though its `created_at` is older.
async fn skewed_clocks_do_not_reorder(one: &RedisStore, two: &RedisStore) {
    let s = SessionKey::generate().unwrap();
    one.add(&s, &VIEW, ahead("first")).await.unwrap();
    two.add(&s, &VIEW, behind("second")).await.unwrap();
    assert_eq!(
        texts(&one.peek(&s, &VIEW).await.unwrap()),
        ["first", "second"]
    );
    assert_eq!(
        texts(&two.take(&s, &VIEW).await.unwrap()),
        ["first", "second"]
    );

    // A clock stepped back on one server, and a batch made out of clock order.
    one.add(&s, &VIEW, ahead("a")).await.unwrap();
    one.add(&s, &VIEW, behind("b")).await.unwrap();
    two.add_all(&s, &VIEW, vec![ahead("c"), behind("d"), ahead("e")])
        .await
        .unwrap();
    assert_eq!(
        texts(&one.take(&s, &VIEW).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );

    // Identical messages but for their ids stay separate, in order.
    let same: Vec<Message> = (0..3).map(|_| behind("same")).collect();
    let ids: Vec<_> = same.iter().map(Message::id).collect();
    one.add_all(&s, &VIEW, same.clone()).await.unwrap();
    two.add(&s, &VIEW, same[0].clone()).await.unwrap(); // the same message again
    let got: Vec<_> = one
        .take(&s, &VIEW)
        .await
        .unwrap()
        .iter()
        .map(Message::id)
        .collect();
    assert_eq!(got, ids);
}

/// Messages a request took and did not show go back before everything added since,
/// in the order given, once each.
async fn put_back_goes_first(one: &RedisStore, two: &RedisStore) {
    let s = SessionKey::generate().unwrap();
    one.add(&s, &VIEW, ahead("a")).await.unwrap();
    two.add(&s, &VIEW, behind("b")).await.unwrap();
    let taken = one.take(&s, &VIEW).await.unwrap();
    assert_eq!(texts(&taken), ["a", "b"]);
    two.add(&s, &VIEW, behind("c")).await.unwrap();
    one.add(&s, &VIEW, ahead("d")).await.unwrap();
    two.put_back(&s, &VIEW, taken.clone()).await.unwrap();
    assert_eq!(
        texts(&one.peek(&s, &VIEW).await.unwrap()),
        ["a", "b", "c", "d"]
    );
    // Already there (by id): not added twice, nothing moves.
    one.put_back(&s, &VIEW, vec![taken[1].clone(), taken[0].clone()])
        .await
        .unwrap();
    assert_eq!(
        texts(&one.peek(&s, &VIEW).await.unwrap()),
        ["a", "b", "c", "d"]
    );
    // A second put-back goes before the first; later adds after everything.
    let more = vec![behind("y"), ahead("z")];
    one.put_back(&s, &VIEW, more).await.unwrap();
    two.add(&s, &VIEW, behind("e")).await.unwrap();
    assert_eq!(
        texts(&two.take(&s, &VIEW).await.unwrap()),
        ["y", "z", "a", "b", "c", "d", "e"]
    );

    // Into an empty context: in the given order, and before what is added next.
    one.put_back(&s, &OTHER, vec![ahead("p"), behind("q")])
        .await
        .unwrap();
    two.add(&s, &OTHER, behind("r")).await.unwrap();
    assert_eq!(texts(&one.take(&s, &OTHER).await.unwrap()), ["p", "q", "r"]);
    // Nothing to put back stores nothing.
    one.put_back(&s, &OTHER, Vec::new()).await.unwrap();
    assert!(one.pending_views(&s).await.unwrap().is_empty());
}

/// A reserve whose lease is up comes back in its place: before what arrived after it,
/// whatever the clocks.
async fn restored_reserves_keep_their_place(one: &RedisStore, two: &RedisStore) {
    let s = SessionKey::generate().unwrap();
    one.add(&s, &VIEW, ahead("a")).await.unwrap();
    one.add(&s, &VIEW, ahead("b")).await.unwrap();
    let taken = one.take_leased(&s, &VIEW).await.unwrap();
    assert_eq!(texts(&taken.messages), ["a", "b"]);
    two.add(&s, &VIEW, behind("c")).await.unwrap();
    lease_up().await;
    assert_eq!(texts(&two.take(&s, &VIEW).await.unwrap()), ["a", "b", "c"]);
}

/// The per-context cap drops the first arrived, not the oldest by an app clock.
async fn the_cap_drops_the_first_arrived(capped: &RedisStore) {
    let s = SessionKey::generate().unwrap();
    capped.add(&s, &VIEW, behind("a")).await.unwrap();
    capped.add(&s, &VIEW, ahead("b")).await.unwrap();
    capped.add(&s, &VIEW, ahead("c")).await.unwrap();
    capped.add(&s, &VIEW, behind("d")).await.unwrap();
    assert_eq!(
        texts(&capped.peek(&s, &VIEW).await.unwrap()),
        ["b", "c", "d"]
    );
    // Put back beyond the cap: the put-back messages are the first arrived.
    capped
        .put_back(&s, &VIEW, vec![behind("x"), ahead("y")])
        .await
        .unwrap();
    assert_eq!(
        texts(&capped.take(&s, &VIEW).await.unwrap()),
        ["b", "c", "d"]
    );
}

/// The sequence is one key per session: it expires with the session, `clear_session`
/// deletes it, and if it is lost anyway (evicted, say) while messages remain — in any
/// context of the session, or in a reserve — new messages still go after them.
async fn the_sequence_key(store: &RedisStore, con: &mut (impl ConnectionLike + Send + Sync)) {
    let s = SessionKey::generate().unwrap();
    let seq = store.views_key(&s).replace(";views", ";seq");
    store.add(&s, &VIEW, ahead("a")).await.unwrap();
    for t in ["o1", "o2", "o3"] {
        store.add(&s, &OTHER, ahead(t)).await.unwrap();
    }
    let pttl: i64 = con.pttl(&seq).await.unwrap();
    assert!(pttl > 0, "{seq} expires with the session: {pttl}");

    let taken = store.take_leased(&s, &OTHER).await.unwrap();
    assert_eq!(texts(&taken.messages), ["o1", "o2", "o3"]);
    let _: usize = con.del(&seq).await.unwrap();
    store.add(&s, &VIEW, behind("b")).await.unwrap();
    store.add(&s, &OTHER, behind("p")).await.unwrap();
    assert_eq!(texts(&store.take(&s, &VIEW).await.unwrap()), ["a", "b"]);
    lease_up().await;
    assert_eq!(
        texts(&store.take(&s, &OTHER).await.unwrap()),
        ["o1", "o2", "o3", "p"]
    );

    for t in ["c", "d"] {
        store.add(&s, &VIEW, ahead(t)).await.unwrap();
    }
    let _: usize = con.del(&seq).await.unwrap();
    store.add(&s, &VIEW, behind("e")).await.unwrap();
    assert_eq!(
        texts(&store.peek(&s, &VIEW).await.unwrap()),
        ["c", "d", "e"]
    );
    store.clear_session(&s).await.unwrap();
    let pttl: i64 = con.pttl(&seq).await.unwrap();
    assert_eq!(pttl, -2, "clear_session deletes {seq}");
}

async fn all_cases(
    connect: impl AsyncFn(RedisOptions) -> RedisStore,
    con: &mut (impl ConnectionLike + Send + Sync),
) {
    let (one, two) = (
        connect(options("order")).await,
        connect(options("order")).await,
    );
    skewed_clocks_do_not_reorder(&one, &two).await;
    put_back_goes_first(&one, &two).await;
    restored_reserves_keep_their_place(&one, &two).await;
    the_sequence_key(&one, con).await;
    let capped = connect(RedisOptions {
        per_context: 3,
        ..options("capped")
    })
    .await;
    the_cap_drops_the_first_arrived(&capped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_keeps_arrival_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut con = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let url = server.url();
    all_cases(
        async |o| RedisStore::connect(&url, o).await.unwrap(),
        &mut con,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keeps_arrival_order() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let urls = cluster.urls();
    let mut con = messages_core::redis_client::cluster::ClusterClient::new(urls.clone())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    all_cases(
        async |o| {
            RedisStore::connect_cluster(urls.iter().map(String::as_str), o)
                .await
                .unwrap()
        },
        &mut con,
    )
    .await;
}
