//! tower-sessions as the identity source (feature `tower-sessions`), over HTTP through an
//! axum app, on tower-sessions' `MemoryStore` and on a persistent store (SQLite, through
//! `tower-sessions-rusqlite-store`), messages in memory and in Redis: one cookie, no I/O
//! on requests that do not use messages, messages carried over a login (`cycle_id`) and
//! ended by a logout (`flush`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use axum::Router;
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post};
use messages_core::tower_sessions::{SESSION_MARKER, SessionMessagesLayer, TowerSessionsIdentity};
use messages_core::{
    CookieStore, MemoryStore, Message, MessageStore, Messages, MessagesConfig, RedisOptions, View,
};
use messages_tests::http::{HttpClient, Reply, TestServer};
use messages_tests::{CountingStore, shared};
use tower_sessions::session::{Id, Record};
use tower_sessions::{Session, SessionManagerLayer, SessionStore, session_store};
use tower_sessions_rusqlite_store::RusqliteStore;
use tower_sessions_rusqlite_store::tokio_rusqlite::Connection;

static SETTINGS: View = View::new("app::settings", "settings", file!(), line!());
static INBOX: View = View::new("app::inbox", "inbox", file!(), line!());
const SECRET: &[u8] = b"the tower-sessions identity secret of these tests";

// ---------------------------------------------------------------------------------------
// The app

async fn plain() -> &'static str {
    "plain"
}

/// Renders a view's messages, `|`-separated (rendering consumes them).
async fn render(messages: &Messages, view: &View) -> String {
    let list = messages.context(view).messages().await;
    list.iter()
        .map(|m| m.text().to_owned())
        .collect::<Vec<_>>()
        .join("|")
}

async fn settings(messages: Messages) -> String {
    render(&messages, &SETTINGS).await
}

async fn inbox(messages: Messages) -> String {
    render(&messages, &INBOX).await
}

async fn save(messages: Messages) -> Redirect {
    messages
        .context(&SETTINGS)
        .add_message(Message::success("Saved."));
    Redirect::to("/settings")
}

async fn archive(messages: Messages) -> Redirect {
    messages
        .context(&INBOX)
        .add_message(Message::info("Archived."));
    Redirect::to("/inbox")
}

/// Login as axum-login does it: a new id, then the user in the session.
async fn login(session: Session, messages: Messages) -> Redirect {
    session.cycle_id().await.unwrap();
    session.insert("user", "alice").await.unwrap();
    messages
        .context(&SETTINGS)
        .add_message(Message::success("Welcome."));
    Redirect::to("/settings")
}

async fn logout(session: Session, messages: Messages) -> Redirect {
    session.flush().await.unwrap();
    messages
        .context(&SETTINGS)
        .add_message(Message::info("Logged out."));
    Redirect::to("/settings")
}

/// A logout that writes into the session again after flushing it (tower-sessions then
/// saves it under the id it had): it ends the messages itself.
async fn logout_and_write(session: Session, messages: Messages) -> Redirect {
    session.flush().await.unwrap();
    session.insert("csrf", "fresh").await.unwrap();
    messages.end_session();
    messages
        .context(&SETTINGS)
        .add_message(Message::info("Logged out."));
    Redirect::to("/settings")
}

async fn logout_quietly(session: Session) -> Redirect {
    session.flush().await.unwrap();
    Redirect::to("/")
}

/// The app keeps something of its own in the session.
async fn cart(session: Session) -> &'static str {
    session.insert("cart", 1).await.unwrap();
    "added"
}

async fn rotate(messages: Messages) -> Redirect {
    messages.rotate_session().unwrap();
    Redirect::to("/settings")
}

async fn forget(messages: Messages) -> Redirect {
    messages.end_session();
    messages
        .context(&SETTINGS)
        .add_message(Message::info("Forgotten."));
    Redirect::to("/settings")
}

fn routes() -> Router {
    Router::new()
        .route("/plain", get(plain))
        .route("/settings", get(settings).post(save))
        .route("/inbox", get(inbox).post(archive))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/logout-quietly", post(logout_quietly))
        .route("/logout-and-write", post(logout_and_write))
        .route("/cart", post(cart))
        .route("/rotate", post(rotate))
        .route("/forget", post(forget))
}

// ---------------------------------------------------------------------------------------
// Counting both stores

#[derive(Debug, Default)]
struct SessionCalls {
    create: AtomicUsize,
    save: AtomicUsize,
    load: AtomicUsize,
    delete: AtomicUsize,
}

/// A tower-sessions store that counts its calls.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    calls: Arc<SessionCalls>,
}

