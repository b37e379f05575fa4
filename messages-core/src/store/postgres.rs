//! Messages in PostgreSQL: one row per message, for applications on several machines.
//!
//! Locking, so that concurrent statements queue and never deadlock: a statement that
//! locks a session's row (writes, leased takes, rotations) does so before any message
//! row; message rows are locked in sequence order (`ORDER BY seq FOR UPDATE`); and what
//! a write trims or sweeps skips rows locked by others (`SKIP LOCKED`) instead of
//! waiting for them.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Row};

use super::sql::{self, Settings, SqlOptions, StoredRow};
use super::{Lease, Taken};
use crate::{Error, Message, MessageStore, Result, SessionKey, ViewId};

mod live;

const STORE: &str = "postgres";

/// The database's clock, in ms since the Unix epoch (the transaction's start: one value
/// for a whole statement).
const NOW: &str = "(extract(epoch FROM now()) * 1000)::bigint";

/// How many of the schema's relations exist (`$1`: their names), in the current schema.
/// `migrate` creates only what is missing: `CREATE INDEX IF NOT EXISTS` takes a share
/// lock on its table even when the index exists, which would make the writes of running
/// processes queue behind a start-up.
const SCHEMA_PRESENT: &str = r"SELECT count(*) FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY($1)";

/// The lock `migrate` takes before each step: processes starting together take turns.
const SCHEMA_LOCK: &str = r"SELECT pg_advisory_xact_lock(hashtext('messages-core schema {m}'))";

/// How long `migrate` may take: creating tables may wait for locks.
const MIGRATE_BOUND: Duration = Duration::from_secs(60);

/// The schema, created by [`PostgresStore::migrate`]: each relation's name (`{m}`,
/// `{s}` replaced) and the statement creating it.
///
/// `migrate` runs each step in its own transaction, after taking [`SCHEMA_LOCK`] and
/// only if its relation is still missing. One step locks at most one table in use (an
/// index's), so it cannot deadlock with running writes, which lock both tables: a single
/// transaction creating indexes on both did (`postgres_migrate_beside_running_writes_
/// never_deadlocks`).
/// Rows under a read lease are found by primary key (a [`Lease`] names its rows), so no
/// index covers `lease`: marking rows with a lease changes no indexed column, and
/// PostgreSQL can update them in place (HOT). (Earlier versions made an index
/// `{m}_lease`; `migrate` leaves it, and it can be dropped.)
const SCHEMA: [(&str, &str); 4] = [
    (
        "{m}",
        r"CREATE TABLE IF NOT EXISTS {m} (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace   text   NOT NULL,
    session_key text   NOT NULL,
    view_id     text   NOT NULL,
    pos         bigint,
    message_id  text   NOT NULL,
    body        text   NOT NULL,
    lease       text,
    lease_until bigint
)",
    ),
    (
        "{m}_context",
        "CREATE INDEX IF NOT EXISTS {m}_context ON {m} (namespace, session_key, view_id)",
    ),
    (
        "{s}",
        r"CREATE TABLE IF NOT EXISTS {s} (
    namespace     text   NOT NULL,
    session_key   text   NOT NULL,
    expires_at    bigint NOT NULL,
    retired_until bigint,
    PRIMARY KEY (namespace, session_key)
)",
    ),
    (
        "{s}_expiry",
        "CREATE INDEX IF NOT EXISTS {s}_expiry ON {s} (expires_at)",
    ),
];

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

/// Deletes the rows of deferred settles carried by a statement: sequence numbers `$n`,
/// lease tokens `$t` (a row goes if it is in both, which is exactly the rows leased
/// under those tokens). Rows locked by another transaction (a rotation moving them) are
/// skipped, so that the statement never waits for them; the store sends those alone.
macro_rules! settled {
    ($n:literal, $t:literal) => {
        concat!(
            "settled AS (
    DELETE FROM {m} WHERE seq IN (
        SELECT seq FROM {m}
        WHERE seq = ANY(",
            $n,
            "::bigint[]) AND lease = ANY(",
            $t,
            "::text[]) AND namespace = $1
        ORDER BY seq FOR UPDATE SKIP LOCKED
    )
    RETURNING seq
)"
        )
    };
}

