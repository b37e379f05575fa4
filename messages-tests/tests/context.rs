//! The request context's semantics, one case each (Django's test list adapted, plus the
//! view binding, laziness and concurrency cases only a view-bound design has).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use messages_core::{
    Level, MemoryLimits, MemoryStore, Message, MessageStore, MessagesConfig, RequestMessages,
    SessionKey, ViewId,
};
use messages_tests::{Browser, CountingStore};

const SETTINGS: ViewId = ViewId::from_static("app::settings");
const DASHBOARD: ViewId = ViewId::from_static("app::dashboard");

fn texts(list: impl IntoIterator<Item = Message>) -> Vec<String> {
    list.into_iter().map(|m| m.text().to_owned()).collect()
}

fn counting() -> (CountingStore, MessagesConfig) {
    let store = CountingStore::new(MemoryStore::new());
    (store.clone(), MessagesConfig::new(store))
}

#[tokio::test]
async fn post_redirect_get_shows_each_level_once() {
    let config = MessagesConfig::new(MemoryStore::new()).min_level(Level::DEBUG);
    for level in Level::STANDARD {
        let mut b = Browser::new();
        let req = b.begin(&config);
        req.context(&SETTINGS)
            .add_message(Message::new(level, "done"));
        b.finish(&req, true).await;
        let req = b.begin(&config);
        let shown = req.context(&SETTINGS).messages().await.into_vec();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].level(), level);
        b.finish(&req, true).await;
        assert!(
            b.read(&config, &SETTINGS).await.is_empty(),
            "second GET is empty"
        );
    }
}

#[tokio::test]
async fn bound_to_its_view_and_session() {
    let config = MessagesConfig::new(MemoryStore::new());
    let (mut alice, mut bob) = (Browser::new(), Browser::new());
    alice.add(&config, &SETTINGS, &["for alice settings"]).await;
    bob.add(&config, &SETTINGS, &["for bob settings"]).await;
    assert!(
        alice.read(&config, &DASHBOARD).await.is_empty(),
        "dashboard never shows a settings message"
    );
    assert_eq!(bob.read(&config, &SETTINGS).await, ["for bob settings"]);
    assert_eq!(alice.read(&config, &SETTINGS).await, ["for alice settings"]);
}

#[tokio::test]
async fn several_posts_before_one_get_keep_order() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    for t in ["one", "two", "three"] {
        b.add(&config, &SETTINGS, &[t]).await;
    }
    assert_eq!(b.read(&config, &SETTINGS).await, ["one", "two", "three"]);
}

#[tokio::test]
async fn no_reads_no_adds_means_no_store_call_and_no_cookie() {
    let (store, config) = counting();
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["x"]).await;
    let before = store.calls();
    for _ in 0..10 {
        let req = b.begin(&config);
        let _ = req.context(&SETTINGS); // a context that is never read
        let done = b.finish(&req, true).await;
        assert!(done.set_cookie.is_empty());
        assert!(!done.touched);
    }
    assert_eq!(
        store.calls(),
        before,
        "requests that never read do no store I/O"
    );
    assert_eq!(b.read(&config, &SETTINGS).await, ["x"]);
}

#[tokio::test]
async fn an_anonymous_visitor_gets_a_session_only_when_something_is_stored() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    let req = b.begin(&config);
    assert!(req.context(&SETTINGS).messages().await.is_empty());
    let done = b.finish(&req, true).await;
    assert!(done.set_cookie.is_empty(), "reading nothing sets no cookie");
    assert!(done.touched);
    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("hi"));
    let done = b.finish(&req, true).await;
    assert_eq!(done.set_cookie.len(), 1);
    assert!(done.set_cookie[0].starts_with("messages_session="));
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(done.set_cookie[0].contains(attr), "{}", done.set_cookie[0]);
    }
    // An existing session is not set again.
    b.add(&config, &SETTINGS, &["again"]).await;
    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("third"));
    assert!(b.finish(&req, true).await.set_cookie.is_empty());
}

#[tokio::test]
async fn loading_is_not_consuming() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["keep me"]).await;
    // Loaded, len() asked, never iterated: still there.
    let req = b.begin(&config);
    let list = req.context(&SETTINGS).messages().await;
    assert_eq!(list.len(), 1);
    b.finish(&req, true).await;
    // Peek and count: still there.
    let req = b.begin(&config);
    assert_eq!(req.context(&SETTINGS).count().await, 1);
    assert_eq!(texts(req.context(&SETTINGS).peek().await), ["keep me"]);
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["keep me"]);
}

