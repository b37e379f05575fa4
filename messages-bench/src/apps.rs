//! The applications under load: one router shape per row, the same page template for all.
//! This module has the axum rows, the rows' names and how an [`App`] is served;
//! [`crate::actix_apps`] has the actix-web rows' handlers and servers.
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
pub(crate) struct Shown {
    pub(crate) level: &'static str,
    pub(crate) text: String,
}

/// The page with `messages`, rendered; `None` if the template failed (a 500).
pub(crate) fn render(title: &str, messages: &[Shown]) -> Option<String> {
    PAGES
        .get_template("page.html")
        .and_then(|t| t.render(context! { title, messages }))
        .ok()
}

fn page(title: &str, messages: &[Shown]) -> Response {
    match render(title, messages) {
        Some(html) => Html(html).into_response(),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SettingsForm {
    name: String,
}

pub(crate) fn saved(form: &SettingsForm) -> String {
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

/// The web framework a row is served by: rows are compared within their framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Framework {
    /// axum 0.8 on hyper 1, served on the harness's server runtime.
    Axum,
    /// actix-web 4, served by its own `HttpServer` in an `actix_rt::System`.
    Actix,
}

impl Framework {
    /// Both, in table order.
    pub const ALL: [Framework; 2] = [Framework::Axum, Framework::Actix];

    /// The framework's name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Framework::Axum => "axum 0.8",
            Framework::Actix => "actix-web 4",
        }
    }

    /// The row with no flash library: the floor of the framework's ratios.
    pub fn bare(self) -> Row {
        match self {
            Framework::Axum => Row::Bare,
            Framework::Actix => Row::ActixBare,
        }
    }

    /// The other flash libraries on this framework: each gets a ratio column.
    pub fn peers(self) -> &'static [Row] {
        match self {
            Framework::Axum => &[Row::AxumMessages],
            Framework::Actix => &[Row::AwfmCookie, Row::AwfmSession],
        }
    }
}

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
    /// actix-web 4 with no flash library: the actix floor.
    ActixBare,
    /// This library on actix-web, `MemoryStore`.
    ActixMemory,
    /// This library on actix-web, `CookieStore`.
    ActixCookie,
    /// This library on actix-web, `Storage::fallback` (cookie first, `MemoryStore` behind).
    ActixFallback,
    /// This library on actix-web, `RedisStore` on the harness-started `redis-server`.
    ActixRedis,
    /// `actix-web-flash-messages` 0.5 with its signed-cookie store (`CookieMessageStore`).
    AwfmCookie,
    /// `actix-web-flash-messages` 0.5 with its `SessionMessageStore` on `actix-session`
    /// 0.10, whose state lives in an in-memory `SessionStore` of the harness
    /// ([`crate::actix_apps::MemorySessions`]; actix-session ships none).
    AwfmSession,
}

impl Row {
    /// Every row, in table order.
    pub const ALL: [Row; 13] = [
        Row::Bare,
        Row::Memory,
        Row::Cookie,
        Row::Fallback,
        Row::Redis,
        Row::AxumMessages,
        Row::ActixBare,
        Row::ActixMemory,
        Row::ActixCookie,
        Row::ActixFallback,
        Row::ActixRedis,
        Row::AwfmCookie,
        Row::AwfmSession,
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
            Row::ActixBare => "bare actix-web",
            Row::ActixMemory => "ours on actix: memory",
            Row::ActixCookie => "ours on actix: cookie",
            Row::ActixFallback => "ours on actix: fallback",
            Row::ActixRedis => "ours on actix: redis",
            Row::AwfmCookie => "actix-web-flash-messages: cookie",
            Row::AwfmSession => "actix-web-flash-messages: session",
        }
    }

    /// The row's name in a ratio column's header (`req/s × {column}`).
    pub fn column(self) -> &'static str {
        match self {
            Row::Bare | Row::ActixBare => "bare",
            Row::AwfmCookie => "AWFM cookie",
            Row::AwfmSession => "AWFM session",
            _ => self.label(),
        }
    }

    /// The framework that serves the row.
    pub fn framework(self) -> Framework {
        match self {
            Row::Bare
            | Row::Memory
            | Row::Cookie
            | Row::Fallback
            | Row::Redis
            | Row::AxumMessages => Framework::Axum,
            Row::ActixBare
            | Row::ActixMemory
            | Row::ActixCookie
            | Row::ActixFallback
            | Row::ActixRedis
            | Row::AwfmCookie
            | Row::AwfmSession => Framework::Actix,
        }
    }

    /// Whether `GET /settings` shows the message the form added.
    pub fn shows_messages(self) -> bool {
        self != self.framework().bare()
    }

    /// Whether the row needs the harness's `redis-server`.
    pub fn needs_redis(self) -> bool {
        matches!(self, Row::Redis | Row::ActixRedis)
    }
}

