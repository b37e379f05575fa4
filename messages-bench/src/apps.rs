//! The applications under load: one router shape per row, the same page template for all.
//! This module has the axum rows, the rows' names and how an [`App`] is served;
//! [`crate::actix_apps`] has the actix-web rows' handlers and servers.
//!
//! Every row serves `POST /settings` (a form with `name`; adds "Settings saved for
//! {name}." at level success and answers `303 See Other` to `/settings`), `GET /settings`
//! (renders the settings view's messages, consuming them) and `GET /about` (renders the
//! same page with no messages and never asks the flash library for them). The page is a
//! minijinja template with HTML escaping on, as an application would render it.
//! The bare rows use no flash library and show no message; the floor rows
//! ([`Row::Floor`], [`Row::FloorMemory`], [`Row::FloorRedis`], [`Row::FloorRedisLeased`],
//! [`Row::ActixFloor`]) serve ours' responses with the least each kind of store does, so
//! that a row's cost can be read against what any flash layer costs.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use messages_core::Storage;
use messages_core::axum::MessagesLayer;
use messages_core::{
    CookieStore, MemoryStore, Message, MessagesConfig, PostgresStore, RedisOptions, RedisStore,
    SqlOptions, SqliteStore, with_messages,
};
use messages_tests::CountingStore;
use messages_tests::postgres_server::PostgresServer;
use messages_tests::redis_server::RedisServer;
use minijinja::{AutoEscape, Environment, context};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{SessionManagerLayer, cookie::SameSite};
use tower_sessions_redis_store::fred::prelude::{Builder, ClientLike as _, Config};

use crate::BenchError;
use crate::client::Workload;
use crate::cpu::Database;
use crate::sqlx_sessions::{PgSessions, SqliteSessions};

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

// --- the floors: ours' responses with no flash library ---------------------------------------

/// The session cookie the floor rows set: ours' default name, `=`.
pub(crate) const FLOOR_COOKIE: &str = "messages_session=";

/// Sessions the floor rows handed out in this process.
static FLOOR_SESSIONS: AtomicU64 = AtomicU64::new(0);

/// The floor's session: the value of the request's `messages_session` cookie, or a new
/// one with the `Set-Cookie` value that hands it out. A value is as long as ours' session
/// keys (43 characters), so a browser sends a floor row the same `Cookie` bytes as ours.
pub(crate) fn floor_session(cookie_header: Option<&[u8]>) -> (String, Option<String>) {
    let existing = cookie_header
        .and_then(|header| std::str::from_utf8(header).ok())
        .and_then(|header| {
            header
                .split(';')
                .find_map(|pair| pair.trim().strip_prefix(FLOOR_COOKIE))
        });
    if let Some(value) = existing {
        return (value.to_owned(), None);
    }
    let n = FLOOR_SESSIONS.fetch_add(1, Ordering::Relaxed);
    let value = format!("{n:0>43}");
    let set = format!("{FLOOR_COOKIE}{value}; HttpOnly; SameSite=Lax; Path=/");
    (value, Some(set))
}

