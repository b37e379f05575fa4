//! `PostgresStore` and `SqliteStore` against real databases: a PostgreSQL server started
//! once for the binary (`messages_tests::postgres_server::shared`, SKIPPED locally
//! without PostgreSQL, a failure in CI) and SQLite files in temporary directories.
//!
//! Per backend: the store contract (`postgres::<case>`, `sqlite::<case>`, one test per
//! case), the reference model of the request semantics, and what is particular to the
//! SQL stores (`postgres_sql::<test>`, `sqlite_sql::<test>`): read leases, rotation (at
//! the store and through requests), many tasks adding and taking one context, expired
//! sessions swept by later writes, undecodable rows, the schema and its checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use messages_core::live::{LiveOptions, Watch};
use messages_core::sqlx::{self, AssertSqlSafe};
use messages_core::store::{Lease, Taken, async_trait};
use messages_core::{
    CookieStore, Error, Message, MessageId, MessageStore, MessagesConfig, PostgresStore, Result,
    SessionKey, SqlOptions, SqliteStore, Storage, ViewId,
};
use messages_tests::browser::shown_texts;
use messages_tests::live_feed::{self, Delivered};
use messages_tests::{Browser, CallCounts, CountingStore, conformance, model, postgres_server};
use proptest::test_runner::TestRunner;
use tempfile::TempDir;

const MODEL_CASES: u32 = 200;
const BROWSERS: usize = 3;
/// The read lease of the lease tests; they wait a little longer than this for it to be
/// up. Checks made while a lease runs must finish within it, so it leaves room for a
/// stalled CI machine.
const LEASE: Duration = Duration::from_millis(1500);
const VIEW: ViewId = ViewId::from_static("app::inbox");
const A: ViewId = ViewId::from_static("app::a");
const B: ViewId = ViewId::from_static("app::b");

/// A store under test, with raw SQL on its tables beside the trait.
#[derive(Clone)]
enum Sql {
    Postgres(PostgresStore),
    /// The directory holds the database file as long as a clone of the store lives.
    Sqlite(SqliteStore, Arc<TempDir>),
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sql::Postgres(s) => s.fmt(f),
            Sql::Sqlite(s, _) => s.fmt(f),
        }
    }
}

impl Sql {
    fn table(&self) -> &str {
        match self {
            Sql::Postgres(s) => s.table(),
            Sql::Sqlite(s, _) => s.table(),
        }
    }

    /// `SELECT count(*) FROM {table}[_sessions] WHERE <filter>`.
    async fn rows(&self, sessions: bool, filter: &str) -> i64 {
        let suffix = if sessions { "_sessions" } else { "" };
        let sql = format!(
            "SELECT count(*) FROM {}{suffix} WHERE {filter}",
            self.table()
        );
        match self {
            Sql::Postgres(s) => sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                .fetch_one(s.pool())
                .await
                .unwrap(),
            Sql::Sqlite(s, _) => sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                .fetch_one(s.pool())
                .await
                .unwrap(),
        }
    }

    async fn execute(&self, sql: String) {
        match self {
            Sql::Postgres(s) => {
                sqlx::query(AssertSqlSafe(sql))
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
            Sql::Sqlite(s, _) => {
                sqlx::query(AssertSqlSafe(sql))
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
        }
    }

    async fn migrate(&self) -> Result<()> {
        match self {
            Sql::Postgres(s) => s.migrate().await,
            Sql::Sqlite(s, _) => s.migrate().await,
        }
    }
}

macro_rules! forward {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Sql::Postgres($s) => $call.await,
            Sql::Sqlite($s, _) => $call.await,
        }
    };
}

#[async_trait]
impl MessageStore for Sql {
    async fn add_all(&self, s: &SessionKey, v: &ViewId, m: Vec<Message>) -> Result<()> {
        forward!(self, x => x.add_all(s, v, m))
    }
    async fn put_back(&self, s: &SessionKey, v: &ViewId, m: Vec<Message>) -> Result<()> {
        forward!(self, x => x.put_back(s, v, m))
    }
    async fn take(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
        forward!(self, x => x.take(s, v))
    }
    async fn take_leased(&self, s: &SessionKey, v: &ViewId) -> Result<Taken> {
        forward!(self, x => x.take_leased(s, v))
    }
    async fn settle(&self, s: &SessionKey, v: &ViewId, lease: Lease) -> Result<()> {
        forward!(self, x => x.settle(s, v, lease))
    }
    async fn flush(&self) -> Result<()> {
        forward!(self, x => x.flush())
    }
    async fn peek(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
        forward!(self, x => x.peek(s, v))
    }
    async fn count(&self, s: &SessionKey, v: &ViewId) -> Result<usize> {
        forward!(self, x => x.count(s, v))
    }
    async fn discard(&self, s: &SessionKey, v: &ViewId) -> Result<()> {
        forward!(self, x => x.discard(s, v))
    }
    async fn clear_session(&self, s: &SessionKey) -> Result<()> {
        forward!(self, x => x.clear_session(s))
    }
    async fn pending_views(&self, s: &SessionKey) -> Result<Vec<ViewId>> {
        forward!(self, x => x.pending_views(s))
    }
    async fn rotate(&self, from: &SessionKey, to: &SessionKey) -> Result<()> {
        forward!(self, x => x.rotate(from, to))
    }
    fn watch(&self, s: &SessionKey, v: &ViewId) -> Option<Watch> {
        match self {
            Sql::Postgres(x) => x.watch(s, v),
            Sql::Sqlite(x, _) => x.watch(s, v),
        }
    }
}

/// A store on the binary's PostgreSQL server, its tables migrated.
async fn postgres(options: SqlOptions) -> Option<Sql> {
    let server = postgres_server::shared()?;
    Some(Sql::Postgres(server.store(options).await))
}

/// A store on a fresh SQLite file, its tables migrated.
async fn sqlite(options: SqlOptions) -> Option<Sql> {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path().join("messages.db"), options)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Some(Sql::Sqlite(store, Arc::new(dir)))
}

/// Options for tests of behaviour, not of latency: waits bounded generously, since a
/// loaded 2-core machine running 16 tasks on one SQLite writer can keep a transaction
/// waiting for its turn (busy timeout) well over the default second.
fn patient() -> SqlOptions {
    SqlOptions {
        connect_timeout: Duration::from_secs(30),
        response_timeout: Duration::from_secs(30),
        ..SqlOptions::default()
    }
}