impl<S> fmt::Debug for Counted<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counted")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl<S> Counted<S> {
    fn new(inner: S) -> Counted<S> {
        Counted {
            inner,
            calls: Arc::default(),
        }
    }

    /// `create save load delete`, as counted so far.
    fn counts(&self) -> [usize; 4] {
        let c = &self.calls;
        [&c.create, &c.save, &c.load, &c.delete].map(|a| a.load(Ordering::SeqCst))
    }

    fn reset(&self) {
        let c = &self.calls;
        for a in [&c.create, &c.save, &c.load, &c.delete] {
            a.store(0, Ordering::SeqCst);
        }
    }
}

fn hit(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::SeqCst);
}

#[async_trait]
impl<S: SessionStore + Clone> SessionStore for Counted<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        hit(&self.calls.create);
        self.inner.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        hit(&self.calls.save);
        self.inner.save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        hit(&self.calls.load);
        self.inner.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        hit(&self.calls.delete);
        self.inner.delete(id).await
    }
}

/// An app on a session store, its message store and the counters of both.
struct App<S> {
    server: TestServer,
    sessions: Counted<S>,
    messages: CountingStore,
    /// The message store makes a rotated-away key refuse later adds (`MemoryStore`
    /// does; `RedisStore` keeps the trait's default `rotate`, which moves only).
    retires: bool,
}

impl<S: SessionStore + Clone> App<S> {
    async fn start(sessions: S, messages: CountingStore) -> App<S> {
        let sessions = Counted::new(sessions);
        let layer = SessionMessagesLayer::new(
            MessagesConfig::new(messages.clone()),
            TowerSessionsIdentity::new(SECRET).unwrap(),
            SessionManagerLayer::new(sessions.clone()).with_secure(false),
        )
        .unwrap();
        let server = TestServer::axum(routes().layer(layer)).await;
        App {
            server,
            sessions,
            messages,
            retires: true,
        }
    }

    fn client(&self) -> HttpClient {
        self.server.client()
    }

    /// Forget the calls so far.
    fn reset(&self) {
        self.sessions.reset();
        self.messages.reset();
    }
}

async fn memory_app() -> App<tower_sessions::MemoryStore> {
    App::start(
        tower_sessions::MemoryStore::default(),
        CountingStore::new(MemoryStore::new()),
    )
    .await
}

async fn sqlite_store(path: &Path) -> RusqliteStore {
    let store = RusqliteStore::new(Connection::open(path).await.unwrap());
    store.migrate().await.unwrap();
    store
}

async fn sqlite_app(path: &Path, messages: CountingStore) -> App<RusqliteStore> {
    App::start(sqlite_store(path).await, messages).await
}

/// The names of the cookies a reply sets.
fn cookie_names(reply: &Reply) -> Vec<String> {
    reply
        .set_cookies()
        .iter()
        .map(|c| c.split('=').next().unwrap().to_owned())
        .collect()
}

fn is_removal(set_cookie: &str) -> bool {
    set_cookie.starts_with("id=;") || set_cookie.contains("Max-Age=0")
}

// ---------------------------------------------------------------------------------------
// The flows, on any session store

