//! The framework-free request core's seams, as an adapter or an identity source sees
//! them: what `Committed` reports about the session, a custom `SessionSource`, the
//! double-installation check and the commit guard, and one `MessagesConfig::new` for
//! every storage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use messages_core::request::{Incoming, SessionChange, SessionSource};
use messages_core::{
    CookieStore, MemoryStore, Message, MessageStore, MessagesConfig, SessionKey, Storage, ViewId,
};
use messages_tests::{Browser, CountingStore};

const INBOX: ViewId = ViewId::from_static("app::inbox");

#[tokio::test]
async fn committed_reports_started_ended_and_refused_sessions() {
    for config in [
        MessagesConfig::new(MemoryStore::new()),
        MessagesConfig::new(CookieStore::new([[7u8; 32]]).unwrap()),
    ] {
        let mut browser = Browser::new();
        // Nothing touched: nothing to report.
        let req = browser.begin(&config);
        assert_eq!(
            browser.finish(&req, true).await.session,
            SessionChange::Unchanged
        );

        // The first stored message starts the session.
        let req = browser.begin(&config);
        req.context(&INBOX).add_message(Message::info("hi"));
        let done = browser.finish(&req, true).await;
        let SessionChange::Started(key) = done.session else {
            panic!("{:?}", done.session)
        };
        assert_eq!(browser.jar["messages_session"], key.as_str());

        // A known session that reads: unchanged.
        let req = browser.begin(&config);
        assert_eq!(req.context(&INBOX).messages().await.into_vec().len(), 1);
        assert_eq!(
            browser.finish(&req, true).await.session,
            SessionChange::Unchanged
        );

        // Logout ends it, with its key.
        let req = browser.begin(&config);
        req.end_session();
        assert_eq!(
            browser.finish(&req, true).await.session,
            SessionChange::Ended(Some(key))
        );
        assert!(!browser.jar.contains_key("messages_session"));

        // A malformed key on a request that uses messages: ended, no key.
        let req = config.begin(["messages_session=garbage"]);
        let _ = req.context(&INBOX).count().await;
        let done = req.commit(true).await;
        assert_eq!(done.session, SessionChange::Ended(None));
        assert!(
            done.set_cookie[0].starts_with("messages_session=;"),
            "{done:?}"
        );
    }
}

/// An identity source that keeps the key in the app's own header-carried cookie and
/// writes nothing: the adapter reads `Committed::session` instead.
#[derive(Debug)]
struct AppSession;

impl SessionSource for AppSession {
    fn incoming(&self, cookies: &[(&str, &str)]) -> Incoming {
        cookies
            .iter()
            .find(|(name, _)| *name == "app_sid")
            .map_or(Incoming::Absent, |(_, v)| {
                v.parse().map_or(Incoming::Malformed, Incoming::Key)
            })
    }

    fn outgoing(&self, _change: &SessionChange) -> Option<String> {
        None
    }
}

#[tokio::test]
async fn a_custom_session_source_plugs_in_without_a_cookie_of_ours() {
    let store = Arc::new(MemoryStore::new());
    let config = MessagesConfig::new(Arc::clone(&store)).session_source(Arc::new(AppSession));

    // A new visitor: the key is made by us, reported, and no cookie of ours is set.
    let req = config.begin([]);
    req.context(&INBOX).add_message(Message::info("welcome"));
    let done = req.commit(true).await;
    let SessionChange::Started(key) = done.session.clone() else {
        panic!("{done:?}")
    };
    assert!(done.set_cookie.is_empty(), "{done:?}");
    assert!(done.touched);
    assert_eq!(store.count(&key, &INBOX).await.unwrap(), 1);

    // The app carries it in its own cookie; our session cookie is ignored.
    let other = SessionKey::generate().unwrap();
    let header = format!(
        "messages_session={}; app_sid={}",
        other.as_str(),
        key.as_str()
    );
    let req = config.begin([header.as_str()]);
    assert_eq!(req.session(), Some(key.clone()));
    let shown = req.context(&INBOX).messages().await.into_vec();
    assert_eq!(shown[0].text(), "welcome");
    assert_eq!(req.commit(true).await.session, SessionChange::Unchanged);
    assert_eq!(store.count(&key, &INBOX).await.unwrap(), 0);
}

#[tokio::test]
async fn an_inner_begin_request_leaves_the_request_to_the_outer_one() {
    let (store, config) = {
        let store = CountingStore::new(MemoryStore::new());
        (store.clone(), MessagesConfig::new(store))
    };
    let outer = config.begin_request(None, []).unwrap();
    assert!(config.begin_request(Some(outer.messages()), []).is_none());
    outer
        .messages()
        .context(&INBOX)
        .add_message(Message::info("once"));
    let done = outer.commit(true).await;
    assert_eq!(done.set_cookie.len(), 1);
    assert_eq!(store.counts().add_all, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_dropped_before_its_commit_commits_as_a_failure() {
    let store = Arc::new(MemoryStore::new());
    let config = MessagesConfig::new(Arc::clone(&store));
    let session = SessionKey::generate().unwrap();
    store
        .add(&session, &INBOX, Message::info("taken"))
        .await
        .unwrap();
    let header = format!("messages_session={}", session.as_str());
    let guard = config.begin_request(None, [header.as_str()]).unwrap();
    let list = guard.messages().context(&INBOX).messages().await;
    assert_eq!(list.iter().count(), 1); // rendered, but the response never goes out
    guard
        .messages()
        .context(&INBOX)
        .add_message(Message::info("added"));
    drop(guard);
    // The commit runs on a spawned task: wait for it, generously.
    let mut texts = Vec::new();
    for _ in 0..200 {
        texts = store.peek(&session, &INBOX).await.unwrap();
        if texts.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let texts: Vec<&str> = texts.iter().map(Message::text).collect();
    assert_eq!(texts, ["taken", "added"]);
}

#[tokio::test]
async fn one_constructor_for_every_storage_and_shared_stores_are_not_wrapped_twice() {
    let cookie = CookieStore::new([[9u8; 32]]).unwrap();
    let shared: Arc<dyn MessageStore> = Arc::new(MemoryStore::new());
    let arc_of_concrete = Arc::new(MemoryStore::new());
    for (storage, server) in [
        (Storage::from(MemoryStore::new()), true),
        (Storage::from(Arc::clone(&shared)), true),
        (Storage::from(Arc::clone(&arc_of_concrete)), true),
        (Storage::from(cookie.clone()), false),
        (Storage::fallback(cookie.clone(), Arc::clone(&shared)), true),
    ] {
        assert_eq!(storage.server().is_some(), server);
        let config = MessagesConfig::new(storage);
        assert_eq!(config.server_store().is_some(), server);
    }
    // An `Arc<dyn MessageStore>` is used as is, not behind a second `Arc`.
    let config = MessagesConfig::new(Arc::clone(&shared));
    assert!(Arc::ptr_eq(&config.server_store().unwrap(), &shared));

    // A job writing through the shared handle reaches requests of the config.
    let session = SessionKey::generate().unwrap();
    shared
        .add(&session, &INBOX, Message::info("from a job"))
        .await
        .unwrap();
    let header = format!("messages_session={}", session.as_str());
    let req = config.begin([header.as_str()]);
    assert_eq!(req.context(&INBOX).count().await, 1);
}