#[tokio::test]
async fn count_asks_the_store_for_a_number_not_the_messages() {
    let (store, config) = counting();
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["one", "two"]).await;
    store.reset();
    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("queued"));
    assert_eq!(req.context(&SETTINGS).count().await, 3);
    assert_eq!(store.counts().to_string(), "count 1");
    // Once loaded, the request knows: no store call.
    assert_eq!(req.context(&SETTINGS).messages().await.len(), 3);
    store.reset();
    assert_eq!(req.context(&SETTINGS).count().await, 3);
    assert_eq!(store.calls(), 0);
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["one", "two", "queued"]);
}

#[tokio::test]
async fn a_failed_response_loses_nothing() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["survives a 500"]).await;
    let req = b.begin(&config);
    assert_eq!(
        texts(req.context(&SETTINGS).messages().await),
        ["survives a 500"]
    );
    b.finish(&req, false).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["survives a 500"]);
}

#[tokio::test]
async fn reading_twice_in_one_request_returns_the_same() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["a"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    assert_eq!(texts(ctx.messages().await), ["a"]);
    assert_eq!(texts(ctx.messages().await), ["a"]);
    b.finish(&req, true).await;
    assert!(b.read(&config, &SETTINGS).await.is_empty());
}

#[tokio::test]
async fn existing_then_add_then_read_stores_nothing() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["old"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    ctx.add_message(Message::info("new"));
    assert_eq!(
        texts(ctx.messages().await),
        ["old", "new"],
        "the current request shows what it added"
    );
    b.finish(&req, true).await;
    assert!(b.read(&config, &SETTINGS).await.is_empty());
}

#[tokio::test]
async fn adds_after_a_read_persist() {
    // Flask #5458 loses this message.
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["old"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    assert_eq!(texts(ctx.messages().await), ["old"]);
    ctx.add_message(Message::info("added after read"));
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["added after read"]);
}

#[tokio::test]
async fn minimum_level_thresholds() {
    // Django: default INFO keeps 5 of 6 (one DEBUG dropped) ... threshold 30 keeps 2.
    let all = [
        Level::DEBUG,
        Level::INFO,
        Level::SUCCESS,
        Level::WARNING,
        Level::ERROR,
        Level::custom(29),
    ];
    for (min, kept) in [
        (Level::INFO, 5),
        (Level::custom(5), 6),
        (Level::WARNING, 2),
        (Level::custom(29), 3),
    ] {
        let config = MessagesConfig::new(MemoryStore::new()).min_level(min);
        let mut b = Browser::new();
        let req = b.begin(&config);
        for level in all {
            req.context(&SETTINGS).add_message(Message::new(level, "x"));
        }
        b.finish(&req, true).await;
        assert_eq!(b.read(&config, &SETTINGS).await.len(), kept, "min {min}");
    }
}

#[tokio::test]
async fn end_session_clears_every_context_and_starts_fresh() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["private to the old session"])
        .await;
    b.add(&config, &DASHBOARD, &["also private"]).await;
    let old_session = b.jar["messages_session"].clone();
    let req = b.begin(&config);
    req.end_session();
    req.context(&SETTINGS)
        .add_message(Message::info("You have been logged out."));
    let done = b.finish(&req, true).await;
    assert_eq!(done.set_cookie.len(), 1);
    let new_session = b.jar["messages_session"].clone();
    assert_ne!(
        old_session, new_session,
        "messages after logout go to a new session"
    );
    assert_eq!(
        b.read(&config, &SETTINGS).await,
        ["You have been logged out."]
    );
    assert!(b.read(&config, &DASHBOARD).await.is_empty());
    // The old session's contexts are gone from the store too.
    let store = config.server_store().unwrap();
    let old: SessionKey = old_session.parse().unwrap();
    assert!(store.pending_views(&old).await.unwrap().is_empty());

    // Logout with nothing added: the session cookie is removed.
    b.add(&config, &SETTINGS, &["x"]).await;
    let req = b.begin(&config);
    req.end_session();
    let done = b.finish(&req, true).await;
    assert!(
        done.set_cookie[0].contains("Max-Age=0"),
        "{:?}",
        done.set_cookie
    );
    assert!(b.jar.is_empty());
}