/// The headers ours writes on a response that used messages, which the floor rows write
/// on `/settings`: `Vary: Cookie`, `Cache-Control: private`, and the session cookie on a
/// first visit.
fn floor_headers(mut response: Response, set_cookie: Option<String>) -> Response {
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("Cookie"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    if let Some(value) = set_cookie.and_then(|v| HeaderValue::try_from(v).ok()) {
        headers.insert(SET_COOKIE, value);
    }
    response
}

/// The message the floors show: the one the form adds, as ours keeps it, its level a tag.
fn floor_shown(text: String) -> Shown {
    Shown {
        level: "success",
        text,
    }
}

/// `GET /settings` on the in-process floor: the page with the message every `POST` adds
/// (a pair's `GET` follows its `POST`), from no state.
async fn floor_settings(headers: HeaderMap) -> Response {
    let (_, set_cookie) = floor_session(headers.get(COOKIE).map(HeaderValue::as_bytes));
    let shown = [floor_shown(SAVED.to_owned())];
    floor_headers(page("Settings", &shown), set_cookie)
}

async fn floor_save(headers: HeaderMap, Form(form): Form<SettingsForm>) -> Response {
    let (_, set_cookie) = floor_session(headers.get(COOKIE).map(HeaderValue::as_bytes));
    // The text is built as ours builds it, and kept nowhere.
    drop(saved(&form));
    floor_headers(Redirect::to(SETTINGS).into_response(), set_cookie)
}

/// The in-process store floor's messages: session to texts, one map behind one mutex.
type FloorMemory = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// `POST /settings` on the in-process store floor: the text pushed to the session's list.
async fn floor_memory_save(
    State(store): State<FloorMemory>,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    let (session, set_cookie) = floor_session(headers.get(COOKIE).map(HeaderValue::as_bytes));
    store
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(session)
        .or_default()
        .push(saved(&form));
    floor_headers(Redirect::to(SETTINGS).into_response(), set_cookie)
}

/// `GET /settings` on the in-process store floor: the session's list removed and shown.
async fn floor_memory_settings(State(store): State<FloorMemory>, headers: HeaderMap) -> Response {
    let (session, set_cookie) = floor_session(headers.get(COOKIE).map(HeaderValue::as_bytes));
    let texts = store
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&session)
        .unwrap_or_default();
    let shown: Vec<Shown> = texts.into_iter().map(floor_shown).collect();
    floor_headers(page("Settings", &shown), set_cookie)
}

/// A Redis floor's connection, and for the leased floor its held settles.
#[derive(Clone)]
struct FloorRedis {
    connection: ConnectionManager,
    /// `None`: the floor without read leases. `Some`: the reserves read and shown, whose
    /// `DEL` (the settle) goes in the pipeline of the connection's next command, as ours
    /// holds its settles.
    settles: Option<Arc<Mutex<Vec<String>>>>,
    /// The keys' idle TTL and the read lease, in ms: ours' defaults
    /// ([`RedisOptions::default`]).
    ttl_ms: i64,
    lease_ms: i64,
}

impl FloorRedis {
    /// A pipeline that starts with the settles held so far (the leased floor).
    fn pipeline(&self) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        if let Some(settles) = &self.settles {
            let held = std::mem::take(&mut *settles.lock().unwrap_or_else(PoisonError::into_inner));
            if !held.is_empty() {
                pipe.del(held).ignore();
            }
        }
        pipe
    }
}

/// Reserves the leased floor made in this process.
static FLOOR_LEASES: AtomicU64 = AtomicU64::new(0);

