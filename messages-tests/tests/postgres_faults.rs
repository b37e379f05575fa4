//! `PostgresStore` when its server fails, on a server of each test's own: stopped
//! (immediate shutdown: connections drop, as in a crash) and frozen (SIGSTOP with its
//! connections open). Operations fail fast with `Error::Unavailable`, pages still render,
//! and the store recovers by itself once the server is back, with what was committed. A
//! live stream's change feed (`LISTEN`) survives its connection being terminated and the
//! server restarting.
//!
//! Then under load (`sigkill_under_load_*`): the harness of `load_faults.rs`
//! (`support/kill_under_load.rs`: 16 sessions × 3 tabs adding and reading over HTTP,
//! adds confirmed by `flush`) while the postmaster and every backend are SIGKILLed and
//! the server is started again on its port a second later: no confirmed add is lost,
//! nothing is shown twice or in another session, reads during the outage answer `200`
//! with no messages, and adds are stored again once the server is back. The figures are
//! printed on stderr, ending with a one-line summary per run
//! (`postgres_faults: …: confirmed=… lost=… dup=… …`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use messages_core::sqlx;
use messages_core::{
    Error, Message, MessageStore, MessagesConfig, PostgresStore, SessionKey, SqlOptions, ViewId,
};
use messages_tests::live_feed;
use messages_tests::postgres_server::PostgresServer;
use tokio::sync::mpsc::UnboundedReceiver;

#[path = "support/kill_under_load.rs"]
mod kill_under_load;

use kill_under_load::{Target, contained_kill};

const VIEW: ViewId = ViewId::from_static("app::inbox");

/// The store's bound on one operation (`connect_timeout + response_timeout`), and slack
/// for a loaded machine.
const BOUND: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(2);

fn assert_unavailable(e: &Error) {
    assert!(
        matches!(
            e,
            Error::Unavailable {
                store: "postgres",
                ..
            }
        ),
        "{e}"
    );
}