/// An add (`$8` false) or a put-back (`$8` true) in one statement. `$1` namespace, `$2`
/// session, `$3` view, `$4` ids, `$5` JSON bodies (ids unique, in order), `$6` idle TTL
/// ms, `$7` cap, `$9` the live channel, `$10` and `$11` deferred settles (see
/// [`settled!`]); with [`WRITE_SWEEP`], `$12` expired sessions and `$13` their rows to
/// sweep at most.
///
/// `upserted` refreshes the session's expiry — and so locks its row: writes of one
/// session take turns — unless it is retired. A session that had expired loses its old
/// rows (`purged`). Messages whose id is in the context are left out; an add goes after
/// everything (the identity column, in the order given), a put-back before everything
/// (`pos` just below the context's lowest place). Then the newest `$7` of the context are
/// kept: fresh ones over it are not inserted, present ones are deleted (`trimmed`; rows
/// a concurrent take holds are skipped, it removes them anyway). Expired sessions of
/// others are swept a bounded batch at a time: their rows, and their session rows once
/// no row is left (one write in four sweeps: [`WRITE_SWEEP`]). Trimming and sweeping skip
/// rows locked by others, so a write waits only for its own session's turn. When it
/// inserted something it notifies `$9` with `<session> <view>` (delivered at commit).
/// Rows a carried settle deletes are not in the context.
const WRITE: &str = concat!(
    "WITH ",
    settled!("$10", "$11"),
    r", prior AS (
    SELECT expires_at > {now} AND retired_until IS NULL AS live
    FROM {s} WHERE namespace = $1 AND session_key = $2
), upserted AS (
    INSERT INTO {s} AS s (namespace, session_key, expires_at) VALUES ($1, $2, {now} + $6)
    ON CONFLICT (namespace, session_key) DO UPDATE
        SET expires_at = EXCLUDED.expires_at, retired_until = NULL
        WHERE s.retired_until IS NULL OR s.retired_until <= {now}
    RETURNING 1
), was_live AS (
    SELECT COALESCE((SELECT live FROM prior), false) AS live
), purged AS (
    DELETE FROM {m} WHERE seq IN (
        SELECT seq FROM {m}
        WHERE namespace = $1 AND session_key = $2
          AND NOT (SELECT live FROM was_live) AND EXISTS (SELECT 1 FROM upserted)
        ORDER BY seq FOR UPDATE
    )
    RETURNING 1
), present AS (
    SELECT seq, COALESCE(pos, seq) AS ord, message_id FROM {m}
    WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    r"
      AND seq <> ALL($10::bigint[]) AND (SELECT live FROM was_live)
), batch AS (
    SELECT b.message_id, b.body, b.i, row_number() OVER (ORDER BY b.i DESC) AS from_end
    FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS b(message_id, body, i)
    WHERE NOT EXISTS (SELECT 1 FROM present p WHERE p.message_id = b.message_id)
), sizes AS (
    SELECT (SELECT count(*) FROM present) AS present, (SELECT count(*) FROM batch) AS fresh
), kept AS (
    SELECT batch.message_id, batch.body, batch.i,
           row_number() OVER (ORDER BY batch.i) AS r, count(*) OVER () AS n
    FROM batch, sizes
    WHERE batch.from_end <= CASE WHEN $8 THEN GREATEST($7 - sizes.present, 0) ELSE $7 END
), inserted AS (
    INSERT INTO {m} (namespace, session_key, view_id, pos, message_id, body)
    SELECT $1, $2, $3,
           CASE WHEN $8 THEN (SELECT min(ord) FROM present) - kept.n - 1 + kept.r END,
           kept.message_id, kept.body
    FROM kept WHERE EXISTS (SELECT 1 FROM upserted)
    ORDER BY kept.i
    RETURNING 1
), notified AS MATERIALIZED (
    SELECT pg_notify($9, $2 || ' ' || $3) WHERE EXISTS (SELECT 1 FROM inserted)
), trimmed AS (
    DELETE FROM {m} WHERE seq IN (
        SELECT seq FROM {m} WHERE seq IN (
            SELECT ranked.seq
            FROM (SELECT seq, row_number() OVER (ORDER BY ord DESC, seq DESC) AS r FROM present) ranked,
                 sizes
            WHERE ranked.r > CASE WHEN $8 THEN $7 ELSE GREATEST($7 - sizes.fresh, 0) END
        ) AND EXISTS (SELECT 1 FROM upserted)
        FOR UPDATE SKIP LOCKED
    )
    RETURNING 1

)
SELECT (SELECT count(*) FROM upserted) AS accepted,
       (SELECT count(*) FROM purged) AS purged,
       (SELECT count(*) FROM trimmed) AS trimmed,
       (SELECT count(*) FROM inserted) AS inserted,
       (SELECT count(*) FROM batch) AS fresh,
       (SELECT count(*) FROM notified) AS notified,
       ARRAY(SELECT seq FROM settled) AS settled"
);

/// The common add in one light statement: the session is live (or new) and the context
/// has room. `$1` to `$7` as for [`WRITE`] (namespace, session, view, ids, JSON bodies,
/// idle TTL ms, the cap), `$8` the live channel, `$9` and `$10` deferred settles (see
/// [`settled!`]).
///
/// `upserted` refreshes the session's expiry only if it is live and not retired (a new
/// session is inserted); on conflict the row is locked whether or not it is updated, so
/// writes of one session still take turns. The messages go in only if the session was
/// refreshed and the context's unleased rows plus the batch fit under the cap (so nothing
/// would be trimmed), leaving out ids already there. Otherwise (`accepted` 0 or `fits`
/// false) nothing is inserted and the store runs [`WRITE`], which handles expired and
/// retired sessions and the cap; the settles carried here are done either way. An
/// expired session never takes this path, so it has no old rows to purge; a new one has
/// none (a session's row outlives its rows: see the sweep).
const WRITE_LEAN: &str = concat!(
    "WITH ",
    settled!("$9", "$10"),
    r", upserted AS (
    INSERT INTO {s} AS s (namespace, session_key, expires_at) VALUES ($1, $2, {now} + $6)
    ON CONFLICT (namespace, session_key) DO UPDATE SET expires_at = EXCLUDED.expires_at
        WHERE s.retired_until IS NULL AND s.expires_at > {now}
    RETURNING 1
), present AS (
    SELECT message_id FROM {m}
    WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    r"
      AND seq <> ALL($9::bigint[])
), fits AS (
    SELECT (SELECT count(*) FROM present) + cardinality($4::text[]) <= $7 AS ok
), inserted AS (
    INSERT INTO {m} (namespace, session_key, view_id, message_id, body)
    SELECT $1, $2, $3, b.message_id, b.body
    FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS b(message_id, body, i)
    WHERE EXISTS (SELECT 1 FROM upserted) AND (SELECT ok FROM fits)
      AND NOT EXISTS (SELECT 1 FROM present p WHERE p.message_id = b.message_id)
    ORDER BY b.i
    RETURNING 1
), notified AS MATERIALIZED (
    SELECT pg_notify($8, $2 || ' ' || $3) WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT (SELECT count(*) FROM upserted) AS accepted,
       (SELECT ok FROM fits) AS fits,
       (SELECT count(*) FROM notified) AS notified,
       ARRAY(SELECT seq FROM settled) AS settled"
);