/// POST, redirect, GET, reload: one cookie (tower-sessions'), set once, the message shown
/// once.
async fn one_cookie_across_post_redirect_get<S: SessionStore + Clone>(app: &App<S>) {
    let mut browser = app.client();
    let posted = browser.post_form("/settings", &[]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(cookie_names(&posted), ["id"], "{:?}", posted.set_cookies());
    assert!(posted.header("vary").is_some_and(|v| v.contains("Cookie")));

    let shown = browser.get("/settings").await;
    assert_eq!(shown.body, "Saved.");
    assert!(shown.set_cookies().is_empty(), "{:?}", shown.set_cookies());
    assert_eq!(shown.header("cache-control"), Some("private"));
    assert_eq!(browser.get("/settings").await.body, "");
    assert_eq!(
        browser.cookies.jar.keys().collect::<Vec<_>>(),
        ["id"],
        "the browser holds one cookie"
    );
}

/// Requests that do not use messages call neither store, with a session or without; a
/// page that reads messages calls the message store only, never loading the session.
async fn requests_without_messages_touch_no_store<S: SessionStore + Clone>(app: &App<S>) {
    let mut browser = app.client();
    app.reset();
    let plain = browser.get("/plain").await;
    assert_eq!(plain.body, "plain");
    assert!(plain.set_cookies().is_empty());
    assert_eq!(app.messages.calls(), 0, "{}", app.messages.counts());
    assert_eq!(app.sessions.counts(), [0; 4], "a new visitor's plain GET");

    // A new visitor's first message: the session is created, never loaded.
    browser.post_form("/settings", &[]).await;
    assert_eq!(
        app.sessions.counts(),
        [1, 0, 0, 0],
        "create save load delete"
    );

    app.reset();
    let plain = browser.get("/plain").await;
    assert!(plain.set_cookies().is_empty());
    assert!(plain.header("vary").is_none() && plain.header("cache-control").is_none());
    assert_eq!(app.messages.calls(), 0, "{}", app.messages.counts());
    assert_eq!(app.sessions.counts(), [0; 4], "a plain GET with a session");

    let shown = browser.get("/settings").await;
    assert_eq!(shown.body, "Saved.");
    assert!(app.messages.counts().take > 0);
    assert_eq!(
        app.sessions.counts(),
        [0; 4],
        "reading messages loads no session"
    );

    // Adding for a session that exists: the message store only.
    app.reset();
    browser.post_form("/settings", &[]).await;
    assert_eq!(app.messages.counts().add_all, 1);
    assert_eq!(app.sessions.counts(), [0; 4], "adding for a saved session");
}

/// An app's session made for its own data: messages join it without writing into it.
async fn messages_join_the_apps_own_session<S: SessionStore + Clone>(app: &App<S>) {
    let mut browser = app.client();
    let carted = browser.post_form("/cart", &[]).await;
    assert_eq!(cookie_names(&carted), ["id"]);
    app.reset();
    let posted = browser.post_form("/settings", &[]).await;
    assert!(
        posted.set_cookies().is_empty(),
        "{:?}",
        posted.set_cookies()
    );
    assert_eq!(app.sessions.counts(), [0; 4]);
    assert_eq!(browser.get("/settings").await.body, "Saved.");
}

/// A login that cycles the id carries every pending view over, with what the login adds;
/// the old id sees nothing, and what is added under it later reaches nobody.
async fn login_carries_messages_over<S: SessionStore + Clone>(app: &App<S>) {
    let mut victim = app.client();
    victim.post_form("/settings", &[]).await;
    victim.post_form("/inbox", &[]).await;
    let before = victim.cookie("id").unwrap().to_owned();

    app.reset();
    let logged_in = victim.post_form("/login", &[]).await;
    assert_eq!(cookie_names(&logged_in), ["id"]);
    // The app's cycle_id loads and deletes, tower-sessions creates the new id: the
    // messages layer adds no session-store call, and one move to the message store.
    assert_eq!(
        app.sessions.counts(),
        [1, 0, 1, 1],
        "create save load delete"
    );
    assert_eq!(
        app.messages.counts().add_all,
        1,
        "{}",
        app.messages.counts()
    );
    assert_eq!(app.messages.counts().clear_session, 1, "one rotate");
    let after = victim.cookie("id").unwrap().to_owned();
    assert_ne!(before, after, "the id was cycled");

    // The old id, as an attacker who planted or copied it holds it.
    let mut attacker = app.client();
    attacker.cookies.jar.insert("id".into(), before);
    assert_eq!(attacker.get("/settings").await.body, "");
    assert_eq!(attacker.get("/inbox").await.body, "");
    attacker.post_form("/settings", &[]).await;

    assert_eq!(victim.get("/settings").await.body, "Saved.|Welcome.");
    assert_eq!(victim.get("/inbox").await.body, "Archived.");
    assert_eq!(victim.get("/settings").await.body, "");
}

/// A logout that flushes the session ends its pending messages; what the logout adds is
/// shown in the new session made for it.
async fn logout_ends_messages<S: SessionStore + Clone>(app: &App<S>) {
    // Quietly: the cookie is removed, the old id sees nothing.
    let mut browser = app.client();
    browser.post_form("/settings", &[]).await;
    let old = browser.cookie("id").unwrap().to_owned();
    app.reset();
    let out = browser.post_form("/logout-quietly", &[]).await;
    // The app's flush deletes; the layer clears and retires the old key.
    assert_eq!(
        app.sessions.counts(),
        [0, 0, 0, 1],
        "create save load delete"
    );
    assert_eq!(app.messages.counts().to_string(), "clear_session 2");
    assert_eq!(out.set_cookies().len(), 1);
    assert!(is_removal(&out.set_cookies()[0]), "{:?}", out.set_cookies());
    assert!(browser.cookies.jar.is_empty());
    let mut replay = app.client();
    replay.cookies.jar.insert("id".into(), old.clone());
    assert_eq!(replay.get("/settings").await.body, "");
    replay.post_form("/settings", &[]).await;
    if app.retires {
        assert_eq!(
            replay.get("/settings").await.body,
            "",
            "an ended key refuses adds"
        );
    }

    // With a goodbye: only the goodbye, in one new session.
    let mut browser = app.client();
    browser.post_form("/settings", &[]).await;
    browser.post_form("/inbox", &[]).await;
    let old = browser.cookie("id").unwrap().to_owned();
    app.reset();
    let out = browser.post_form("/logout", &[]).await;
    // The app's flush deletes; the goodbye's session gets a fresh id (a second delete,
    // of nothing) and is created.
    assert_eq!(
        app.sessions.counts(),
        [1, 0, 0, 2],
        "create save load delete"
    );
    assert_eq!(
        app.messages.counts().to_string(),
        "add_all 1, clear_session 2, pending_views 1"
    );
    assert_eq!(cookie_names(&out), ["id"]);
    let new = browser.cookie("id").unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(browser.get("/settings").await.body, "Logged out.");
    assert_eq!(browser.get("/inbox").await.body, "");
    let mut replay = app.client();
    replay.cookies.jar.insert("id".into(), old);
    assert_eq!(replay.get("/settings").await.body, "");
    assert_eq!(replay.get("/inbox").await.body, "");

    // Writing into the session after the flush, with `end_session`: the old messages end,
    // the goodbye is kept (under the id tower-sessions kept).
    let mut browser = app.client();
    browser.post_form("/settings", &[]).await;
    browser.post_form("/inbox", &[]).await;
    browser.post_form("/logout-and-write", &[]).await;
    assert!(browser.cookie("id").is_some());
    assert_eq!(browser.get("/settings").await.body, "Logged out.");
    assert_eq!(browser.get("/inbox").await.body, "");
    browser.post_form("/inbox", &[]).await;
    assert_eq!(browser.get("/inbox").await.body, "Archived.");
}

/// `Messages::rotate_session` cycles the tower-sessions id; `end_session` clears the
/// messages and keeps the app's session.
async fn messages_session_calls_follow_the_app_session<S: SessionStore + Clone>(app: &App<S>) {
    let mut browser = app.client();
    browser.post_form("/settings", &[]).await;
    let old = browser.cookie("id").unwrap().to_owned();
    let rotated = browser.post_form("/rotate", &[]).await;
    assert_eq!(cookie_names(&rotated), ["id"]);
    assert_ne!(browser.cookie("id").unwrap(), old);
    let mut replay = app.client();
    replay.cookies.jar.insert("id".into(), old);
    assert_eq!(replay.get("/settings").await.body, "");
    assert_eq!(browser.get("/settings").await.body, "Saved.");

    browser.post_form("/settings", &[]).await;
    browser.post_form("/inbox", &[]).await;
    let id = browser.cookie("id").unwrap().to_owned();
    let forgot = browser.post_form("/forget", &[]).await;
    assert!(
        forgot.set_cookies().is_empty(),
        "{:?}",
        forgot.set_cookies()
    );
    assert_eq!(browser.cookie("id").unwrap(), id);
    assert_eq!(browser.get("/settings").await.body, "Forgotten.");
    assert_eq!(browser.get("/inbox").await.body, "");
}

async fn every_flow<S: SessionStore + Clone>(app: &App<S>) {
    one_cookie_across_post_redirect_get(app).await;
    requests_without_messages_touch_no_store(app).await;
    messages_join_the_apps_own_session(app).await;
    login_carries_messages_over(app).await;
    logout_ends_messages(app).await;
    messages_session_calls_follow_the_app_session(app).await;
}

// ---------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn on_the_memory_session_store() {
    every_flow(&memory_app().await).await;
}