#[tokio::test]
async fn discard_drops_stored_and_queued() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["stored"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    ctx.add_message(Message::info("queued"));
    ctx.discard();
    b.finish(&req, true).await;
    assert!(b.read(&config, &SETTINGS).await.is_empty());
}

#[tokio::test]
async fn a_garbage_session_cookie_is_replaced_not_an_error() {
    let config = MessagesConfig::new(MemoryStore::new());
    for garbage in [
        "",
        "x",
        "../../etc/passwd",
        &"A".repeat(5000),
        "%zz%",
        "a\u{7f}b",
    ] {
        let req = config.begin([format!("messages_session={garbage}").as_str()]);
        assert!(req.session().is_none());
        assert!(req.context(&SETTINGS).messages().await.is_empty());
        req.context(&SETTINGS).add_message(Message::info("fresh"));
        let done = req.commit(true).await;
        let set = &done.set_cookie[0];
        let value = set
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("messages_session=")
            .unwrap();
        assert!(
            value.parse::<SessionKey>().is_ok(),
            "replaced by a valid key: {set}"
        );
    }
    // Garbage and nothing stored: removed.
    let req = config.begin(["messages_session=garbage"]);
    assert!(req.context(&SETTINGS).messages().await.is_empty());
    assert!(req.commit(true).await.set_cookie[0].contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_get_each_message_exactly_once() {
    let store: Arc<dyn MessageStore> = Arc::new(MemoryStore::new());
    let config = MessagesConfig::with_shared(Arc::clone(&store));
    let mut b = Browser::new();
    let req = b.begin(&config);
    for i in 0..100 {
        req.context(&SETTINGS)
            .add_message(Message::info(format!("m{i}")));
    }
    b.finish(&req, true).await;
    let header = b.cookie_header().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (config, header) = (config.clone(), header.clone());
        tasks.push(tokio::spawn(async move {
            let req: RequestMessages = config.begin([header.as_str()]);
            let got = texts(req.context(&SETTINGS).messages().await);
            req.commit(true).await;
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let mut expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "every message delivered once in total");
}

#[tokio::test]
async fn a_hundred_thousand_adds_in_one_request_are_bounded() {
    let (store, config) = counting();
    let config = config.queue_cap(1000);
    let mut b = Browser::new();
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    for i in 0..100_000 {
        ctx.add_message(Message::info(format!("m{i}")));
    }
    b.finish(&req, true).await;
    assert_eq!(store.calls(), 1, "one write for the whole request");
    let shown = b.read(&config, &SETTINGS).await;
    let cap = MemoryLimits::default().per_context;
    assert_eq!(shown.len(), cap, "the store keeps its cap");
    assert_eq!(shown.last().unwrap(), "m99999", "the newest are kept");
    assert_eq!(shown[0], format!("m{}", 100_000 - cap));
}

#[tokio::test]
async fn flush_reports_the_outcome_to_the_caller() {
    let (store, config) = counting();
    let mut b = Browser::new();
    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("now"));
    req.flush().await.unwrap();
    assert_eq!(store.calls(), 1);
    b.finish(&req, true).await;
    assert_eq!(store.calls(), 1, "flushed messages are not written twice");
    assert_eq!(b.read(&config, &SETTINGS).await, ["now"]);
}

#[tokio::test]
async fn ensure_session_sets_the_cookie_for_later_delivery() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    let req = b.begin(&config);
    let key = req.ensure_session().unwrap();
    b.finish(&req, true).await;
    assert_eq!(b.jar["messages_session"], key.as_str());
    // A job delivers out of band, with no request in hand.
    config
        .server_store()
        .unwrap()
        .add(&key, &DASHBOARD, Message::info("Import finished"))
        .await
        .unwrap();
    assert_eq!(b.read(&config, &DASHBOARD).await, ["Import finished"]);
}

#[tokio::test]
async fn a_garbage_session_cookie_beside_a_valid_one_neither_hides_nor_removes_it() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["kept"]).await;
    let valid = b.jar["messages_session"].clone();
    // A planted cookie of the same name (another path or a sibling domain) sent first.
    let header = format!("messages_session=planted; messages_session={valid}");
    let req = config.begin([header.as_str()]);
    assert_eq!(req.session().unwrap().as_str(), valid);
    assert_eq!(texts(req.context(&SETTINGS).messages().await), ["kept"]);
    let done = req.commit(true).await;
    assert!(
        done.set_cookie.is_empty(),
        "no removal of the visitor's real session: {:?}",
        done.set_cookie
    );
}