/// [`WRITE`] that also sweeps expired sessions of others, a bounded batch (`$12`
/// sessions, `$13` rows): their rows, and their session rows once no row is left.
const WRITE_SWEEP: &str = r"
), stale AS (
    SELECT namespace, session_key FROM {s}
    WHERE expires_at <= {now} AND NOT (namespace = $1 AND session_key = $2)
    ORDER BY expires_at LIMIT $12
    FOR UPDATE SKIP LOCKED
), swept AS (
    DELETE FROM {m} WHERE seq IN (
        SELECT m.seq FROM {m} m JOIN stale USING (namespace, session_key)
        LIMIT $13 FOR UPDATE OF m SKIP LOCKED
    )
    RETURNING seq
), reaped AS (
    DELETE FROM {s} s USING stale
    WHERE s.namespace = stale.namespace AND s.session_key = stale.session_key
      AND NOT EXISTS (
          SELECT 1 FROM {m} m
          WHERE m.namespace = s.namespace AND m.session_key = s.session_key
            AND m.seq NOT IN (SELECT seq FROM swept)
      )
    RETURNING 1
";

/// Takes a context: deletes its rows and returns them, in one statement. The rows are
/// locked in sequence order, so concurrent takes (and other writers that lock rows in
/// that order) queue instead of deadlocking; a take that waited finds the rows gone and
/// returns nothing. Rows of an expired session are not taken. `$1` namespace, `$2`
/// session, `$3` view.
const TAKE: &str = concat!(
    r"DELETE FROM {m} WHERE seq IN (
    SELECT seq FROM {m}
    WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    " AND ",
    live_session!(),
    r"
    ORDER BY seq FOR UPDATE
)
RETURNING seq, COALESCE(pos, seq) AS ord, message_id, body"
);

/// Takes a context into a reserve under a lease, in one statement: the rows stay, with
/// the lease's token (`$4`) and deadline (now + `$6` ms); until then no read sees them,
/// afterwards every read does again (they are back, before what arrived after them).
/// When the context holds messages, the session first lives at least `$5` ms (the idle
/// TTL) more, so a reserve outlives its lease. The session row is locked before the
/// message rows, as writes do. Carries deferred settles (`$7`, `$8`: see [`settled!`]),
/// whose rows it does not take. Returns the rows taken (`settled` false), then the
/// sequence numbers of the rows settled (`settled` true).
const TAKE_LEASED: &str = concat!(
    "WITH ",
    settled!("$7", "$8"),
    r", kept_alive AS (
    UPDATE {s} SET expires_at = GREATEST(expires_at, {now} + $5)
    WHERE namespace = $1 AND session_key = $2 AND expires_at > {now} AND retired_until IS NULL
      AND EXISTS (SELECT 1 FROM {m} WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    r" AND seq <> ALL($7::bigint[]))
    RETURNING 1
), picked AS (
    SELECT seq FROM {m}
    WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    r"
      AND seq <> ALL($7::bigint[]) AND EXISTS (SELECT 1 FROM kept_alive)
    ORDER BY seq FOR UPDATE
), leased AS (
    UPDATE {m} SET lease = $4, lease_until = {now} + $6
    WHERE seq IN (SELECT seq FROM picked)
    RETURNING seq, COALESCE(pos, seq) AS ord, message_id, body
)
SELECT seq, ord, message_id, body, false AS settled FROM leased
UNION ALL
SELECT seq, NULL, NULL, NULL, true FROM settled"
);

/// Drops leases' reserves: `$1` namespace, `$2` sequence numbers, `$3` tokens (a row goes
/// if it is in both). By primary key, not by session, so a reserve that moved with a
/// rotation is still found.
const SETTLE: &str = r"DELETE FROM {m} WHERE seq IN (
    SELECT seq FROM {m} WHERE seq = ANY($2::bigint[]) AND lease = ANY($3::text[]) AND namespace = $1
    ORDER BY seq FOR UPDATE
)";

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

/// Deletes a context's rows; reserves whose lease runs stay (their request settles or
/// brings them back).
const DISCARD: &str = concat!(
    r"DELETE FROM {m} WHERE seq IN (
    SELECT seq FROM {m} WHERE namespace = $1 AND session_key = $2 AND view_id = $3 AND ",
    unleased!(),
    r"
    ORDER BY seq FOR UPDATE
)"
);

/// Deletes every row of a session, reserves too. The session's row stays until it
/// expires (so a rotation's retirement is kept).
const CLEAR_SESSION: &str = r"DELETE FROM {m} WHERE seq IN (
    SELECT seq FROM {m} WHERE namespace = $1 AND session_key = $2 ORDER BY seq FOR UPDATE
)";

const PENDING_VIEWS: &str = concat!(
    r"SELECT DISTINCT view_id FROM {m}
WHERE namespace = $1 AND session_key = $2 AND ",
    unleased!(),
    " AND ",
    live_session!()
);