#[tokio::test]
async fn on_a_sqlite_session_store() {
    let dir = tempfile::tempdir().unwrap();
    let app = sqlite_app(
        &dir.path().join("sessions.db"),
        CountingStore::new(MemoryStore::new()),
    )
    .await;
    every_flow(&app).await;
}

/// Both stores shared by processes: sessions in SQLite, messages in Redis (leases,
/// rotation by script).
#[tokio::test]
async fn on_sqlite_sessions_and_redis_messages() {
    let Some(redis) = shared::redis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let messages = CountingStore::new(redis.store(RedisOptions::default()).await);
    let mut app = sqlite_app(&dir.path().join("sessions.db"), messages).await;
    app.retires = false;
    every_flow(&app).await;
}

/// The SQLite file and the message store outlive the app: after a restart with the same
/// secret, the browser finds its messages, and a login still carries them over.
#[tokio::test]
async fn a_restart_keeps_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let messages = CountingStore::new(MemoryStore::new());

    let app = sqlite_app(&path, messages.clone()).await;
    let mut browser = app.client();
    browser.post_form("/settings", &[]).await;
    browser.post_form("/inbox", &[]).await;
    drop(app);

    let app = sqlite_app(&path, messages).await;
    let jar = browser.cookies.clone();
    browser = app.client();
    browser.cookies = jar;
    assert_eq!(browser.get("/settings").await.body, "Saved.");
    browser.post_form("/login", &[]).await;
    assert_eq!(browser.get("/inbox").await.body, "Archived.");
    assert_eq!(browser.get("/settings").await.body, "Welcome.");
}