/// `POST /settings` on a Redis floor: one round trip, `RPUSH` of the text and `PEXPIRE`
/// of the session's list, pipelined (after the held settles, on the leased floor).
async fn floor_redis_save(
    State(redis): State<FloorRedis>,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    let (session, set_cookie) = floor_session(headers.get(COOKIE).map(HeaderValue::as_bytes));
    let key = format!("floor:{session}");
    let mut pipe = redis.pipeline();
    pipe.rpush(&key, saved(&form))
        .ignore()
        .pexpire(&key, redis.ttl_ms)
        .ignore();
    let mut connection = redis.connection;
    let stored: Result<(), redis::RedisError> = pipe.query_async(&mut connection).await;
    match stored {
        Ok(()) => floor_headers(Redirect::to(SETTINGS).into_response(), set_cookie),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /settings` on a Redis floor: one round trip. Without leases, `LPOP` of the
/// session's list. With them, one `MULTI`: the held settles' `DEL`, then `LRANGE` of the
/// list, `COPY` to a reserve, `DEL` of the list and `PEXPIRE` of the reserve; the
/// reserve's `DEL` is then held for the connection's next command.
async fn floor_redis_settings(State(redis): State<FloorRedis>, headers: HeaderMap) -> Response {
    let (session, set_cookie) = floor_session(headers.get(COOKIE).map(HeaderValue::as_bytes));
    let key = format!("floor:{session}");
    let mut pipe = redis.pipeline();
    let reserve = redis.settles.as_ref().map(|_| {
        let n = FLOOR_LEASES.fetch_add(1, Ordering::Relaxed);
        format!("{key};taken:{n}")
    });
    match &reserve {
        None => {
            pipe.lpop(&key, std::num::NonZeroUsize::new(FLOOR_TAKE));
        }
        Some(reserve) => {
            pipe.atomic()
                .lrange(&key, 0, -1)
                .cmd("COPY")
                .arg(&key)
                .arg(reserve)
                .ignore()
                .del(&key)
                .ignore()
                .pexpire(reserve, redis.lease_ms)
                .ignore();
        }
    }
    let mut connection = redis.connection;
    let taken: Result<(Option<Vec<String>>,), redis::RedisError> =
        pipe.query_async(&mut connection).await;
    match taken {
        Ok((texts,)) => {
            if let (Some(settles), Some(reserve)) = (&redis.settles, reserve) {
                settles
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(reserve);
            }
            let shown: Vec<Shown> = texts
                .unwrap_or_default()
                .into_iter()
                .map(floor_shown)
                .collect();
            floor_headers(page("Settings", &shown), set_cookie)
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// At most this many messages a Redis floor `GET` takes, the per-view cap of ours.
const FLOOR_TAKE: usize = 100;

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

/// A `tower-sessions` store that counts the calls made to the store it wraps
/// (`create`, `save`, `load`, `delete`).
#[derive(Debug, Clone)]
pub struct CountingSessionStore<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S> CountingSessionStore<S> {
    /// Counts the calls made to `inner`.
    pub fn new(inner: S) -> Self {
        CountingSessionStore {
            inner,
            calls: Arc::default(),
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for CountingSessionStore<S> {
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

    /// The row that serves ours' responses with no flash library: the floor of a flash
    /// layer on the framework, and a ratio column.
    pub fn floor(self) -> Row {
        match self {
            Framework::Axum => Row::Floor,
            Framework::Actix => Row::ActixFloor,
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

/// Where a row's flash messages (or sessions) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Backend {
    /// In the server process or in cookies: nothing to start.
    InProcess,
    /// The harness's `redis-server`.
    Redis,
    /// A database of the row's own on the harness's PostgreSQL server.
    Postgres,
    /// A SQLite file of the row's own (WAL), in a temporary directory.
    Sqlite,
}

/// A row of the table: what serves the flash messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Row {
    /// No flash library: `GET /settings` shows no message.
    Bare,
    /// No flash library, ours' responses: `GET /settings` shows the message a `POST` adds
    /// from no state, with the headers ours writes (`Vary: Cookie`, `Cache-Control:
    /// private`, the session cookie on a first visit). The least any flash layer costs.
    Floor,
    /// [`Row::Floor`] keeping the message in the process, with the least an in-process
    /// store does: a push to the session's list in one `Mutex<HashMap>` on the `POST`, the
    /// list removed on the `GET`. No expiry, caps, order, leases or rotation.
    FloorMemory,
    /// This library, `MemoryStore`.
    Memory,
    /// This library, `CookieStore` (messages in a signed cookie).
    Cookie,
    /// This library, `Storage::fallback` (cookie first, `MemoryStore` behind it).
    Fallback,
    /// This library, `RedisStore` on a harness-started `redis-server`.
    Redis,
    /// [`Row::Floor`] keeping the message in Redis with the least a store can send: one
    /// round trip per request, `RPUSH` + `PEXPIRE` for the add and `LPOP` for the read;
    /// no read lease, cap, order or rotation. The floor of a Redis flash store on the
    /// `redis` crate's `ConnectionManager`, as ours uses.
    FloorRedis,
    /// [`Row::FloorRedis`] with read leases, the least a store keeping them sends: the read
    /// copies the list to a reserve key with the lease as its TTL (`MULTI` of `LRANGE`,
    /// `COPY`, `DEL`, `PEXPIRE`), and the reserve's `DEL` is held and sent in the pipeline
    /// of the connection's next command. No put-back of lapsed leases (a crash's case),
    /// cap, order or rotation.
    FloorRedisLeased,
    /// This library, `PostgresStore` on a harness-started PostgreSQL server.
    Postgres,
    /// This library, `SqliteStore` on a file (WAL).
    Sqlite,
    /// `axum-messages` 0.8 with `tower-sessions` 0.14's memory store.
    AxumMessages,
    /// `axum-messages` 0.8 with `tower-sessions-redis-store` 0.16 (the `fred` client) on
    /// the same `redis-server` as [`Row::Redis`].
    AxumMessagesRedis,
    /// `axum-messages` 0.8 with `tower-sessions-sqlx-store` 0.15's PostgreSQL store
    /// (ported to sqlx 0.9: [`crate::sqlx_sessions`]) on the same server as
    /// [`Row::Postgres`], a database of its own.
    AxumMessagesPostgres,
    /// `axum-messages` 0.8 with `tower-sessions-sqlx-store` 0.15's SQLite store (ported
    /// likewise) on a file of its own, opened as [`Row::Sqlite`]'s.
    AxumMessagesSqlite,
    /// actix-web 4 with no flash library: `GET /settings` shows no message.
    ActixBare,
    /// actix-web 4 serving ours' responses with no flash library, as [`Row::Floor`].
    ActixFloor,
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
    pub const ALL: [Row; 23] = [
        Row::Bare,
        Row::Floor,
        Row::FloorMemory,
        Row::Memory,
        Row::Cookie,
        Row::Fallback,
        Row::Redis,
        Row::FloorRedis,
        Row::FloorRedisLeased,
        Row::Postgres,
        Row::Sqlite,
        Row::AxumMessages,
        Row::AxumMessagesRedis,
        Row::AxumMessagesPostgres,
        Row::AxumMessagesSqlite,
        Row::ActixBare,
        Row::ActixFloor,
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
            Row::Floor => "floor axum",
            Row::FloorMemory => "floor axum: memory",
            Row::FloorRedis => "floor axum: redis",
            Row::FloorRedisLeased => "floor axum: redis, leased",
            Row::Memory => "ours: memory",
            Row::Cookie => "ours: cookie",
            Row::Fallback => "ours: fallback",
            Row::Redis => "ours: redis",
            Row::Postgres => "ours: postgres",
            Row::Sqlite => "ours: sqlite",
            Row::AxumMessages => "axum-messages: memory",
            Row::AxumMessagesRedis => "axum-messages: redis",
            Row::AxumMessagesPostgres => "axum-messages: postgres",
            Row::AxumMessagesSqlite => "axum-messages: sqlite",
            Row::ActixBare => "bare actix-web",
            Row::ActixFloor => "floor actix-web",
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
            Row::Floor | Row::ActixFloor => "floor",
            Row::AxumMessages => "axum-messages",
            Row::AwfmCookie => "AWFM cookie",
            Row::AwfmSession => "AWFM session",
            _ => self.label(),
        }
    }

    /// The framework that serves the row.
    pub fn framework(self) -> Framework {
        match self {
            Row::Bare
            | Row::Floor
            | Row::FloorMemory
            | Row::FloorRedis
            | Row::FloorRedisLeased
            | Row::Memory
            | Row::Cookie
            | Row::Fallback
            | Row::Redis
            | Row::Postgres
            | Row::Sqlite
            | Row::AxumMessages
            | Row::AxumMessagesRedis
            | Row::AxumMessagesPostgres
            | Row::AxumMessagesSqlite => Framework::Axum,
            Row::ActixBare
            | Row::ActixFloor
            | Row::ActixMemory
            | Row::ActixCookie
            | Row::ActixFallback
            | Row::ActixRedis
            | Row::AwfmCookie
            | Row::AwfmSession => Framework::Actix,
        }
    }

    /// Where the row keeps its messages or sessions.
    pub fn backend(self) -> Backend {
        match self {
            Row::Redis
            | Row::ActixRedis
            | Row::AxumMessagesRedis
            | Row::FloorRedis
            | Row::FloorRedisLeased => Backend::Redis,
            Row::Postgres | Row::AxumMessagesPostgres => Backend::Postgres,
            Row::Sqlite | Row::AxumMessagesSqlite => Backend::Sqlite,
            _ => Backend::InProcess,
        }
    }

    /// The axum-messages row on the same kind of store as this axum row (itself for an
    /// axum-messages row): the like-for-like peer of the table's "same store" columns.
    /// `None` where axum-messages has no such store (cookies) or on actix-web.
    pub fn store_peer(self) -> Option<Row> {
        match self {
            Row::Memory | Row::Floor | Row::FloorMemory | Row::AxumMessages => {
                Some(Row::AxumMessages)
            }
            Row::Redis | Row::FloorRedis | Row::FloorRedisLeased | Row::AxumMessagesRedis => {
                Some(Row::AxumMessagesRedis)
            }
            Row::Postgres | Row::AxumMessagesPostgres => Some(Row::AxumMessagesPostgres),
            Row::Sqlite | Row::AxumMessagesSqlite => Some(Row::AxumMessagesSqlite),
            _ => None,
        }
    }

    /// The store calls the row is expected to make per iteration of `workload` (a flash
    /// pair, or one plain GET), as counted by [`App::store_calls`]; `None` for a row with
    /// no server store to count. `load --quick` and `tests/rows.rs` fail on more: the
    /// regression guard of the counts the tables report.
    ///
    /// - ours on a server store: the POST's add and the GET's take, and the settle of the
    ///   read lease on a store that leases reads (Redis, PostgreSQL, SQLite: a call the
    ///   store holds back and sends with its next command, so not a round trip of its
    ///   own under load); nothing for a page that does not ask for messages;
    /// - ours with the fallback: nothing while the message fits the cookie;
    /// - axum-messages: a load and a save of the session per request of a pair, a load
    ///   per plain GET;
    /// - actix-web-flash-messages on actix-session: a load per request, and a save per
    ///   response (AWFM's `session.remove` marks every session changed).
    pub fn expected_store_calls(self, workload: Workload) -> Option<usize> {
        let pair = workload == Workload::FlashPair;
        match self {
            Row::Bare
            | Row::Floor
            | Row::FloorMemory
            | Row::FloorRedis
            | Row::FloorRedisLeased
            | Row::ActixBare
            | Row::ActixFloor
            | Row::Cookie
            | Row::ActixCookie
            | Row::AwfmCookie => None,
            Row::Fallback | Row::ActixFallback => Some(0),
            Row::Memory | Row::ActixMemory => Some(if pair { 2 } else { 0 }),
            Row::Redis | Row::ActixRedis | Row::Postgres | Row::Sqlite => {
                Some(if pair { 3 } else { 0 })
            }
            Row::AxumMessages
            | Row::AxumMessagesRedis
            | Row::AxumMessagesPostgres
            | Row::AxumMessagesSqlite => Some(if pair { 4 } else { 1 }),
            Row::AwfmSession => Some(if pair { 4 } else { 2 }),
        }
    }

    /// Whether `GET /settings` shows the message the form added.
    pub fn shows_messages(self) -> bool {
        self != self.framework().bare()
    }
}

