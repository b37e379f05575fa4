//! Messages in SQLite: one row per message in a local database file.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::SqliteConnection;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};

use super::sql::{self, Settings, SqlOptions, StoredRow};
use super::{Lease, Taken};
use crate::{Error, Message, MessageStore, Result, SessionKey, ViewId};

const STORE: &str = "sqlite";

/// The database's clock (here, this machine's), in ms since the Unix epoch: one value
/// for a whole statement.
const NOW: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/// Writes take the database's write lock when they begin, so a transaction never has
/// to give up on upgrading a read lock; others wait up to the busy timeout.
const BEGIN: &str = "BEGIN IMMEDIATE";

/// The schema, created by [`SqliteStore::migrate`]; idempotent.
const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS {m} (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace   TEXT    NOT NULL,
    session_key TEXT    NOT NULL,
    view_id     TEXT    NOT NULL,
    pos         INTEGER,
    message_id  TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    lease       TEXT,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS {m}_context ON {m} (namespace, session_key, view_id);
CREATE TABLE IF NOT EXISTS {s} (
    namespace     TEXT    NOT NULL,
    session_key   TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL,
    retired_until INTEGER,
    PRIMARY KEY (namespace, session_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {s}_expiry ON {s} (expires_at);
";

/// Whether the session of `$1`, `$2` is live: written within the idle TTL, not retired.
macro_rules! live_session {
    () => {
        "EXISTS (SELECT 1 FROM {s} s WHERE s.namespace = $1 AND s.session_key = $2 \
         AND s.expires_at > {now} AND s.retired_until IS NULL)"
    };
}

/// Whether a row is in the context rather than in a reserve whose lease runs.
macro_rules! unleased {
    () => {
        "(lease IS NULL OR lease_until <= {now})"
    };
}

/// The states of two sessions (`$2`, `$3`; one session twice is fine) of namespace
/// `$1`: whether each is live, whether it is retired.
const SESSION_STATE: &str = r"SELECT session_key,
       expires_at > {now} AND retired_until IS NULL AS live,
       COALESCE(retired_until > {now}, 0) AS retired
FROM {s} WHERE namespace = $1 AND session_key IN ($2, $3)";

/// Deletes every row of a session (`$1`, `$2`).
const PURGE_SESSION: &str = "DELETE FROM {m} WHERE namespace = $1 AND session_key = $2";

/// Refreshes a session's expiry to now + `$3` ms, ending a retirement that is over.
const REFRESH: &str = r"INSERT INTO {s} (namespace, session_key, expires_at) VALUES ($1, $2, {now} + $3)
ON CONFLICT (namespace, session_key) DO UPDATE
SET expires_at = excluded.expires_at, retired_until = NULL";

/// Retires a session (`$1`, `$2`) for `$3` ms: adds refused, nothing visible.
const RETIRE: &str = r"INSERT INTO {s} (namespace, session_key, expires_at, retired_until)
VALUES ($1, $2, {now} + $3, {now} + $3)
ON CONFLICT (namespace, session_key) DO UPDATE
SET expires_at = excluded.expires_at, retired_until = excluded.retired_until";

/// The rows of a context a write sees (in a transaction, after the session was made
/// live): `$1`, `$2`, `$3`.
const PRESENT: &str = concat!(
    r"SELECT seq, COALESCE(pos, seq) AS ord, message_id FROM {m}
WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!()
);

/// Inserts `$4`, a JSON array of `[id, body, pos]`, in its order (so the sequence
/// numbers follow it) into the context `$1`, `$2`, `$3`.
const INSERT: &str = r"INSERT INTO {m} (namespace, session_key, view_id, pos, message_id, body)
SELECT $1, $2, $3, value ->> 2, value ->> 0, value ->> 1 FROM json_each($4) ORDER BY key";

/// The common add: one transaction of two statements sent as one query (one hop to the
/// connection's thread, one commit). The first refreshes the expiry of a session (`$1`,
/// `$2`) to now + `$6` ms if it is live and not retired, and changes no row otherwise (a
/// new, expired or retired session). The second inserts `$4`, a JSON array of
/// `[id, body]`, in its order into the context `$1`, `$2`, `$3`, leaving out ids already
/// there, only if the session is live and the context's unleased rows plus the batch fit
/// under the cap `$5` (so that nothing would be trimmed). Each returns a row per row it
/// changed: unless there are 1 + the batch's length, the add takes the full path, which
/// leaves out what this inserted.
const ADD_LEAN: &str = concat!(
    r"BEGIN IMMEDIATE;
UPDATE {s} SET expires_at = {now} + $6
WHERE namespace = $1 AND session_key = $2 AND expires_at > {now} AND retired_until IS NULL
RETURNING 1;
INSERT INTO {m} (namespace, session_key, view_id, message_id, body)
SELECT $1, $2, $3, b.value ->> 0, b.value ->> 1 FROM json_each($4) b
WHERE (SELECT count(*) FROM {m} WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    r") + json_array_length($4) <= $5
  AND ",
    live_session!(),
    r"
  AND NOT EXISTS (SELECT 1 FROM {m} WHERE namespace = $1 AND session_key = $2 AND view_id = $3
                  AND message_id = b.value ->> 0 AND ",
    unleased!(),
    r")
ORDER BY b.key
RETURNING 1;
COMMIT"
);

/// Deletes the rows whose sequence numbers are in `$1`, a JSON array.
const DELETE_ROWS: &str = "DELETE FROM {m} WHERE seq IN (SELECT value FROM json_each($1))";

/// Drops leases' reserves: `$1` namespace, `$2` sequence numbers and `$3` tokens (JSON
/// arrays; a row goes if it is in both, which is exactly the rows leased under those
/// tokens). By primary key, not by session: a reserve that moved with a rotation is
/// still found.
const SETTLE: &str = r"DELETE FROM {m} WHERE seq IN (SELECT value FROM json_each($2))
AND lease IN (SELECT value FROM json_each($3)) AND namespace = $1";

/// Deletes at most `$1` rows of expired sessions.
const SWEEP: &str = r"DELETE FROM {m} WHERE seq IN (
    SELECT m.seq FROM {s} s JOIN {m} m ON m.namespace = s.namespace AND m.session_key = s.session_key
    WHERE s.expires_at <= {now} LIMIT $1
)";

/// Deletes at most `$1` expired sessions that have no rows left.
const REAP: &str = r"DELETE FROM {s} WHERE (namespace, session_key) IN (
    SELECT s.namespace, s.session_key FROM {s} s
    WHERE s.expires_at <= {now}
      AND NOT EXISTS (SELECT 1 FROM {m} m WHERE m.namespace = s.namespace AND m.session_key = s.session_key)
    LIMIT $1
)";

/// Takes a context: deletes its rows and returns them, in one statement (SQLite runs
/// one writer at a time, so two takes never both get a row). `$1`, `$2`, `$3`.
const TAKE: &str = concat!(
    r"DELETE FROM {m}
WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    " AND ",
    live_session!(),
    "\nRETURNING seq, COALESCE(pos, seq) AS ord, message_id, body"
);

/// A leased take: one transaction of two statements sent as one query (one hop to the
/// connection's thread, one commit). The first makes a live session (`$1`, `$2`) live
/// at least `$6` ms (the idle TTL) more when its context (`$3`) holds messages, so that
/// a reserve outlives its lease; the second marks the context's rows with the lease `$4`
/// until now + `$5` ms and returns them. SQLite runs one writer at a time, so two takes
/// never both get a row.
const TAKE_LEASED: &str = concat!(
    r"BEGIN IMMEDIATE;
UPDATE {s} SET expires_at = max(expires_at, {now} + $6)
WHERE namespace = $1 AND session_key = $2 AND expires_at > {now} AND retired_until IS NULL
  AND EXISTS (SELECT 1 FROM {m} WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    r");
UPDATE {m} SET lease = $4, lease_until = {now} + $5
WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    " AND ",
    live_session!(),
    "\nRETURNING seq, COALESCE(pos, seq) AS ord, message_id, body;\nCOMMIT"
);

const PEEK: &str = concat!(
    r"SELECT seq, COALESCE(pos, seq) AS ord, message_id, body FROM {m}
WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    " AND ",
    live_session!()
);

const COUNT: &str = concat!(
    r"SELECT count(DISTINCT message_id) FROM {m}
WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    " AND ",
    live_session!()
);

const DISCARD: &str = concat!(
    "DELETE FROM {m} WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!()
);

const PENDING_VIEWS: &str = concat!(
    r"SELECT DISTINCT view_id FROM {m}
WHERE namespace = $1 AND session_key = $2 AND ",
    unleased!(),
    " AND ",
    live_session!()
);

/// Where each view of a session (`$1`, `$2`) begins.
const FIRSTS: &str = concat!(
    r"SELECT view_id, min(COALESCE(pos, seq)) FROM {m}
WHERE namespace = $1 AND session_key = $2 AND ",
    unleased!(),
    "\nGROUP BY view_id"
);

/// Every row of a session (`$1`, `$2`), reserves too.
const SESSION_ROWS: &str = "SELECT seq, view_id, pos, COALESCE(pos, seq) FROM {m} WHERE namespace = $1 AND session_key = $2";

/// Moves rows to the session `$2`: `$3` is a JSON array of `[seq, pos]`.
const MOVE: &str = r"UPDATE {m} SET session_key = $2, pos = j.value ->> 1
FROM json_each($3) AS j
WHERE {m}.namespace = $1 AND {m}.seq = j.value ->> 0";

/// Every statement, formatted once for the store's tables.
#[derive(Debug)]
struct Statements {
    schema: sql::Sql,
    session_state: sql::Sql,
    purge_session: sql::Sql,
    refresh: sql::Sql,
    add_lean: sql::Sql,
    retire: sql::Sql,
    present: sql::Sql,
    insert: sql::Sql,
    delete_rows: sql::Sql,
    sweep: sql::Sql,
    reap: sql::Sql,
    take: sql::Sql,
    take_leased: sql::Sql,
    settle: sql::Sql,
    peek: sql::Sql,
    count: sql::Sql,
    discard: sql::Sql,
    pending_views: sql::Sql,
    firsts: sql::Sql,
    session_rows: sql::Sql,
    move_rows: sql::Sql,
}

impl Statements {
    fn new(settings: &Settings) -> Statements {
        let f = |template: &str| sql::sql(template, settings, NOW);
        Statements {
            schema: f(SCHEMA),
            session_state: f(SESSION_STATE),
            purge_session: f(PURGE_SESSION),
            refresh: f(REFRESH),
            add_lean: f(ADD_LEAN),
            retire: f(RETIRE),
            present: f(PRESENT),
            insert: f(INSERT),
            delete_rows: f(DELETE_ROWS),
            sweep: f(SWEEP),
            reap: f(REAP),
            take: f(TAKE),
            take_leased: f(TAKE_LEASED),
            settle: f(SETTLE),
            peek: f(PEEK),
            count: f(COUNT),
            discard: f(DISCARD),
            pending_views: f(PENDING_VIEWS),
            firsts: f(FIRSTS),
            session_rows: f(SESSION_ROWS),
            move_rows: f(MOVE),
        }
    }
}

/// A row already in a context, as a write sees it.
#[derive(Debug, Clone)]
struct Present {
    seq: i64,
    ord: i64,
    id: String,
}

/// What a write does to a context: the rows to insert, in order, as (id, JSON, place:
/// `None` for "at its sequence number"), the rows the cap pushes out, and how many
/// messages that drops in all (fresh ones not inserted included).
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    insert: Vec<(String, String, Option<i64>)>,
    trim: Vec<i64>,
    dropped: usize,
}

/// Plans a write of `batch` (ids unique, in order) to a context holding `present`:
/// messages whose id is present are left out; an add goes after everything, a put-back
/// (`front`) before everything (just below the lowest place; with nothing present, at
/// the next sequence numbers like an add); then the newest `cap` are kept. The
/// PostgreSQL store does the same in one statement.
fn plan_write(present: &[Present], batch: Vec<(String, String)>, cap: usize, front: bool) -> Plan {
    let ids: HashSet<&str> = present.iter().map(|p| p.id.as_str()).collect();
    let fresh: Vec<(String, String)> = batch
        .into_iter()
        .filter(|(id, _)| !ids.contains(id.as_str()))
        .collect();
    let (keep_fresh, keep_present) = if front {
        (
            fresh.len().min(cap.saturating_sub(present.len())),
            present.len().min(cap),
        )
    } else {
        let keep_fresh = fresh.len().min(cap);
        (keep_fresh, present.len().min(cap - keep_fresh))
    };
    let mut by_place: Vec<&Present> = present.iter().collect();
    by_place.sort_by_key(|p| (p.ord, p.seq));
    let trim: Vec<i64> = by_place[..present.len() - keep_present]
        .iter()
        .map(|p| p.seq)
        .collect();
    let first = by_place.first().map(|p| p.ord);
    let skipped = fresh.len() - keep_fresh;
    let n = i64::try_from(keep_fresh).unwrap_or(i64::MAX);
    let insert = fresh
        .into_iter()
        .skip(skipped)
        .zip(0i64..)
        .map(|((id, body), i)| {
            let place = if front {
                first.map(|f| f - n + i)
            } else {
                None
            };
            (id, body, place)
        })
        .collect();
    Plan {
        insert,
        dropped: skipped + trim.len(),
        trim,
    }
}

/// A statement of the store, for `sqlx::query` (the SQL is ours, made from a checked
/// table name: no input reaches it but through bind parameters).
fn q(sql: &sql::Sql) -> Query<'static, Sqlite, SqliteArguments> {
    sqlx::query(AssertSqlSafe(Arc::clone(sql)))
}

fn stored(row: &SqliteRow) -> std::result::Result<StoredRow, sqlx::Error> {
    Ok(StoredRow {
        seq: row.try_get(0)?,
        ord: row.try_get(1)?,
        id: row.try_get(2)?,
        body: row.try_get(3)?,
    })
}

/// A session's state as a write sees it.
#[derive(Debug, Clone, Copy, Default)]
struct SessionState {
    live: bool,
    retired: bool,
}

/// Messages in a SQLite database: durable across restarts, no server to run, shared by
/// the processes of one machine that open the same file.
///
/// The same schema and semantics as [`PostgresStore`](crate::PostgresStore): a table
/// `{table}` with one row per message (`seq INTEGER PRIMARY KEY AUTOINCREMENT` is the
/// arrival order, never the application's clock) and `{table}_sessions` with each
/// session's expiry and retirement, created by [`migrate`](SqliteStore::migrate).
///
/// - SQLite runs one writer at a time. The writes of one store (clones together) take
///   turns in the process, in order; those of other processes wait up to the busy
///   timeout. The common add — a live session, room in the context, no id already
///   there — is one transaction of two statements (refresh the session's expiry;
///   insert) sent as one query: one hop to the connection's thread, one commit. Any
///   other is a transaction begun with `BEGIN IMMEDIATE` (read the session, refresh it,
///   read the context, insert, trim to [`per_context`](SqlOptions::per_context)), as is
///   one add in four, which also sweeps a bounded batch of expired sessions' rows. A
///   take is one `DELETE … RETURNING`, so two takes never both get a message; a
///   request's read ([`take_leased`](MessageStore::take_leased)) is one such
///   transaction, which keeps the session alive and marks the rows with a lease
///   instead, and they count as in the context again once it is up, unless the request
///   settled.
///   The store holds [`settle`](MessageStore::settle)s back and runs those of 20 ms in
///   one statement (each statement is a hop to the connection's thread while the others
///   wait: a batch costs one); [`flush`](MessageStore::flush) runs them at once (call it
///   at shutdown: a settle held when the process exits is lost, and its messages are
///   shown again after the lease).
/// - [`connect`](SqliteStore::connect) and [`open`](SqliteStore::open) put the
///   database in WAL mode (readers do not wait for the writer) with `synchronous =
///   NORMAL` (a committed write survives a crash of the process; the last ones may not
///   survive a power cut). An in-memory database (`sqlite::memory:`) gets one
///   connection, kept open: it lives as long as the store.
///
/// ```
/// use messages_core::{Message, MessageStore, SessionKey, SqlOptions, SqliteStore, ViewId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> messages_core::Result<()> {
/// let store = SqliteStore::connect("sqlite::memory:", SqlOptions::default()).await?;
/// // A file: SqliteStore::open("messages.db", SqlOptions::default()).await?
/// store.migrate().await?;
///
/// let (session, view) = (SessionKey::generate()?, ViewId::new("app::dashboard")?);
/// store.add(&session, &view, Message::info("one")).await?;
/// store.add(&session, &view, Message::info("two")).await?;
/// let texts: Vec<String> = store.take(&session, &view).await?.iter().map(|m| m.text().to_owned()).collect();
/// assert_eq!(texts, ["one", "two"]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    settings: Arc<Settings>,
    statements: Arc<Statements>,
    /// Held by each write of this store (clones together): they queue here in turn,
    /// instead of in SQLite's busy handler, which sleeps between tries.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Settles held back for the next write (shared by clones).
    deferred: Arc<sql::Deferred>,
    /// Writes so far (shared by clones): one in four sweeps.
    writes: Arc<AtomicU64>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        sql::debug_store(f, "SqliteStore", &self.settings)
    }
}