/// The first statement of a rotation: makes sure both sessions have a row and locks
/// both, in the order given (the keys sorted, so two rotations cannot deadlock), and
/// says which is live and which is retired. `$1` namespace, `$2` and `$3` the sessions.
const ROTATE_LOCK: &str = r"INSERT INTO {s} AS s (namespace, session_key, expires_at)
VALUES ($1, $2, 0), ($1, $3, 0)
ON CONFLICT (namespace, session_key) DO UPDATE SET expires_at = s.expires_at
RETURNING session_key,
          expires_at > {now} AND retired_until IS NULL AS live,
          COALESCE(retired_until > {now}, false) AS retired";

/// The second: moves every row of `$2` (reserves too, with their leases) to `$3`, each
/// view's before what `$3` holds there, in order (`$4`: whether `$2` has live rows to
/// move; `$5`: whether `$3` is live — otherwise its old rows are dead and go); retires
/// `$2` for `$6` ms (adds refused, nothing visible); refreshes `$3`; notifies the live
/// channel `$7` of each view that moved (`<session> <view>`, delivered at commit).
const ROTATE_MOVE: &str = concat!(
    r"WITH dead_to AS (
    DELETE FROM {m} WHERE seq IN (
        SELECT seq FROM {m} WHERE namespace = $1 AND session_key = $3 AND NOT $5
        ORDER BY seq FOR UPDATE
    )
    RETURNING 1
), dead_from AS (
    DELETE FROM {m} WHERE seq IN (
        SELECT seq FROM {m} WHERE namespace = $1 AND session_key = $2 AND NOT $4
        ORDER BY seq FOR UPDATE
    )
    RETURNING 1
), firsts AS (
    SELECT view_id, min(COALESCE(pos, seq)) AS first FROM {m}
    WHERE namespace = $1 AND session_key = $3 AND $5 AND ",
    unleased!(),
    r"
    GROUP BY view_id
), locked AS (
    SELECT seq FROM {m} WHERE namespace = $1 AND session_key = $2 AND $4 ORDER BY seq FOR UPDATE
), moving AS (
    SELECT m.seq, m.view_id,
           row_number() OVER (PARTITION BY m.view_id ORDER BY COALESCE(m.pos, m.seq), m.seq) AS r,
           count(*) OVER (PARTITION BY m.view_id) AS n
    FROM {m} m JOIN locked USING (seq)
), moved AS (
    UPDATE {m} m
    SET session_key = $3,
        pos = CASE WHEN f.first IS NULL THEN m.pos ELSE f.first - mv.n - 1 + mv.r END
    FROM moving mv LEFT JOIN firsts f USING (view_id)
    WHERE m.seq = mv.seq
    RETURNING 1
), notified AS MATERIALIZED (
    SELECT pg_notify($7, $3 || ' ' || moved_views.view_id)
    FROM (SELECT DISTINCT view_id FROM moving) moved_views
), retired AS (
    UPDATE {s} SET retired_until = {now} + $6, expires_at = {now} + $6
    WHERE namespace = $1 AND session_key = $2
    RETURNING 1
), refreshed AS (
    UPDATE {s} SET expires_at = {now} + $6, retired_until = NULL
    WHERE namespace = $1 AND session_key = $3
      AND (retired_until IS NULL OR retired_until <= {now})
      AND ($5 OR EXISTS (SELECT 1 FROM moved))
    RETURNING 1
)
SELECT (SELECT count(*) FROM dead_to) AS dead_to,
       (SELECT count(*) FROM dead_from) AS dead_from,
       (SELECT count(*) FROM moved) AS moved,
       (SELECT count(*) FROM retired) AS retired,
       (SELECT count(*) FROM refreshed) AS refreshed,
       (SELECT count(*) FROM notified) AS notified"
);

/// Where [`WRITE`]'s last CTE ends: [`WRITE_SWEEP`]'s go there.
const WRITE_END: &str = "\n)\nSELECT (SELECT count(*) FROM upserted)";

/// Every statement, formatted once for the store's tables.
#[derive(Debug)]
struct Statements {
    /// Each relation of [`SCHEMA`]: its name and the statement creating it.
    schema: Vec<(String, sql::Sql)>,
    schema_present: sql::Sql,
    schema_lock: sql::Sql,
    write: sql::Sql,
    write_lean: sql::Sql,
    write_sweep: sql::Sql,
    take: sql::Sql,
    take_leased: sql::Sql,
    settle: sql::Sql,
    peek: sql::Sql,
    count: sql::Sql,
    discard: sql::Sql,
    clear_session: sql::Sql,
    pending_views: sql::Sql,
    rotate_lock: sql::Sql,
    rotate_move: sql::Sql,
}

impl Statements {
    fn new(settings: &Settings) -> Statements {
        let f = |template: &str| sql::sql(template, settings, NOW);
        Statements {
            schema: SCHEMA
                .iter()
                .map(|(name, ddl)| (f(name).to_string(), f(ddl)))
                .collect(),
            schema_present: f(SCHEMA_PRESENT),
            schema_lock: f(SCHEMA_LOCK),
            write: f(WRITE),
            write_lean: f(WRITE_LEAN),
            write_sweep: f(&WRITE.replacen(WRITE_END, &format!("{WRITE_SWEEP}{WRITE_END}"), 1)),
            take: f(TAKE),
            take_leased: f(TAKE_LEASED),
            settle: f(SETTLE),
            peek: f(PEEK),
            count: f(COUNT),
            discard: f(DISCARD),
            clear_session: f(CLEAR_SESSION),
            pending_views: f(PENDING_VIEWS),
            rotate_lock: f(ROTATE_LOCK),
            rotate_move: f(ROTATE_MOVE),
        }
    }
}