/// The marker is the only thing written into a new visitor's record, and only when
/// messages are kept; a job reaches the session through the identity.
#[tokio::test]
async fn a_job_reaches_a_saved_session() {
    let sessions = tower_sessions::MemoryStore::default();
    let store = Arc::new(MemoryStore::new());
    let identity = TowerSessionsIdentity::new(SECRET).unwrap();
    let app = App::start(sessions.clone(), CountingStore::new(Arc::clone(&store))).await;
    let mut browser = app.client();
    browser.post_form("/settings", &[]).await;
    browser.get("/settings").await;

    let id: Id = browser.cookie("id").unwrap().parse().unwrap();
    let record = sessions.load(&id).await.unwrap().unwrap();
    assert_eq!(record.data.keys().collect::<Vec<_>>(), [SESSION_MARKER]);

    // The job: a session it knows, a view, a message.
    let session = Session::new(Some(id), Arc::new(sessions), None);
    let key = identity.key_for(&session).unwrap();
    store
        .add(&key, INBOX.id(), Message::info("Import finished."))
        .await
        .unwrap();
    assert_eq!(browser.get("/inbox").await.body, "Import finished.");
}

#[tokio::test]
async fn a_layer_without_tower_sessions_is_an_error() {
    let layer = SessionMessagesLayer::new(
        MessagesConfig::new(MemoryStore::new()),
        TowerSessionsIdentity::random().unwrap(),
        tower::layer::util::Identity::new(),
    )
    .unwrap();
    let server = TestServer::axum(routes().layer(layer)).await;
    let reply = server.client().get("/plain").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);

    let cookie_storage = MessagesConfig::new(CookieStore::new([SECRET]).unwrap());
    assert!(
        SessionMessagesLayer::new(
            cookie_storage,
            TowerSessionsIdentity::random().unwrap(),
            tower::layer::util::Identity::new(),
        )
        .is_err()
    );
}

/// The example app in its tower-sessions variant (`MESSAGES_SESSION=tower-sessions`):
/// one cookie (tower-sessions' `id`) across a post/redirect/get and a login, and a plain
/// GET that makes no call to the messages store and sets no cookie.
#[tokio::test]
async fn the_example_on_tower_sessions_sends_one_cookie() {
    let store = CountingStore::new(MemoryStore::new());
    let app = messages_example::app_with_tower_sessions(
        MessagesConfig::new(store.clone()),
        TowerSessionsIdentity::random().unwrap(),
    )
    .unwrap();
    let server = TestServer::axum(app).await;
    let mut browser = server.client();

    let plain = browser.get("/views").await;
    assert!(plain.set_cookies().is_empty(), "{:?}", plain.set_cookies());
    assert_eq!(store.counts().total(), 0);

    let posted = browser.post_form("/settings", &[("name", "Ada")]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let names: Vec<String> = posted
        .set_cookies()
        .iter()
        .map(|c| c.split('=').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["id"]);
    let first_id = browser.cookie("id").unwrap().to_owned();
    assert_eq!(
        browser.get("/settings").await.texts(),
        ["Settings saved for Ada."]
    );

    // Login cycles the tower-sessions id and carries a pending message over.
    browser
        .post_form("/notes", &[("text", "pending"), ("count", "1")])
        .await;
    let login = browser.post_form("/login", &[("name", "Ada")]).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert!(login.set_cookies().iter().all(|c| c.starts_with("id=")));
    assert_ne!(browser.cookie("id").unwrap(), first_id);
    assert_eq!(
        browser.get("/dashboard").await.texts(),
        ["pending #1", "Welcome, Ada."]
    );
    store.reset();
    let plain = browser.get("/views").await;
    assert!(plain.set_cookies().is_empty());
    assert_eq!(store.counts().total(), 0, "{}", store.counts());
}