/// Adds until the store answers again; returns how long that took.
async fn until_recovered(store: &PostgresStore, s: &SessionKey) -> Duration {
    let started = Instant::now();
    loop {
        match store.add(s, &VIEW, Message::info("after")).await {
            Ok(()) => return started.elapsed(),
            Err(e) => {
                assert_unavailable(&e);
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no recovery: {e}: {:?}",
                    std::error::Error::source(&e)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A page renders (no messages, an error logged) while the store fails.
async fn a_page_renders(store: &PostgresStore, s: &SessionKey) {
    let config = MessagesConfig::new(store.clone());
    let cookie = format!("messages_session={s}");
    let req = config.begin([cookie.as_str()]);
    assert!(req.context(&VIEW).messages().await.is_empty());
    req.commit(true).await;
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(Message::text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_fast_pages_render_and_the_store_recovers() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let store = server.store(SqlOptions::default()).await;
    let s = SessionKey::generate().unwrap();
    store.add(&s, &VIEW, Message::info("before")).await.unwrap();

    server.stop();
    let started = Instant::now();
    let e = store
        .add(&s, &VIEW, Message::info("lost"))
        .await
        .unwrap_err();
    assert_unavailable(&e);
    assert!(started.elapsed() < BOUND + SLACK, "{:?}", started.elapsed());
    let started = Instant::now();
    a_page_renders(&store, &s).await;
    assert!(
        started.elapsed() < 2 * (BOUND + SLACK),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    let took = until_recovered(&store, &s).await;
    eprintln!(
        "postgres stopped and restarted: the store answered again {took:?} after the restart"
    );
    assert_eq!(
        texts(&store.take(&s, &VIEW).await.unwrap()),
        ["before", "after"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_and_the_store_recovers() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let store = server.store(SqlOptions::default()).await;
    let s = SessionKey::generate().unwrap();
    store.add(&s, &VIEW, Message::info("before")).await.unwrap();

    server.signal("STOP");
    let started = Instant::now();
    let e = store.take(&s, &VIEW).await.unwrap_err();
    assert_unavailable(&e);
    let waited = started.elapsed();
    assert!(waited < BOUND + SLACK, "{waited:?}");
    a_page_renders(&store, &s).await;

    server.signal("CONT");
    let took = until_recovered(&store, &s).await;
    eprintln!("postgres frozen {waited:?}: the store answered again {took:?} after it resumed");
    // The take that timed out may have run when the server resumed (its answer was
    // never read): "before" is then gone, never shown twice.
    let left = store.take(&s, &VIEW).await.unwrap();
    assert!(
        texts(&left) == ["before", "after"] || texts(&left) == ["after"],
        "{left:?}"
    );
}

/// The process ids of the backends live feeds listen on.
async fn listener_backends(store: &PostgresStore) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
    )
    .bind(PostgresStore::LIVE_APPLICATION_NAME)
    .fetch_all(store.pool())
    .await
    .unwrap_or_default()
}

/// The process id of the backend a store's live feed listens on, once there is one other
/// than `not`.
async fn listener_backend(store: &PostgresStore, not: Option<i32>) -> i32 {
    let started = Instant::now();
    loop {
        let pids = listener_backends(store).await;
        if let Some(&pid) = pids.iter().find(|&&pid| Some(pid) != not) {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no live listener other than {not:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a live delivery may take here: generous, and far less than the minute of
/// `live_feed::notify_only`.
const LIVE_DEADLINE: Duration = Duration::from_secs(30);

/// Adds `text` through `store` and waits for the live stream to hand it out.
async fn add_and_receive(
    store: &PostgresStore,
    s: &SessionKey,
    deliveries: &mut UnboundedReceiver<live_feed::Delivered>,
    text: &str,
) -> Duration {
    let started = Instant::now();
    store.add(s, &VIEW, Message::info(text)).await.unwrap();
    let got = live_feed::next_within(deliveries, LIVE_DEADLINE).await;
    assert_eq!(got.message.text(), text);
    got.at - started
}

/// A live stream whose listener's backend is terminated, and later whose server restarts,
/// still gets every message added afterwards, long before its keep-alive poll (a minute):
/// the listener connects again and wakes every stream. Dropping the store ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_survives_its_listener_being_terminated_and_a_restart() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let here = server.store(SqlOptions::default()).await;
    let there = server.store(SqlOptions::default()).await;
    let config = MessagesConfig::new(here)
        .live_options(live_feed::notify_only())
        .unwrap();
    let live_feed::Pumped {
        session: s,
        mut deliveries,
        task: pump,
        ..
    } = live_feed::open(&config, &VIEW);

    let first = listener_backend(&there, None).await;
    add_and_receive(&there, &s, &mut deliveries, "before").await;
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(there.pool())
        .await
        .unwrap();
    assert!(terminated);
    // Added while the listener may not listen yet: the wake after it reconnects brings it.
    let after_kill = add_and_receive(&there, &s, &mut deliveries, "right after the kill").await;
    let second = listener_backend(&there, Some(first)).await;
    add_and_receive(&there, &s, &mut deliveries, "once it listens again").await;

    server.stop();
    server.restart();
    let restarted = Instant::now();
    until_recovered(&there, &s).await;
    let got = live_feed::next_within(&mut deliveries, LIVE_DEADLINE).await;
    assert_eq!(got.message.text(), "after");
    let after_restart = got.at - restarted;
    listener_backend(&there, Some(second)).await;
    add_and_receive(&there, &s, &mut deliveries, "after the restart").await;
    eprintln!(
        "postgres live: listener terminated, the next add delivered in {after_kill:?}; \
         server restarted, the first add delivered {after_restart:?} after the restart"
    );

    // The listener and its connection end with the last clone of their store: the
    // stream's (the pump ends with the receiver) and the configuration's.
    drop(deliveries);
    pump.await.unwrap();
    drop(config);
    let dropped = Instant::now();
    while !listener_backends(&there).await.is_empty() {
        assert!(
            dropped.elapsed() < Duration::from_secs(30),
            "the listener outlived its store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long the server stays dead under load: a read or add fails after the store's
/// bound on one operation (`connect_timeout + response_timeout`, 1 s + 1 s by default;
/// about 1.1 s, measured, while nothing listens on the port), so reads start and end
/// within the outage.
const OUTAGE: Duration = Duration::from_secs(3);
/// The store's read lease under load: longer than the outage, so settles cut by the kill
/// are retried in time; the final reads wait this long after the load.
const READ_LEASE: Duration = Duration::from_secs(5);

/// A server of the test's own and a store on it, to kill under load; `None` (locally)
/// without PostgreSQL.
async fn postgres_to_kill() -> Option<Target<PostgresServer>> {
    let server = PostgresServer::start()?;
    let options = SqlOptions {
        read_lease: READ_LEASE,
        ..SqlOptions::default()
    };
    let store = server.store(options).await;
    Some(Target {
        backend: "postgres (SIGKILL of the postmaster and every backend)",
        server,
        config: MessagesConfig::new(store),
        read_lease: READ_LEASE,
        outage: OUTAGE,
        kill: |server| server.kill(),
        revive: |server| server.restart(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_with_adds_in_flight_loses_no_confirmed_add_and_fails_no_page() {
    if let Some(target) = postgres_to_kill().await {
        contained_kill(target, true, "adds in flight at the kill").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_with_reads_in_flight_loses_no_confirmed_add() {
    if let Some(target) = postgres_to_kill().await {
        contained_kill(target, false, "adds and reads in flight at the kill").await;
    }
}
