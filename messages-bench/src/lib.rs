//! Load harness of `messages-core` beside the alternatives, in one process run.
//!
//! Every row is the same small application — `POST /settings` adds one flash message and
//! redirects (303) to `GET /settings`, which renders it; `GET /about` never touches
//! messages — served on `127.0.0.1:0` with a different flash library behind it. On axum
//! 0.8 ([`apps`]): nothing ([`apps::Row::Bare`], the floor), this library on each of its
//! stores (memory, cookie, fallback, Redis, PostgreSQL, SQLite), and `axum-messages` on
//! `tower-sessions` stores of the same kinds: memory, `tower-sessions-redis-store`, and
//! `tower-sessions-sqlx-store`'s PostgreSQL and SQLite stores ([`sqlx_sessions`]). On
//! actix-web 4 ([`actix_apps`]): nothing ([`apps::Row::ActixBare`]), this library on its
//! in-process and Redis stores, and `actix-web-flash-messages` on its cookie store and on
//! `actix-session`. Keep-alive HTTP/1 clients, each with its own cookie jar, drive it at
//! several concurrencies ([`client`]); store calls and CPU time — the server's and the
//! database's — are counted on the side ([`cpu`]); [`report`] prints the tables (one per
//! workload and framework) and their JSON.
//!
//! `cargo run --release -p messages-bench --bin load`; `BENCHMARKS.md` at the root of the
//! repository has the figures of one run and how to read them.

pub mod actix_apps;
pub mod apps;
pub mod client;
pub mod cpu;
pub mod report;
pub mod sqlx_sessions;

/// What stops a benchmark run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A socket or file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP client failed (connection refused or closed, malformed response).
    #[error("http client: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built.
    #[error("http request: {0}")]
    Request(#[from] axum::http::Error),
    /// A store could not be set up.
    #[error("store: {0}")]
    Store(#[from] messages_core::Error),
    /// A SQL database or session store could not be set up.
    #[error("sql: {0}")]
    Sql(#[from] sqlx::Error),
    /// The Redis session store's client could not be set up.
    #[error("redis session store: {0}")]
    RedisSessions(#[from] tower_sessions_redis_store::fred::prelude::Error),
    /// The Redis floor row's client (`redis`).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The JSON report could not be written.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A client task died.
    #[error("client task: {0}")]
    Task(#[from] tokio::task::JoinError),
}
