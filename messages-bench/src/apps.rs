//! The applications under load: one router shape per row, the same page template for all.
//!
//! Every row serves `POST /settings` (a form with `name`; adds "Settings saved for
//! {name}." at level success and answers `303 See Other` to `/settings`), `GET /settings`
//! (renders the settings view's messages, consuming them) and `GET /about` (renders the
//! same page with no messages and never asks the flash library for them). The page is a
//! minijinja template with HTML escaping on, as an application would render it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use axum::Router;
use axum::extract::Form;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use messages_core::Storage;
use messages_core::axum::MessagesLayer;
use messages_core::{
    CookieStore, MemoryStore, Message, MessagesConfig, RedisOptions, RedisStore, with_messages,
};
use messages_tests::CountingStore;
use messages_tests::redis_server::RedisServer;
use minijinja::{AutoEscape, Environment, context};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{SessionManagerLayer, cookie::SameSite};

use crate::BenchError;

/// The view that shows what the form added.
pub const SETTINGS: &str = "/settings";
/// The page that never touches messages.
pub const ABOUT: &str = "/about";
/// The form body every `POST` sends.
pub const FORM: &str = "name=Ada";
/// The message that form adds, as the page shows it.
pub const SAVED: &str = "Settings saved for Ada.";

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><h1>{{ title }}</h1>
<ul id="messages">{% for m in messages %}
<li class="message {{ m.level }}">{{ m.text }}</li>{% endfor %}
</ul>
<form method="post" action="/settings"><input name="name"><button>Save</button></form>
</body></html>
"#;

static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // A broken template shows up as 500s, which the clients count as failures.
    let _ = env.add_template("page.html", PAGE);
    env
});

/// One message as the page shows it.
#[derive(Debug, Serialize)]
struct Shown {
    level: &'static str,
    text: String,
}

fn page(title: &str, messages: &[Shown]) -> Response {
    match PAGES
        .get_template("page.html")
        .and_then(|t| t.render(context! { title, messages }))
    {
        Ok(html) => Html(html).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct SettingsForm {
    name: String,
}

fn saved(form: &SettingsForm) -> String {
    format!("Settings saved for {}.", form.name)
}

async fn about() -> Response {
    page("About", &[])
}

// --- bare axum: the same routes, no flash library ---------------------------------------

async fn bare_settings() -> Response {
    page("Settings", &[])
}

async fn bare_save(Form(_form): Form<SettingsForm>) -> Redirect {
    Redirect::to(SETTINGS)
}

// --- this library -----------------------------------------------------------------------

#[with_messages]
async fn settings() -> Response {
    let shown: Vec<Shown> = self
        .messages()
        .await
        .into_iter()
        .map(|m| Shown {
            level: m.level_tag(),
            text: m.text().to_owned(),
        })
        .collect();
    page("Settings", &shown)
}

#[with_messages(view = settings)]
async fn save_settings(Form(form): Form<SettingsForm>) -> Redirect {
    self.add_message(Message::success(saved(&form)));
    Redirect::to(SETTINGS)
}

// --- axum-messages 0.8 on tower-sessions 0.14 -------------------------------------------

fn am_level(level: axum_messages::Level) -> &'static str {
    match level {
        axum_messages::Level::Debug => "debug",
        axum_messages::Level::Info => "info",
        axum_messages::Level::Success => "success",
        axum_messages::Level::Warning => "warning",
        axum_messages::Level::Error => "error",
    }
}

async fn am_settings(messages: axum_messages::Messages) -> Response {
    let shown: Vec<Shown> = messages
        .map(|m| Shown {
            level: am_level(m.level),
            text: m.message,
        })
        .collect();
    page("Settings", &shown)
}

async fn am_save(messages: axum_messages::Messages, Form(form): Form<SettingsForm>) -> Redirect {
    messages.success(saved(&form));
    Redirect::to(SETTINGS)
}

/// A `tower-sessions` store that counts the calls made to the memory store it wraps.
#[derive(Debug, Clone, Default)]
pub struct CountingSessionStore {
    inner: tower_sessions::MemoryStore,
    calls: Arc<AtomicUsize>,
}

impl CountingSessionStore {
    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl SessionStore for CountingSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.hit();
        self.inner.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.hit();
        self.inner.save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.hit();
        self.inner.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.hit();
        self.inner.delete(id).await
    }
}

// --- rows ---------------------------------------------------------------------------------

/// A row of the table: what serves the flash messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Row {
    /// No flash library: the floor.
    Bare,
    /// This library, `MemoryStore`.
    Memory,
    /// This library, `CookieStore` (messages in a signed cookie).
    Cookie,
    /// This library, `Storage::fallback` (cookie first, `MemoryStore` behind it).
    Fallback,
    /// This library, `RedisStore` on a harness-started `redis-server`.
    Redis,
    /// `axum-messages` 0.8 with `tower-sessions` 0.14's memory store.
    AxumMessages,
}

