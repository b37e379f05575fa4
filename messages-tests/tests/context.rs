//! The request context's cases that are particular to server stores: store call counts
//! (laziness, `count`, one write per request, `flush`), sessions made for out-of-band
//! delivery, exactly once across concurrent requests, put-back of a failed read before
//! what a job added meanwhile, and commits cancelled midway. The semantics that hold for
//! every storage are written once in `messages_tests::semantics` and run per storage by
//! `semantics.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use messages_core::{
    MemoryLimits, MemoryStore, Message, MessageStore, Messages, MessagesConfig, SessionKey, ViewId,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_get_each_message_exactly_once() {
    let store: Arc<dyn MessageStore> = Arc::new(MemoryStore::new());
    let config = MessagesConfig::new(Arc::clone(&store));
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
            let req: Messages = config.begin([header.as_str()]);
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
    /// Starts `b`'s session with one message for `view`, its add let through the gate.
    async fn known_session(
        &self,
        config: &MessagesConfig,
        b: &mut Browser,
        view: &ViewId,
        text: &str,
    ) -> SessionKey {
        let req = b.begin(config);
        req.context(view).add_message(Message::info(text));
        let committing = tokio::spawn({
            let req = req.clone();
            async move { req.commit(true).await }
        });
        self.entered.notified().await;
        self.gate.add_permits(1);
        b.apply(&committing.await.unwrap());
        b.jar["messages_session"].parse().unwrap()
    }

    /// Runs `commit` until it waits at the gate, then drops it (a cancelled commit).
    async fn drop_at_gate(&self, commit: impl Future) {
        let entered = self.entered.notified();
        tokio::select! {
            _ = commit => panic!("the gate is closed: the commit cannot finish"),
            () = entered => {} // the commit waits in the store; dropping it cancels it
        }
    }

    async fn wait_at_gate(&self) {
        self.entered.notify_one();
        let permit = self.gate.acquire().await.unwrap();
        permit.forget();
    }
}

#[messages_core::store::async_trait]
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
    let session = store
        .known_session(&config, &mut b, &SETTINGS, "first")
        .await;

    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("second"));
    store.drop_at_gate(req.commit(true)).await;
    store.gate.add_permits(1);
    let inner = Arc::clone(&store.inner);
    assert!(
        eventually(async || inner.count(&session, &SETTINGS).await.unwrap() == 2).await,
        "the cancelled commit's add reached the store"
    );
    assert_eq!(b.read(&config, &SETTINGS).await, ["first", "second"]);
}

// A commit dropped while the store writes has a response that never went out: what the
// request rendered goes back to the store (one without read leases), not lost. Failed
// with the cancelled flag not read by the rest of the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cancelled_while_the_store_writes_gives_back_what_it_rendered() {
    let store = GatedStore::new();
    let config = MessagesConfig::new(store.clone());
    let mut b = Browser::new();
    let session = store
        .known_session(&config, &mut b, &DASHBOARD, "rendered")
        .await;

    let req = b.begin(&config);
    assert_eq!(
        messages_tests::shown_texts(&req, &DASHBOARD).await,
        ["rendered"]
    );
    req.context(&SETTINGS).add_message(Message::info("saved"));
    store.drop_at_gate(req.commit(true)).await;
    // The add, then the put-back of what was rendered, each pass the gate.
    store.gate.add_permits(2);
    let inner = Arc::clone(&store.inner);
    assert!(
        eventually(async || inner.count(&session, &DASHBOARD).await.unwrap() == 1).await,
        "what the cancelled response rendered is back in the store"
    );
    assert_eq!(b.read(&config, &DASHBOARD).await, ["rendered"]);
    assert_eq!(b.read(&config, &SETTINGS).await, ["saved"]);
}

// The same through the axum layer, cancelled by a timeout layer outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timed_out_during_commit_loses_nothing() {
    use axum::{Router, body::Body, http::Request, routing::post};
    use messages_core::{Messages, axum::MessagesLayer};
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
        .header("cookie", format!("messages_session={}", session.as_str()))
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

// A failed response puts its messages back ahead of what arrived meanwhile.
#[tokio::test]
async fn a_failed_read_puts_its_messages_back_first() {
    let store: Arc<dyn MessageStore> = Arc::new(MemoryStore::new());
    let config = MessagesConfig::new(Arc::clone(&store));
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
