//! Backend failure is contained (DESIGN.md, semantics 10): a real `redis-server` is killed
//! (SIGKILL) or frozen (SIGSTOP) inside the test. Adds fail fast with a typed error, pages
//! read no messages and still commit, and the same store works again once the server is
//! back on its port. Run with `--nocapture` to see the measured times.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use messages_core::{
    Error, Message, MessageStore, MessagesConfig, RedisOptions, RedisStore, SessionKey, ViewId,
};
use messages_tests::Browser;
use messages_tests::conformance::texts;
use messages_tests::redis_server::RedisServer;

const VIEW: ViewId = ViewId::from_static("app::settings");
/// The store's bound is connect + response timeout (2 s by default); this is the "no
/// hang" limit, with room for a loaded machine.
const NO_HANG: Duration = Duration::from_secs(4);
/// Longest a test waits for recovery before failing.
const RECOVERY_LIMIT: Duration = Duration::from_secs(15);

fn is_unavailable(e: &Error) -> bool {
    matches!(e, Error::Unavailable { store: "redis", .. })
}

/// Runs `op`, which must fail with `Error::Unavailable` within [`NO_HANG`]; returns how
/// long it took.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    op: impl std::future::Future<Output = messages_core::Result<T>>,
) -> Duration {
    let started = Instant::now();
    let result = tokio::time::timeout(NO_HANG * 3, op)
        .await
        .unwrap_or_else(|_| panic!("{what} hangs"));
    let took = started.elapsed();
    let e = result.expect_err(what);
    assert!(is_unavailable(&e), "{what}: {e}");
    assert!(took < NO_HANG, "{what} took {took:?}");
    took
}

/// Adds until an add succeeds; returns how long that took.
async fn time_to_recover(store: &RedisStore, session: &SessionKey, text: &str) -> Duration {
    let back = Instant::now();
    loop {
        match store.add(session, &VIEW, Message::info(text)).await {
            Ok(()) => return back.elapsed(),
            Err(e) => {
                assert!(is_unavailable(&e), "{e}");
                assert!(back.elapsed() < RECOVERY_LIMIT, "no recovery: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn session_of(browser: &Browser) -> SessionKey {
    browser.jar["messages_session"].parse().unwrap()
}

async fn read_texts(browser: &mut Browser, config: &MessagesConfig) -> Vec<String> {
    let req = browser.begin(config);
    let shown = texts(&req.context(&VIEW).messages().await.into_vec());
    browser.finish(&req, true).await;
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_fails_fast_pages_render_and_the_store_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url(), RedisOptions::default())
        .await
        .unwrap();
    let config = MessagesConfig::new(Arc::new(store.clone()));
    let mut browser = Browser::new();
    let req = browser.begin(&config);
    req.context(&VIEW).add_message(Message::info("before"));
    browser.finish(&req, true).await;
    let session = session_of(&browser);
    assert_eq!(store.count(&session, &VIEW).await.unwrap(), 1);

    server.kill();

    let add = fails_fast("add", store.add(&session, &VIEW, Message::info("lost"))).await;
    fails_fast("take", store.take(&session, &VIEW)).await;
    fails_fast("peek", store.peek(&session, &VIEW)).await;
    fails_fast("count", store.count(&session, &VIEW)).await;
    fails_fast("discard", store.discard(&session, &VIEW)).await;
    fails_fast("clear_session", store.clear_session(&session)).await;
    fails_fast("pending_views", store.pending_views(&session)).await;

    // A page during the outage: no messages, and the response goes out.
    let started = Instant::now();
    let req = browser.begin(&config);
    let ctx = req.context(&VIEW);
    assert!(ctx.peek().await.is_empty());
    assert_eq!(ctx.count().await, 0);
    assert!(ctx.messages().await.is_empty());
    ctx.add_message(Message::info("queued in the outage"));
    let committed = tokio::time::timeout(NO_HANG * 3, browser.finish(&req, true))
        .await
        .expect("commit returns");
    assert!(committed.touched);
    let page = started.elapsed();
    assert!(page < NO_HANG * 2, "page took {page:?}");
    // A handler that wants to know flushes, and is told.
    let req = browser.begin(&config);
    req.context(&VIEW)
        .add_message(Message::info("flushed in the outage"));
    assert!(is_unavailable(&req.flush().await.unwrap_err()));
    browser.finish(&req, true).await;

    server.revive();
    let recovered = time_to_recover(&store, &session, "after").await;
    eprintln!(
        "SIGKILL: add failed after {add:?}, a page during the outage took {page:?}, \
         the store recovered {recovered:?} after the server was back"
    );
    // Through requests, with the same store: the message added after recovery, once.
    let texts = read_texts(&mut browser, &config).await;
    assert!(
        !texts.is_empty() && texts.iter().all(|t| t == "after"),
        "{texts:?}"
    );
    assert!(read_texts(&mut browser, &config).await.is_empty());
    let req = browser.begin(&config);
    req.context(&VIEW).add_message(Message::info("next"));
    browser.finish(&req, true).await;
    assert_eq!(read_texts(&mut browser, &config).await, ["next"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_server_times_out_and_the_store_recovers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = RedisOptions {
        response_timeout: Duration::from_millis(500),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    let session = SessionKey::generate().unwrap();
    store
        .add(&session, &VIEW, Message::info("before"))
        .await
        .unwrap();

    server.signal("STOP");
    let add = fails_fast(
        "add to a frozen server",
        store.add(&session, &VIEW, Message::info("x")),
    )
    .await;
    fails_fast("take from a frozen server", store.take(&session, &VIEW)).await;
    server.signal("CONT");

    let recovered = time_to_recover(&store, &session, "after").await;
    eprintln!("SIGSTOP: add timed out after {add:?}, recovered {recovered:?} after SIGCONT");
    let texts = texts(&store.take(&session, &VIEW).await.unwrap());
    // What the frozen server had queued may have run after all; "after" is there.
    assert!(texts.iter().any(|t| t == "after"), "{texts:?}");
}

#[tokio::test]
async fn connecting_to_nothing_is_a_typed_error() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    drop(server);
    let started = Instant::now();
    let e = RedisStore::connect(&url, RedisOptions::default())
        .await
        .unwrap_err();
    assert!(is_unavailable(&e), "{e}");
    let e = RedisStore::connect_cluster([url.as_str()], RedisOptions::default())
        .await
        .unwrap_err();
    assert!(is_unavailable(&e), "{e}");
    assert!(started.elapsed() < NO_HANG * 2, "{:?}", started.elapsed());
    let e = RedisStore::connect("http://not-redis", RedisOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}