/// A statement of the store, for `sqlx::query` (the SQL is ours, made from a checked
/// table name: no input reaches it but through bind parameters).
fn q(sql: &sql::Sql) -> Query<'static, sqlx::Postgres, PgArguments> {
    sqlx::query(AssertSqlSafe(Arc::clone(sql)))
}

fn stored(row: &PgRow) -> std::result::Result<StoredRow, sqlx::Error> {
    Ok(StoredRow {
        seq: row.try_get(0)?,
        ord: row.try_get(1)?,
        id: row.try_get(2)?,
        body: row.try_get(3)?,
    })
}

/// Messages in PostgreSQL, shared by every process of an application.
///
/// Two tables, created by [`migrate`](PostgresStore::migrate) (call it once at start-up;
/// it is idempotent and safe to run from several processes at once):
///
/// - `{table}` (default `messages`): one row per message — `namespace`, `session_key`,
///   `view_id` (the context), `seq` (an identity column: the database's arrival order,
///   never an application server's clock), `pos` (a put-back's place before the
///   context's first message; `NULL` means `seq`), `message_id`, `body` (the message's
///   JSON), and `lease`, `lease_until` while a request holds it. Indexed by context.
/// - `{table}_sessions`: one row per session — `expires_at` (the last write plus
///   [`idle_ttl`](SqlOptions::idle_ttl)) and `retired_until` (set by a rotation). Times
///   are milliseconds since the Unix epoch on the database's clock.
///
/// How the operations map to SQL (one statement is one round trip):
///
/// - An add or a put-back is **one statement**: it refreshes the session's expiry (and
///   so takes turns with other writes of the session, on its row lock), refuses the
///   write if the session is retired, inserts the messages in the order given (an add
///   after everything, a put-back before everything), leaves out ids already in the
///   context, drops the oldest beyond [`per_context`](SqlOptions::per_context) (with a
///   warning), and notifies live streams (*Live delivery*, below). The common add — a
///   live or new session, room in the context — runs a light statement that does only
///   that; any other (an expired or retired session, a full context, an id already
///   there) then runs the full one: two round trips. One write in four (always the full
///   statement) also deletes a bounded batch of expired sessions' rows (32 sessions,
///   1024 rows; no cron job needed).
/// - A take is one `DELETE … RETURNING`: two concurrent takes never both get a message.
///   A request's read ([`take_leased`](MessageStore::take_leased)) is one `UPDATE …
///   RETURNING` that marks the rows with a lease token and deadline
///   ([`read_lease`](SqlOptions::read_lease)) instead; committing the request deletes
///   them ([`settle`](MessageStore::settle)): the store holds the settle back and sends
///   it inside its next add or leased take (no statement of its own under load), or
///   alone after 20 ms; [`flush`](MessageStore::flush) sends it at once (call it at
///   shutdown: a settle held when the process exits is lost, and its messages shown
///   again after the lease). Rows whose lease is up count as in the context again —
///   before what arrived after them — so messages of a request whose process died are
///   shown again, never lost.
/// - Reads (`peek`, `count`, `pending_views`) are one `SELECT`; `discard` and
///   `clear_session` one `DELETE`.
/// - [`rotate`](MessageStore::rotate) is a transaction of two statements (four round
///   trips with `BEGIN` and `COMMIT`): it locks both sessions' rows, moves every row of
///   the old session to the new one (each view before what the new one holds), and
///   retires the old one for `idle_ttl`: adds to it are dropped, reads find nothing.
/// - Expired sessions are invisible at once to every statement (each checks the
///   session's `expires_at` against the database's clock), and their rows are deleted by
///   later writes.
/// - When the database cannot be reached, answers with an error, or takes longer than
///   `connect_timeout + response_timeout`, operations fail with
///   [`Error::Unavailable`]; a request then shows no messages and logs the error. The
///   pool reconnects by itself.
///
/// ```no_run
/// use messages_core::{Message, MessageStore, MessagesConfig, PostgresStore, SessionKey, SqlOptions, ViewId};
///
/// # async fn run() -> messages_core::Result<()> {
/// let store = PostgresStore::connect("postgres://app@127.0.0.1/app", SqlOptions::default()).await?;
/// store.migrate().await?; // once at start-up: creates the tables if they are missing
///
/// // Out of band, from a job:
/// let (session, view) = (SessionKey::generate()?, ViewId::new("app::dashboard")?);
/// store.add(&session, &view, Message::info("Import finished")).await?;
///
/// // For requests (the store is a cheap handle; clones share the pool):
/// let config = MessagesConfig::new(store.clone());
/// # let _ = config; Ok(()) }
/// ```
///
/// # Live delivery
///
/// The store has a change feed for [live streams](crate::live) ([`watch`](MessageStore::watch)),
/// on PostgreSQL's `LISTEN/NOTIFY`:
///
/// - Every write that makes messages visible in a context — an add or a put-back that
///   inserted something, a rotation (for each view it moved) — calls
///   `pg_notify('{table}_live', '<session> <view>')` **in the write's own statement**:
///   no extra round trip, and the notification is sent when the write commits, never
///   for one that rolled back. The payload is at most 244 bytes (the 43-character
///   session key, a space, a view id of at most 200 bytes). Applications sharing a table
///   under other namespaces share its channel: their notifications cost a look-up here.
/// - The first [`watch`](MessageStore::watch) starts a background task (on the current
///   tokio runtime; outside one the stream polls instead) holding **one more connection
///   per store** (clones share it), not one of the pool's, with `application_name`
///   [`messages-live`](PostgresStore::LIVE_APPLICATION_NAME), `LISTEN`ing on the
///   channel. Each notification wakes the streams watching its context in this
///   process, which then take the messages (a read lease each, so of the streams of all
///   processes exactly one gets each message). Malformed payloads are ignored.
/// - PostgreSQL delivers a notification after its transaction commits, to every
///   connection listening at that moment. One sent while the listener is not connected
///   is lost, so when it connects — the first time, and again after its connection was
///   lost (retried from 100 ms, doubling, up to every 5 s) — it wakes every stream of
///   the process, which take whatever arrived meanwhile. The listener pings its
///   connection every 30 s, so one whose server vanished without closing it is noticed.
///   And every stream polls at each keep-alive
///   ([`keep_alive`](crate::live::LiveOptions::keep_alive), 15 s): a lost notification
///   delays a message until then, never loses it. Rows whose read lease ran out come
///   back without a notification, at that poll too.
/// - The listener connects with the pool's options (same server and credentials). It
///   needs a connection of its own for the session: behind a pooler in transaction mode
///   (PgBouncer's `pool_mode = transaction`) `LISTEN` does not work, and streams get
///   their messages at the keep-alive polls only.
/// - The task and its connection end when the last clone of the store is dropped.
/// - Cost: `NOTIFY` queues the notification at commit under a lock of the whole server,
///   so the commits of notifying writes take turns (the commit only, not the statement);
///   each process whose store has served a live stream receives every add's
///   notification (a map look-up when nothing there watches the context).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    settings: Arc<Settings>,
    statements: Arc<Statements>,
    /// The live channel, `{table}_live`, its hub and listener (shared by clones).
    feed: Arc<live::Feed>,
    /// Settles held back for the next statement (shared by clones).
    deferred: Arc<sql::Deferred>,
    /// Writes so far (shared by clones): one in four sweeps.
    writes: Arc<AtomicU64>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        sql::debug_store(f, "PostgresStore", &self.settings)
    }
}

