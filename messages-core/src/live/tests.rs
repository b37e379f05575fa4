#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::{MemoryStore, MessagesConfig};

const VIEW: ViewId = ViewId::from_static("app::dashboard");

fn config(options: LiveOptions) -> MessagesConfig {
    MessagesConfig::new(MemoryStore::new())
        .live_options(options)
        .unwrap()
}

fn text(event: Option<LiveEvent>) -> String {
    match event {
        Some(LiveEvent::Message(m)) => m.text().to_owned(),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Runs `stream.next()` until it gives a message, or gives up after `within` of
/// (possibly paused) time.
async fn next_message(stream: &mut LiveStream, within: Duration) -> Option<Message> {
    tokio::time::timeout(within, async {
        loop {
            match stream.next().await {
                Some(LiveEvent::Message(m)) => return Some(m),
                Some(LiveEvent::KeepAlive) => {}
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(start_paused = true)]
async fn of_two_streams_on_one_view_exactly_one_gets_each_message() {
    let config = config(LiveOptions::default());
    let request = config.begin([]);
    let mut a = request.live(VIEW, None).unwrap();
    let mut b = request.live(VIEW, None).unwrap();
    assert!(a.is_notified(), "the memory store has a change feed");
    let store = config.server_store().unwrap();
    for i in 0..20 {
        store
            .add(a.session(), &VIEW, Message::info(format!("m{i}")))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    loop {
        tokio::select! {
            Some(m) = next_message(&mut a, Duration::from_secs(1)) => got.push(m.text().to_owned()),
            Some(m) = next_message(&mut b, Duration::from_secs(1)) => got.push(m.text().to_owned()),
            else => break,
        }
    }
    got.sort_by_key(|t| t[1..].parse::<u32>().unwrap());
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "each once, none lost");
}

#[tokio::test(start_paused = true)]
async fn a_keep_alive_comes_when_nothing_arrives_and_the_stream_stays_open() {
    let config = config(LiveOptions::default());
    let request = config.begin([]);
    let mut stream = request.live(VIEW, None).unwrap();
    let started = Instant::now();
    assert_eq!(stream.next().await, Some(LiveEvent::KeepAlive));
    assert_eq!(started.elapsed(), Duration::from_secs(15));
    config
        .server_store()
        .unwrap()
        .add(stream.session(), &VIEW, Message::info("late"))
        .await
        .unwrap();
    assert_eq!(text(stream.next().await), "late");
}

#[tokio::test(start_paused = true)]
async fn messages_already_waiting_are_sent_first_and_in_order() {
    let config = config(LiveOptions::default());
    let request = config.begin([]);
    let session = request.ensure_session().unwrap();
    let store = config.server_store().unwrap();
    for t in ["one", "two", "three"] {
        store.add(&session, &VIEW, Message::info(t)).await.unwrap();
    }
    let mut stream = request.live(VIEW, None).unwrap();
    for t in ["one", "two", "three"] {
        assert_eq!(text(stream.next().await), t);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_stream_midway_puts_the_unsent_back_in_order() {
    let config = config(LiveOptions::default());
    let request = config.begin([]);
    let session = request.ensure_session().unwrap();
    let store = config.server_store().unwrap();
    for t in ["one", "two", "three"] {
        store.add(&session, &VIEW, Message::info(t)).await.unwrap();
    }
    let mut stream = request.live(VIEW, None).unwrap();
    assert_eq!(text(stream.next().await), "one");
    drop(stream);
    tokio::task::yield_now().await;
    let left: Vec<String> = store
        .take(&session, &VIEW)
        .await
        .unwrap()
        .iter()
        .map(|m| m.text().to_owned())
        .collect();
    assert_eq!(
        left,
        ["one", "two", "three"],
        "\"one\" was handed out but never known written"
    );
}

#[tokio::test(start_paused = true)]
async fn what_the_server_got_to_write_is_delivered() {
    let config = config(LiveOptions::default());
    let request = config.begin([]);
    let session = request.ensure_session().unwrap();
    let store = config.server_store().unwrap();
    store
        .add(&session, &VIEW, Message::info("one"))
        .await
        .unwrap();
    let mut stream = request.live(VIEW, None).unwrap();
    assert_eq!(text(stream.next().await), "one");
    // The server asks for more (it wrote "one"), the stream waits: "one" is delivered.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .is_err()
    );
    drop(stream);
    tokio::task::yield_now().await;
    assert!(store.take(&session, &VIEW).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_idle_stream_writes_a_keep_alive_before_it_takes() {
    let config = config(LiveOptions::default());
    let request = config.begin([]);
    let mut stream = request.live(VIEW, None).unwrap();
    let session = stream.session().clone();
    let store = config.server_store().unwrap();
    let adder = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            store
                .add(&session, &VIEW, Message::info("m"))
                .await
                .unwrap();
        })
    };
    // Woken by the add: first the probe, and the message is still in the store.
    assert_eq!(stream.next().await, Some(LiveEvent::KeepAlive));
    assert_eq!(store.count(stream.session(), &VIEW).await.unwrap(), 1);
    let probed_at = Instant::now();
    assert_eq!(text(stream.next().await), "m");
    assert_eq!(probed_at.elapsed(), PROBE_GRACE);
    adder.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn last_event_id_is_not_sent_again() {
    let config = config(LiveOptions::default());
    let request = config.begin([]);
    let session = request.ensure_session().unwrap();
    let store = config.server_store().unwrap();
    let seen = Message::info("seen");
    let seen_id = seen.id().to_string();
    store.add(&session, &VIEW, seen).await.unwrap();
    store
        .add(&session, &VIEW, Message::info("new"))
        .await
        .unwrap();
    let mut stream = request.live(VIEW, Some(&seen_id)).unwrap();
    assert_eq!(text(stream.next().await), "new");
}

#[tokio::test(start_paused = true)]
async fn a_session_over_its_cap_closes_its_oldest_stream() {
    let config = config(LiveOptions {
        per_session: 2,
        ..LiveOptions::default()
    });
    let request = config.begin([]);
    let mut first = request.live(VIEW, None).unwrap();
    let _second = request.live(VIEW, None).unwrap();
    assert_eq!(config.live_streams(), 2);
    let _third = request.live(VIEW, None).unwrap();
    assert_eq!(config.live_streams(), 2);
    assert_eq!(first.next().await, None, "replaced by the third");
    drop(first);
    assert_eq!(config.live_streams(), 2);
    // Another session is not affected by this one's cap.
    let other = config.begin([]);
    let _fourth = other.live(VIEW, None).unwrap();
    assert_eq!(config.live_streams(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_total_cap_refuses_and_shutdown_ends_every_stream() {
    let config = config(LiveOptions {
        total: 2,
        ..LiveOptions::default()
    });
    let mut a = config.begin([]).live(VIEW, None).unwrap();
    let mut b = config.begin([]).live(VIEW, None).unwrap();
    let refused = config.begin([]).live(VIEW, None).unwrap_err();
    assert!(matches!(refused, LiveRefused::TooManyStreams));
    assert_eq!(refused.status(), 503);
    config.close_live_streams();
    assert_eq!(a.next().await, None);
    assert_eq!(b.next().await, None);
    let refused = config.begin([]).live(VIEW, None).unwrap_err();
    assert!(matches!(refused, LiveRefused::ShuttingDown));
    drop((a, b));
    assert_eq!(config.live_streams(), 0);
}

#[tokio::test]
async fn cookie_only_storage_is_refused() {
    let store = crate::CookieStore::new([vec![7u8; 32]]).unwrap();
    let config = MessagesConfig::new(store);
    let refused = config.begin([]).live(VIEW, None).unwrap_err();
    assert!(matches!(refused, LiveRefused::NoServerStore));
    assert_eq!(refused.status(), 501);
}

/// A memory store, with its change feed or without (`feed`), whose first `failures`
/// takes fail.
#[derive(Debug)]
struct TestStore {
    inner: MemoryStore,
    feed: bool,
    failures: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl MessageStore for TestStore {
    async fn add_all(&self, s: &SessionKey, v: &ViewId, m: Vec<Message>) -> Result<()> {
        self.inner.add_all(s, v, m).await
    }
    async fn take(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
        let left = self.failures.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.failures
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(Error::Config("flaky".into()));
        }
        self.inner.take(s, v).await
    }
    async fn peek(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
        self.inner.peek(s, v).await
    }
    async fn discard(&self, s: &SessionKey, v: &ViewId) -> Result<()> {
        self.inner.discard(s, v).await
    }
    async fn clear_session(&self, s: &SessionKey) -> Result<()> {
        self.inner.clear_session(s).await
    }
    async fn pending_views(&self, s: &SessionKey) -> Result<Vec<ViewId>> {
        self.inner.pending_views(s).await
    }
    fn watch(&self, s: &SessionKey, v: &ViewId) -> Option<Watch> {
        self.inner.watch(s, v).filter(|_| self.feed)
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_without_a_change_feed_is_polled() {
    let store = Arc::new(TestStore {
        inner: MemoryStore::new(),
        feed: false,
        failures: std::sync::atomic::AtomicUsize::new(0),
    });
    let config = MessagesConfig::new(Arc::clone(&store))
        .live_options(LiveOptions {
            poll_interval: Duration::from_millis(500),
            ..LiveOptions::default()
        })
        .unwrap();
    let request = config.begin([]);
    let mut stream = request.live(VIEW, None).unwrap();
    assert!(!stream.is_notified());
    let session = stream.session().clone();
    let started = Instant::now();
    let adder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        store
            .add(&session, &VIEW, Message::info("polled"))
            .await
            .unwrap();
    });
    let m = next_message(&mut stream, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(m.text(), "polled");
    // Found by a poll soon after the add (each poll writes a keep-alive first), not at
    // the 15 s keep-alive.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    adder.await.unwrap();
}

#[test]
fn options_are_checked() {
    let bad = [
        LiveOptions {
            per_session: 0,
            ..LiveOptions::default()
        },
        LiveOptions {
            keep_alive: Duration::ZERO,
            ..LiveOptions::default()
        },
        LiveOptions {
            poll_interval: Duration::from_secs(7200),
            ..LiveOptions::default()
        },
    ];
    for options in bad {
        assert!(options.validate().is_err(), "{options:?}");
    }
    assert!(LiveOptions::default().validate().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_failed_take_is_retried_after_the_poll_interval_not_the_keep_alive() {
    let store = Arc::new(TestStore {
        inner: MemoryStore::new(),
        feed: true,
        failures: std::sync::atomic::AtomicUsize::new(2),
    });
    let config = MessagesConfig::new(Arc::clone(&store))
        .live_options(LiveOptions::default())
        .unwrap();
    let request = config.begin([]);
    let session = request.ensure_session().unwrap();
    store
        .add(&session, &VIEW, Message::info("late"))
        .await
        .unwrap();
    let mut stream = request.live(VIEW, None).unwrap();
    assert!(stream.is_notified());
    let started = Instant::now();
    let m = next_message(&mut stream, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(m.text(), "late");
    // Two failed takes, each retried a poll interval (1 s) later, plus the probes' grace:
    // well before the 15 s keep-alive.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