/// How a row's store calls are counted.
#[derive(Debug, Clone)]
pub(crate) enum Counter {
    /// No server store (bare rows, cookie storage).
    Nothing,
    /// A `MessageStore` behind this library.
    Ours(CountingStore),
    /// The `tower-sessions` store behind `axum-messages`.
    Sessions(CountingSessionStore),
    /// The `actix-session` store behind `actix-web-flash-messages`.
    ActixSessions(crate::actix_apps::MemorySessions),
}

/// What serves a row, stopped when the [`App`] is dropped.
#[derive(Debug)]
enum Server {
    /// `axum::serve` as a task of the runtime that started it.
    Axum(JoinHandle<()>),
    /// An actix-web `HttpServer` in its own `actix_rt::System` thread.
    Actix(crate::actix_apps::Running),
}

/// One row's application, served on a loopback port until dropped.
#[derive(Debug)]
pub struct App {
    /// The row.
    pub row: Row,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The `redis-server` process the store talks to (Redis rows), to count its CPU.
    pub redis_pid: Option<u32>,
    counter: Counter,
    server: Server,
}

impl App {
    /// Builds the row's application and serves it on `127.0.0.1:0`.
    ///
    /// An axum row is served on the runtime this is called in (the server runtime: the
    /// server task and the Redis connection live there). An actix row gets a thread of
    /// its own named [`SERVER_THREADS`](crate::cpu::SERVER_THREADS), running an
    /// `actix_rt::System` as `#[actix_web::main]` would, where its store is built (the
    /// Redis connection's task lives there) and its `HttpServer` started with two workers
    /// (threads named `actix-…`). `redis` is needed for the Redis rows only.
    pub async fn start(row: Row, redis: Option<&RedisServer>) -> Result<App, BenchError> {
        let redis_pid = redis
            .filter(|_| row.needs_redis())
            .and_then(RedisServer::pid);
        let (addr, counter, server) = match row.framework() {
            Framework::Axum => {
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
                (addr, counter, Server::Axum(task))
            }
            Framework::Actix => {
                let url = redis.filter(|_| row.needs_redis()).map(RedisServer::url);
                let (addr, counter, running) = crate::actix_apps::start(row, url).await?;
                (addr, counter, Server::Actix(running))
            }
        };
        Ok(App {
            row,
            addr,
            redis_pid,
            counter,
            server,
        })
    }

    /// Store calls so far; `None` when the row has no server store to call.
    pub fn store_calls(&self) -> Option<usize> {
        match &self.counter {
            Counter::Nothing => None,
            Counter::Ours(store) => Some(store.calls()),
            Counter::Sessions(store) => Some(store.calls()),
            Counter::ActixSessions(store) => Some(store.calls()),
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        match &mut self.server {
            Server::Axum(task) => task.abort(),
            Server::Actix(running) => running.stop(),
        }
    }
}

pub(crate) fn cookie_store() -> Result<CookieStore, BenchError> {
    Ok(CookieStore::new([CookieStore::random_key()?])?)
}

/// This library's config for one of its rows (either framework), and how its store calls
/// are counted. Call it on the runtime that is to drive the store (the Redis connection).
pub(crate) async fn ours_config(
    row: Row,
    redis_url: Option<&str>,
) -> Result<(MessagesConfig, Counter), BenchError> {
    Ok(match row {
        Row::Memory | Row::ActixMemory => {
            let store = CountingStore::new(MemoryStore::new());
            (MessagesConfig::new(store.clone()), Counter::Ours(store))
        }
        Row::Cookie | Row::ActixCookie => (MessagesConfig::new(cookie_store()?), Counter::Nothing),
        Row::Fallback | Row::ActixFallback => {
            let store = CountingStore::new(MemoryStore::new());
            let fallback = Storage::fallback(cookie_store()?, store.clone());
            (MessagesConfig::new(fallback), Counter::Ours(store))
        }
        Row::Redis | Row::ActixRedis => {
            let url = redis_url.ok_or_else(|| {
                messages_core::Error::Config("the Redis rows need a redis-server".into())
            })?;
            let store =
                CountingStore::new(RedisStore::connect(url, RedisOptions::default()).await?);
            (MessagesConfig::new(store.clone()), Counter::Ours(store))
        }
        other => {
            return Err(messages_core::Error::Config(format!(
                "{} is not a row of this library",
                other.label()
            ))
            .into());
        }
    })
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
        row => {
            let url = redis.map(RedisServer::url);
            let (config, counter) = ours_config(row, url.as_deref()).await?;
            (ours(config), counter)
        }
    })
}