impl PostgresStore {
    /// The `application_name` of the connection a store's live feed listens on (see
    /// *Live delivery* above), to find it in `pg_stat_activity`.
    pub const LIVE_APPLICATION_NAME: &'static str = live::APPLICATION_NAME;

    /// Connects a pool to PostgreSQL, e.g. `postgres://user:password@host:5432/db` (no
    /// TLS: use it on loopback, a socket, or a trusted network). Connections get the
    /// options' `response_timeout` as their `statement_timeout`. The pool checks a
    /// connection before handing it out (sqlx's default: one more round trip per
    /// operation, and a connection broken by a server restart is replaced instead of
    /// failing an operation); [`from_pool`](PostgresStore::from_pool) takes a pool
    /// configured otherwise. The tables must exist: see
    /// [`migrate`](PostgresStore::migrate).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL or options (checked before connecting),
    /// [`Error::Unavailable`] if the server cannot be reached now.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<PostgresStore> {
        let settings = Settings::check(options, STORE)?;
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("postgres url: {e}")))?
            .options([(
                "statement_timeout",
                format!("{}ms", settings.response_timeout.as_millis().max(1)),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(connect);
        let pool = sql::bounded(STORE, settings.time_bound, pool).await?;
        Ok(PostgresStore::with_settings(pool, settings))
    }

    /// A store on a pool you made yourself: its settings apply (connections, timeouts);
    /// the store additionally bounds each operation by `connect_timeout +
    /// response_timeout`.
    ///
    /// # Errors
    /// [`Error::Config`] for bad options (as for [`connect`](PostgresStore::connect)).
    pub fn from_pool(pool: PgPool, options: SqlOptions) -> Result<PostgresStore> {
        let settings = Settings::check(options, STORE)?;
        Ok(PostgresStore::with_settings(pool, settings))
    }

    fn with_settings(pool: PgPool, settings: Settings) -> PostgresStore {
        PostgresStore {
            feed: Arc::new(live::Feed::new(live::channel(&settings.table))),
            statements: Arc::new(Statements::new(&settings)),
            settings: Arc::new(settings),
            pool,
            deferred: Arc::default(),
            writes: Arc::default(),
        }
    }

    /// Creates the store's tables and indexes if they are missing; changes nothing that
    /// exists, and takes no lock when nothing is missing. Safe to run at every start-up,
    /// beside running processes, and from several processes at once (they take turns on
    /// an advisory lock). Waits up to a minute for locks.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the server cannot be reached or refuses (no right to
    /// create tables, say).
    pub async fn migrate(&self) -> Result<()> {
        let statements = &self.statements;
        let present = |names: Vec<String>| {
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(Arc::clone(&statements.schema_present)))
                .bind(names)
        };
        let migrate = async {
            let names: Vec<String> = statements.schema.iter().map(|(n, _)| n.clone()).collect();
            let wanted = i64::try_from(names.len()).unwrap_or(i64::MAX);
            if present(names).fetch_one(&self.pool).await? == wanted {
                return Ok(());
            }
            for (name, ddl) in &statements.schema {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SET LOCAL statement_timeout = '60s'")
                    .execute(&mut *tx)
                    .await?;
                q(&statements.schema_lock).execute(&mut *tx).await?;
                // Another process may have made it while this one waited for the lock.
                if present(vec![name.clone()]).fetch_one(&mut *tx).await? == 0 {
                    sqlx::raw_sql(AssertSqlSafe(Arc::clone(ddl)))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Ok(())
        };
        sql::bounded(STORE, MIGRATE_BOUND + self.settings.time_bound, migrate).await
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
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

    fn namespace(&self) -> &str {
        &self.settings.namespace
    }

    /// Runs `WRITE` (or `WRITE_SWEEP`): an add, or a put-back with `front`, carrying the
    /// deferred settles.
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
        let (ids, bodies): (Vec<String>, Vec<String>) = sql::encode(messages)?.into_iter().unzip();
        let sweep = sql::sweeps(&self.writes);
        if !front && !sweep && self.write_lean(session, view, &ids, &bodies).await? {
            return Ok(());
        }
        let statement = if sweep {
            &self.statements.write_sweep
        } else {
            &self.statements.write
        };
        let row = self
            .fetch_carrying(|seqs, tokens| {
                let query = self
                    .write_query(statement, session, view, &ids, &bodies)
                    .bind(front)
                    .bind(self.feed.channel())
                    .bind(seqs)
                    .bind(tokens);
                if sweep {
                    query.bind(sql::SWEEP_SESSIONS).bind(sql::SWEEP_ROWS)
                } else {
                    query
                }
            })
            .await?;
        let count = |name: &str| -> Result<usize> {
            let n: i64 = row.try_get(name).map_err(|e| sql::unavailable(STORE, e))?;
            Ok(usize::try_from(n).unwrap_or(0))
        };
        let accepted = count("accepted")? > 0;
        let dropped = count("trimmed")? + count("fresh")?.saturating_sub(count("inserted")?);
        sql::log_write(STORE, view, accepted, dropped, self.settings.per_context);
        Ok(())
    }

    /// Runs [`WRITE_LEAN`], carrying the deferred settles: `true` if it added the
    /// messages, `false` if [`WRITE`] has to.
    async fn write_lean(
        &self,
        session: &SessionKey,
        view: &ViewId,
        ids: &[String],
        bodies: &[String],
    ) -> Result<bool> {
        let row = self
            .fetch_carrying(|seqs, tokens| {
                self.write_query(&self.statements.write_lean, session, view, ids, bodies)
                    .bind(self.feed.channel())
                    .bind(seqs)
                    .bind(tokens)
            })
            .await?;
        let accepted: i64 = row
            .try_get("accepted")
            .map_err(|e| sql::unavailable(STORE, e))?;
        let fits: bool = row
            .try_get("fits")
            .map_err(|e| sql::unavailable(STORE, e))?;
        Ok(accepted > 0 && fits)
    }

    /// `statement` (a write) with the binds its kinds share: `$1` namespace, `$2`
    /// session, `$3` view, `$4` ids, `$5` JSON bodies, `$6` idle TTL ms, `$7` the cap.
    fn write_query(
        &self,
        statement: &sql::Sql,
        session: &SessionKey,
        view: &ViewId,
        ids: &[String],
        bodies: &[String],
    ) -> Query<'static, sqlx::Postgres, PgArguments> {
        q(statement)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str())
            .bind(ids)
            .bind(bodies)
            .bind(self.settings.ttl_ms)
            .bind(i64::try_from(self.settings.per_context).unwrap_or(i64::MAX))
    }

    /// Runs the one-row statement `build` makes from the binds of the deferred settles
    /// (sequence numbers, tokens), carrying them: the ones its `settled` column does not
    /// name (all of them, if it fails) stay held.
    async fn fetch_carrying(
        &self,
        build: impl FnOnce(Vec<i64>, Vec<String>) -> Query<'static, sqlx::Postgres, PgArguments>,
    ) -> Result<PgRow> {
        let carried = self.deferred.for_statement();
        let (seqs, tokens) = sql::settle_binds(&carried);
        match self
            .bounded(build(seqs, tokens).fetch_one(&self.pool))
            .await
        {
            Ok(row) => {
                let settled: Vec<i64> = row.try_get("settled").unwrap_or_default();
                sql::carried(self, carried, &settled);
                Ok(row)
            }
            Err(e) => {
                sql::carried(self, carried, &[]);
                Err(e)
            }
        }
    }

    /// Sends settles alone: deletes the rows `(seq, token)`.
    async fn settle_alone(&self, rows: Vec<(i64, String)>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (seqs, tokens) = sql::settle_binds(&rows);
        let query = q(&self.statements.settle)
            .bind(self.namespace())
            .bind(seqs)
            .bind(tokens);
        self.bounded(query.execute(&self.pool)).await?;
        Ok(())
    }

    /// Runs a statement returning a context's rows, and makes them its messages.
    async fn rows(
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
        let rows = rows
            .iter()
            .map(stored)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| sql::unavailable(STORE, e))?;
        Ok(sql::deliver(STORE, rows, self.settings.per_context, view))
    }

    /// Runs `TAKE_LEASED` with the lease token `token`, carrying the deferred settles:
    /// the context's rows taken.
    async fn take_leased_rows(
        &self,
        session: &SessionKey,
        view: &ViewId,
        token: &str,
    ) -> Result<Vec<StoredRow>> {
        let carried = self.deferred.for_statement();
        let (seqs, tokens) = sql::settle_binds(&carried);
        let query = q(&self.statements.take_leased)
            .bind(self.namespace())
            .bind(session.as_str())
            .bind(view.as_str())
            .bind(token)
            .bind(self.settings.ttl_ms)
            .bind(self.settings.lease_ms)
            .bind(seqs)
            .bind(tokens);
        let rows = match self.bounded(query.fetch_all(&self.pool)).await {
            Ok(rows) => rows,
            Err(e) => {
                sql::carried(self, carried, &[]);
                return Err(e);
            }
        };
        let mut context = Vec::with_capacity(rows.len());
        let mut settled = Vec::new();
        let mut bad = None;
        for row in &rows {
            let result = match row.try_get::<bool, _>(4) {
                Ok(true) => row.try_get::<i64, _>(0).map(|seq| settled.push(seq)),
                Ok(false) => stored(row).map(|r| context.push(r)),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                bad.get_or_insert(e);
            }
        }
        sql::carried(self, carried, &settled);
        match bad {
            Some(e) => Err(sql::unavailable(STORE, e)),
            None => Ok(context),
        }
    }

    /// The rotation's transaction; see [`ROTATE_LOCK`] and [`ROTATE_MOVE`].
    async fn rotate_once(
        &self,
        from: &SessionKey,
        to: &SessionKey,
    ) -> std::result::Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let (first, second) = if from.as_str() < to.as_str() {
            (from, to)
        } else {
            (to, from)
        };
        let states = q(&self.statements.rotate_lock)
            .bind(self.namespace())
            .bind(first.as_str())
            .bind(second.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let (mut from_live, mut to_live, mut to_retired) = (false, false, false);
        for row in &states {
            let key: String = row.try_get("session_key")?;
            let (live, retired): (bool, bool) = (row.try_get("live")?, row.try_get("retired")?);
            if key == from.as_str() {
                from_live = live;
            } else {
                (to_live, to_retired) = (live, retired);
            }
        }
        if to_retired && from_live {
            tracing::warn!(
                "messages: rotation into a retired session; the old session's messages are dropped"
            );
        }
        q(&self.statements.rotate_move)
            .bind(self.namespace())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(from_live && !to_retired)
            .bind(to_live)
            .bind(self.settings.ttl_ms)
            .bind(self.feed.channel())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await
    }
}

