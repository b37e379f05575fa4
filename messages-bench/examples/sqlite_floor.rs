//! The SQLite floor of a flash pair, beside axum-messages' statements, in one run (the
//! SQLite counterpart of `messages-bench/floor/pg-floor.sh`; see BENCHMARKS.md, "The
//! SQL floors"):
//!
//! ```text
//! cargo run --release -p messages-bench --example sqlite_floor -- [SECONDS] [CLIENTS] [ROUNDS]
//! ```
//!
//! One SQLite file in a temporary directory, opened as `SqliteStore::open` opens ours
//! (WAL, `synchronous = NORMAL`, the default busy timeout, as many connections, no check
//! before a connection is handed out); CLIENTS tasks (16), each its own session, run flash
//! pairs for SECONDS (5) a run, ROUNDS (3) times over each of:
//!
//! - `theirs`: axum-messages' database work for a pair on tower-sessions-sqlx-store —
//!   load the session and save it with the message, then load it and save it without;
//! - `floor`: the least any store keeping one row per message under read leases does —
//!   one transaction refreshes the session's expiry, deletes the previous read's settled
//!   row and inserts the message (one query, as `SqliteStore` sends its add), then one
//!   statement marks the row with a lease and returns it. No cap, no expiry or retirement
//!   check, no de-duplication;
//! - `floor, turns`: the same, with the writes of the process taking turns on one async
//!   mutex, as `SqliteStore`'s do.
//!
//! It prints pairs/s for each, and how many pairs failed (a busy timeout).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use messages_core::SqlOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

const SCHEMA: &str = r"
create table ts_session (id text primary key not null, data blob not null, expiry_date integer not null);
create table fs (namespace text not null, session_key text not null, expires_at integer not null,
                 retired_until integer, primary key (namespace, session_key));
create table fm (seq integer primary key autoincrement, namespace text not null,
                 session_key text not null, view_id text not null, pos integer,
                 message_id text not null, body text not null, lease text, lease_until integer);
create index fm_context on fm (namespace, session_key, view_id);
";

const LOAD: &str = "select data from ts_session where id = $1 and expiry_date > $2";
const SAVE: &str = r"insert into ts_session (id, data, expiry_date) values ($1, $2, $3)
on conflict(id) do update set data = excluded.data, expiry_date = excluded.expiry_date";

const FLOOR_ADD: &str = r"BEGIN IMMEDIATE;
INSERT INTO fs (namespace, session_key, expires_at) VALUES ('msg', $1, $2)
ON CONFLICT (namespace, session_key) DO UPDATE SET expires_at = excluded.expires_at;
DELETE FROM fm WHERE namespace = 'msg' AND session_key = $1 AND view_id = 'v' AND lease IS NOT NULL;
INSERT INTO fm (namespace, session_key, view_id, message_id, body)
VALUES ('msg', $1, 'v', '0000000000000001c0ffee0123456789', '{}');
COMMIT";

const FLOOR_READ: &str = r"UPDATE fm SET lease = 'token', lease_until = $2
WHERE namespace = 'msg' AND session_key = $1 AND view_id = 'v' AND lease IS NULL
RETURNING seq, message_id, body";

/// The session's data as axum-messages saves it, with one message and without.
const WITH_MESSAGE: &[u8] =
    b"\x82\xa8messages\x91\x82\xa4text\xb7Settings saved for Ann.\xa5level\xa7success";
const WITHOUT: &[u8] = b"\x81\xa8messages\x90";

#[derive(Clone, Copy)]
enum Kind {
    Theirs,
    Floor,
    FloorTurns,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Theirs => "theirs",
            Kind::Floor => "floor",
            Kind::FloorTurns => "floor, turns",
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The process's turn to write, when writes take turns.
async fn take_turn(
    turns: Option<&tokio::sync::Mutex<()>>,
) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    match turns {
        Some(turns) => Some(turns.lock().await),
        None => None,
    }
}

async fn pair(
    kind: Kind,
    pool: &SqlitePool,
    turns: &tokio::sync::Mutex<()>,
    sid: &str,
) -> sqlx::Result<()> {
    let later = now_ms() + 86_400_000;
    match kind {
        Kind::Theirs => {
            for data in [WITH_MESSAGE, WITHOUT] {
                sqlx::query(LOAD)
                    .bind(sid)
                    .bind(now_ms())
                    .fetch_optional(pool)
                    .await?;
                sqlx::query(SAVE)
                    .bind(sid)
                    .bind(data)
                    .bind(later)
                    .execute(pool)
                    .await?;
            }
        }
        Kind::Floor | Kind::FloorTurns => {
            let turns = matches!(kind, Kind::FloorTurns).then_some(turns);
            {
                let _turn = take_turn(turns).await;
                sqlx::query(FLOOR_ADD)
                    .bind(sid)
                    .bind(later)
                    .execute(pool)
                    .await?;
            }
            let _turn = take_turn(turns).await;
            sqlx::query(FLOOR_READ)
                .bind(sid)
                .bind(later)
                .fetch_all(pool)
                .await?;
        }
    }
    Ok(())
}

/// Pairs per second of `clients` tasks running `kind` for `seconds`, and the pairs that
/// failed (a busy timeout).
async fn run(
    kind: Kind,
    pool: &SqlitePool,
    clients: usize,
    seconds: u64,
) -> Result<(f64, u64), sqlx::Error> {
    let turns = Arc::new(tokio::sync::Mutex::new(()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (pool, turns) = (pool.clone(), Arc::clone(&turns));
            tokio::spawn(async move {
                let sid = format!("sess-{i}");
                let (mut pairs, mut failed) = (0_u64, 0_u64);
                while Instant::now() < deadline {
                    match pair(kind, &pool, &turns, &sid).await {
                        Ok(()) => pairs += 1,
                        Err(_) => failed += 1,
                    }
                }
                (pairs, failed)
            })
        })
        .collect();
    let (mut pairs, mut failed) = (0, 0);
    for task in tasks {
        let (p, f) = task
            .await
            .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?;
        pairs += p;
        failed += f;
    }
    #[allow(clippy::cast_precision_loss)]
    Ok((pairs as f64 / started.elapsed().as_secs_f64(), failed))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let clients: usize = args.next().map_or(Ok(16), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let options = SqlOptions::default();
    let connect = SqliteConnectOptions::new()
        .filename(dir.path().join("floor.db"))
        .create_if_missing(true)
        .busy_timeout(options.response_timeout)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.connect_timeout)
        .test_before_acquire(false)
        .connect_with(connect)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    println!("{clients} clients, {seconds} s a run; pairs/s:");
    for round in 1..=rounds {
        for kind in [Kind::Theirs, Kind::Floor, Kind::FloorTurns] {
            let (rate, failed) = run(kind, &pool, clients, seconds).await?;
            println!(
                "round {round}  {:<13} {rate:.0}  ({failed} failed)",
                kind.label()
            );
        }
    }
    Ok(())
}