// Regression: the consumed state was kept per view for everything loaded, so a second
// `messages()` after an add (not iterated) swallowed the add.
#[tokio::test]
async fn an_add_after_rendering_survives_a_later_unrendered_load() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["old"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    assert_eq!(texts(ctx.messages().await), ["old"]); // rendered
    ctx.add_message(Message::info("new"));
    assert_eq!(ctx.messages().await.len(), 2, "loaded again, not rendered");
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["new"]);
}

// What was shown is consumed even when a later load of the same view is not rendered, and
// only that: a list rendered before an add does not consume the add.
#[tokio::test]
async fn only_the_messages_a_rendered_list_held_are_consumed() {
    let config = MessagesConfig::new(MemoryStore::new());
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["a", "b"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    let first = ctx.messages().await;
    ctx.add_message(Message::info("c"));
    let second = ctx.messages().await; // a, b, c: never rendered
    assert_eq!(second.len(), 3);
    assert_eq!(texts(first), ["a", "b"]); // rendered after the second load
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["c"]);
}

/// Wraps a store; `add_all` and `put_back` wait at a gate the test opens.
#[derive(Debug, Clone)]
struct GatedStore {
    inner: Arc<MemoryStore>,
    gate: Arc<tokio::sync::Semaphore>,
    entered: Arc<tokio::sync::Notify>,
}

impl GatedStore {
    fn new() -> GatedStore {
        GatedStore {
            inner: Arc::new(MemoryStore::new()),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            entered: Arc::new(tokio::sync::Notify::new()),
        }
    }
    async fn wait_at_gate(&self) {
        self.entered.notify_one();
        let permit = self.gate.acquire().await.unwrap();
        permit.forget();
    }
}

#[messages_core::async_trait]
impl MessageStore for GatedStore {
    async fn add_all(
        &self,
        s: &SessionKey,
        v: &ViewId,
        m: Vec<Message>,
    ) -> messages_core::Result<()> {
        self.wait_at_gate().await;
        self.inner.add_all(s, v, m).await
    }
    async fn put_back(
        &self,
        s: &SessionKey,
        v: &ViewId,
        m: Vec<Message>,
    ) -> messages_core::Result<()> {
        self.wait_at_gate().await;
        self.inner.put_back(s, v, m).await
    }
    async fn take(&self, s: &SessionKey, v: &ViewId) -> messages_core::Result<Vec<Message>> {
        self.inner.take(s, v).await
    }
    async fn peek(&self, s: &SessionKey, v: &ViewId) -> messages_core::Result<Vec<Message>> {
        self.inner.peek(s, v).await
    }
    async fn discard(&self, s: &SessionKey, v: &ViewId) -> messages_core::Result<()> {
        self.inner.discard(s, v).await
    }
    async fn clear_session(&self, s: &SessionKey) -> messages_core::Result<()> {
        self.inner.clear_session(s).await
    }
    async fn pending_views(&self, s: &SessionKey) -> messages_core::Result<Vec<ViewId>> {
        self.inner.pending_views(s).await
    }
}

/// Polls until `f` holds, for at most 30 s (a loaded machine may be slow to run the
/// spawned commit; the condition, not the time, is what is tested).
async fn eventually(mut f: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..3000 {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

// Regression: the commit moved the request's state out at its start; dropping the commit
// future while it awaited the store (a timeout outside the layer, an HTTP/2 reset) lost
// the queued adds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cancelled_while_the_store_writes_loses_nothing() {
    let store = GatedStore::new();
    let config = MessagesConfig::new(store.clone());
    let mut b = Browser::new();
    // A known session first (its add passes the gate).
    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("first"));
    let committing = tokio::spawn({
        let req = req.clone();
        async move { req.commit(true).await }
    });
    store.entered.notified().await;
    store.gate.add_permits(1);
    b.apply(&committing.await.unwrap());
    let session: SessionKey = b.jar["messages_session"].parse().unwrap();

    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("second"));
    let commit = req.commit(true);
    let entered = store.entered.notified();
    tokio::select! {
        _ = commit => panic!("the gate is closed: the commit cannot finish"),
        () = entered => {} // the commit waits in add_all; dropping it now cancels it
    }
    store.gate.add_permits(1);
    let inner = Arc::clone(&store.inner);
    assert!(
        eventually(async || inner.count(&session, &SETTINGS).await.unwrap() == 2).await,
        "the cancelled commit's add reached the store"
    );
    assert_eq!(b.read(&config, &SETTINGS).await, ["first", "second"]);
}