/// The database servers of a run, each started once for all the rows that need it; a row
/// whose server is missing cannot start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Servers<'a> {
    /// For [`Backend::Redis`].
    pub redis: Option<&'a RedisServer>,
    /// For [`Backend::Postgres`].
    pub postgres: Option<&'a PostgresServer>,
}

impl Servers<'_> {
    /// What `row` needs and this lacks: `Some("redis-server")`, `Some("postgresql")`.
    pub fn missing_for(&self, row: Row) -> Option<&'static str> {
        match row.backend() {
            Backend::Redis if self.redis.is_none() => Some("redis-server"),
            Backend::Postgres if self.postgres.is_none() => Some("postgresql"),
            _ => None,
        }
    }
}

/// Where a row's store is to keep its data, made for the row before its store is built.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Nowhere outside the process.
    InProcess,
    /// The `redis-server` at this URL.
    Redis(String),
    /// The PostgreSQL database at this URL, the row's own.
    Postgres(String),
    /// The SQLite file at this path, the row's own.
    Sqlite(PathBuf),
}

impl Target {
    fn wrong(row: Row) -> BenchError {
        messages_core::Error::Config(format!("{}: no database made for it", row.label())).into()
    }
}

/// Sequence number of the databases made on the PostgreSQL server by this process.
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// Makes `row`'s target: a fresh database on the PostgreSQL server, a file in a fresh
/// temporary directory (returned, to live as long as the row), or the Redis URL; and
/// says where the database spends its CPU time.
async fn target(
    row: Row,
    servers: Servers<'_>,
) -> Result<(Target, Database, Option<TempDir>), BenchError> {
    let missing = || {
        messages_core::Error::Config(format!(
            "{} needs {}",
            row.label(),
            servers.missing_for(row).unwrap_or("a database")
        ))
    };
    Ok(match row.backend() {
        Backend::InProcess => (Target::InProcess, Database::None, None),
        Backend::Redis => {
            let redis = servers.redis.ok_or_else(missing)?;
            let database = redis.pid().map_or(Database::None, Database::Process);
            (Target::Redis(redis.url()), database, None)
        }
        Backend::Postgres => {
            let postgres = servers.postgres.ok_or_else(missing)?;
            let name = format!("bench_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
            let mut admin = PgConnection::connect(&postgres.url()).await?;
            admin
                .execute(AssertSqlSafe(format!("create database {name}")))
                .await?;
            admin.close().await?;
            let url = format!("postgres://postgres@127.0.0.1:{}/{name}", postgres.port());
            let database = postgres.pid().map_or(Database::None, Database::ProcessTree);
            (Target::Postgres(url), database, None)
        }
        Backend::Sqlite => {
            let dir = tempfile::Builder::new()
                .prefix("messages-bench-")
                .tempdir()?;
            let path = dir.path().join("bench.db");
            (Target::Sqlite(path), Database::SqliteThreads, Some(dir))
        }
    })
}

/// How a row's store calls are counted.
#[derive(Debug, Clone)]
pub(crate) enum Counter {
    /// No server store (bare rows, cookie storage).
    Nothing,
    /// A `MessageStore` behind this library.
    Ours(CountingStore),
    /// `RedisStore` behind this library: its calls, and the round trips it sends
    /// ([`RedisStore::round_trips`]).
    OursRedis(CountingStore, RedisStore),
    /// The `tower-sessions` store behind `axum-messages` ([`CountingSessionStore`]'s
    /// count).
    Sessions(Arc<AtomicUsize>),
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
    /// Where its database spends CPU time (`redis-server`, PostgreSQL's processes, SQLite's
    /// threads), to count it beside the server's.
    pub database: Database,
    counter: Counter,
    server: Server,
    /// The SQLite row's directory, removed after the server stops.
    _files: Option<TempDir>,
}

impl App {
    /// Builds the row's application and serves it on `127.0.0.1:0`.
    ///
    /// An axum row is served on the runtime this is called in (the server runtime: the
    /// server task, the Redis connection and the SQL pools live there). An actix row gets
    /// a thread of its own named [`SERVER_THREADS`](crate::cpu::SERVER_THREADS), running
    /// an `actix_rt::System` as `#[actix_web::main]` would, where its store is built (the
    /// Redis connection's task lives there) and its `HttpServer` started with two workers
    /// (threads named `actix-…`). A row whose [`Backend`] is a server needs it in
    /// `servers`; a PostgreSQL row gets a database of its own there, a SQLite row a file.
    pub async fn start(row: Row, servers: Servers<'_>) -> Result<App, BenchError> {
        let (target, database, files) = target(row, servers).await?;
        let (addr, counter, server) = match row.framework() {
            Framework::Axum => {
                let (router, counter) = router(row, &target).await?;
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
                let (addr, counter, running) = crate::actix_apps::start(row, target).await?;
                (addr, counter, Server::Actix(running))
            }
        };
        Ok(App {
            row,
            addr,
            database,
            counter,
            server,
            _files: files,
        })
    }

    /// Store calls so far; `None` when the row has no server store to call.
    pub fn store_calls(&self) -> Option<usize> {
        match &self.counter {
            Counter::Nothing => None,
            Counter::Ours(store) | Counter::OursRedis(store, _) => Some(store.calls()),
            Counter::Sessions(calls) => Some(calls.load(Ordering::Relaxed)),
            Counter::ActixSessions(store) => Some(store.calls()),
        }
    }

    /// Round trips the row's `RedisStore` sent so far; `None` for other rows.
    pub fn redis_round_trips(&self) -> Option<u64> {
        match &self.counter {
            Counter::OursRedis(_, redis) => Some(redis.round_trips()),
            _ => None,
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

/// SQLite's connection settings for the axum-messages SQLite row, as `SqliteStore::open`
/// makes ours: the file created if missing, WAL, `synchronous = NORMAL`, the same busy
/// timeout.
fn sqlite_connect(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(SqlOptions::default().response_timeout)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
}

/// This library's config for one of its rows (either framework), and how its store calls
/// are counted. Call it on the runtime that is to drive the store (the Redis connection,
/// the SQL pools).
pub(crate) async fn ours_config(
    row: Row,
    target: &Target,
) -> Result<(MessagesConfig, Counter), BenchError> {
    let counted = |store: CountingStore| (MessagesConfig::new(store.clone()), Counter::Ours(store));
    Ok(match (row, target) {
        (Row::Memory | Row::ActixMemory, _) => counted(CountingStore::new(MemoryStore::new())),
        (Row::Cookie | Row::ActixCookie, _) => {
            (MessagesConfig::new(cookie_store()?), Counter::Nothing)
        }
        (Row::Fallback | Row::ActixFallback, _) => {
            let store = CountingStore::new(MemoryStore::new());
            let fallback = Storage::fallback(cookie_store()?, store.clone());
            (MessagesConfig::new(fallback), Counter::Ours(store))
        }
        (Row::Redis | Row::ActixRedis, Target::Redis(url)) => {
            let redis = RedisStore::connect(url, RedisOptions::default()).await?;
            let store = CountingStore::new(redis.clone());
            (
                MessagesConfig::new(store.clone()),
                Counter::OursRedis(store, redis),
            )
        }
        (Row::Postgres, Target::Postgres(url)) => {
            let store = PostgresStore::connect(url, SqlOptions::default()).await?;
            store.migrate().await?;
            counted(CountingStore::new(store))
        }
        (Row::Sqlite, Target::Sqlite(path)) => {
            let store = SqliteStore::open(path, SqlOptions::default()).await?;
            store.migrate().await?;
            counted(CountingStore::new(store))
        }
        (Row::Redis | Row::ActixRedis | Row::Postgres | Row::Sqlite, _) => {
            return Err(Target::wrong(row));
        }
        (other, _) => {
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

/// axum-messages on `store`, its calls counted.
fn axum_messages<S: SessionStore + Clone>(store: S) -> (Router, Counter) {
    let store = CountingSessionStore::new(store);
    let calls = Arc::clone(&store.calls);
    // Lax like ours (tower-sessions defaults to Strict); not Secure on plain http.
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_same_site(SameSite::Lax);
    (
        Router::new()
            .route(SETTINGS, get(am_settings).post(am_save))
            .route(ABOUT, get(about))
            .layer(axum_messages::MessagesManagerLayer)
            .layer(sessions),
        Counter::Sessions(calls),
    )
}

async fn router(row: Row, target: &Target) -> Result<(Router, Counter), BenchError> {
    // The pools of the axum-messages SQL rows as `PostgresStore::connect` and
    // `SqliteStore::open` make ours: as many connections at most, the same wait for one,
    // sqlx's defaults otherwise (a PostgreSQL connection is pinged before it is handed
    // out; a SQLite one, a thread of this process, is not).
    let options = SqlOptions::default();
    Ok(match (row, target) {
        (Row::Bare, _) => (
            Router::new()
                .route(SETTINGS, get(bare_settings).post(bare_save))
                .route(ABOUT, get(about)),
            Counter::Nothing,
        ),
        (Row::Floor, _) => (
            Router::new()
                .route(SETTINGS, get(floor_settings).post(floor_save))
                .route(ABOUT, get(about)),
            Counter::Nothing,
        ),
        (Row::FloorMemory, _) => (
            Router::new()
                .route(SETTINGS, get(floor_memory_settings).post(floor_memory_save))
                .route(ABOUT, get(about))
                .with_state(FloorMemory::default()),
            Counter::Nothing,
        ),
        (Row::FloorRedis | Row::FloorRedisLeased, Target::Redis(url)) => {
            let client = redis::Client::open(url.as_str())?;
            let connection = ConnectionManager::new(client).await?;
            let settles = (row == Row::FloorRedisLeased).then(Arc::default);
            let ours = RedisOptions::default();
            let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            (
                Router::new()
                    .route(SETTINGS, get(floor_redis_settings).post(floor_redis_save))
                    .route(ABOUT, get(about))
                    .with_state(FloorRedis {
                        connection,
                        settles,
                        ttl_ms: millis(ours.idle_ttl),
                        lease_ms: millis(ours.read_lease),
                    }),
                Counter::Nothing,
            )
        }
        (Row::AxumMessages, _) => axum_messages(tower_sessions::MemoryStore::default()),
        (Row::AxumMessagesRedis, Target::Redis(url)) => {
            // One connection, pipelined, like our `RedisStore`'s; fred's defaults.
            let client = Builder::from_config(Config::from_url(url)?).build()?;
            client.init().await?;
            axum_messages(tower_sessions_redis_store::RedisStore::new(client))
        }
        (Row::AxumMessagesPostgres, Target::Postgres(url)) => {
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.connect_timeout)
                .connect(url)
                .await?;
            let store = PgSessions::new(pool);
            store.migrate().await?;
            axum_messages(store)
        }
        (Row::AxumMessagesSqlite, Target::Sqlite(path)) => {
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.connect_timeout)
                .test_before_acquire(false)
                .connect_with(sqlite_connect(path))
                .await?;
            let store = SqliteSessions::new(pool);
            store.migrate().await?;
            axum_messages(store)
        }
        (
            Row::FloorRedis
            | Row::FloorRedisLeased
            | Row::AxumMessagesRedis
            | Row::AxumMessagesPostgres
            | Row::AxumMessagesSqlite,
            _,
        ) => {
            return Err(Target::wrong(row));
        }
        (row, target) => {
            let (config, counter) = ours_config(row, target).await?;
            (ours(config), counter)
        }
    })
}