impl Row {
    /// Every row, in table order.
    pub const ALL: [Row; 6] = [
        Row::Bare,
        Row::Memory,
        Row::Cookie,
        Row::Fallback,
        Row::Redis,
        Row::AxumMessages,
    ];

    /// The row's label in the table.
    pub fn label(self) -> &'static str {
        match self {
            Row::Bare => "bare axum",
            Row::Memory => "ours: memory",
            Row::Cookie => "ours: cookie",
            Row::Fallback => "ours: fallback",
            Row::Redis => "ours: redis",
            Row::AxumMessages => "axum-messages",
        }
    }

    /// Whether `GET /settings` shows the message the form added.
    pub fn shows_messages(self) -> bool {
        self != Row::Bare
    }
}

/// How a row's store calls are counted.
#[derive(Debug, Clone)]
enum Counter {
    /// No server store (bare axum, cookie storage).
    Nothing,
    /// A `MessageStore` behind this library.
    Ours(CountingStore),
    /// The `tower-sessions` store behind `axum-messages`.
    Sessions(CountingSessionStore),
}

/// One row's application, served on a loopback port until dropped.
#[derive(Debug)]
pub struct App {
    /// The row.
    pub row: Row,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The `redis-server` process the store talks to (Redis row), to count its CPU.
    pub redis_pid: Option<u32>,
    counter: Counter,
    task: JoinHandle<()>,
}

impl App {
    /// Builds the row's router and serves it on `127.0.0.1:0`. Call it inside the server
    /// runtime: the server task and the Redis connection live there. `redis` is needed
    /// for [`Row::Redis`] only.
    pub async fn start(row: Row, redis: Option<&RedisServer>) -> Result<App, BenchError> {
        let (router, counter) = router(row, redis).await?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        // Small responses go out at once (no Nagle delay against delayed ACKs).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("server stopped: {e}");
            }
        });
        Ok(App {
            row,
            addr,
            redis_pid: redis
                .filter(|_| row == Row::Redis)
                .and_then(RedisServer::pid),
            counter,
            task,
        })
    }

    /// Store calls so far; `None` when the row has no server store to call.
    pub fn store_calls(&self) -> Option<usize> {
        match &self.counter {
            Counter::Nothing => None,
            Counter::Ours(store) => Some(store.calls()),
            Counter::Sessions(store) => Some(store.calls()),
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn cookie_store() -> Result<CookieStore, BenchError> {
    Ok(CookieStore::new([CookieStore::random_key()?])?)
}

fn ours(config: MessagesConfig) -> Router {
    Router::new()
        .route(SETTINGS, get(settings).post(save_settings))
        .route(ABOUT, get(about))
        .layer(MessagesLayer::new(config))
}

async fn router(row: Row, redis: Option<&RedisServer>) -> Result<(Router, Counter), BenchError> {
    Ok(match row {
        Row::Bare => (
            Router::new()
                .route(SETTINGS, get(bare_settings).post(bare_save))
                .route(ABOUT, get(about)),
            Counter::Nothing,
        ),
        Row::Memory => {
            let store = CountingStore::new(MemoryStore::new());
            (
                ours(MessagesConfig::new(store.clone())),
                Counter::Ours(store),
            )
        }
        Row::Cookie => (ours(MessagesConfig::new(cookie_store()?)), Counter::Nothing),
        Row::Fallback => {
            let store = CountingStore::new(MemoryStore::new());
            let fallback = Storage::fallback(cookie_store()?, store.clone());
            (ours(MessagesConfig::new(fallback)), Counter::Ours(store))
        }
        Row::Redis => {
            let url = redis.map(RedisServer::url).ok_or_else(|| {
                messages_core::Error::Config("the Redis row needs a redis-server".into())
            })?;
            let store =
                CountingStore::new(RedisStore::connect(&url, RedisOptions::default()).await?);
            (
                ours(MessagesConfig::new(store.clone())),
                Counter::Ours(store),
            )
        }
        Row::AxumMessages => {
            let store = CountingSessionStore::default();
            // Lax like ours (tower-sessions defaults to Strict); not Secure on plain http.
            let sessions = SessionManagerLayer::new(store.clone())
                .with_secure(false)
                .with_same_site(SameSite::Lax);
            (
                Router::new()
                    .route(SETTINGS, get(am_settings).post(am_save))
                    .route(ABOUT, get(about))
                    .layer(axum_messages::MessagesManagerLayer)
                    .layer(sessions),
                Counter::Sessions(store),
            )
        }
    })
}