// The same through the axum layer, cancelled by a timeout layer outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timed_out_during_commit_loses_nothing() {
    use axum::{Router, body::Body, http::Request, routing::post};
    use messages_core::axum::{Messages, MessagesLayer};
    use tower::ServiceExt as _;

    let store = GatedStore::new();
    let inner = Arc::clone(&store.inner);
    let config = MessagesConfig::new(store.clone());
    let app = Router::new()
        .route(
            "/save",
            post(|m: Messages| async move {
                m.context(&SETTINGS).add_message(Message::info("saved"));
                "ok"
            }),
        )
        .layer(MessagesLayer::new(config.clone()));
    let session = SessionKey::generate().unwrap();
    let request = Request::post("/save")
        .header("cookie", format!("messages_session={session}"))
        .body(Body::empty())
        .unwrap();
    let call = app.oneshot(request);
    tokio::select! {
        _ = call => panic!("the gate is closed: the request cannot finish"),
        () = store.entered.notified() => {} // waiting in add_all: the timeout fires now
    }
    store.gate.add_permits(1);
    assert!(
        eventually(async || inner.count(&session, &SETTINGS).await.unwrap() == 1).await,
        "the timed-out request's add reached the store"
    );
}

// Regression: a malformed session cookie made every response, static assets included,
// carry a removal Set-Cookie and private caching.
#[tokio::test]
async fn a_malformed_session_cookie_changes_nothing_on_requests_that_do_not_touch_messages() {
    let (store, config) = counting();
    for header in [
        "messages_session=garbage",
        "messages_session=",
        "messages_session=garbage; messages=also-garbage",
    ] {
        let req = config.begin([header]);
        let _ = req.context(&SETTINGS); // a context that is never used
        let done = req.commit(true).await;
        assert!(
            done.set_cookie.is_empty(),
            "{header}: {:?}",
            done.set_cookie
        );
        assert!(!done.touched, "{header}: no cache headers");
    }
    assert_eq!(store.calls(), 0);
}

// Order is arrival order, not the app's clock: two app servers with skewed clocks (or a
// clock stepped back) must not reorder two posts to one view.
#[tokio::test]
async fn order_is_arrival_order_whatever_the_clocks_say() {
    let store: Arc<dyn MessageStore> = Arc::new(MemoryStore::new());
    let (ahead, behind) = (
        MessagesConfig::with_shared(Arc::clone(&store)),
        MessagesConfig::with_shared(Arc::clone(&store)),
    );
    let now = Message::info("").created_at();
    let mut b = Browser::new();
    let req = b.begin(&ahead);
    req.context(&SETTINGS)
        .add_message(Message::info("first").with_created_at(now + 60_000));
    b.finish(&req, true).await;
    let req = b.begin(&behind);
    req.context(&SETTINGS)
        .add_message(Message::info("second").with_created_at(now - 60_000));
    b.finish(&req, true).await;
    let req = b.begin(&behind);
    let ctx = req.context(&SETTINGS);
    assert_eq!(texts(ctx.peek().await), ["first", "second"]);
    ctx.add_message(Message::info("third").with_created_at(now - 120_000));
    assert_eq!(texts(ctx.peek().await), ["first", "second", "third"]);
    assert_eq!(texts(ctx.messages().await), ["first", "second", "third"]);
    b.finish(&req, true).await;
}

// A failed response puts its messages back ahead of what arrived meanwhile.
#[tokio::test]
async fn a_failed_read_puts_its_messages_back_first() {
    let store: Arc<dyn MessageStore> = Arc::new(MemoryStore::new());
    let config = MessagesConfig::with_shared(Arc::clone(&store));
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["a", "b"]).await;
    let session: SessionKey = b.jar["messages_session"].parse().unwrap();
    let req = b.begin(&config);
    assert_eq!(texts(req.context(&SETTINGS).messages().await), ["a", "b"]);
    // A job adds while the request runs (its clock far behind).
    let early = Message::info("job").with_created_at(1);
    store.add(&session, &SETTINGS, early).await.unwrap();
    b.finish(&req, false).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["a", "b", "job"]);
}
