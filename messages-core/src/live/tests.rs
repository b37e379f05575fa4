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
    assert_eq!(left, ["two", "three"], "\"one\" was handed out: delivered");
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

/// A store without a change feed (it forwards everything but `watch`).
#[derive(Debug)]
struct NoFeed(MemoryStore);

#[async_trait::async_trait]
impl MessageStore for NoFeed {
    async fn add_all(&self, s: &SessionKey, v: &ViewId, m: Vec<Message>) -> Result<()> {
        self.0.add_all(s, v, m).await
    }
    async fn take(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
        self.0.take(s, v).await
    }
    async fn peek(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
        self.0.peek(s, v).await
    }
    async fn discard(&self, s: &SessionKey, v: &ViewId) -> Result<()> {
        self.0.discard(s, v).await
    }
    async fn clear_session(&self, s: &SessionKey) -> Result<()> {
        self.0.clear_session(s).await
    }
    async fn pending_views(&self, s: &SessionKey) -> Result<Vec<ViewId>> {
        self.0.pending_views(s).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_without_a_change_feed_is_polled() {
    let store = Arc::new(NoFeed(MemoryStore::new()));
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
    assert_eq!(text(stream.next().await), "polled");
    // Found by the poll after the add: at 1.5 s, not at the 15 s keep-alive.
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
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