fn table(name: &str) -> SqlOptions {
    SqlOptions {
        table: name.to_owned(),
        ..patient()
    }
}

/// The options of a store the contract runs on: the default, or with `Some(ttl)` an idle
/// TTL of `ttl` (and a read lease shorter than it).
fn contract_options(idle_ttl: Option<Duration>) -> SqlOptions {
    match idle_ttl {
        None => patient(),
        Some(ttl) => SqlOptions {
            idle_ttl: ttl,
            read_lease: ttl / 2,
            ..patient()
        },
    }
}

// The store contract, one test per case: `postgres::<case>`, `sqlite::<case>`.
messages_tests::store_conformance_tests!(
    postgres,
    |ttl| async move { postgres(contract_options(ttl)).await },
    SqlOptions::default().per_context
);
messages_tests::store_conformance_tests!(
    sqlite,
    |ttl| async move { sqlite(contract_options(ttl)).await },
    SqlOptions::default().per_context
);

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(Message::text).collect()
}

fn session() -> SessionKey {
    SessionKey::generate().unwrap()
}

/// Runs the model's random request sequences against `config`, on the current runtime.
fn check_model(config: &MessagesConfig, cap: usize) {
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(model::config(MODEL_CASES));
    let result = tokio::task::block_in_place(|| {
        runner.run(&model::ops(BROWSERS, 30), |ops| {
            handle.block_on(model::check(config, &ops, BROWSERS, cap))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn lease_up() {
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
}

fn leased(name: &str) -> SqlOptions {
    SqlOptions {
        read_lease: LEASE,
        ..table(name)
    }
}

/// An unsettled lease hides its messages until it is up, then the next take (plain or
/// leased) gets them back, older than those added since.
async fn unsettled_reads_come_back(store: &Sql) {
    let s = session();
    for t in ["one", "two"] {
        store.add(&s, &VIEW, Message::info(t)).await.unwrap();
    }
    let taken = store.take_leased(&s, &VIEW).await.unwrap();
    assert_eq!(texts(&taken.messages), ["one", "two"]);
    assert!(taken.lease.is_some());
    // While the lease runs, nobody else gets them, and the view is not pending.
    let again = store.take_leased(&s, &VIEW).await.unwrap();
    assert!(
        again.messages.is_empty() && again.lease.is_none(),
        "{again:?}"
    );
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
    assert!(store.pending_views(&s).await.unwrap().is_empty());
    store.add(&s, &VIEW, Message::info("three")).await.unwrap();
    assert_eq!(store.count(&s, &VIEW).await.unwrap(), 1);

    lease_up().await;
    assert_eq!(store.pending_views(&s).await.unwrap(), [VIEW]);
    assert_eq!(store.count(&s, &VIEW).await.unwrap(), 3);
    let back = store.take(&s, &VIEW).await.unwrap();
    assert_eq!(texts(&back), ["one", "two", "three"]);
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
    assert!(store.pending_views(&s).await.unwrap().is_empty());
    // Settling a lease that is up and was taken again does nothing.
    store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
}

/// A settled lease's messages are gone for good, and no row of it stays.
async fn settled_reads_are_gone(store: &Sql) {
    let s = session();
    let mine = format!("session_key = '{}'", s.as_str());
    store.add(&s, &VIEW, Message::info("once")).await.unwrap();
    let taken = store.take_leased(&s, &VIEW).await.unwrap();
    assert_eq!(texts(&taken.messages), ["once"]);
    let reserved = format!("{mine} AND lease IS NOT NULL");
    assert_eq!(store.rows(false, &reserved).await, 1, "held in reserve");
    store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.rows(false, &mine).await, 0);
    lease_up().await;
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
    assert!(store.pending_views(&s).await.unwrap().is_empty());
}

/// Clearing the session (logout) drops reserves too.
async fn clear_session_drops_reserves(store: &Sql) {
    let s = session();
    store.add(&s, &VIEW, Message::info("x")).await.unwrap();
    let taken = store.take_leased(&s, &VIEW).await.unwrap();
    assert!(taken.lease.is_some());
    store.clear_session(&s).await.unwrap();
    let mine = format!("session_key = '{}'", s.as_str());
    assert_eq!(store.rows(false, &mine).await, 0);
    lease_up().await;
    assert!(store.take(&s, &VIEW).await.unwrap().is_empty());
}

/// A reserve that comes back respects the per-context cap: the newest are kept.
async fn restoring_keeps_the_cap(store: &Sql) {
    let s = session();
    for t in ["a", "b", "c"] {
        store.add(&s, &VIEW, Message::info(t)).await.unwrap();
    }
    assert!(store.take_leased(&s, &VIEW).await.unwrap().lease.is_some());
    for t in ["d", "e", "f"] {
        store.add(&s, &VIEW, Message::info(t)).await.unwrap();
    }
    lease_up().await;
    assert_eq!(store.count(&s, &VIEW).await.unwrap(), 3);
    assert_eq!(
        texts(&store.peek(&s, &VIEW).await.unwrap()),
        ["d", "e", "f"]
    );
    assert_eq!(
        texts(&store.take(&s, &VIEW).await.unwrap()),
        ["d", "e", "f"]
    );
}

/// A read of a session near its end keeps it alive for the idle TTL, so that an
/// unsettled read comes back after its lease instead of expiring with the session.
/// `ttl` 4 s, lease 1 s: added at 0, read at 2.5 s (1.5 s left), checked at 5 s (past
/// the first expiry at 4 s, before the kept-alive one at 6.5 s). Attempts whose sleeps
/// overshot are tried again.
async fn a_read_near_the_end_keeps_the_session_alive(store: &Sql, ttl: Duration, lease: Duration) {
    for _ in 0..5 {
        let s = session();
        let added = Instant::now();
        store.add(&s, &VIEW, Message::info("late")).await.unwrap();
        let written = Instant::now();
        tokio::time::sleep(
            (added + ttl.saturating_sub(lease * 3 / 2)).saturating_duration_since(Instant::now()),
        )
        .await;
        let read_started = Instant::now();
        let taken = store.take_leased(&s, &VIEW).await.unwrap();
        let read = Instant::now();
        // The read must come near the end (under two leases left, so that without a
        // refresh the session would end before the check) and finish before it.
        if read_started < written + ttl.saturating_sub(lease * 2) || read >= added + ttl {
            continue;
        }
        assert_eq!(texts(&taken.messages), ["late"]);
        tokio::time::sleep((written + ttl + lease).saturating_duration_since(Instant::now())).await;
        let check_started = Instant::now();
        let back = store.take(&s, &VIEW).await.unwrap();
        if check_started >= read_started + ttl {
            continue;
        }
        assert_eq!(texts(&back), ["late"], "the read kept the session alive");
        return;
    }
    panic!("keep-alive could not be checked: every attempt overslept");
}

/// Concurrent leased takes of one context: exactly one gets every message.
async fn leased_takes_are_exclusive(store: &Sql) {
    let s = session();
    let all: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    for t in &all {
        store
            .add(&s, &VIEW, Message::info(t.as_str()))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move { store.take_leased(&s, &VIEW).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    let mut leases = 0;
    for t in tasks {
        let taken = t.await.unwrap();
        leases += usize::from(taken.lease.is_some());
        got.extend(taken.messages.iter().map(|m| m.text().to_owned()));
    }
    assert_eq!(leases, 1);
    assert_eq!(got, all);
}

/// On PostgreSQL a settle is deferred to the store's next statement: the next leased take
/// or add — of any context — deletes the settled rows in passing, before the background
/// flush (20 ms) would. Ten rounds, so that a round slow enough for the flush to run first
/// cannot make the test pass without the statement doing it (each round would have to
/// be that slow). `flush` sends what is held at once.
async fn settles_go_with_the_next_statement(store: &Sql) {
    for round in 0..10 {
        let (s, other) = (session(), session());
        let mine = format!("session_key = '{}'", s.as_str());
        store.add(&s, &VIEW, Message::info("once")).await.unwrap();
        let taken = store.take_leased(&s, &VIEW).await.unwrap();
        store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
        if round % 2 == 0 {
            assert!(store.take_leased(&other, &A).await.unwrap().lease.is_none());
        } else {
            store.add(&other, &A, Message::info("x")).await.unwrap();
        }
        assert_eq!(store.rows(false, &mine).await, 0, "round {round}");
    }
    let s = session();
    let mine = format!("session_key = '{}'", s.as_str());
    store
        .add(&s, &VIEW, Message::info("flushed"))
        .await
        .unwrap();
    let taken = store.take_leased(&s, &VIEW).await.unwrap();
    store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.rows(false, &mine).await, 0);
    // With nothing held, flushing does nothing.
    store.flush().await.unwrap();
}

/// A settle deferred when no statement follows is sent by the background flush: the rows
/// go without another call (waited for generously: 10 s).
async fn deferred_settles_are_flushed_in_the_background(store: &Sql) {
    let s = session();
    let mine = format!("session_key = '{}'", s.as_str());
    store.add(&s, &VIEW, Message::info("once")).await.unwrap();
    let taken = store.take_leased(&s, &VIEW).await.unwrap();
    store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.rows(false, &mine).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the deferred settle was never sent"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Through the request API: a request that read and committed settles its lease (nothing
/// comes back); one that read and never committed (its process died) has its messages
/// shown again by the first read after the lease; a failed response puts them back now.
/// Texts are padded with `pad` bytes (to make them spill from a cookie).
async fn requests_settle_or_lose_nothing(config: &MessagesConfig, pad: usize) {
    let text = |t: &str| format!("{t}{}", "x".repeat(pad));
    let (saved, crashed, failed) = (text("saved"), text("crashed"), text("failed"));
    let mut browser = Browser::new();
    browser.add(config, &VIEW, &[&saved]).await;
    assert_eq!(browser.read(config, &VIEW).await, [saved.as_str()]);
    lease_up().await;
    assert!(browser.read(config, &VIEW).await.is_empty());

    browser.add(config, &VIEW, &[&crashed]).await;
    let dying = browser.begin(config);
    assert_eq!(shown_texts(&dying, &VIEW).await, [crashed.as_str()]);
    drop(dying); // never committed, as when the process dies
    assert!(
        browser.read(config, &VIEW).await.is_empty(),
        "still reserved"
    );
    lease_up().await;
    assert_eq!(browser.read(config, &VIEW).await, [crashed.as_str()]);
    lease_up().await;
    assert!(browser.read(config, &VIEW).await.is_empty());

    browser.add(config, &VIEW, &[&failed]).await;
    let failing = browser.begin(config);
    assert_eq!(shown_texts(&failing, &VIEW).await, [failed.as_str()]);
    browser.finish(&failing, false).await;
    assert_eq!(browser.read(config, &VIEW).await, [failed.as_str()]);
    lease_up().await;
    assert!(browser.read(config, &VIEW).await.is_empty());
}

/// A read that finds messages costs one settle more; one that finds none does not.
async fn only_reads_with_messages_settle(store: &Sql) {
    let counted = CountingStore::new(store.clone());
    let config = MessagesConfig::new(counted.clone());
    let mut browser = Browser::new();
    browser.add(&config, &VIEW, &["x"]).await;
    counted.reset();
    assert_eq!(browser.read(&config, &VIEW).await, ["x"]);
    let settled = CallCounts {
        take: 1,
        settle: 1,
        ..CallCounts::default()
    };
    assert_eq!(counted.counts(), settled);
    counted.reset();
    assert!(browser.read(&config, &VIEW).await.is_empty());
    let empty = CallCounts {
        take: 1,
        ..CallCounts::default()
    };
    assert_eq!(counted.counts(), empty);
}

/// Rotation at the store: every view of `from` moves to `to`, before what `to` holds
/// there, in order; `from` then holds nothing and refuses adds; reserves move too and
/// settle (or come back) under `to`.
async fn rotation_moves_everything_and_retires_the_old_key(store: &Sql) {
    let (from, to) = (session(), session());
    store
        .add_all(&from, &A, vec![Message::info("a1"), Message::info("a2")])
        .await
        .unwrap();
    store.add(&from, &B, Message::info("b1")).await.unwrap();
    store.add(&to, &A, Message::info("new a")).await.unwrap();
    // A put-back in `from` keeps its place in the move.
    let first = store.take(&from, &B).await.unwrap();
    store.add(&from, &B, Message::info("b2")).await.unwrap();
    store.put_back(&from, &B, first).await.unwrap();

    store.rotate(&from, &to).await.unwrap();
    assert!(store.pending_views(&from).await.unwrap().is_empty());
    assert_eq!(store.pending_views(&to).await.unwrap(), [A, B]);
    assert_eq!(
        texts(&store.peek(&to, &A).await.unwrap()),
        ["a1", "a2", "new a"]
    );
    assert_eq!(texts(&store.peek(&to, &B).await.unwrap()), ["b1", "b2"]);

    // The old key is retired: adds are dropped, reads find nothing.
    store
        .add(&from, &A, Message::info("planted"))
        .await
        .unwrap();
    assert_eq!(store.count(&from, &A).await.unwrap(), 0);
    assert!(store.take(&from, &A).await.unwrap().is_empty());
    store.add(&to, &A, Message::info("after")).await.unwrap();
    assert_eq!(
        texts(&store.take(&to, &A).await.unwrap()),
        ["a1", "a2", "new a", "after"]
    );

    // Rotating a session with nothing stored, or onto itself, is fine.
    store.rotate(&session(), &session()).await.unwrap();
    store.rotate(&to, &to).await.unwrap();
    assert_eq!(texts(&store.take(&to, &B).await.unwrap()), ["b1", "b2"]);

    // A reserve taken under the old key moves with it: settled, it is gone.
    let (from, to) = (session(), session());
    store.add(&from, &A, Message::info("read")).await.unwrap();
    let taken = store.take_leased(&from, &A).await.unwrap();
    store.add(&from, &A, Message::info("unread")).await.unwrap();
    store.rotate(&from, &to).await.unwrap();
    store.settle(&from, &A, taken.lease.unwrap()).await.unwrap();
    assert_eq!(texts(&store.take(&to, &A).await.unwrap()), ["unread"]);
}

/// A reserve of the old key that is never settled comes back under the new key.
async fn unsettled_reserves_come_back_after_rotation(store: &Sql) {
    let (from, to) = (session(), session());
    store.add(&from, &A, Message::info("read")).await.unwrap();
    let taken = store.take_leased(&from, &A).await.unwrap();
    assert!(taken.lease.is_some());
    store.add(&from, &A, Message::info("unread")).await.unwrap();
    store.rotate(&from, &to).await.unwrap();
    assert_eq!(texts(&store.peek(&to, &A).await.unwrap()), ["unread"]);
    lease_up().await;
    assert_eq!(
        texts(&store.take(&to, &A).await.unwrap()),
        ["read", "unread"]
    );
    assert!(store.take(&from, &A).await.unwrap().is_empty());
}

/// The old key is refused for `idle_ttl`, then usable again (a short TTL).
async fn retirement_ends_after_the_idle_ttl(store: &Sql, ttl: Duration) {
    let (from, to) = (session(), session());
    store.add(&from, &A, Message::info("x")).await.unwrap();
    store.rotate(&from, &to).await.unwrap();
    store
        .add(&from, &A, Message::info("refused"))
        .await
        .unwrap();
    assert_eq!(store.count(&from, &A).await.unwrap(), 0);
    tokio::time::sleep(ttl + ttl / 2).await;
    store.add(&from, &A, Message::info("later")).await.unwrap();
    assert_eq!(texts(&store.take(&from, &A).await.unwrap()), ["later"]);
}

/// Writers adding and readers taking one context at once — plain takes, and leased
/// takes that settle — lose nothing and deliver nothing twice; each take keeps every
/// writer's order.
async fn many_tasks_on_one_context_lose_and_repeat_nothing(store: &Sql) {
    const WRITERS: usize = 8;
    const READERS: usize = 8;
    const PER_WRITER: usize = 60;
    let s = session();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, s, done) = (store.clone(), s.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut i = 0;
                while i < PER_WRITER {
                    // Batches of 1 to 3, in order.
                    let n = (1 + (w + i) % 3).min(PER_WRITER - i);
                    let batch: Vec<Message> = (i..i + n)
                        .map(|k| Message::info(format!("w{w}.{k:03}")))
                        .collect();
                    ids.extend(batch.iter().map(Message::id));
                    store.add_all(&s, &VIEW, batch).await.unwrap();
                    i += n;
                }
                done.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                ids
            })
        })
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (store, s, done) = (store.clone(), s.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut got: Vec<Message> = Vec::new();
                let mut rounds = 0usize;
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::Acquire) == WRITERS;
                    let batch = if (r + rounds).is_multiple_of(2) {
                        store.take(&s, &VIEW).await.unwrap()
                    } else {
                        let taken = store.take_leased(&s, &VIEW).await.unwrap();
                        if let Some(lease) = taken.lease {
                            store.settle(&s, &VIEW, lease).await.unwrap();
                        }
                        taken.messages
                    };
                    rounds += 1;
                    // Within one take, each writer's messages are in its order.
                    let mut last: HashMap<String, String> = HashMap::new();
                    for m in &batch {
                        let (writer, _) = m.text().split_once('.').unwrap();
                        if let Some(prev) = last.insert(writer.to_owned(), m.text().to_owned()) {
                            assert!(prev.as_str() < m.text(), "{prev} before {}", m.text());
                        }
                    }
                    got.extend(batch);
                    if finished {
                        return got;
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut added = Vec::new();
    for w in writers {
        added.extend(w.await.unwrap());
    }
    let mut seen: HashMap<MessageId, usize> = HashMap::new();
    for r in readers {
        for m in r.await.unwrap() {
            *seen.entry(m.id()).or_default() += 1;
        }
    }
    for m in store.take(&s, &VIEW).await.unwrap() {
        *seen.entry(m.id()).or_default() += 1;
    }
    let lost = added.iter().filter(|id| !seen.contains_key(id)).count();
    let repeated = seen.values().filter(|&&n| n > 1).count();
    eprintln!(
        "{}: {} messages, {WRITERS} writers, {READERS} readers: {lost} lost, {repeated} repeated, {:?}",
        store.table(),
        added.len(),
        started.elapsed()
    );
    assert_eq!((lost, repeated), (0, 0));
    assert_eq!(seen.len(), WRITERS * PER_WRITER);
}

/// Expired sessions are invisible at once and removed by later writes, a bounded batch
/// each, without a cron job.
async fn expired_sessions_are_swept_by_later_writes(store: &Sql, ttl: Duration) {
    const SESSIONS: usize = 30;
    let sessions: Vec<SessionKey> = (0..SESSIONS).map(|_| session()).collect();
    for s in &sessions {
        store
            .add_all(s, &A, vec![Message::info("1"), Message::info("2")])
            .await
            .unwrap();
    }
    let in_list = sessions
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let theirs = format!("session_key IN ({in_list})");
    assert_eq!(
        store.rows(false, &theirs).await,
        i64::try_from(2 * SESSIONS).unwrap()
    );
    tokio::time::sleep(ttl + ttl / 2).await;
    assert_eq!(
        store.count(&sessions[0], &A).await.unwrap(),
        0,
        "invisible at once"
    );
    // Each write sweeps a bounded batch: a few writes remove everything.
    let writer = session();
    let mut rounds = 0;
    while store.rows(true, &theirs).await > 0 {
        store.add(&writer, &B, Message::info("w")).await.unwrap();
        rounds += 1;
        assert!(
            rounds <= 20,
            "expired sessions not swept after {rounds} writes"
        );
    }
    assert_eq!(store.rows(false, &theirs).await, 0);
    eprintln!(
        "{}: {SESSIONS} expired sessions swept by {rounds} writes",
        store.table()
    );
}

/// A stored row that does not decode is skipped (with a warning), and goes with a take.
async fn undecodable_rows_are_skipped(store: &Sql) {
    let (s, v) = (session(), ViewId::from_static("v"));
    store
        .add_all(&s, &v, vec![Message::info("first"), Message::info("last")])
        .await
        .unwrap();
    store
        .execute(format!(
            "INSERT INTO {} (namespace, session_key, view_id, message_id, body) \
             VALUES ('msg', '{}', 'v', 'junk', 'not json')",
            store.table(),
            s.as_str()
        ))
        .await;
    assert_eq!(store.count(&s, &v).await.unwrap(), 3, "count is the rows'");
    assert_eq!(texts(&store.peek(&s, &v).await.unwrap()), ["first", "last"]);
    assert_eq!(texts(&store.take(&s, &v).await.unwrap()), ["first", "last"]);
    assert_eq!(
        store.count(&s, &v).await.unwrap(),
        0,
        "the junk went with the take"
    );
}

/// The rows are as documented: the database's sequence orders arrival, `pos` places a
/// put-back before it, a namespace separates stores on one table, and `migrate` is
/// idempotent, also when run by several at once.
async fn rows_are_laid_out_as_documented(store: &Sql, other_namespace: &Sql) {
    for _ in 0..2 {
        store.migrate().await.unwrap();
    }
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let s = session();
    let clock = Message::info("clock").created_at();
    store
        .add(
            &s,
            &A,
            Message::info("late clock").with_created_at(clock + 60_000),
        )
        .await
        .unwrap();
    store
        .add(
            &s,
            &A,
            Message::info("early clock").with_created_at(clock - 60_000),
        )
        .await
        .unwrap();
    let mine = format!("session_key = '{}'", s.as_str());
    assert_eq!(
        store.rows(false, &format!("{mine} AND pos IS NULL")).await,
        2
    );
    let taken = store.take(&s, &A).await.unwrap();
    assert_eq!(texts(&taken), ["late clock", "early clock"]);
    store.add(&s, &A, Message::info("newer")).await.unwrap();
    store.put_back(&s, &A, taken).await.unwrap();
    assert_eq!(
        store
            .rows(false, &format!("{mine} AND pos IS NOT NULL"))
            .await,
        2
    );
    assert_eq!(store.rows(true, &mine).await, 1, "one row per session");
    assert_eq!(
        texts(&store.peek(&s, &A).await.unwrap()),
        ["late clock", "early clock", "newer"]
    );
    // Another namespace on the same table sees nothing of it.
    assert_eq!(other_namespace.count(&s, &A).await.unwrap(), 0);
    assert!(other_namespace.pending_views(&s).await.unwrap().is_empty());
    other_namespace.clear_session(&s).await.unwrap();
    assert_eq!(store.count(&s, &A).await.unwrap(), 3);
    store.clear_session(&s).await.unwrap();
    assert_eq!(store.rows(false, &mine).await, 0);
}

/// Bad tables, namespaces and leases are configuration errors, before any I/O.
fn bad_options() -> Vec<SqlOptions> {
    // "settled" names a CTE of the statements, which would shadow the table; "order" is
    // an SQL keyword.
    let mut bad: Vec<SqlOptions> = [
        "", "Messages", "1st", "a-b", "a;b", "x y", "settled", "order",
    ]
    .into_iter()
    .map(table)
    .collect();
    bad.push(SqlOptions {
        namespace: "has space".into(),
        ..SqlOptions::default()
    });
    bad.push(SqlOptions {
        read_lease: Duration::from_secs(10),
        idle_ttl: Duration::from_secs(10),
        ..SqlOptions::default()
    });
    bad
}

/// The tests particular to the SQL stores, for one backend (`$make`: options → store).
macro_rules! sql_store_tests {
    ($name:ident, $make:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unsettled_reads_come_back() {
                let Some(store) = $make(leased("leases")).await else {
                    return;
                };
                super::unsettled_reads_come_back(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn settled_reads_are_gone() {
                let Some(store) = $make(leased("leases")).await else {
                    return;
                };
                super::settled_reads_are_gone(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn deferred_settles_are_flushed_in_the_background() {
                let Some(store) = $make(leased("deferred")).await else {
                    return;
                };
                super::deferred_settles_are_flushed_in_the_background(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn clear_session_drops_reserves() {
                let Some(store) = $make(leased("leases")).await else {
                    return;
                };
                super::clear_session_drops_reserves(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn restoring_keeps_the_cap() {
                let options = SqlOptions {
                    per_context: 3,
                    ..leased("capped")
                };
                let Some(store) = $make(options).await else {
                    return;
                };
                super::restoring_keeps_the_cap(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn leased_takes_are_exclusive() {
                let Some(store) = $make(leased("leases")).await else {
                    return;
                };
                super::leased_takes_are_exclusive(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn only_reads_with_messages_settle() {
                let Some(store) = $make(leased("leases")).await else {
                    return;
                };
                super::only_reads_with_messages_settle(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn requests_settle_or_lose_nothing() {
                let Some(store) = $make(leased("leases")).await else {
                    return;
                };
                super::requests_settle_or_lose_nothing(&MessagesConfig::new(store), 0).await;
            }

            /// With fallback storage, what spilled to the database is leased the same way.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn spilled_requests_settle_or_lose_nothing() {
                let Some(store) = $make(leased("leases")).await else {
                    return;
                };
                let cookie = CookieStore::new([b"0123456789abcdef0123456789abcdef-lease".to_vec()])
                    .unwrap()
                    .budget(256)
                    .unwrap()
                    .compression(false);
                let config = MessagesConfig::new(Storage::fallback(cookie, store));
                super::requests_settle_or_lose_nothing(&config, 400).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rotation_moves_everything_and_retires_the_old_key() {
                let Some(store) = $make(table("rotation")).await else {
                    return;
                };
                super::rotation_moves_everything_and_retires_the_old_key(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unsettled_reserves_come_back_after_rotation() {
                let Some(store) = $make(leased("rotation")).await else {
                    return;
                };
                super::unsettled_reserves_come_back_after_rotation(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retirement_ends_after_the_idle_ttl() {
                let ttl = Duration::from_millis(400);
                let options = SqlOptions {
                    idle_ttl: ttl,
                    read_lease: ttl / 2,
                    ..table("rotation")
                };
                let Some(store) = $make(options).await else {
                    return;
                };
                super::retirement_ends_after_the_idle_ttl(&store, ttl).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_read_near_the_end_keeps_the_session_alive() {
                let (ttl, lease) = (Duration::from_secs(4), Duration::from_secs(1));
                let options = SqlOptions {
                    idle_ttl: ttl,
                    read_lease: lease,
                    ..table("keep_alive")
                };
                let Some(store) = $make(options).await else {
                    return;
                };
                super::a_read_near_the_end_keeps_the_session_alive(&store, ttl, lease).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fixation_is_defeated_by_rotation() {
                let Some(store) = $make(table("rotation")).await else {
                    return;
                };
                messages_tests::security::fixation_is_defeated_by_rotation(&MessagesConfig::new(store)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn rotation_under_concurrent_requests_loses_and_repeats_nothing() {
                let Some(store) = $make(table("rotation")).await else {
                    return;
                };
                let config = MessagesConfig::new(store);
                for _ in 0..10 {
                    messages_tests::security::rotation_under_concurrent_requests_loses_and_repeats_nothing(&config)
                        .await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn many_tasks_on_one_context_lose_and_repeat_nothing() {
                let options = SqlOptions {
                    per_context: 10_000,
                    ..table("concurrency")
                };
                let Some(store) = $make(options).await else {
                    return;
                };
                super::many_tasks_on_one_context_lose_and_repeat_nothing(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expired_sessions_are_swept_by_later_writes() {
                let ttl = Duration::from_millis(300);
                let options = SqlOptions {
                    idle_ttl: ttl,
                    read_lease: ttl / 2,
                    ..table("sweep")
                };
                let Some(store) = $make(options).await else {
                    return;
                };
                super::expired_sessions_are_swept_by_later_writes(&store, ttl).await;
            }

            #[tokio::test]
            async fn undecodable_rows_are_skipped() {
                let Some(store) = $make(table("junk")).await else {
                    return;
                };
                super::undecodable_rows_are_skipped(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rows_are_laid_out_as_documented() {
                let Some(store) = $make(table("layout")).await else {
                    return;
                };
                let other = match &store {
                    Sql::Postgres(_) => $make(SqlOptions {
                        namespace: "other".into(),
                        ..table("layout")
                    })
                    .await
                    .unwrap(),
                    Sql::Sqlite(s, dir) => Sql::Sqlite(
                        SqliteStore::from_pool(
                            s.pool().clone(),
                            SqlOptions {
                                namespace: "other".into(),
                                ..table("layout")
                            },
                        )
                        .unwrap(),
                        Arc::clone(dir),
                    ),
                };
                super::rows_are_laid_out_as_documented(&store, &other).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn follows_the_model() {
                let Some(store) = $make(table("model")).await else {
                    return;
                };
                check_model(&MessagesConfig::new(store), usize::MAX);
                let capped = SqlOptions {
                    per_context: 4,
                    ..table("model")
                };
                let Some(store) = $make(capped).await else {
                    return;
                };
                check_model(&MessagesConfig::new(store), 4);
            }

            /// `Storage::fallback` spilling to the database: with a tiny cookie budget
            /// most requests spill.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fallback_spills_to_it_and_follows_the_model() {
                let Some(store) = $make(table("model")).await else {
                    return;
                };
                let cookie =
                    CookieStore::new(vec![b"0123456789abcdef0123456789abcdef-sql".to_vec()])
                        .unwrap();
                let counted = CountingStore::new(store);
                let config = MessagesConfig::new(Storage::fallback(
                    cookie.budget(256).unwrap(),
                    counted.clone(),
                ));
                check_model(&config, usize::MAX);
                assert!(counted.calls() > 0, "messages went through the database");
            }
        }
    };
}

sql_store_tests!(postgres_sql, postgres);
sql_store_tests!(sqlite_sql, sqlite);

#[tokio::test]
async fn postgres_bad_options_and_urls_are_config_errors() {
    for options in bad_options() {
        let e = PostgresStore::connect("postgres://127.0.0.1:1/x", options.clone())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{options:?}: {e}");
    }
    let e = PostgresStore::connect("postgres://host:notaport/db", SqlOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_settles_go_with_the_next_statement() {
    let Some(store) = postgres(leased("deferred")).await else {
        return;
    };
    settles_go_with_the_next_statement(&store).await;
}

/// The writes of one `SqliteStore` take turns in the process instead of colliding in
/// SQLite's busy handler: with a busy timeout of 1 ms, 16 tasks adding, reading and
/// settling at once on one file all succeed (without the turns, writers of the pool's
/// connections found the database locked and failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_of_one_store_take_turns() {
    let dir = TempDir::new().unwrap();
    let options = SqlOptions {
        connect_timeout: Duration::from_secs(30),
        response_timeout: Duration::from_millis(1),
        ..SqlOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("messages.db"), options)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let s = session();
                for i in 0..20 {
                    let text = i.to_string();
                    store.add(&s, &VIEW, Message::info(text.clone())).await?;
                    let taken = store.take_leased(&s, &VIEW).await?;
                    assert_eq!(texts(&taken.messages), [text.as_str()]);
                    if let Some(lease) = taken.lease {
                        store.settle(&s, &VIEW, lease).await?;
                    }
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    store.flush().await.unwrap();
}

#[tokio::test]
async fn sqlite_bad_options_and_urls_are_config_errors() {
    for options in bad_options() {
        let e = SqliteStore::connect("sqlite::memory:", options.clone())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{options:?}: {e}");
    }
    let e = SqliteStore::connect("sqlite://x.db?mode=bogus", SqlOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

/// Nothing listening: a typed error naming the store, within the time bound.
#[tokio::test]
async fn postgres_connecting_to_nothing_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let e = PostgresStore::connect(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        SqlOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unavailable {
                store: "postgres",
                ..
            }
        ),
        "{e}"
    );
    assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A file that cannot be created is a typed error naming the store.
#[tokio::test]
async fn sqlite_opening_the_impossible_is_unavailable() {
    let e = SqliteStore::open("/nonexistent/dir/messages.db", SqlOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unavailable {
                store: "sqlite",
                ..
            }
        ),
        "{e}"
    );
}

/// A leased take or an add dropped while its query runs (a timeout, a request gone)
/// leaves no transaction open on a pooled connection. Both are one query `BEGIN
/// IMMEDIATE; …; COMMIT`: stopped after `BEGIN`, its connection would go back to the
/// pool holding SQLite's write lock, and every write on another connection would wait
/// out the busy timeout and fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_operations_dropped_mid_query_leave_no_transaction_open() {
    let dir = TempDir::new().unwrap();
    let options = SqlOptions {
        response_timeout: Duration::from_secs(2),
        ..SqlOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("messages.db"), options.clone())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let s = session();
    for round in 0..20 {
        store
            .add(&s, &VIEW, Message::info(format!("kept {round}")))
            .await
            .unwrap();
        // Polled once, then dropped: its query was sent, its answer never read.
        let _ = tokio::time::timeout(Duration::ZERO, store.take_leased(&s, &VIEW)).await;
        let dropped = Message::info(format!("dropped {round}"));
        let _ = tokio::time::timeout(Duration::ZERO, store.add(&s, &VIEW, dropped)).await;
    }
    // Every connection of the pool can write, and what it writes is committed: another
    // pool on the file sees it.
    let other = session();
    let writes = 2 * options.max_connections;
    for i in 0..writes {
        store
            .add(&other, &VIEW, Message::info(format!("after {i}")))
            .await
            .unwrap();
    }
    let second = SqliteStore::open(dir.path().join("messages.db"), options)
        .await
        .unwrap();
    assert_eq!(
        second.count(&other, &VIEW).await.unwrap(),
        usize::try_from(writes).unwrap()
    );
}

/// An in-memory database works with its single connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_follows_the_contract_basics() {
    let store = SqliteStore::connect("sqlite::memory:", SqlOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    conformance::ordered_by_arrival(&store).await;
    conformance::put_back_goes_before_newer_messages(&store).await;
    let store: Arc<dyn MessageStore> = Arc::new(store);
    conformance::exactly_once_under_concurrency(&store, SqlOptions::default().per_context).await;
}

// Live delivery: `PostgresStore`'s change feed (`LISTEN/NOTIFY`), `SqliteStore` polled.

/// How long a live delivery may take here, on a loaded machine: far less than the minute
/// of `live_feed::notify_only`, so only the change feed can make it in time.
const LIVE_DEADLINE: Duration = Duration::from_secs(10);

/// Two stores on one PostgreSQL table, each with its own pool: two application
/// processes.
async fn two_postgres_processes() -> Option<(PostgresStore, PostgresStore)> {
    let server = postgres_server::shared()?;
    Some((
        server.store(table("live")).await,
        server.store(table("live")).await,
    ))
}

fn live_config(store: impl MessageStore + 'static, options: LiveOptions) -> MessagesConfig {
    MessagesConfig::new(store).live_options(options).unwrap()
}

/// A stream opened in one process gets what another process adds, by `NOTIFY`: keep-alives
/// and polls are a minute apart. Prints the add → event latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_live_stream_gets_another_processs_adds_by_notify() {
    let Some((here, there)) = two_postgres_processes().await else {
        return;
    };
    let config = live_config(here, live_feed::notify_only());
    let live_feed::Pumped {
        session,
        notified,
        mut deliveries,
        ..
    } = live_feed::open(&config, &VIEW);
    assert!(notified, "PostgresStore has a change feed");
    let mut latencies = Vec::new();
    for i in 0..6 {
        // The stream has taken (nothing) and waits: only a wake brings the next one.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let added = Instant::now();
        there
            .add(&session, &VIEW, Message::info(format!("m{i}")))
            .await
            .unwrap();
        let got = live_feed::next_within(&mut deliveries, LIVE_DEADLINE).await;
        assert_eq!(got.message.text(), format!("m{i}"));
        latencies.push(got.at - added);
    }
    eprintln!(
        "postgres live: add (another pool) -> event {latencies:?} (the first may include the listener connecting)"
    );
    assert_eq!(there.count(&session, &VIEW).await.unwrap(), 0);
}

/// A rotation in another process notifies the streams of the session it moved messages
/// into, per view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_live_stream_gets_what_a_rotation_moves_into_its_session() {
    let Some((here, there)) = two_postgres_processes().await else {
        return;
    };
    let config = live_config(here, live_feed::notify_only());
    let live_feed::Pumped {
        session: to,
        mut deliveries,
        ..
    } = live_feed::open(&config, &VIEW);
    let from = session();
    there
        .add(&from, &VIEW, Message::info("moved"))
        .await
        .unwrap();
    there
        .add(&from, &A, Message::info("elsewhere"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    there.rotate(&from, &to).await.unwrap();
    let got = live_feed::next_within(&mut deliveries, LIVE_DEADLINE).await;
    assert_eq!(got.message.text(), "moved");
    assert_eq!(texts(&there.take(&to, &A).await.unwrap()), ["elsewhere"]);
}

/// One stream in each of two processes on one context: every message is delivered once in
/// all, whichever process added it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_live_streams_of_two_processes_deliver_each_message_once() {
    const N: usize = 40;
    let Some((here, there)) = two_postgres_processes().await else {
        return;
    };
    let a = live_config(here.clone(), live_feed::notify_only());
    let b = live_config(there.clone(), live_feed::notify_only());
    let on_a = a.begin([]).live(&VIEW, None).unwrap();
    let session = on_a.session().clone();
    let cookie = format!("messages_session={}", session.as_str());
    let on_b = b.begin([cookie.as_str()]).live(&VIEW, None).unwrap();
    assert_eq!(on_b.session(), &session);
    let (tx, mut deliveries) = tokio::sync::mpsc::unbounded_channel();
    let _pumps = (
        live_feed::pump("a", on_a, tx.clone()),
        live_feed::pump("b", on_b, tx),
    );
    let adders: Vec<_> = [here.clone(), there.clone()]
        .into_iter()
        .enumerate()
        .map(|(p, store)| {
            let session = session.clone();
            tokio::spawn(async move {
                for i in (p..N).step_by(2) {
                    store
                        .add(&session, &VIEW, Message::info(format!("m{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for adder in adders {
        adder.await.unwrap();
    }
    let mut got: Vec<Delivered> = Vec::new();
    while got.len() < N {
        got.push(live_feed::next_within(&mut deliveries, LIVE_DEADLINE).await);
    }
    // Anything delivered twice would come now (within a take's round trip).
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(more) = deliveries.try_recv() {
        got.push(more);
    }
    let mut texts: Vec<String> = got.iter().map(|d| d.message.text().to_owned()).collect();
    texts.sort_by_key(|t| t[1..].parse::<usize>().unwrap());
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want, "each message once, none lost");
    let by_a = got.iter().filter(|d| d.by == "a").count();
    eprintln!(
        "postgres live: {N} messages, {by_a} by the stream of one process, {} by the other's",
        N - by_a
    );
    assert_eq!(here.count(&session, &VIEW).await.unwrap(), 0);
}

/// `SqliteStore` has no change feed: a live stream polls it every `poll_interval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_live_streams_poll() {
    let Some(store) = sqlite(table("live")).await else {
        return;
    };
    let Sql::Sqlite(sqlite, _dir) = &store else {
        unreachable!()
    };
    assert!(sqlite.watch(&session(), &VIEW).is_none());
    let polled = LiveOptions {
        poll_interval: Duration::from_millis(200),
        ..live_feed::notify_only()
    };
    let config = live_config(sqlite.clone(), polled);
    let live_feed::Pumped {
        session,
        notified,
        mut deliveries,
        ..
    } = live_feed::open(&config, &VIEW);
    assert!(!notified, "a polled stream");
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        store
            .add(&session, &VIEW, Message::info(format!("m{i}")))
            .await
            .unwrap();
        let got = live_feed::next_within(&mut deliveries, LIVE_DEADLINE).await;
        assert_eq!(got.message.text(), format!("m{i}"));
    }
}

/// `migrate` run beside a running process's writes — another process starting, or a
/// deployment whose schema lacks an index — never deadlocks with them. Processes starting
/// together each see a missing schema before the first commits it, and the later ones
/// then run the DDL on tables that are in use; this once made a write fail with
/// `deadlock detected` (CI, the shared test server). The indexes are dropped before each
/// round so that every `migrate` here runs DDL on tables in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrate_beside_running_writes_never_deadlocks() {
    let Some(server) = postgres_server::shared() else {
        return;
    };
    let running = server.store(table("schema_race")).await;
    let starting = server.store(table("schema_race")).await;
    for round in 0..8 {
        for index in ["schema_race_context", "schema_race_sessions_expiry"] {
            sqlx::raw_sql(AssertSqlSafe(format!("DROP INDEX IF EXISTS {index}")))
                .execute(running.pool())
                .await
                .unwrap();
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (store, stop) = (running.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut writes = 0_u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let s = SessionKey::generate()?;
                        store.add(&s, &VIEW, Message::info("w")).await?;
                        store.take(&s, &VIEW).await?;
                        writes += 1;
                    }
                    Ok::<_, Error>(writes)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let migrated = starting.migrate().await;
        // Writes go on after the DDL, so a writer that waited on it is seen through.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        migrated.unwrap_or_else(|e| panic!("round {round}: migrate: {e:?}"));
        for task in tasks {
            let writes = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: a write beside migrate: {e:?}"));
            assert!(writes > 0, "round {round}: each writer wrote");
        }
    }
}

/// The background flush of deferred settles is scheduled on the runtime of the settle
/// that arms it. A runtime shut down before it ran (an actix-web worker stopping, a
/// process's first runtime) must not leave the store believing a flush is scheduled:
/// a settle deferred later, on another runtime, is still sent in the background.
#[test]
fn sqlite_a_flush_lost_with_its_runtime_does_not_stop_the_next() {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    let dir = TempDir::new().unwrap();
    // A current-thread runtime runs its tasks only inside `block_on`: the flush, spawned
    // by the last settle, never gets to run before the runtime is dropped.
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = first.block_on(async {
        let store = SqliteStore::open(dir.path().join("messages.db"), leased("runtimes"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let s = session();
        store.add(&s, &VIEW, Message::info("first")).await.unwrap();
        let taken = store.take_leased(&s, &VIEW).await.unwrap();
        // Deferred, its flush scheduled on `first`, which shuts down before it runs.
        store.settle(&s, &VIEW, taken.lease.unwrap()).await.unwrap();
        store
    });
    drop(first);
    let store = Sql::Sqlite(store, Arc::new(dir));
    runtime().block_on(deferred_settles_are_flushed_in_the_background(&store));
}
