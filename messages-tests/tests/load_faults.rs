//! Faults under load (issue #8, item 3): [`SESSIONS`](kill_under_load::SESSIONS) sessions
//! × [`TABS`](kill_under_load::TABS) concurrent tabs add and read notes over real HTTP
//! against the Redis store, while `redis-server` (with
//! `appendfsync always`, so every acknowledged write survives) is killed with SIGKILL and
//! started again on its port.
//!
//! The handlers are annotated `#[with_messages]` handlers: `POST /notes`
//! flushes its add and answers `200 stored` only once Redis has it, `503 unavailable` when
//! it could not be stored, so the client knows which adds were confirmed. `GET /notes`
//! shows the notes as JSON, consuming them.
//!
//! Two runs, each with its own server:
//!
//! - **Adds in flight at the kill** (reads held back for the instant of the kill, then
//!   going on through the outage): no confirmed add is lost, none is shown twice or in
//!   another session, no request fails except refused adds (`503 unavailable`), every read
//!   during the outage answers `200` with no messages, and adds are stored again once the
//!   server is back.
//! - **Reads in flight at the kill too**: a read moves its messages into a reserve under a
//!   read lease ([`READ_LEASE`]) that the commit settles. When the server dies after the
//!   take and before its answer arrives, nobody saw them, and the reserve comes back at
//!   the first read after the lease: still no confirmed add is lost. A read that showed
//!   its messages but whose settle the kill cut shows them again after the lease: the
//!   run counts those duplicates and checks that each belongs to a session with a read in
//!   flight at the kill; everything else holds as in the first run.
//!
//! The load and its figures are `support/kill_under_load.rs`, shared with
//! `postgres_faults.rs`. The figures are printed on stderr (seen without `--nocapture`
//! too), ending with a one-line summary. Without `redis-server` the tests say SKIPPED (in
//! CI they fail instead).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use messages_core::{MessagesConfig, RedisOptions, RedisStore};
use messages_tests::redis_server::RedisServer;

#[path = "support/kill_under_load.rs"]
mod kill_under_load;

use kill_under_load::{Target, contained_kill};

/// How long the server stays dead.
const OUTAGE: Duration = Duration::from_secs(1);
/// The store's read lease, longer than the outage (so settles cut by the kill are retried
/// in time); the final reads wait this long after the load, so reserves of reads cut by
/// the kill are up and come back.
const READ_LEASE: Duration = Duration::from_secs(3);

/// A durable `redis-server` (every acknowledged write survives a SIGKILL) and a store on
/// it; `None` when `redis-server` is not installed.
async fn durable_redis() -> Option<Target<RedisServer>> {
    let durable = ["--appendonly", "yes", "--appendfsync", "always"];
    let server = RedisServer::start_with_args(&durable)?;
    let options = RedisOptions {
        read_lease: READ_LEASE,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    Some(Target {
        backend: "redis (appendfsync always)",
        server,
        config: MessagesConfig::new(store),
        read_lease: READ_LEASE,
        outage: OUTAGE,
        kill: RedisServer::kill,
        revive: RedisServer::revive,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_adds_in_flight_loses_no_confirmed_add_and_fails_no_page() {
    if let Some(target) = durable_redis().await {
        contained_kill(target, true, "adds in flight at the kill").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_reads_in_flight_loses_no_confirmed_add() {
    if let Some(target) = durable_redis().await {
        contained_kill(target, false, "adds and reads in flight at the kill").await;
    }
}
