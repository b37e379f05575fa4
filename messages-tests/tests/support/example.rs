//! The example application on one of its stores and one of its two frameworks, served on
//! a loopback port for HTTP tests: `messages-example` (axum) and `messages-example-actix`
//! (actix-web) serve one HTTP contract, so every suite that includes this module runs its
//! cases against both ([`Framework`]). A test binary includes it with
//! `#[path = "support/example.rs"] mod example_app;`: only the binaries that serve the
//! example link the apps (and their views, which the registry tests must not see).
//!
//! A binary that includes it links **both** apps, so the registry of views holds each of
//! the contract's ids twice (once per app): `GET /views` of either app lists both
//! declarations, and `messages_core::check_views()` reports them. See
//! [`Framework::source`].

// Each binary uses a part of it.
#![allow(dead_code)]

use std::any::Any;
use std::fmt;

use messages_core::{MessagesConfig, RedisOptions, RedisStore};
use tempfile::TempDir;

use messages_tests::http::TestServer;
use messages_tests::postgres_server;
use messages_tests::redis_server::{RedisCluster, RedisServer};

/// The cookie signing key the served example uses.
pub(crate) const KEY: &str = "the signing key of the example in tests: 32+ bytes";

/// One of the two example applications of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framework {
    /// `messages-example`: `messages_example::app(config)`, served with `axum::serve`.
    Axum,
    /// `messages-example-actix`: `messages_example_actix::serve(listener, config)`
    /// (actix-web's `HttpServer`, its own worker threads).
    Actix,
}

impl Framework {
    /// Both, axum first.
    pub(crate) const ALL: [Framework; 2] = [Framework::Axum, Framework::Actix];

    /// `axum` or `actix`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Framework::Axum => "axum",
            Framework::Actix => "actix",
        }
    }

    /// The app's source file, the `file` that `GET /views` gives for its handlers.
    pub(crate) fn source(self) -> &'static str {
        match self {
            Framework::Axum => "examples/axum-app/src/lib.rs",
            Framework::Actix => "examples/actix-app/src/lib.rs",
        }
    }

    /// This framework's app on `config`, served until dropped.
    pub(crate) async fn serve(self, config: MessagesConfig) -> TestServer {
        match self {
            Framework::Axum => TestServer::axum(messages_example::app(config)).await,
            Framework::Actix => {
                TestServer::serve(|listener| messages_example_actix::serve(listener, config)).await
            }
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The example's configuration for `store` (`memory`, `cookie` or `fallback`, as
/// `MESSAGES_STORE` names them; `fallback` on memory), signed with [`KEY`].
///
/// # Panics
/// On a store that needs Redis or an unknown name (test failures).
pub(crate) async fn config(store: &str) -> MessagesConfig {
    messages_example::config_from(|var| match var {
        "MESSAGES_STORE" => Some(store.to_owned()),
        "MESSAGES_KEY" => Some(KEY.to_owned()),
        _ => None,
    })
    .await
    .unwrap()
}

/// The example on `framework` and `store`, served until dropped with the server or file
/// its store uses:
///
/// - `memory`, `cookie`, `fallback`: `MESSAGES_STORE` as named.
/// - `redis`: a fresh `redis-server`; `fallback-redis`: cookie first, spilling to one.
/// - `redis-cluster`: a fresh 3-node Redis Cluster, with the example's Redis options (the
///   example's own configuration takes one server).
/// - `postgres`: a fresh database on the binary's shared PostgreSQL server
///   (`messages_tests::postgres_server::shared`), as `DATABASE_URL`; the example creates
///   its tables.
/// - `sqlite`: a file in a fresh temporary directory, its path as `DATABASE_URL`.
///
/// `None` when the store needs Redis or PostgreSQL and it is not installed (the harness
/// has said SKIPPED; in CI it fails instead).
///
/// # Panics
/// On an unknown store name or an unreachable fresh server (test failures).
pub(crate) async fn serve(framework: Framework, store: &str) -> Option<TestServer> {
    if store == "redis-cluster" {
        let cluster = RedisCluster::start()?;
        let urls = cluster.urls();
        let options = RedisOptions {
            per_context: 200,
            ..RedisOptions::default()
        };
        let redis = RedisStore::connect_cluster(urls.iter().map(String::as_str), options)
            .await
            .unwrap();
        let server = framework.serve(MessagesConfig::new(redis)).await;
        return Some(server.keep(cluster));
    }
    let (mut redis_url, mut database_url) = (None, None);
    // What the store uses, kept as long as the app is served.
    let guard: Box<dyn Any + Send> = match store {
        "redis" | "fallback-redis" => {
            let redis = RedisServer::start()?;
            redis_url = Some(redis.url());
            Box::new(redis)
        }
        "postgres" => {
            database_url = Some(postgres_server::shared()?.fresh_database().await);
            Box::new(())
        }
        "sqlite" => {
            let dir = TempDir::new().unwrap();
            database_url = Some(dir.path().join("messages.db").display().to_string());
            Box::new(dir)
        }
        _ => Box::new(()),
    };
    let name = store.trim_end_matches("-redis");
    let config = messages_example::config_from(|var| match var {
        "MESSAGES_STORE" => Some(name.to_owned()),
        "MESSAGES_KEY" => Some(KEY.to_owned()),
        "REDIS_URL" => redis_url.clone(),
        "DATABASE_URL" => database_url.clone(),
        _ => None,
    })
    .await
    .unwrap();
    Some(framework.serve(config).await.keep(guard))
}

/// Whether a row's store can run: the Redis rows only with `redis-server`, the
/// PostgreSQL rows only with PostgreSQL (locally without them the harness says SKIPPED;
/// in CI it fails instead).
pub(crate) fn store_available(store: &str) -> bool {
    static REDIS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if store.contains("redis") {
        *REDIS.get_or_init(|| RedisServer::start().is_some())
    } else if store == "postgres" {
        postgres_server::shared().is_some()
    } else {
        true
    }
}