impl sql::Settling for PostgresStore {
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
impl MessageStore for PostgresStore {
    async fn add_all(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        self.write(session, view, &messages, false).await
    }

    /// Before everything the context holds now, in the order given, leaving out messages
    /// whose id is already there; one statement.
    async fn put_back(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        self.write(session, view, &messages, true).await
    }

    async fn take(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>> {
        self.rows(&self.statements.take, session, view).await
    }

    /// Marks the context's rows with a fresh lease, when it holds messages; carries the
    /// settles deferred so far.
    async fn take_leased(&self, session: &SessionKey, view: &ViewId) -> Result<Taken> {
        let token = sql::lease_token();
        let rows = self.take_leased_rows(session, view, &token).await?;
        let lease = (!rows.is_empty()).then(|| sql::lease(&token, rows.iter().map(|r| r.seq)));
        let messages = sql::deliver(STORE, rows, self.settings.per_context, view);
        Ok(Taken { messages, lease })
    }

    /// Deferred: the settle goes with the store's next statement (a write or a leased
    /// take), or alone after 20 ms if none comes; [`flush`](MessageStore::flush) sends it
    /// now. Without a tokio runtime, or with more than 1024 rows held, it is sent at once
    /// (and on failure tried again in the background, when on a runtime, until the lease
    /// would be up; the error is still returned).
    async fn settle(&self, session: &SessionKey, view: &ViewId, lease: Lease) -> Result<()> {
        let _ = session;
        sql::settle(self, view, &lease).await
    }

    /// Sends the deferred settles now.
    async fn flush(&self) -> Result<()> {
        sql::flush(self).await
    }

    async fn peek(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>> {
        self.rows(&self.statements.peek, session, view).await
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
        self.bounded(query.execute(&self.pool)).await?;
        Ok(())
    }

    async fn clear_session(&self, session: &SessionKey) -> Result<()> {
        let query = q(&self.statements.clear_session)
            .bind(self.namespace())
            .bind(session.as_str());
        self.bounded(query.execute(&self.pool)).await?;
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
    /// find nothing). Concurrent takes of `from` get a message or the move does, never
    /// both. The per-context cap applies at the next write or read.
    async fn rotate(&self, from: &SessionKey, to: &SessionKey) -> Result<()> {
        if from == to {
            return Ok(());
        }
        self.bounded(self.rotate_once(from, to)).await
    }

    /// A watch woken by the table's `NOTIFY`s; the first one starts this store's listener
    /// (see [`PostgresStore`]'s *Live delivery*).
    fn watch(&self, session: &SessionKey, view: &ViewId) -> Option<crate::live::Watch> {
        self.feed.watch(&self.pool, &self.settings, session, view)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_write_statement_sweeps_and_the_other_does_not() {
        let settings = Settings::check(SqlOptions::default(), STORE).unwrap();
        let statements = Statements::new(&settings);
        assert!(!statements.write.contains("stale AS"));
        assert!(statements.write_sweep.contains("stale AS"));
        assert!(statements.write_sweep.contains("$13"));
        let both = |s: &str| s.contains("settled AS") && s.contains("$10") && s.contains("$11");
        assert!(both(&statements.write) && both(&statements.write_sweep));
        assert!(statements.take_leased.contains("settled AS"));
    }
}