impl SqliteStore {
    /// Opens a database by URL: `sqlite://messages.db?mode=rwc` (a file, created if
    /// missing), `sqlite::memory:` (in memory, for tests). See
    /// [`open`](SqliteStore::open) for a path.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL or options, [`Error::Unavailable`] if the database
    /// cannot be opened.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<SqliteStore> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("sqlite url: {e}")))?;
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        SqliteStore::open_with(connect, memory, options).await
    }

    /// Opens (or creates) the database file at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] for bad options, [`Error::Unavailable`] if the file cannot be
    /// opened or created.
    pub async fn open(path: impl AsRef<Path>, options: SqlOptions) -> Result<SqliteStore> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        SqliteStore::open_with(connect, false, options).await
    }

    async fn open_with(
        connect: SqliteConnectOptions,
        memory: bool,
        options: SqlOptions,
    ) -> Result<SqliteStore> {
        let settings = Settings::check(options, STORE)?;
        let mut connect = connect.busy_timeout(settings.response_timeout);
        // A connection is a thread of this process: checking it before handing it out
        // would be one more hop to that thread per operation, and tells nothing.
        let mut pool = SqlitePoolOptions::new()
            .acquire_timeout(settings.connect_timeout)
            .test_before_acquire(false);
        if memory {
            // One connection that never closes: the database lives as long as it does.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            connect = connect
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            pool = pool.max_connections(settings.max_connections);
        }
        let pool = sql::bounded(STORE, settings.time_bound, pool.connect_with(connect)).await?;
        Ok(SqliteStore::with_settings(pool, settings))
    }

    /// A store on a pool you made yourself: its settings apply (set a busy timeout, and
    /// WAL mode for concurrent readers); the store additionally bounds each operation by
    /// `connect_timeout + response_timeout`.
    ///
    /// # Errors
    /// [`Error::Config`] for bad options.
    pub fn from_pool(pool: SqlitePool, options: SqlOptions) -> Result<SqliteStore> {
        let settings = Settings::check(options, STORE)?;
        Ok(SqliteStore::with_settings(pool, settings))
    }

    fn with_settings(pool: SqlitePool, settings: Settings) -> SqliteStore {
        SqliteStore {
            statements: Arc::new(Statements::new(&settings)),
            settings: Arc::new(settings),
            pool,
            gate: Arc::default(),
            deferred: Arc::default(),
            writes: Arc::default(),
        }
    }

    /// Creates the store's tables and indexes if they are missing; changes nothing that
    /// exists. Safe to run at every start-up.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the database refuses (read-only, say).
    pub async fn migrate(&self) -> Result<()> {
        let schema = AssertSqlSafe(Arc::clone(&self.statements.schema));
        self.bounded(async {
            let mut tx = self.pool.begin_with(BEGIN).await?;
            sqlx::raw_sql(schema).execute(&mut *tx).await?;
            tx.commit().await
        })
        .await
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The messages table; the sessions table is this with `_sessions` appended.
    pub fn table(&self) -> &str {
        &self.settings.table
    }

    async fn bounded<T>(
        &self,
        op: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        sql::bounded(STORE, self.settings.time_bound, op).await
    }

    /// [`bounded`](SqliteStore::bounded), for a write: it first waits for its turn at the
    /// store's gate (within the bound).
    async fn bounded_write<T>(
        &self,
        op: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        self.bounded(async {
            let _turn = self.gate.lock().await;
            op.await
        })
        .await
    }

    fn namespace(&self) -> &str {
        &self.settings.namespace
    }

    /// The states of `a` and `b` (one session twice is fine), as seen in `conn`.
    async fn states(
        &self,
        conn: &mut SqliteConnection,
        a: &SessionKey,
        b: &SessionKey,
    ) -> std::result::Result<(SessionState, SessionState), sqlx::Error> {
        let rows = q(&self.statements.session_state)
            .bind(self.namespace())
            .bind(a.as_str())
            .bind(b.as_str())
            .fetch_all(&mut *conn)
            .await?;
        let (mut sa, mut sb) = (SessionState::default(), SessionState::default());
        for row in &rows {
            let key: String = row.try_get(0)?;
            let state = SessionState {
                live: row.try_get(1)?,
                retired: row.try_get(2)?,
            };
            if key == a.as_str() {
                sa = state;
            }
            if key == b.as_str() {
                sb = state;
            }
        }
        Ok((sa, sb))
    }

    async fn purge(
        &self,
        conn: &mut SqliteConnection,
        session: &SessionKey,
    ) -> std::result::Result<(), sqlx::Error> {
        q(&self.statements.purge_session)
            .bind(self.namespace())
            .bind(session.as_str())
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn refresh(
        &self,
        conn: &mut SqliteConnection,
        session: &SessionKey,
    ) -> std::result::Result<(), sqlx::Error> {
        q(&self.statements.refresh)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(self.settings.ttl_ms)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Deletes the rows of settles `(seq, token)`.
    async fn settle_in(
        &self,
        conn: &mut SqliteConnection,
        rows: &[(i64, String)],
    ) -> std::result::Result<(), sqlx::Error> {
        let (seqs, tokens) = sql::settle_binds(rows);
        let encode = |e: serde_json::Error| sqlx::Error::Encode(Box::new(e));
        q(&self.statements.settle)
            .bind(self.namespace())
            .bind(serde_json::to_string(&seqs).map_err(encode)?)
            .bind(serde_json::to_string(&tokens).map_err(encode)?)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Deletes a bounded batch of expired sessions' rows, then of expired sessions with
    /// no rows left.
    async fn sweep(&self, conn: &mut SqliteConnection) -> std::result::Result<(), sqlx::Error> {
        q(&self.statements.sweep)
            .bind(sql::SWEEP_ROWS)
            .execute(&mut *conn)
            .await?;
        q(&self.statements.reap)
            .bind(sql::SWEEP_ROWS)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// An add, or a put-back with `front`, in one transaction, with a sweep if `sweep`.
    /// Returns whether the session took it (it is not retired) and how many messages the
    /// cap dropped.
    async fn write_once(
        &self,
        session: &SessionKey,
        view: &ViewId,
        batch: Vec<(String, String)>,
        front: bool,
        sweep: bool,
    ) -> std::result::Result<(bool, usize), sqlx::Error> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let (state, _) = self.states(&mut tx, session, session).await?;
        if state.retired {
            if sweep {
                self.sweep(&mut tx).await?;
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            return Ok((false, 0));
        }
        if !state.live {
            self.purge(&mut tx, session).await?;
        }
        self.refresh(&mut tx, session).await?;
        let rows = q(&self.statements.present)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let present = rows
            .iter()
            .map(|r| {
                Ok(Present {
                    seq: r.try_get(0)?,
                    ord: r.try_get(1)?,
                    id: r.try_get(2)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
        let plan = plan_write(&present, batch, self.settings.per_context, front);
        if !plan.insert.is_empty() {
            let json = serde_json::to_string(&plan.insert)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            q(&self.statements.insert)
                .bind(self.namespace())
                .bind(session.as_str())
                .bind(view.as_str())
                .bind(json)
                .execute(&mut *tx)
                .await?;
        }
        if !plan.trim.is_empty() {
            let json =
                serde_json::to_string(&plan.trim).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            q(&self.statements.delete_rows)
                .bind(json)
                .execute(&mut *tx)
                .await?;
        }
        if sweep {
            self.sweep(&mut tx).await?;
        }
        tx.commit().await?;
        Ok((true, plan.dropped))
    }

    /// The common add: [`ADD_LEAN`], one transaction in one query instead of
    /// [`write_once`](SqliteStore::write_once)'s hops. `true` if every message went in;
    /// `false` if `write_once` has to run (a new, expired or retired session, a full
    /// context, an id already there). Called with the store's turn to write.
    async fn write_lean(
        &self,
        session: &SessionKey,
        view: &ViewId,
        batch: &[(String, String)],
    ) -> std::result::Result<bool, sqlx::Error> {
        let json = serde_json::to_string(batch).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let query = q(&self.statements.add_lean)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str())
            .bind(json)
            .bind(i64::try_from(self.settings.per_context).unwrap_or(i64::MAX))
            .bind(self.settings.ttl_ms);
        let changed = self.in_transaction(query).await?;
        Ok(changed.len() == batch.len() + 1)
    }

    async fn write(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: &[Message],
        front: bool,
    ) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let batch = sql::encode(messages)?;
        let sweep = sql::sweeps(&self.writes);
        let (accepted, dropped) = self
            .bounded_write(async {
                if !front && !sweep && self.write_lean(session, view, &batch).await? {
                    return Ok((true, 0));
                }
                self.write_once(session, view, batch, front, sweep).await
            })
            .await?;
        sql::log_write(STORE, view, accepted, dropped, self.settings.per_context);
        Ok(())
    }

    fn messages(&self, rows: &[SqliteRow], view: &ViewId) -> Result<Vec<Message>> {
        let rows = rows
            .iter()
            .map(stored)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| sql::unavailable(STORE, e))?;
        Ok(sql::deliver(STORE, rows, self.settings.per_context, view))
    }

    /// A plain read of a context's rows (`take` or `peek`).
    async fn read(
        &self,
        statement: &sql::Sql,
        session: &SessionKey,
        view: &ViewId,
    ) -> Result<Vec<Message>> {
        let query = q(statement)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str());
        let rows = self.bounded(query.fetch_all(&self.pool)).await?;
        self.messages(&rows, view)
    }

    /// A leased take: [`TAKE_LEASED`], one query (the session's keep-alive, then the
    /// lease, so that a reserve always outlives its lease).
    async fn take_leased_once(
        &self,
        session: &SessionKey,
        view: &ViewId,
        token: &str,
    ) -> std::result::Result<Vec<SqliteRow>, sqlx::Error> {
        let query = q(&self.statements.take_leased)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str())
            .bind(token)
            .bind(self.settings.lease_ms)
            .bind(self.settings.ttl_ms);
        self.in_transaction(query).await
    }

    /// Runs a query that is a whole transaction (`BEGIN IMMEDIATE; …; COMMIT`), returning
    /// its rows. sqlx does not know the connection is in a transaction, so the query
    /// must never stop half way with the connection going back to the pool: it runs in
    /// a task of its own, which reads it to the end even if the caller stops waiting (a
    /// timeout, a dropped request); if it fails part way, the connection is closed,
    /// which rolls back what it began.
    async fn in_transaction(
        &self,
        query: Query<'static, Sqlite, SqliteArguments>,
    ) -> std::result::Result<Vec<SqliteRow>, sqlx::Error> {
        let pool = self.pool.clone();
        let run = async move {
            let mut conn = pool.acquire().await?;
            let rows = query.fetch_all(&mut *conn).await;
            if rows.is_err() {
                conn.close_on_drop();
            }
            rows
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn(run)
                .await
                .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?,
            // No runtime to run it on: sqlx's own tasks need one, so this fails anyway.
            Err(_) => run.await,
        }
    }

    /// Sends settles alone: deletes the rows `(seq, token)`.
    async fn settle_alone(&self, rows: Vec<(i64, String)>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.bounded_write(async {
            let mut conn = self.pool.acquire().await?;
            self.settle_in(&mut conn, &rows).await
        })
        .await
    }

    /// The rotation's transaction: see [`MessageStore::rotate`] below.
    async fn rotate_once(
        &self,
        from: &SessionKey,
        to: &SessionKey,
    ) -> std::result::Result<(), sqlx::Error> {
        let _turn = self.gate.lock().await;
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let (from_state, to_state) = self.states(&mut tx, from, to).await?;
        if !to_state.live {
            self.purge(&mut tx, to).await?;
        }
        let moving = from_state.live && !to_state.retired;
        if to_state.retired && from_state.live {
            tracing::warn!(
                "messages: rotation into a retired session; the old session's messages are dropped"
            );
        }
        let mut moved = 0usize;
        if moving {
            let firsts: HashMap<String, i64> = q(&self.statements.firsts)
                .bind(self.namespace())
                .bind(to.as_str())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<std::result::Result<_, sqlx::Error>>()?;
            let mut by_view: HashMap<String, Vec<(i64, Option<i64>, i64)>> = HashMap::new();
            for r in q(&self.statements.session_rows)
                .bind(self.namespace())
                .bind(from.as_str())
                .fetch_all(&mut *tx)
                .await?
            {
                by_view.entry(r.try_get(1)?).or_default().push((
                    r.try_get(0)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                ));
            }
            let mut places: Vec<(i64, Option<i64>)> = Vec::new();
            for (view, mut rows) in by_view {
                rows.sort_by_key(|&(seq, _, ord)| (ord, seq));
                let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
                for ((seq, pos, _), i) in rows.into_iter().zip(0i64..) {
                    let place = match firsts.get(&view) {
                        Some(first) => Some(first - n + i),
                        None => pos,
                    };
                    places.push((seq, place));
                }
            }
            moved = places.len();
            if moved > 0 {
                let json =
                    serde_json::to_string(&places).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                q(&self.statements.move_rows)
                    .bind(self.namespace())
                    .bind(to.as_str())
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
            }
        } else {
            self.purge(&mut tx, from).await?;
        }
        q(&self.statements.retire)
            .bind(self.namespace())
            .bind(from.as_str())
            .bind(self.settings.ttl_ms)
            .execute(&mut *tx)
            .await?;
        if !to_state.retired && (to_state.live || moved > 0) {
            self.refresh(&mut tx, to).await?;
        }
        tx.commit().await
    }
}

impl sql::Settling for SqliteStore {
    const STORE: &'static str = STORE;

    fn deferred(&self) -> &sql::Deferred {
        &self.deferred
    }

    fn lease_ms(&self) -> i64 {
        self.settings.lease_ms
    }

    fn settle_rows(&self, rows: Vec<(i64, String)>) -> impl Future<Output = Result<()>> + Send {
        self.settle_alone(rows)
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn add_all(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        self.write(session, view, &messages, false).await
    }

    /// Before everything the context holds now, in the order given, leaving out messages
    /// whose id is already there.
    async fn put_back(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        self.write(session, view, &messages, true).await
    }

    async fn take(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>> {
        let query = q(&self.statements.take)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str());
        let rows = self.bounded_write(query.fetch_all(&self.pool)).await?;
        self.messages(&rows, view)
    }

    /// Marks the context's rows with a fresh lease, when it holds messages.
    async fn take_leased(&self, session: &SessionKey, view: &ViewId) -> Result<Taken> {
        let token = sql::lease_token();
        let rows = self
            .bounded_write(self.take_leased_once(session, view, &token))
            .await?;
        let lease = (!rows.is_empty()).then(|| {
            sql::lease(
                &token,
                rows.iter().filter_map(|r| r.try_get::<i64, _>(0).ok()),
            )
        });
        let messages = self.messages(&rows, view)?;
        Ok(Taken { messages, lease })
    }

    /// Deferred: the settles of 20 ms go in one statement; [`flush`](MessageStore::flush)
    /// sends them now. Without a tokio
    /// runtime, or with more than 1024 rows held, it is sent at once (and on failure
    /// tried again in the background, when on a runtime, until the lease would be up; the
    /// error is still returned).
    async fn settle(&self, session: &SessionKey, view: &ViewId, lease: Lease) -> Result<()> {
        let _ = session;
        sql::settle(self, view, &lease).await
    }

    /// Sends the deferred settles now.
    async fn flush(&self) -> Result<()> {
        sql::flush(self).await
    }

    async fn peek(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>> {
        self.read(&self.statements.peek, session, view).await
    }

    /// Distinct messages, at most the per-context cap (as a read would return).
    async fn count(&self, session: &SessionKey, view: &ViewId) -> Result<usize> {
        let query = q(&self.statements.count)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str());
        let row = self.bounded(query.fetch_one(&self.pool)).await?;
        let n: i64 = row.try_get(0).map_err(|e| sql::unavailable(STORE, e))?;
        Ok(usize::try_from(n)
            .unwrap_or(0)
            .min(self.settings.per_context))
    }

    async fn discard(&self, session: &SessionKey, view: &ViewId) -> Result<()> {
        let query = q(&self.statements.discard)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str());
        self.bounded_write(query.execute(&self.pool)).await?;
        Ok(())
    }

    async fn clear_session(&self, session: &SessionKey) -> Result<()> {
        let query = q(&self.statements.purge_session)
            .bind(self.namespace())
            .bind(session.as_str());
        self.bounded_write(query.execute(&self.pool)).await?;
        Ok(())
    }

    async fn pending_views(&self, session: &SessionKey) -> Result<Vec<ViewId>> {
        let query = q(&self.statements.pending_views)
            .bind(self.namespace())
            .bind(session.as_str());
        let rows = self.bounded(query.fetch_all(&self.pool)).await?;
        let names = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| sql::unavailable(STORE, e))?;
        Ok(sql::views(STORE, names))
    }

    /// In one transaction: every row of `from` (reserves too) moves to `to`, each view's
    /// before what `to` holds, and `from` is retired for `idle_ttl` (adds dropped, reads
    /// find nothing). The per-context cap applies at the next write or read.
    async fn rotate(&self, from: &SessionKey, to: &SessionKey) -> Result<()> {
        if from == to {
            return Ok(());
        }
        self.bounded(self.rotate_once(from, to)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn present(rows: &[(i64, i64, &str)]) -> Vec<Present> {
        rows.iter()
            .map(|&(seq, ord, id)| Present {
                seq,
                ord,
                id: id.to_owned(),
            })
            .collect()
    }

    fn batch(ids: &[&str]) -> Vec<(String, String)> {
        ids.iter()
            .map(|i| ((*i).to_owned(), format!("{{{i}}}")))
            .collect()
    }

    #[test]
    fn adds_go_last_and_the_cap_drops_the_oldest() {
        let p = present(&[(5, 5, "a"), (6, 6, "b")]);
        let plan = plan_write(&p, batch(&["c", "a", "d"]), 3, false);
        let ids: Vec<_> = plan.insert.iter().map(|r| (r.0.as_str(), r.2)).collect();
        assert_eq!(ids, [("c", None), ("d", None)]);
        assert_eq!(plan.trim, [5], "the oldest present one makes room");
        assert_eq!(plan.dropped, 1);

        let plan = plan_write(&p, batch(&["c", "d", "e", "f"]), 3, false);
        let ids: Vec<_> = plan.insert.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(ids, ["d", "e", "f"]);
        assert_eq!(plan.trim, [5, 6]);
        assert_eq!(plan.dropped, 3);
    }

    #[test]
    fn put_backs_go_first_below_the_lowest_place() {
        let p = present(&[(9, 9, "c"), (7, -3, "b")]);
        let plan = plan_write(&p, batch(&["x", "b", "y"]), 10, true);
        let rows: Vec<_> = plan.insert.iter().map(|r| (r.0.as_str(), r.2)).collect();
        assert_eq!(rows, [("x", Some(-5)), ("y", Some(-4))]);
        assert!(plan.trim.is_empty());
        // Into an empty context: at the next sequence numbers.
        let plan = plan_write(&[], batch(&["x", "y"]), 10, true);
        assert!(plan.insert.iter().all(|r| r.2.is_none()));
        // Over the cap, the put-back ones are the oldest.
        let plan = plan_write(&p, batch(&["x", "y"]), 3, true);
        let rows: Vec<_> = plan.insert.iter().map(|r| (r.0.as_str(), r.2)).collect();
        assert_eq!(rows, [("y", Some(-4))]);
        assert_eq!(plan.dropped, 1);
        let plan = plan_write(&p, batch(&["x"]), 1, true);
        assert!(plan.insert.is_empty());
        assert_eq!(plan.trim, [7]);
        assert_eq!(plan.dropped, 2);
    }
}
