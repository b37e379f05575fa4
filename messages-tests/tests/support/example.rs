//! The example application (`messages-example`) on one of its stores, served on a
//! loopback port for HTTP tests. A test binary includes it with
//! `#[path = "support/example.rs"] mod example_app;`: only the binaries that serve the
//! example link it (and its views, which the registry tests must not see).

use messages_core::{MessagesConfig, RedisOptions, RedisStore};

use messages_tests::http::TestServer;
use messages_tests::redis_server::{RedisCluster, RedisServer};

/// The cookie signing key the served example uses.
const KEY: &str = "the signing key of the example in tests: 32+ bytes";

/// The example on `store`, served until dropped with the Redis it uses:
///
/// - `memory`, `cookie`, `fallback`: `MESSAGES_STORE` as named.
/// - `redis`: a fresh `redis-server`; `fallback-redis`: cookie first, spilling to one.
/// - `redis-cluster`: a fresh 3-node Redis Cluster, with the example's Redis options (the
///   example's own configuration takes one server).
///
/// `None` when the store needs Redis and `redis-server` is not installed (the harness has
/// said SKIPPED; in CI it fails instead).
///
/// # Panics
/// On an unknown store name or an unreachable fresh Redis (test failures).
pub(crate) async fn serve(store: &str) -> Option<TestServer> {
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
        let app = messages_example::app(MessagesConfig::new(redis));
        return Some(TestServer::start(app).await.keep(cluster));
    }
    let redis = match store {
        "redis" | "fallback-redis" => Some(RedisServer::start()?),
        _ => None,
    };
    let url = redis.as_ref().map(RedisServer::url);
    let name = store.trim_end_matches("-redis");
    let config = messages_example::config_from(|var| match var {
        "MESSAGES_STORE" => Some(name.to_owned()),
        "MESSAGES_KEY" => Some(KEY.to_owned()),
        "REDIS_URL" => url.clone(),
        _ => None,
    })
    .await
    .unwrap();
    let app = messages_example::app(config);
    Some(TestServer::start(app).await.keep(redis))
}
